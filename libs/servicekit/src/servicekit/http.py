"""The HTTP side every service shares: app factory with lifespan, /healthz, /readyz, /metrics
(with request latency per route template and the sampled gauges), and JSON errors shaped
`{"error": {"code", "message"}}`."""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicekit.consumer import BatchOrder, EventConsumer, prune_processed_events
from servicekit.db import create_engine, session_factory
from servicekit.heap import freeze_startup_heap
from servicekit.kafka import create_broker, physical_topic
from servicekit.logs import configure_logging, get_logger
from servicekit.metrics import HTTP_REQUEST_SECONDS
from servicekit.migrations import upgrade_to_head
from servicekit.outbox import OutboxRelay
from servicekit.settings import ServiceSettings
from servicekit.timers import TimerFirer
from servicekit.tracing import configure_tracing, exporting, flush_spans, provider

log = get_logger(__name__)
Hook = Callable[[], Awaitable[None]]


class ApiError(Exception):
    """Raise from a route to answer `{"error": {"code", "message"}}` with `status`."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def validation_problems(problems: Sequence[Mapping[str, Any]]) -> str:
    """The message of a 422: each problem as `field: what is wrong`, the body's fields by name."""
    described = "; ".join(
        f"{'.'.join(str(part) for part in problem['loc'] if part != 'body')}: {problem['msg']}" for problem in problems
    )
    return described or "invalid request"


