"""Fixtures for the static checks of the container and deployment files.

Nothing here needs Docker or a cluster: the files are parsed and their properties asserted.
Tests that render kustomize output use `kubectl kustomize` when it is installed and skip
otherwise; the structural checks never need it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# The runtime contract every service is built around (see the deployment brief / DESIGN.md).
COMMON_ENV: frozenset[str] = frozenset(
    {
        "KAFKA_BOOTSTRAP_SERVERS",
        "POSTGRES_HOST",
        "POSTGRES_PORT",
        "POSTGRES_USER",
        "POSTGRES_PASSWORD",
        "POSTGRES_DB",
        "REDIS_URL",
        "ENVIRONMENT",
        "LOG_LEVEL",
        "HTTP_PORT",
    }
)
EXTRA_ENV: dict[str, frozenset[str]] = {
    "gateway": frozenset(
        {
            "JWT_SECRET",
            "OPERATOR_JWT_SECRET",
            "SIGNUP_ENABLED",
            "SIGNUP_LINK_SECRET",
            "INVITATION_LINK_SECRET",
            "PLATFORM_ADMIN_TOKEN",
            "CONVERSATION_URL",
            "ROUTING_URL",
            "AI_RESPONDER_URL",
            "AI_RESPONDER_ADMIN_TOKEN",
            "TICKETS_URL",
            "NOTIFIER_URL",
            "ANALYTICS_URL",
            "PUBLIC_BASE_URL",
        }
    ),
    "ai-responder": frozenset({"OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "ADMIN_TOKEN"}),
    "tickets": frozenset({"TICKET_LINK_SECRET"}),
    "notifier": frozenset(
        {
            "SMTP_HOST",
            "SMTP_PORT",
            "TWILIO_BASE_URL",
            "TWILIO_ACCOUNT_SID",
            "TWILIO_AUTH_TOKEN",
            "TICKET_LINK_SECRET",
            "PUBLIC_BASE_URL",
        }
    ),
}


def discover_services() -> dict[str, str]:
    """Map every service directory under services/ to its import package name."""
    found: dict[str, str] = {}
    for pyproject in sorted((REPO_ROOT / "services").glob("*/pyproject.toml")):
        svc_dir = pyproject.parent
        packages = [p for p in (svc_dir / "src").iterdir() if (p / "__init__.py").is_file()]
        assert len(packages) == 1, f"{svc_dir}: expected exactly one package under src/, found {packages}"
        found[svc_dir.name] = packages[0].name
    return found


SERVICES: dict[str, str] = discover_services()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Any test taking a `service` argument runs once per directory under services/."""
    if "service" in metafunc.fixturenames:
        metafunc.parametrize("service", sorted(SERVICES))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def services() -> dict[str, str]:
    assert len(SERVICES) >= 7, f"expected the seven services, found {sorted(SERVICES)}"
    return SERVICES


@pytest.fixture
def package(service: str) -> str:
    return SERVICES[service]


@pytest.fixture
def expected_env(service: str) -> frozenset[str]:
    """Exactly the environment variable names the service is contracted to read."""
    return COMMON_ENV | EXTRA_ENV.get(service, frozenset())


@pytest.fixture
def wheel_packages(service: str) -> list[str]:
    data = tomllib.loads((REPO_ROOT / "services" / service / "pyproject.toml").read_text())
    return list(data["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])
