"""The outbox and the idempotent consumer against real Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY
from sqlalchemy import String, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from contracts import Envelope, new_envelope, parse_envelope
from contracts.events import AnalyticsFact
from contracts.topics import ANALYTICS_FACTS
from devkit.testing import (
    Infra,
    create_database,
    drop_database,
    eventually,
    probe_fact,
    topic_namespace,
    wait_until_caught_up,
)
from servicekit.consumer import BatchOrder, EventConsumer, prune_processed_events
from servicekit.db import Base as PlatformBase
from servicekit.db import create_engine, session_factory
from servicekit.kafka import create_broker
from servicekit.outbox import OutboxRelay, add_to_outbox
from servicekit.tracing import configure_tracing, flush_spans, tracer

LEDGER_SERVICE = Path(__file__).with_name("ledger_service.py")
# This module's own namespace of topics: what it reads back and counts is only its own.
PREFIX = f"sk-{uuid.uuid4().hex[:8]}."
FACTS = PREFIX + ANALYTICS_FACTS.name
FACTS_DLQ = PREFIX + ANALYTICS_FACTS.dlq


@pytest.fixture(scope="module", autouse=True)
def prefixed_topics(infra: Infra) -> Iterator[None]:
    yield from topic_namespace(infra, PREFIX)


class Base(DeclarativeBase):
    pass


class AppliedEffect(Base):
    """No unique constraint on purpose: only the idempotent consumer keeps effects single."""

    __tablename__ = "applied_effects"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    source_event_id: Mapped[str] = mapped_column(String(36))


class RunningConsumer:
    """An EventConsumer applying AnalyticsFact events of one tenant into `applied_effects`. The
    handler of a fact named "gate" waits until `gate_open` is set."""

    def __init__(
        self,
        infra: Infra,
        database: str,
        tenant: str,
        poison_marker: str | None = None,
        group_id: str | None = None,
        order: BatchOrder = "conversation",
    ) -> None:
        self.engine = create_engine(infra.database_url(database))
        self.sessions = session_factory(self.engine)
        self.broker = create_broker(infra.kafka_bootstrap_servers, "test-consumer")
        self.consumer = EventConsumer(
            self.broker,
            self.sessions,
            group_id=group_id or f"test-{uuid.uuid4().hex[:8]}",
            bootstrap_servers=infra.kafka_bootstrap_servers,
            topic_prefix=PREFIX,
            order=order,
        )
        self.tenant = tenant
        self.trace_ids: dict[str, int] = {}
        self.batches: list[list[str]] = []  # the names of the tenant's facts, batch by batch
        self.applied: list[str | None] = []  # the names of the tenant's facts, in the order handled
        self.gate_reached = asyncio.Event()
        self.gate_open = asyncio.Event()

        @self.consumer.prepare
        async def note_batch(envelopes: list[Envelope[Any]], session: AsyncSession) -> None:
            names = [envelope.payload.reason_code for envelope in envelopes if envelope.tenant_id == tenant]
            if names:
                self.batches.append(names)

        @self.consumer.on(AnalyticsFact)
        async def apply(envelope: Envelope[AnalyticsFact], session: AsyncSession) -> None:
            if envelope.tenant_id != tenant:
                return
            self.applied.append(envelope.payload.reason_code)
            self.trace_ids[str(envelope.payload.source_event_id)] = trace.get_current_span().get_span_context().trace_id
            if poison_marker and envelope.payload.reason_code == poison_marker:
                raise ValueError("this fact cannot be applied")
            if envelope.payload.reason_code == "gate":
                self.gate_reached.set()
                await self.gate_open.wait()
            session.add(AppliedEffect(tenant_id=tenant, source_event_id=str(envelope.payload.source_event_id)))

    async def start(self) -> None:
        async with self.engine.begin() as connection:
            await connection.run_sync(PlatformBase.metadata.create_all)
            await connection.run_sync(Base.metadata.create_all)
        await self.broker.start()
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.broker.stop()
        await self.engine.dispose()

    async def effects(self) -> tuple[int, int]:
        async with self.sessions() as session:
            total = await session.scalar(select(func.count()).select_from(AppliedEffect))
            distinct = await session.scalar(select(func.count(func.distinct(AppliedEffect.source_event_id))))
        return total or 0, distinct or 0


@pytest.fixture
async def consumer_database(infra: Infra) -> AsyncIterator[str]:
    name = await create_database(infra, "consumer")
    yield name
    await drop_database(infra, name)


@dataclass
class PlatformStore:
    """A fresh database with the platform's tables (outbox, processed events)."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


