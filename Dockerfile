# syntax=docker/dockerfile:1
# The image of every service, from this one recipe. Build from the repository root, naming the
# service's directory and its Python package (docker-compose.yml passes both):
#   docker build --build-arg SERVICE=ai-responder --build-arg PACKAGE=ai_responder \
#     -t ghcr.io/lucine-support/ai-responder:local .
ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------- build stage
FROM ${PYTHON_IMAGE} AS build
ARG SERVICE
ARG PACKAGE
RUN test -n "$SERVICE" && test -n "$PACKAGE" \
 || { echo "build with --build-arg SERVICE=<directory under services/> --build-arg PACKAGE=<its package>" >&2; exit 1; }
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Third-party dependencies first (cached until the lock changes), verified by hash.
COPY requirements/runtime.lock requirements/runtime.lock
RUN pip install --require-hashes -r requirements/runtime.lock

# Then the shared libraries and this service (hatchling comes from the lock).
COPY libs/contracts libs/contracts
COPY libs/servicekit libs/servicekit
COPY services/${SERVICE} services/${SERVICE}
RUN pip install --no-deps --no-build-isolation ./libs/contracts ./libs/servicekit ./services/${SERVICE}

# -------------------------------------------------------------- runtime stage
FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE
ARG PACKAGE
LABEL org.opencontainers.image.title="${SERVICE}" \
      org.opencontainers.image.source="https://github.com/lucine-support/platform" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HTTP_PORT=8000 \
    SERVICE_PACKAGE=${PACKAGE}
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
# The service directory (its README and data files such as kb/ or tenants/) is the working directory; root-owned
# so the process cannot modify its own code. Tests are excluded by .dockerignore.
WORKDIR /app
COPY services/${SERVICE} /app
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HTTP_PORT', '8000'), timeout=4)"]
# `exec`: the service replaces the shell as process 1, so the container's SIGTERM reaches it.
CMD ["sh", "-c", "exec python -m \"$SERVICE_PACKAGE\""]
