"""How the idempotent consumer meets failures, on real Kafka and PostgreSQL: an outage of its own
database pauses it without losing its group membership; a failing outside call is retried for
its record alone; events from a newer producer are skipped or read, never dead-lettered; and the
processed-event ids are pruned in small batches, one replica at a time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web
from prometheus_client import REGISTRY
from sqlalchemy import String, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from contracts import Envelope, new_envelope
from contracts.envelope import idempotency_key
from contracts.events import AnalyticsFact
from contracts.topics import ANALYTICS_FACTS
from devkit.testing import Infra, create_database, drop_database, eventually, probe_fact, topic_namespace
from servicekit.consumer import PRUNE_LOCK, EventConsumer, outside_call, prune_processed_events
from servicekit.db import Base as PlatformBase
from servicekit.db import create_engine, session_factory
from servicekit.http import Runtime
from servicekit.kafka import create_broker
from servicekit.settings import ServiceSettings

PREFIX = f"fail-{uuid.uuid4().hex[:8]}."
FACTS = PREFIX + ANALYTICS_FACTS.name
FACTS_DLQ = PREFIX + ANALYTICS_FACTS.dlq


@pytest.fixture(scope="module", autouse=True)
def prefixed_topics(infra: Infra) -> Iterator[None]:
    yield from topic_namespace(infra, PREFIX)


class Base(DeclarativeBase):
    pass


class Effect(Base):
    """One applied fact; the id gives the order in which they were applied."""

    __tablename__ = "effects"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    conversation: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(60))


def nth(name: str, index: int) -> str:
    """A fact name (letters only) numbered by a letter: nth("during", 2) == "during_c"."""
    return f"{name}_{chr(ord('a') + index)}"


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class DatabaseProxy:
    """A TCP proxy in front of the real PostgreSQL that the test can cut and restore: the
    service's own database becoming unreachable, with the real server and driver either side."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuses new connections and drops the open ones."""
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in list(self._pipes):
            writer.close()
        self._pipes.clear()

    async def _connect(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(*self.target)
        self._pipes |= {client_writer, server_writer}
        await asyncio.gather(
            self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()
            self._pipes.discard(writer)


class Webhook:
    """A real HTTP server standing in for an outside service a handler calls: it answers 503 to
    the first `failures[conversation]` calls about a conversation, and records every call."""

    def __init__(self, failures: dict[str, int]) -> None:
        self.failures = dict(failures)
        self.calls: list[tuple[str, str]] = []  # (conversation, idempotency key)
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.json()
        conversation = body["conversation"]
        self.calls.append((conversation, request.headers.get("Idempotency-Key", "")))
        if self.failures.get(conversation, 0) != 0:
            self.failures[conversation] -= 1
            return web.Response(status=503, text="try later")
        return web.Response(status=204)


class FactConsumer:
    """An EventConsumer applying this test's AnalyticsFacts into `effects`; with a webhook, each
    fact is first announced to it (an outside call)."""

    def __init__(self, infra: Infra, database_url: str, tenant: str, webhook: Webhook | None = None, **options: Any):
        self.engine = create_engine(database_url)
        self.sessions = session_factory(self.engine)
        self.broker = create_broker(infra.kafka_bootstrap_servers, "failures-test")
        self.group_id = f"failures-{uuid.uuid4().hex[:8]}"
        self.consumer = EventConsumer(
            self.broker,
            self.sessions,
            group_id=self.group_id,
            bootstrap_servers=infra.kafka_bootstrap_servers,
            topic_prefix=PREFIX,
            **options,
        )
        self.http = httpx.AsyncClient(timeout=5)

        @self.consumer.on(AnalyticsFact)
        async def apply(envelope: Envelope[AnalyticsFact], session: AsyncSession) -> None:
            if envelope.tenant_id != tenant:
                return
            conversation = str(envelope.conversation_id)
            if webhook is not None:
                with outside_call("webhook"):
                    key = str(idempotency_key(envelope.event_id, "webhook"))
                    response = await self.http.post(
                        webhook.url,
                        json={"conversation": conversation, "name": envelope.payload.reason_code},
                        headers={"Idempotency-Key": key},
                    )
                    response.raise_for_status()
            session.add(Effect(conversation=conversation, name=envelope.payload.reason_code))

    async def start(self) -> None:
        async with self.engine.begin() as connection:
            await connection.run_sync(PlatformBase.metadata.create_all)
            await connection.run_sync(Base.metadata.create_all)
        await self.broker.start()
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.broker.stop()
        await self.http.aclose()
        await self.engine.dispose()

    async def effects(self) -> list[tuple[str, str]]:
        async with self.sessions() as session:
            rows = await session.execute(select(Effect.conversation, Effect.name).order_by(Effect.id))
            return [(row.conversation, row.name) for row in rows]


@pytest.fixture
async def consumer_database(infra: Infra) -> AsyncIterator[str]:
    name = await create_database(infra, "failures")
    yield name
    await drop_database(infra, name)


async def send(broker: Any, tenant: str, conversation: uuid.UUID, name: str) -> None:
    fact = probe_fact(name)
    envelope = new_envelope(fact, tenant_id=tenant, conversation_id=conversation)
    await broker.publish(envelope.to_json(), FACTS, key=envelope.key)


async def test_an_outage_of_its_own_database_pauses_consumption_keeps_the_membership_and_loses_nothing(
    infra: Infra, consumer_database: str
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    proxy = DatabaseProxy(infra.postgres_host, infra.postgres_port)
    await proxy.open()
    through_proxy = infra.database_url(consumer_database).replace(
        f"@{infra.postgres_host}:{infra.postgres_port}/", f"@127.0.0.1:{proxy.port}/"
    )
    # A short poll interval: a member that stopped polling would be evicted within the outage.
    reader = FactConsumer(infra, through_proxy, tenant, batch_size=5, max_poll_interval_ms=6000)
    await reader.start()
    runtime = Runtime(
        settings=ServiceSettings(service_name="failures-test"),
        broker=reader.broker,
        engine=reader.engine,
        sessions=reader.sessions,
        consumers=[reader.consumer],
    )
    group = reader.group_id
    conversation = uuid.uuid4()
    try:
        for index in range(3):
            await send(reader.broker, tenant, conversation, nth("before", index))
        await eventually(lambda: _count(reader, 3), what="the first facts to be applied")
        await eventually(lambda: reader.consumer.assignment(), what="partitions to be assigned")
        rebalances = metric("consumer_rebalances_total", group=group)
        dead_letters = metric("dlq_messages_total", topic=FACTS, group=group)

        await proxy.cut()
        for index in range(20):
            await send(reader.broker, tenant, conversation, nth("during", index))
        await eventually(lambda: reader.consumer.paused_reason is not None, what="consumption to pause")
        assert reader.consumer.paused_reason is not None
        assert reader.consumer.paused_reason.startswith("database unreachable")
        assert metric("consumer_paused", group=group) == 1
        checks = await runtime.readiness()
        assert checks["database"].startswith("unreachable")
        assert checks[f"consumer {group}"].startswith("paused: database unreachable")

        await asyncio.sleep(15)  # over twice the poll interval: a member that stopped polling is gone by now
        assert reader.consumer.paused_reason is not None, "still paused while the database is down"
        assert metric("consumer_rebalances_total", group=group) == rebalances, "the membership was kept"

        await proxy.open()
        await eventually(lambda: _count(reader, 23), what="every fact to be applied after the outage")
        names = [name for _, name in await reader.effects()]
        assert names == [nth("before", i) for i in range(3)] + [nth("during", i) for i in range(20)], (
            "once each, in order"
        )
        assert reader.consumer.paused_reason is None
        assert metric("consumer_paused", group=group) == 0
        assert (await runtime.readiness())[f"consumer {group}"] == "ok"
        assert metric("consumer_rebalances_total", group=group) == rebalances
        assert metric("dlq_messages_total", topic=FACTS, group=group) == dead_letters, "nothing dead-lettered"
    finally:
        await reader.stop()
        with contextlib.suppress(AssertionError):
            await proxy.cut()


async def _count(reader: FactConsumer, expected: int) -> bool:
    return len(await reader.effects()) >= expected


async def test_a_failing_outside_call_is_retried_for_its_record_alone_in_order_then_dead_lettered(
    infra: Infra, consumer_database: str
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    flaky, healthy, broken = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    webhook = Webhook({str(flaky): 3, str(broken): -1})  # -1: fails for ever
    await webhook.start()
    reader = FactConsumer(
        infra,
        infra.database_url(consumer_database),
        tenant,
        webhook,
        outside_call_attempts=4,
        retry_backoff=timedelta(milliseconds=300),
    )
    await reader.start()
    group = reader.group_id
    stored_before = metric("consumer_retries_stored_total", group=group)
    try:
        await send(reader.broker, tenant, flaky, "flaky_a")
        await send(reader.broker, tenant, flaky, "flaky_b")
        for index in range(5):
            await send(reader.broker, tenant, healthy, nth("healthy", index))
        await send(reader.broker, tenant, broken, "broken_a")

        await eventually(lambda: _count(reader, 7), what="every fact but the broken one to be applied")
        effects = await reader.effects()
        order = [name for _, name in effects]
        assert sorted(order) == sorted(["flaky_a", "flaky_b", *[nth("healthy", i) for i in range(5)]])
        assert order.index("flaky_a") < order.index("flaky_b"), "the later record waited behind the failing one"
        assert all(order.index(nth("healthy", i)) < order.index("flaky_a") for i in range(5)), (
            "the other conversation did not wait for the retries"
        )
        flaky_keys = [key for conversation, key in webhook.calls if conversation == str(flaky)]
        assert len(flaky_keys) >= 4, "three failures, then the call that went through"
        assert len(set(flaky_keys)) == 2, "each record's retries carry its own idempotency key"
        healthy_keys = {key for conversation, key in webhook.calls if conversation == str(healthy)}
        assert len(healthy_keys) == 5

        await eventually(lambda: _dead_letter_arrived(infra, tenant), what="the broken record to be dead-lettered")
        dead = await _read_dead_letters(infra, tenant)
        assert len(dead) == 1
        headers, value = dead[0]
        assert json.loads(value)["payload"]["reason_code"] == "broken_a"
        assert headers["dlq-consumer-group"] == group
        assert "webhook failed" in headers["dlq-error"]
        # Once within its batch (which then failed as a whole), then its 4 attempts of its own.
        assert Counter(conversation for conversation, _ in webhook.calls)[str(broken)] == 1 + 4
        assert metric("consumer_retries_stored_total", group=group) > stored_before
        async with reader.sessions() as session:
            assert await session.scalar(text("SELECT count(*) FROM consumer_retries")) == 0
    finally:
        await reader.stop()
        await webhook.stop()


async def _read_dead_letters(infra: Infra, tenant: str) -> list[tuple[dict[str, str], bytes]]:
    """This tenant's dead letters: the whole topic, read up to the end offsets seen at the start."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap_servers, auto_offset_reset="earliest")
    await consumer.start()
    found: list[tuple[dict[str, str], bytes]] = []
    try:
        partitions = [TopicPartition(FACTS_DLQ, 0)]  # dead-letter topics have one partition
        consumer.assign(partitions)
        end = (await consumer.end_offsets(partitions))[partitions[0]]
        while await consumer.position(partitions[0]) < end:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found.extend(
                    ({k: v.decode() for k, v in record.headers}, record.value)
                    for record in records
                    if tenant.encode() in record.value
                )
    finally:
        await consumer.stop()
    return found


async def _dead_letter_arrived(infra: Infra, tenant: str) -> bool:
    return bool(await _read_dead_letters(infra, tenant))


async def test_events_from_a_newer_producer_are_skipped_or_read_never_dead_lettered(
    infra: Infra, consumer_database: str
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    reader = FactConsumer(infra, infra.database_url(consumer_database), tenant)
    await reader.start()
    group = reader.group_id
    conversation = uuid.uuid4()
    skipped = metric("events_skipped_total", topic=FACTS, group=group, reason="unknown_type")
    dead_letters = metric("dlq_messages_total", topic=FACTS, group=group)

    def raw(type_: str, version: int, payload: dict[str, Any]) -> bytes:
        event_id = uuid.uuid4()
        return json.dumps(
            {
                "event_id": str(event_id),
                "type": type_,
                "version": version,
                "occurred_at": "2026-12-02T10:00:00Z",
                "tenant_id": tenant,
                "conversation_id": str(conversation),
                "correlation_id": str(event_id),
                "payload": payload,
            }
        ).encode()

    try:
        fact = probe_fact("newer_revision").model_dump(mode="json")
        # A type this code has never heard of, then a later revision of a type it knows (a field
        # added), then an event it knows: the partition keeps flowing, nothing is dead-lettered.
        await reader.broker.publish(raw("analytics.brand_new", 1, {"what": "x"}), FACTS, key=str(conversation).encode())
        await reader.broker.publish(
            raw("analytics.fact", 2, {**fact, "novelty": {"added": "later"}}), FACTS, key=str(conversation).encode()
        )
        await send(reader.broker, tenant, conversation, "known_revision")
        await eventually(lambda: _count(reader, 2), what="both known types to be applied")
        assert [name for _, name in await reader.effects()] == ["newer_revision", "known_revision"]
        assert metric("events_skipped_total", topic=FACTS, group=group, reason="unknown_type") == skipped + 1
        assert metric("dlq_messages_total", topic=FACTS, group=group) == dead_letters
    finally:
        await reader.stop()


async def test_processed_event_ids_are_pruned_in_small_batches_through_their_index_one_replica_at_a_time(
    infra: Infra, database: str
) -> None:
    engine = create_engine(infra.database_url(database))
    sessions = session_factory(engine)
    async with engine.begin() as connection:
        await connection.run_sync(PlatformBase.metadata.create_all)
        await connection.execute(
            text(
                "INSERT INTO processed_events (consumer_group, event_id, processed_at)"
                " SELECT 'g', gen_random_uuid()::text, now() - interval '9 days' FROM generate_series(1, 250)"
            )
        )
        await connection.execute(
            text(
                "INSERT INTO processed_events (consumer_group, event_id)"
                " SELECT 'g', gen_random_uuid()::text FROM generate_series(1, 20000)"
            )
        )
        await connection.execute(text("ANALYZE processed_events"))
    try:
        async with engine.connect() as connection:
            plan = "\n".join(
                (
                    await connection.execute(
                        text(
                            "EXPLAIN SELECT ctid FROM processed_events"
                            " WHERE processed_at < now() - interval '8 days' LIMIT 100"
                        )
                    )
                ).scalars()
            )
        assert "ix_processed_events_processed_at" in plan, plan

        # Another replica pruning (it holds the lock): this one leaves at once, removing nothing.
        async with engine.connect() as other, other.begin():
            await other.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PRUNE_LOCK})
            assert await prune_processed_events(sessions, timedelta(days=8), batch_size=100) == 0

        assert await prune_processed_events(sessions, timedelta(days=8), batch_size=100) == 250
        async with sessions() as session:
            assert await session.scalar(select(func.count()).select_from(text("processed_events"))) == 20000
    finally:
        await engine.dispose()