@dataclass
class Runtime:
    """The connections a service holds for its whole life, built from its settings."""

    settings: ServiceSettings
    broker: KafkaBroker
    engine: AsyncEngine | None = None
    sessions: async_sessionmaker[AsyncSession] | None = None
    relay: OutboxRelay | None = None
    relay_engine: AsyncEngine | None = None
    timers: TimerFirer | None = None
    redis: Redis | None = None
    migrations_dir: Path | None = None
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)
    consumers: list[EventConsumer] = field(default_factory=list)
    # A service's own gauges, refreshed with the platform's every `metrics_sample_seconds`.
    samplers: list[Hook] = field(default_factory=list)
    _background: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        settings: ServiceSettings,
        *,
        database: bool = True,
        redis: bool = False,
        outbox: bool = True,
        migrations_dir: Path | None = None,
    ) -> Runtime:
        configure_logging(settings.service_name, settings.log_level)
        configure_tracing(settings.service_name, settings)
        broker = create_broker(settings.kafka_bootstrap_servers, settings.service_name)
        runtime = cls(settings=settings, broker=broker, migrations_dir=migrations_dir)
        if database:
            runtime.engine = create_engine(settings.database_url)
            runtime.sessions = session_factory(runtime.engine)
            if outbox:
                # The relay's commits only delete published rows: if a database crash loses one,
                # its rows are published again and consumers skip them by event id. So they need
                # not wait for the disk, which keeps the relay's turn short.
                runtime.relay_engine = create_engine(settings.database_url, pool_size=2, durable_commits=False)
                relay_sessions = session_factory(runtime.relay_engine)
                runtime.relay = OutboxRelay(relay_sessions, broker, topic_prefix=settings.kafka_topic_prefix)
                runtime.relay.serve(runtime.sessions)
                # Due timers move to the outbox through the durable sessions, then to the relay.
                runtime.timers = TimerFirer(runtime.sessions, relay=runtime.relay)
        if redis:
            runtime.redis = Redis.from_url(settings.redis_url, decode_responses=False)
        return runtime

    def consumer(self, order: BatchOrder = "conversation") -> EventConsumer:
        """The idempotent consumer of this service, with its group, store and outbox relay; `order`:
        how each batch is applied (see `EventConsumer`)."""
        assert self.sessions is not None, "an EventConsumer needs the service's database"
        consumer = EventConsumer(
            self.broker,
            self.sessions,
            group_id=self.settings.group_id,
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            topic_prefix=self.settings.kafka_topic_prefix,
            batch_size=self.settings.consumer_batch_size,
            batch_linger=self.settings.consumer_batch_linger_ms / 1000,
            relay=self.relay,
            probes={"cache": self.redis.ping} if self.redis is not None else None,
            order=order,
        )
        self.consumers.append(consumer)
        return consumer

    def topic(self, name: str) -> str:
        return physical_topic(self.settings.kafka_topic_prefix, name)

    async def start(self) -> None:
        if self.migrations_dir is not None:
            await asyncio.to_thread(upgrade_to_head, self.migrations_dir, self.settings.database_url)
        for hook in self.on_start:
            await hook()
        await self.broker.start()
        if self.relay:
            self.relay.start()
        if self.timers:
            self.timers.start()
        for consumer in self.consumers:
            await consumer.start()
        if self.consumers and self.sessions is not None:
            self._background.append(asyncio.create_task(self._prune_processed_events_hourly()))
        self._background.append(asyncio.create_task(self._sample_forever(), name="metrics-sampler"))
        freeze_startup_heap()
        log.info("service started", port=self.settings.http_port)

    async def _prune_processed_events_hourly(self) -> None:
        assert self.sessions is not None
        retention = timedelta(days=self.settings.processed_events_retention_days)
        while True:
            try:
                removed = await prune_processed_events(self.sessions, retention)
                if removed:
                    log.info("old processed event ids pruned", removed=removed)
            except Exception:
                log.exception("pruning processed event ids failed")
            await asyncio.sleep(3600)

    async def sample(self) -> None:
        """Refreshes the gauges that are read rather than counted: each consumer's lag from the
        brokers, the outbox backlog and parked rows, the pending and overdue timers (one query
        each, per replica), and the service's own `samplers`. A failing one is logged and the
        others still run."""
        probes: list[Hook] = [consumer.observe_lag for consumer in self.consumers]
        if self.relay is not None:
            probes.append(self.relay.observe_backlog)
        if self.timers is not None:
            probes.append(self.timers.observe_pending)
        for probe in [*probes, *self.samplers]:
            try:
                async with asyncio.timeout(10):
                    await probe()
            except Exception as error:
                log.warning("metrics not sampled", probe=getattr(probe, "__qualname__", "?"), error=repr(error))

    async def _sample_forever(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self.settings.metrics_sample_seconds)

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        for consumer in self.consumers:
            await consumer.stop()
        if self.timers:
            await self.timers.stop()
        if self.relay:
            await self.relay.stop()
        await self.broker.stop()
        for hook in self.on_stop:
            await hook()
        if self.redis:
            await self.redis.aclose()
        for engine in (self.engine, self.relay_engine):
            if engine is not None:
                await engine.dispose()
        await asyncio.to_thread(flush_spans)

    async def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        checks["kafka"] = "ok" if await self.broker.ping(timeout=2.0) else "unreachable"
        if self.engine is not None:
            try:
                async with self.engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
                checks["database"] = "ok"
            except Exception as error:
                checks["database"] = f"unreachable: {type(error).__name__}"
        if self.redis is not None:
            try:
                await self.redis.ping()
                checks["cache"] = "ok"
            except Exception as error:
                checks["cache"] = f"unreachable: {type(error).__name__}"
        for consumer in self.consumers:
            checks[f"consumer {consumer.group_id}"] = (
                f"paused: {consumer.paused_reason}" if consumer.paused_reason else "ok"
            )
        return checks


