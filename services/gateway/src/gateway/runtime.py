"""The gateway's runtime: servicekit's Runtime plus the pieces the widget API shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import httpx
from faststream.kafka.annotations import KafkaMessage

from contracts import topics
from gateway.config import MIGRATIONS, Settings
from gateway.hub import Hub
from gateway.ratelimit import RateLimiter
from gateway.readapi import ConversationReader
from gateway.tenants import TenantDirectory, load_tenants, origin_of, read_tenant_file, tenant_files
from servicekit.http import Runtime
from servicekit.kafka import POLL_TIMEOUT_MS, whole_message
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
        runtime.on_start.append(runtime._load_tenants)
        runtime.on_stop.append(runtime.http.aclose)
        runtime._subscribe_to_conversation_events()
        return runtime

    def _subscribe_to_conversation_events(self) -> None:
        # No group id: every replica reads every event, because any of them may hold the socket.
        # "latest": a socket fetches its history from the read API, so old events are not needed.
        hub = self.hub

        @self.broker.subscriber(
            self.topic(topics.CONVERSATION_EVENTS.name),
            auto_offset_reset="latest",
            # Whole polls at once: most events concern sockets of other replicas and are skipped
            # by key, so the per-call cost of the framework would dominate one-by-one delivery.
            batch=True,
            max_records=500,
            batch_timeout_ms=POLL_TIMEOUT_MS,
            decoder=whole_message,
            title="gateway:conversation.events.v1",
            description="Fan-out of messages and status changes to the widget sockets of this replica.",
        )
        async def on_conversation_events(message: KafkaMessage) -> None:
            raw = message.raw_message
            for record in raw if isinstance(raw, tuple) else (raw,):
                await hub.on_record(record)

    async def _load_tenants(self) -> None:
        files = tenant_files(self.config.tenants_dir)
        await load_tenants(self.sessions, [read_tenant_file(path) for path in files])  # type: ignore[arg-type]
        await self.tenants.refresh()
        base = self.config.public_base_url.rstrip("/")
        for tenant in self.tenants.tenants:
            log.info("widget demo", tenant_id=tenant.tenant_id, url=f"{base}/demo/{tenant.tenant_id}")
        log.info("tenants loaded", files=[str(path) for path in files], tenants=len(self.tenants.tenants))
