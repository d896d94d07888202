"""The gateway's runtime: servicekit's Runtime plus the pieces the widget API shares."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from aiokafka import ConsumerRecord

from contracts import topics
from gateway.access import TENANT_REFUSALS, AccessGate
from gateway.analytics import AnalyticsClient
from gateway.config import MIGRATIONS, Settings
from gateway.copilot import CopilotClient
from gateway.hub import Hub
from gateway.internal import InternalApi
from gateway.notifier import NotifierClient
from gateway.operator_stream import OperatorHub
from gateway.operators import load_operators, operator_files, read_operators_file
from gateway.ratelimit import RateLimiter
from gateway.readapi import ConversationReader
from gateway.routing import RoutingClient
from gateway.store import all_tenants
from gateway.tenant_events import stage_profiles
from gateway.tenants import TenantDirectory, load_tenants, origin_of, read_tenant_file, tenant_files
from gateway.tickets import TicketsClient
from servicekit.http import Runtime
from servicekit.kafka import RecordStream
from servicekit.logs import get_logger

log = get_logger(__name__)

# The WebSocket close codes of gateway.api (not imported: gateway.api imports this module).
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403

RecordHandler = Callable[[ConsumerRecord[Any, Any]], Awaitable[None]]


@dataclass
class GatewayRuntime(Runtime):
    config: Settings = field(init=False)
    http: InternalApi = field(init=False)
    tenants: TenantDirectory = field(init=False)
    reader: ConversationReader = field(init=False)
    hub: Hub = field(init=False)
    limiter: RateLimiter = field(init=False)
    login_limiter: RateLimiter = field(init=False)
    routing_http: InternalApi = field(init=False)
    routing: RoutingClient = field(init=False)
    copilot_http: InternalApi = field(init=False)
    copilot: CopilotClient = field(init=False)
    tickets_http: InternalApi = field(init=False)
    tickets: TicketsClient = field(init=False)
    lookup_limiter: RateLimiter = field(init=False)
    analytics_http: InternalApi = field(init=False)
    analytics: AnalyticsClient = field(init=False)
    notifier_http: InternalApi = field(init=False)
    notifier: NotifierClient = field(init=False)
    operator_hub: OperatorHub = field(init=False)
    access: AccessGate = field(init=False)
    conversation_events: RecordStream = field(init=False)
    routing_events: RecordStream = field(init=False)
    ticket_events: RecordStream = field(init=False)
    _fan_outs: list[asyncio.Task[None]] = field(default_factory=list)
    _access_watch: asyncio.Task[None] | None = None
    _tenants_reloads: set[asyncio.Task[None]] = field(default_factory=set)

    @classmethod
    def create(cls, settings: Settings) -> GatewayRuntime:
        runtime = cast(
            GatewayRuntime,
            # Commands go straight to Kafka (gateway.commands); the outbox carries the tenant
            # events, which announce changes to the gateway's own tables (gateway.tenant_events).
            cls.build(settings, database=True, redis=True, outbox=True, migrations_dir=MIGRATIONS),
        )
        assert runtime.sessions is not None
        assert runtime.redis is not None
        runtime.config = settings
        runtime.http = InternalApi(
            "the conversation service",
            settings.conversation_url,
            settings.conversation_timeout_seconds,
            max_connections=200,
        )
        runtime.tenants = TenantDirectory(runtime.sessions, own_origin=origin_of(settings.public_base_url))
        runtime.reader = ConversationReader(runtime.http)
        runtime.hub = Hub(runtime.reader)
        runtime.limiter = RateLimiter(
            runtime.redis, namespace=settings.kafka_topic_prefix, window_seconds=settings.rate_limit_window_seconds
        )
        runtime.login_limiter = RateLimiter(
            runtime.redis, namespace=settings.kafka_topic_prefix, window_seconds=settings.login_window_seconds
        )
        runtime.routing_http = InternalApi(
            "routing", settings.routing_url, settings.routing_timeout_seconds, max_connections=50
        )
        runtime.routing = RoutingClient(runtime.routing_http)
        runtime.copilot_http = InternalApi(
            "the assistant", settings.ai_responder_url, settings.ai_responder_timeout_seconds, max_connections=50
        )
        runtime.copilot = CopilotClient(runtime.copilot_http)
        runtime.tickets_http = InternalApi(
            "the tickets service", settings.tickets_url, settings.tickets_timeout_seconds, max_connections=50
        )
        runtime.tickets = TicketsClient(runtime.tickets_http)
        runtime.lookup_limiter = RateLimiter(
            runtime.redis, namespace=settings.kafka_topic_prefix, window_seconds=settings.ticket_lookup_window_seconds
        )
        runtime.analytics_http = InternalApi(
            "the analytics service", settings.analytics_url, settings.analytics_timeout_seconds, max_connections=20
        )
        runtime.analytics = AnalyticsClient(runtime.analytics_http)
        runtime.notifier_http = InternalApi(
            "the notifier", settings.notifier_url, settings.notifier_timeout_seconds, max_connections=10
        )
        runtime.notifier = NotifierClient(runtime.notifier_http, settings.notifier_channels_ttl_seconds)
        runtime.operator_hub = OperatorHub(runtime.hub)
        runtime.access = AccessGate(runtime.sessions, runtime.redis, settings.kafka_topic_prefix)
        runtime.access.on_change.append(runtime._close_refused_streams)
        # A tenant's settings (key rotation, origins, profile) are announced like access changes.
        runtime.access.on_change.append(runtime._reload_tenants_soon)

        def fan_out_stream(topic: str, client_suffix: str) -> RecordStream:
            # No group: every replica reads every event, because any of them may hold the socket.
            # "latest": a socket fetches its history from the read API, so old events are not needed.
            return RecordStream(
                [runtime.topic(topic)],
                bootstrap_servers=settings.kafka_bootstrap_servers,
                client_id=f"{settings.service_name}-{client_suffix}",
                group_id=None,
                auto_offset_reset="latest",
                max_batch=500,
            )

        runtime.conversation_events = fan_out_stream(topics.CONVERSATION_EVENTS.name, "fan-out")
        # Routing's decisions, for the operator streams.
        runtime.routing_events = fan_out_stream(topics.ROUTING_EVENTS.name, "operator-fan-out")
        # The tickets' changes, for the operator streams (`ticket` frames).
        runtime.ticket_events = fan_out_stream(topics.TICKETS_EVENTS.name, "ticket-fan-out")
        runtime.on_start += [
            runtime._load_tenants,
            runtime._seed_operators,
            runtime._start_access_watch,
            runtime._start_fan_out,
        ]
        runtime.on_stop += [
            runtime._stop_access_watch,
            runtime._stop_fan_out,
            runtime.http.close,
            runtime.routing_http.close,
            runtime.copilot_http.close,
            runtime.tickets_http.close,
            runtime.analytics_http.close,
            runtime.notifier_http.close,
        ]
        return runtime

    async def _start_fan_out(self) -> None:
        for stream, handler in (
            (self.conversation_events, self.hub.on_record),
            (self.routing_events, self.operator_hub.on_record),
            (self.ticket_events, self.operator_hub.on_ticket_record),
        ):
            await stream.start()
            self._fan_outs.append(asyncio.create_task(self._fan_out_events(stream, handler), name="fan-out"))

    @staticmethod
    async def _fan_out_events(stream: RecordStream, handler: RecordHandler) -> None:
        """Hands each event to its hub, which sends it to this replica's sockets concerned (most
        conversation events concern sockets of other replicas and are skipped by key)."""
        while batch := await stream.batch():
            for record in batch:
                try:
                    await handler(record)
                except Exception:
                    log.exception("event not fanned out", topic=record.topic, offset=record.offset)

    async def _stop_fan_out(self) -> None:
        for stream in (self.conversation_events, self.routing_events, self.ticket_events):
            await stream.close()
        for task in self._fan_outs:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _start_access_watch(self) -> None:
        await self.access.reload()
        self._access_watch = asyncio.create_task(self.access.watch(), name="access-watch")

    async def _stop_access_watch(self) -> None:
        if self._access_watch is not None:
            self._access_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._access_watch

    def _close_refused_streams(self, gate: AccessGate) -> None:
        """Open streams of a tenant just disabled (widgets and operators: 4403), or of an account
        just deactivated (4401), are closed: a key or token checked when the socket opened is not
        checked again otherwise."""
        if gate.refuses_any_tenant():
            for sockets in list(self.hub.sockets.values()):
                for socket in list(sockets):
                    if not socket.sees_notes and gate.tenant_refusal(socket.tenant_id) is not None:
                        self.hub.spawn(socket.websocket.close(CLOSE_FORBIDDEN, "this tenant is disabled"))
        for connections in list(self.operator_hub.by_tenant.values()):
            for connection in list(connections):
                reason = gate.refusal(connection.claims)
                if reason in TENANT_REFUSALS:
                    connection.close(CLOSE_FORBIDDEN, "this tenant is disabled")
                elif reason is not None:
                    connection.close(CLOSE_UNAUTHORIZED, "this account is no longer active")

    def _reload_tenants_soon(self, _: AccessGate) -> None:
        """Every replica reloads its tenant directory when a change is announced (the gate's
        callbacks are synchronous: the reload runs as a task; the directory's lock serialises them)."""
        task = asyncio.create_task(self._reload_tenants(), name="tenants-reload")
        self._tenants_reloads.add(task)  # a reference, until done: the loop keeps only weak ones
        task.add_done_callback(self._tenants_reloads.discard)

    async def _reload_tenants(self) -> None:
        try:
            await self.tenants.refresh()
        except Exception as error:  # the periodic reload tries again; the last directory stands
            log.warning("tenants not reloaded", error=repr(error))

    async def _load_tenants(self) -> None:
        files = tenant_files(self.config.tenants_dir)
        await load_tenants(self.sessions, [read_tenant_file(path) for path in files])  # type: ignore[arg-type]
        await self.tenants.refresh()
        # Every tenant's profile, again: a reader that joined after the topic's retention learns
        # them all (readers skip revisions they have).
        async with self.sessions() as session, session.begin():  # type: ignore[misc]
            stage_profiles(session, await all_tenants(session))
        base = self.config.public_base_url.rstrip("/")
        for tenant in self.tenants.tenants:
            log.info("widget demo", tenant_id=tenant.tenant_id, url=f"{base}/demo/{tenant.tenant_id}")
        log.info("tenants loaded", files=[str(path) for path in files], tenants=len(self.tenants.tenants))

    async def _seed_operators(self) -> None:
        """Outside production, the shipped operator files (demo accounts with public passwords)
        are loaded; a production gateway only has the accounts made with `gateway.operators`."""
        base = self.config.public_base_url.rstrip("/")
        log.info("operator dashboard", url=f"{base}/dashboard")
        if self.config.environment == "production":
            return
        seeds = [read_operators_file(path) for path in operator_files(self.config.operators_dir)]
        known = [seed for seed in seeds if await self.tenants.by_id(seed.tenant_id) is not None]
        for seed in seeds:
            if seed not in known:
                log.warning("operators of an unknown tenant not seeded", tenant_id=seed.tenant_id)
        count = await load_operators(self.sessions, known)  # type: ignore[arg-type]
        log.info("operators seeded", tenants=[seed.tenant_id for seed in known], operators=count)