@pytest.fixture
async def store(infra: Infra, database: str) -> AsyncIterator[PlatformStore]:
    engine = create_engine(infra.database_url(database))
    async with engine.begin() as connection:
        await connection.run_sync(PlatformBase.metadata.create_all)
    yield PlatformStore(engine, session_factory(engine))
    await engine.dispose()


def start_ledger(infra: Infra, database: str, tenant: str, count: int, hold_relay: bool) -> subprocess.Popen[str]:
    env = {**os.environ, **infra.service_env(database), "KAFKA_TOPIC_PREFIX": PREFIX}
    args = [sys.executable, str(LEDGER_SERVICE), "--tenant", tenant, "--count", str(count)]
    process = subprocess.Popen(
        [*args, "--hold-relay"] if hold_relay else args, env=env, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() == "COMMITTED", f"ledger service did not commit: {line!r}"
    return process


async def test_events_committed_before_a_sigkill_are_relayed_after_restart_and_applied_once(
    infra: Infra, database: str, consumer_database: str
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    count = 40
    producer = start_ledger(infra, database, tenant, count, hold_relay=True)
    producer.send_signal(signal.SIGKILL)
    producer.wait()

    engine = create_engine(infra.database_url(database))
    async with engine.connect() as connection:
        waiting = await connection.scalar(text("SELECT count(*) FROM outbox"))
    assert waiting == count, "the killed process must leave its committed events in the outbox"

    consumer = RunningConsumer(infra, consumer_database, tenant)
    await consumer.start()
    restarted = start_ledger(infra, database, tenant, count, hold_relay=False)
    try:
        await eventually(lambda: _effects_equal(consumer, count), what="every relayed event to be applied")
        await eventually(lambda: _outbox_empty(engine), what="the relay to delete what Kafka acknowledged")

        # Deliver every event a second time, as Kafka may after a consumer crash.
        raw = await read_topic(infra, FACTS, lambda value: tenant.encode() in value)
        assert len(raw) == count
        for key, value in raw:
            await consumer.broker.publish(value, FACTS, key=key)
        await wait_until_caught_up(infra, consumer.consumer.group_id, FACTS)
        total, distinct = await consumer.effects()
        assert (total, distinct) == (count, count)
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=15)
        await consumer.stop()
        await engine.dispose()


async def _effects_equal(consumer: RunningConsumer, count: int) -> bool:
    total, _ = await consumer.effects()
    assert total <= count, f"an effect was applied twice: {total} > {count}"
    return total == count


async def _outbox_empty(engine: object) -> bool:
    async with engine.connect() as connection:  # type: ignore[attr-defined]
        return await connection.scalar(text("SELECT count(*) FROM outbox")) == 0


async def read_topic(
    infra: Infra, topic: str, keep: Callable[[bytes], bool], timeout: float = 10.0
) -> list[tuple[bytes, bytes]]:
    """Every record of `topic` (from the beginning) whose value passes `keep`."""
    reader = AIOKafkaConsumer(
        topic, bootstrap_servers=infra.kafka_bootstrap_servers, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await reader.start()
    try:
        end = await reader.end_offsets(list(reader.assignment()) or await _assignment(reader))
        found: list[tuple[bytes, bytes]] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            positions = {tp: await reader.position(tp) for tp in end}
            if all(positions[tp] >= offset for tp, offset in end.items()):
                break
            batches = await reader.getmany(timeout_ms=500)
            for records in batches.values():
                found.extend((r.key, r.value) for r in records if keep(r.value))
        return found
    finally:
        await reader.stop()


async def _assignment(reader: AIOKafkaConsumer) -> list[object]:
    while not reader.assignment():
        await reader.getmany(timeout_ms=100)
    return list(reader.assignment())


async def test_poison_messages_go_to_the_dlq_with_their_error_and_the_partition_keeps_flowing(
    infra: Infra, consumer_database: str
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    consumer = RunningConsumer(infra, consumer_database, tenant, poison_marker="poison_fact")
    await consumer.start()
    key = tenant.encode()  # one key: everything below lands in one partition, in this order
    try:
        garbage = f"not an event from {tenant}".encode()
        await consumer.broker.publish(garbage, FACTS, key=key)
        poison = new_envelope(
            probe_fact("poison_fact"),
            tenant_id=tenant,
        )
        await consumer.broker.publish(poison.to_json(), FACTS, key=key)
        good = [new_envelope(probe_fact("good_fact"), tenant_id=tenant) for _ in range(3)]
        for envelope in good:
            await consumer.broker.publish(envelope.to_json(), FACTS, key=key)

        await eventually(lambda: _effects_equal(consumer, 3), what="the good events behind the poison")
        dead = await read_topic(infra, FACTS_DLQ, lambda value: tenant.encode() in value)
        assert sorted(value for _, value in dead) == sorted([garbage, poison.to_json()])
        headers = await dlq_headers(infra, tenant)
        assert any("not JSON" in h["dlq-error"] for h in headers)
        assert any("ValueError: this fact cannot be applied" in h["dlq-error"] for h in headers)
        assert {h["dlq-consumer-group"] for h in headers} == {consumer.consumer.group_id}
        assert {h["dlq-original-topic"] for h in headers} == {FACTS}
        group = consumer.consumer.group_id
        assert REGISTRY.get_sample_value("dlq_messages_total", {"topic": FACTS, "group": group}) == 2
        lags = [
            sample.value
            for metric in REGISTRY.collect()
            if metric.name == "consumer_lag"
            for sample in metric.samples
            if sample.labels["group"] == group
        ]
        assert lags, "the consumer reports its lag"
        assert all(lag >= 0 for lag in lags)
    finally:
        await consumer.stop()


def fact(tenant: str, name: str, conversation_id: uuid.UUID | None = None) -> Envelope[AnalyticsFact]:
    return new_envelope(probe_fact(name), tenant_id=tenant, conversation_id=conversation_id)


async def test_records_that_arrive_while_a_batch_is_applied_are_fetched_meanwhile_and_make_the_next_batch(
    infra: Infra, consumer_database: str
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    consumer = RunningConsumer(infra, consumer_database, tenant)
    await consumer.start()
    key = tenant.encode()
    try:
        await consumer.broker.publish(fact(tenant, "gate").to_json(), FACTS, key=key)
        await asyncio.wait_for(consumer.gate_reached.wait(), 30)
        # Both arrive while the gate's batch is held, one well after the other: a consumer that
        # fetched only between batches would apply them in two more batches, not one.
        for name in ("first", "second"):
            await consumer.broker.publish(fact(tenant, name).to_json(), FACTS, key=key)
            await asyncio.sleep(0.5)
        consumer.gate_open.set()
        await eventually(lambda: _effects_equal(consumer, 3), what="all three facts to be applied")
        assert consumer.batches == [["gate"], ["first", "second"]]
    finally:
        consumer.gate_open.set()
        await consumer.stop()


@pytest.mark.parametrize(
    ("order", "applied"),
    [
        ("conversation", ["gate", "second", "first", "third"]),  # conversation 0… before ff…, each in order
        ("written", ["gate", "first", "second", "third"]),  # as written, across partitions
    ],
)
async def test_a_batch_is_applied_sorted_by_conversation_or_as_its_records_were_written(
    infra: Infra, consumer_database: str, order: BatchOrder, applied: list[str]
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    consumer = RunningConsumer(infra, consumer_database, tenant, order=order)
    await consumer.start()
    late, early = uuid.UUID(int=2**128 - 1), uuid.UUID(int=0)  # in the conversation order: early, late
    try:
        await consumer.broker.publish(fact(tenant, "gate").to_json(), FACTS, partition=0)
        await asyncio.wait_for(consumer.gate_reached.wait(), 30)
        # Written while the gate's batch is held, so that the three make the next batch.
        for name, conversation, partition in (("first", late, 0), ("second", early, 1), ("third", late, 0)):
            await consumer.broker.publish(fact(tenant, name, conversation).to_json(), FACTS, partition=partition)
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        consumer.gate_open.set()
        await eventually(lambda: _effects_equal(consumer, 4), what="all four facts to be applied")
        assert consumer.batches == [["gate"], applied[1:]]  # one batch after the gate
        assert consumer.applied == applied
    finally:
        consumer.gate_open.set()
        await consumer.stop()


async def test_a_second_member_joining_the_group_takes_partitions_over_without_losing_or_repeating_events(
    infra: Infra, consumer_database: str
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    group = f"test-{uuid.uuid4().hex[:8]}"
    first = RunningConsumer(infra, consumer_database, tenant, group_id=group)
    second = RunningConsumer(infra, consumer_database, tenant, group_id=group)
    await first.start()
    try:
        # Many keys, so the events spread over every partition, before and after the rebalance.
        for number in range(30):
            await first.broker.publish(fact(tenant, "before").to_json(), FACTS, key=f"{tenant}-{number}".encode())
        await second.start()
        await eventually(lambda: _split_between(first, second), what="the group to share the partitions out")
        for number in range(30):
            await first.broker.publish(fact(tenant, "after").to_json(), FACTS, key=f"{tenant}-{number}".encode())
        await eventually(lambda: _effects_equal(first, 60), what="every event to be applied by one of the two")
        assert await first.effects() == (60, 60)
        applied = [name for batch in first.batches + second.batches for name in batch]
        assert sorted(applied) == ["after"] * 30 + ["before"] * 30
        assert second.batches, "the member that joined applies the events of the partitions it took over"
    finally:
        await second.stop()
        await first.stop()


def _split_between(first: RunningConsumer, second: RunningConsumer) -> bool:
    mine, theirs = first.consumer.assignment(), second.consumer.assignment()
    return bool(mine) and bool(theirs) and not mine & theirs


async def dlq_headers(infra: Infra, tenant: str) -> list[dict[str, str]]:
    reader = AIOKafkaConsumer(FACTS_DLQ, bootstrap_servers=infra.kafka_bootstrap_servers, auto_offset_reset="earliest")
    await reader.start()
    try:
        found = []
        for _ in range(20):
            batches = await reader.getmany(timeout_ms=300)
            for records in batches.values():
                found += [{k: v.decode() for k, v in r.headers} for r in records if tenant.encode() in (r.value or b"")]
            if len(found) >= 2:
                break
        return found
    finally:
        await reader.stop()


async def test_the_trace_of_a_request_continues_through_the_outbox_into_the_consumer(
    infra: Infra, store: PlatformStore, consumer_database: str
) -> None:
    configure_tracing("servicekit-tests")
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    consumer = RunningConsumer(infra, consumer_database, tenant)
    await consumer.start()
    broker = create_broker(infra.kafka_bootstrap_servers, "trace-test")
    await broker.start()
    relay = OutboxRelay(store.sessions, broker, topic_prefix=PREFIX)
    source = uuid.uuid4()
    try:
        with tracer("tests").start_as_current_span("customer turn") as span:
            async with store.sessions() as session, session.begin():
                fact = probe_fact("traced_fact", source)
                add_to_outbox(session, [new_envelope(fact, tenant_id=tenant)])
            expected = span.get_span_context().trace_id
        assert await relay.relay_batch() >= 1  # relayed later, outside the request's span
        await eventually(lambda: str(source) in consumer.trace_ids, what="the traced event to be handled")
        assert expected != 0
        assert consumer.trace_ids[str(source)] == expected
    finally:
        await broker.stop()
        await consumer.stop()


async def test_with_an_exporter_the_consumer_handles_each_event_in_a_child_span_of_its_producer(
    infra: Infra, store: PlatformStore, consumer_database: str
) -> None:
    exported = InMemorySpanExporter()
    configure_tracing("servicekit-tests", exporter=exported)
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    consumer = RunningConsumer(infra, consumer_database, tenant)
    broker = create_broker(infra.kafka_bootstrap_servers, "trace-test")
    try:
        await consumer.start()
        await broker.start()
        relay = OutboxRelay(store.sessions, broker, topic_prefix=PREFIX)
        source = uuid.uuid4()
        with tracer("tests").start_as_current_span("request") as request:
            async with store.sessions() as session, session.begin():
                add_to_outbox(session, [new_envelope(probe_fact("traced_fact", source), tenant_id=tenant)])
        assert await relay.relay_batch() >= 1
        await eventually(lambda: str(source) in consumer.trace_ids, what="the traced event to be handled")
        flush_spans()
        root = request.get_span_context()
        # The group reads the topic from its start: other tests' events are handled (and traced) too.
        spans = exported.get_finished_spans()
        handled = [s for s in spans if s.name == "handle analytics.fact" and s.context.trace_id == root.trace_id]
        assert len(handled) == 1, "one handling span in the request's trace"
        assert handled[0].parent is not None
        assert handled[0].parent.span_id == root.span_id, "a child of the request's span"
        assert handled[0].kind is SpanKind.CONSUMER
        assert handled[0].attributes is not None
        assert handled[0].attributes["messaging.consumer.group.name"] == consumer.consumer.group_id
    finally:
        configure_tracing("servicekit-tests")  # off again for the other tests
        await broker.stop()
        await consumer.stop()


async def test_staged_events_are_written_in_order_by_the_commit_and_never_by_a_rollback(store: PlatformStore) -> None:
    def facts(*names: str) -> list[Envelope[AnalyticsFact]]:
        return [new_envelope(probe_fact(n), tenant_id="t-order") for n in names]

    async with store.sessions() as session:
        await session.begin()
        add_to_outbox(session, facts("rolled_back"))
        await session.rollback()  # the handler failed
        async with session.begin():  # the same session, a new transaction
            add_to_outbox(session, facts("first", "second"))
            add_to_outbox(session, facts("third"))
    async with store.engine.connect() as connection:
        values = (await connection.execute(text("SELECT value FROM outbox ORDER BY id"))).scalars().all()
    assert [parse_envelope(v).payload.reason_code for v in values] == ["first", "second", "third"]


async def test_two_relays_on_one_outbox_publish_every_row_once_in_order(infra: Infra, store: PlatformStore) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    conversation = uuid.uuid4()  # one key: one partition, where Kafka keeps the publishing order
    names = [f"fact_{chr(97 + n // 26 // 26)}{chr(97 + n // 26 % 26)}{chr(97 + n % 26)}" for n in range(300)]
    for first in range(0, len(names), 10):
        async with store.sessions() as session, session.begin():
            add_to_outbox(
                session,
                [
                    new_envelope(
                        probe_fact(name),
                        tenant_id=tenant,
                        conversation_id=conversation,
                    )
                    for name in names[first : first + 10]
                ],
            )
    broker = create_broker(infra.kafka_bootstrap_servers, "two-relays")
    await broker.start()
    relays = [OutboxRelay(store.sessions, broker, topic_prefix=PREFIX, batch_size=25) for _ in range(2)]

    async def drain(relay: OutboxRelay) -> None:
        while await relay.relay_batch():
            await asyncio.sleep(0)  # lets the other relay take its turn

    try:
        await asyncio.gather(*(drain(relay) for relay in relays))
        published = await read_topic(infra, FACTS, lambda value: tenant.encode() in value)
        assert [parse_envelope(value).payload.reason_code for _, value in published] == names
    finally:
        await broker.stop()


async def test_processed_event_ids_older_than_the_retention_are_pruned(store: PlatformStore) -> None:
    async with store.engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO processed_events (consumer_group, event_id, processed_at) VALUES "
                "('g', 'old', now() - interval '9 days'), ('g', 'recent', now() - interval '1 day')"
            )
        )
    assert await prune_processed_events(store.sessions, timedelta(days=8)) == 1
    async with store.engine.connect() as connection:
        left = (await connection.execute(text("SELECT event_id FROM processed_events"))).scalars().all()
    assert left == ["recent"]


async def test_a_running_relay_publishes_each_commit_at_once_after_what_was_left_in_the_table(
    infra: Infra, store: PlatformStore
) -> None:
    """Rows committed before the relay runs wait in the table and go out first (its sweep); rows
    committed while it runs are handed over by their commit and go out at once, without waiting
    for a sweep (here: none for an hour), in commit order."""
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    conversation = uuid.uuid4()  # one key: one partition, where Kafka keeps the publishing order

    async def commit(*names: str) -> None:
        async with store.sessions() as session, session.begin():
            facts = [probe_fact(name) for name in names]
            add_to_outbox(session, [new_envelope(f, tenant_id=tenant, conversation_id=conversation) for f in facts])

    async def published() -> list[str]:
        records = await read_topic(infra, FACTS, lambda value: tenant.encode() in value, timeout=2.0)
        return [parse_envelope(value).payload.reason_code for _, value in records]

    broker = create_broker(infra.kafka_bootstrap_servers, "committed-rows")
    await broker.start()
    relay = OutboxRelay(store.sessions, broker, topic_prefix=PREFIX, sweep_interval=3600)
    relay.serve(store.sessions)
    await commit("left_a", "left_b")  # the relay is not running: they wait in the table
    relay.start()
    try:
        await eventually(lambda: _outbox_empty(store.engine), what="the start-up sweep")
        assert await published() == ["left_a", "left_b"]
        await commit("first", "second")
        await commit("third")
        await eventually(lambda: _outbox_empty(store.engine), what="the committed rows to be published and deleted")
        assert await published() == ["left_a", "left_b", "first", "second", "third"]
    finally:
        await relay.stop()
        await broker.stop()
