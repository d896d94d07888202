"""The gateway's runtime: servicekit's Runtime plus the pieces the widget API shares."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import cast

import httpx

from contracts import topics
from gateway.config import MIGRATIONS, Settings
from gateway.hub import Hub
from gateway.ratelimit import RateLimiter
from gateway.readapi import ConversationReader
from gateway.tenants import TenantDirectory, load_tenants, origin_of, read_tenant_file, tenant_files
from servicekit.http import Runtime
from servicekit.kafka import RecordStream
from servicekit.logs import get_logger

log = get_logger(__name__)


@dataclass
class GatewayRuntime(Runtime):
    config: Settings = field(init=False)
    http: httpx.AsyncClient = field(init=False)
    tenants: TenantDirectory = field(init=False)
    reader: ConversationReader = field(init=False)
    hub: Hub = field(init=False)
    limiter: RateLimiter = field(init=False)
    conversation_events: RecordStream = field(init=False)
    _fan_out: asyncio.Task[None] | None = None

    @classmethod
    def create(cls, settings: Settings) -> GatewayRuntime:
        runtime = cast(
            GatewayRuntime,
            # No outbox: the gateway stores nothing a command depends on; it publishes each
            # command directly and answers only once Kafka has it (gateway.commands).
            cls.build(settings, database=True, redis=True, outbox=False, migrations_dir=MIGRATIONS),
        )
        assert runtime.sessions is not None
        assert runtime.redis is not None
        runtime.config = settings
        runtime.http = httpx.AsyncClient(
            base_url=settings.conversation_url,
            timeout=settings.conversation_timeout_seconds,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )
        runtime.tenants = TenantDirectory(runtime.sessions, own_origin=origin_of(settings.public_base_url))
        runtime.reader = ConversationReader(runtime.http)
        runtime.hub = Hub(runtime.reader)
        runtime.limiter = RateLimiter(
            runtime.redis, namespace=settings.kafka_topic_prefix, window_seconds=settings.rate_limit_window_seconds
        )
        # No group: every replica reads every event, because any of them may hold the socket.
        # "latest": a socket fetches its history from the read API, so old events are not needed.
        runtime.conversation_events = RecordStream(
            [runtime.topic(topics.CONVERSATION_EVENTS.name)],
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id=f"{settings.service_name}-fan-out",
            group_id=None,
            auto_offset_reset="latest",
            max_batch=500,
        )
        runtime.on_start += [runtime._load_tenants, runtime._start_fan_out]
        runtime.on_stop += [runtime._stop_fan_out, runtime.http.aclose]
        return runtime

    async def _start_fan_out(self) -> None:
        await self.conversation_events.start()
        self._fan_out = asyncio.create_task(self._fan_out_events(), name="fan-out")

    async def _fan_out_events(self) -> None:
        """Hands each conversation event to the hub, which sends it to this replica's sockets of
        that conversation (most events concern sockets of other replicas and are skipped by key)."""
        while batch := await self.conversation_events.batch():
            for record in batch:
                try:
                    await self.hub.on_record(record)
                except Exception:
                    log.exception("conversation event not fanned out", offset=record.offset)

    async def _stop_fan_out(self) -> None:
        await self.conversation_events.close()
        if self._fan_out is not None:
            self._fan_out.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fan_out

    async def _load_tenants(self) -> None:
        files = tenant_files(self.config.tenants_dir)
        await load_tenants(self.sessions, [read_tenant_file(path) for path in files])  # type: ignore[arg-type]
        await self.tenants.refresh()
        base = self.config.public_base_url.rstrip("/")
        for tenant in self.tenants.tenants:
            log.info("widget demo", tenant_id=tenant.tenant_id, url=f"{base}/demo/{tenant.tenant_id}")
        log.info("tenants loaded", files=[str(path) for path in files], tenants=len(self.tenants.tenants))