def create_app(runtime: Runtime, *, title: str, routers: Sequence[APIRouter] = (), **fastapi_options: Any) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    # FastAPI's own telemetry: request spans (which carry the trace into the events a request
    # publishes) when spans are exported at all. Metrics are Prometheus's and logs structlog's: its
    # OpenTelemetry metrics and logs would go to providers nobody configured, at a cost per request.
    fastapi_options["telemetry"] = {
        "tracing": exporting(),
        "tracer_provider": provider(),
        # One span per request: its dependencies', endpoint's and serialization's spans would
        # triple the cost and add nothing the request span and the consumers' spans do not show.
        "operation_spans": False,
        "metrics": False,
        "logs": False,
        **fastapi_options.get("telemetry", {}),
    }
    app = FastAPI(title=title, lifespan=lifespan, **fastapi_options)
    app.state.runtime = runtime

    @app.get("/healthz", tags=["health"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="Readiness: broker, database and cache reachable")
    async def readyz() -> JSONResponse:
        checks = await runtime.readiness()
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
        )

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(ApiError)
    async def on_api_error(_: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.code, error.message, error.headers)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 400 and isinstance(error.__cause__, ValueError):
            # FastAPI answers 422 for a body that is not JSON but 400 for one that is not even
            # UTF-8: both are a body that cannot be read, so both are the documented 422.
            return error_response(422, "invalid_request", "the request body is not valid JSON")
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}.get(
            error.status_code, "http_error"
        )
        headers = getattr(error, "headers", None)
        if error.status_code == 405:
            headers = (headers or {}) | {"Allow": allowed_methods(request)}
        return error_response(error.status_code, code, str(error.detail), headers)

    @app.exception_handler(RequestValidationError)
    async def on_invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", validation_problems(error.errors()))

    for router in routers:
        app.include_router(router)
    app.add_middleware(RequestMetrics)
    return app


HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    """Observes `http_request_seconds` for each HTTP request, labelled with the template of the
    route that answered (`/v1/conversations/{conversation_id}/messages`), which the router leaves
    in the scope, never the raw path: one series per route, method and status, however many ids
    are asked for. Requests no route matched share `unmatched`. WebSockets are left out (a
    socket's life is not a latency). Pure ASGI: a clock read and one observation per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception escaping the app is a 500

        async def note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, note_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in HTTP_METHODS else "other"
            HTTP_REQUEST_SECONDS.labels(method, route, str(status)).observe(time.perf_counter() - started)


def allowed_methods(request: Request) -> str:
    """`Allow` of a 405: the methods of every route on this path. Starlette names only those of
    the first route that matched, and one path may be served by routes of several routers."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


def raise_open_file_limit() -> int:
    """Lifts the soft limit of open files to the hard one: every socket is a file, and the
    usual soft default (1024) would cap a gateway at about a thousand widgets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# Seconds an idle HTTP connection stays open. A widget asks its questions seconds apart on one
# connection: closed after uvicorn's default 5 s, the next request can race the close and fail.
# Above the usual load balancer idle timeout (60 s), so the balancer, not the service, closes first.
HTTP_KEEP_ALIVE_SECONDS = 65


# The largest WebSocket message a client may send (uvicorn's default is 16 MiB): a larger one
# closes its socket (1009). The largest a client sends is a widget's message, under 50 KB.
WS_MAX_MESSAGE_BYTES = 256 * 1024


def server_config(app: ASGIApp, host: str, port: int, **overrides: Any) -> uvicorn.Config:
    """How a service runs under uvicorn, in production and in the tests that serve it."""
    options: dict[str, Any] = {
        # Browsers always offer per-message compression; its state costs ~40 KB per socket,
        # which matters when one process holds thousands of idle widget sockets.
        "ws_per_message_deflate": False,
        "ws_max_size": WS_MAX_MESSAGE_BYTES,
        "log_config": None,
        "access_log": False,
        "timeout_keep_alive": HTTP_KEEP_ALIVE_SECONDS,
        "timeout_graceful_shutdown": 5,
    }
    return uvicorn.Config(app, host=host, port=port, **(options | overrides))


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    raise_open_file_limit()
    server = uvicorn.Server(server_config(app, settings.http_host, settings.http_port))
    server.run()
    if not server.started:
        sys.exit(3)  # as uvicorn.run exits when the server could not start (its port taken, say)


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    runtime: Runtime = request.app.state.runtime
    assert runtime.sessions is not None
    async with runtime.sessions() as session:
        yield session


# A route's database session: `Session` for a route that writes (in `session.begin()`), and
# `ReadSession` for one that only reads, on a connection outside any transaction (a write through
# it would commit statement by statement).
Session = Annotated[AsyncSession, Depends(_session)]


async def _read_session(session: Session) -> AsyncSession:
    # Read committed gives each statement its own snapshot, in a transaction or not: without one,
    # a read is its statements alone, not a BEGIN and a ROLLBACK round trip besides.
    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    return session


ReadSession = Annotated[AsyncSession, Depends(_read_session)]
