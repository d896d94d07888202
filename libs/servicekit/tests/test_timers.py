"""Durable timers against real PostgreSQL and Kafka: scheduling, cancelling and replacing, firing
once (also across a SIGKILL and between two replicas), and the due scan at scale."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from contracts import Envelope, new_envelope, parse_envelope, utc_now
from contracts.events import AnalyticsFact
from contracts.topics import ANALYTICS_FACTS
from devkit.testing import Infra, create_database, drop_database, eventually, probe_fact, topic_namespace
from servicekit.db import Base as PlatformBase
from servicekit.db import create_engine, session_factory
from servicekit.kafka import create_broker
from servicekit.outbox import OutboxRelay
from servicekit.timers import FIRE_DUE, TimerFirer, cancel, schedule
from servicekit.tracing import configure_tracing, tracer

TIMER_SERVICE = Path(__file__).with_name("timer_service.py")
# This module's own namespace of topics: what it reads back and counts is only its own.
PREFIX = f"tm-{uuid.uuid4().hex[:8]}."
FACTS = PREFIX + ANALYTICS_FACTS.name


@pytest.fixture(scope="module", autouse=True)
def prefixed_topics(infra: Infra) -> Iterator[None]:
    yield from topic_namespace(infra, PREFIX)


@dataclass
class PlatformStore:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    async def scalar(self, statement: str) -> Any:
        async with self.engine.connect() as connection:
            return await connection.scalar(text(statement))

    async def column(self, statement: str) -> list[Any]:
        async with self.engine.connect() as connection:
            return list((await connection.execute(text(statement))).scalars())


@pytest.fixture
async def store(infra: Infra, database: str) -> AsyncIterator[PlatformStore]:
    engine = create_engine(infra.database_url(database))
    async with engine.begin() as connection:
        await connection.run_sync(PlatformBase.metadata.create_all)
    yield PlatformStore(engine, session_factory(engine))
    await engine.dispose()


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def fact(tenant: str, name: str) -> Envelope[AnalyticsFact]:
    return new_envelope(probe_fact(name), tenant_id=tenant)


async def commit_schedule(store: PlatformStore, name: str, due_at: datetime, envelope: Envelope[Any]) -> None:
    async with store.sessions() as session, session.begin():
        schedule(session, name, due_at, envelope)


async def read_topic(infra: Infra, tenant: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of this module's facts topic (from the beginning) that carries `tenant`."""
    reader = AIOKafkaConsumer(
        FACTS, bootstrap_servers=infra.kafka_bootstrap_servers, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await reader.start()
    try:
        found: list[ConsumerRecord[bytes, bytes]] = []
        ends: dict[TopicPartition, int] = {}
        deadline = asyncio.get_running_loop().time() + 20
        while asyncio.get_running_loop().time() < deadline:
            if not ends and reader.assignment():
                ends = await reader.end_offsets(list(reader.assignment()))
            if ends and all(await _positions_reached(reader, ends)):
                return found
            for records in (await reader.getmany(timeout_ms=200)).values():
                found.extend(r for r in records if r.value is not None and tenant.encode() in r.value)
        pytest.fail(f"could not read {FACTS} to its end")
    finally:
        await reader.stop()


async def _positions_reached(reader: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> list[bool]:
    return [await reader.position(tp) >= end for tp, end in ends.items()]


@dataclass
class Publishing:
    broker: Any
    relay: OutboxRelay


@pytest.fixture
async def publishing(infra: Infra, store: PlatformStore) -> AsyncIterator[Publishing]:
    """A running relay that publishes only what commits hand it (its sweep waits an hour), so
    what reaches Kafka shows the firer handing its rows over."""
    broker = create_broker(infra.kafka_bootstrap_servers, "timer-tests")
    await broker.start()
    relay = OutboxRelay(store.sessions, broker, topic_prefix=PREFIX, sweep_interval=3600)
    relay.start()
    yield Publishing(broker, relay)
    await relay.stop()
    await broker.stop()


async def fired_and_published(store: PlatformStore, name: str) -> bool:
    """The timer is gone and the outbox empty: its row was published (and then deleted)."""
    left = await store.scalar(f"SELECT count(*) FROM timers WHERE name = '{name}'")
    return bool(left == 0 and await store.scalar("SELECT count(*) FROM outbox") == 0)


def timers_fired() -> float:
    return REGISTRY.get_sample_value("timers_fired_total") or 0.0


async def test_a_timer_fires_once_when_due_with_its_envelope_key_and_trace(
    infra: Infra, store: PlatformStore, publishing: Publishing, tenant: str
) -> None:
    configure_tracing("servicekit-tests")
    envelope = fact(tenant, "offer_timed_out")
    with tracer("tests").start_as_current_span("handler that schedules") as span:
        await commit_schedule(store, f"soon:{tenant}", utc_now() + timedelta(seconds=2), envelope)
        trace_id = f"{span.get_span_context().trace_id:032x}"
    await commit_schedule(store, f"later:{tenant}", utc_now() + timedelta(hours=1), fact(tenant, "not_yet"))
    firer = TimerFirer(store.sessions, relay=publishing.relay, poll_interval=0.2)
    assert await firer.fire_due() == 0, "a timer must not fire before its due time"
    fired_before = timers_fired()

    firer.start()
    try:
        await eventually(
            lambda: fired_and_published(store, f"soon:{tenant}"), what="the timer to fire and its row to be published"
        )
        await asyncio.sleep(1.0)  # several more passes of the firer: a timer left behind would fire again
    finally:
        await firer.stop()
    records = await read_topic(infra, tenant)
    assert [(r.key, r.value) for r in records] == [(envelope.key, envelope.to_json())]
    assert trace_id in dict(records[0].headers)["traceparent"].decode()
    assert await store.column("SELECT name FROM timers") == [f"later:{tenant}"]
    assert timers_fired() - fired_before == 1


async def test_a_cancelled_timer_never_fires_and_a_replaced_one_fires_once_with_the_new_envelope_at_the_new_time(
    infra: Infra, store: PlatformStore, publishing: Publishing, tenant: str
) -> None:
    past = utc_now() - timedelta(minutes=1)
    await commit_schedule(store, f"cancelled:{tenant}", past, fact(tenant, "cancelled"))
    async with store.sessions() as session, session.begin():
        cancel(session, f"cancelled:{tenant}")
        cancel(session, f"never-scheduled:{tenant}")  # absent: no error
    await commit_schedule(store, f"replaced:{tenant}", past, fact(tenant, "first_version"))
    second = fact(tenant, "second_version")
    await commit_schedule(store, f"replaced:{tenant}", utc_now() + timedelta(seconds=2), second)
    firer = TimerFirer(store.sessions, relay=publishing.relay, poll_interval=0.2)
    # Both were due: the cancelled one is gone, and the replaced one is due later now.
    assert await firer.fire_due() == 0
    assert await store.column("SELECT name FROM timers") == [f"replaced:{tenant}"]

    firer.start()
    try:
        await eventually(lambda: fired_and_published(store, f"replaced:{tenant}"), what="the replaced timer to fire")
        await asyncio.sleep(1.0)
    finally:
        await firer.stop()
    records = await read_topic(infra, tenant)
    assert [r.value for r in records] == [second.to_json()]
    assert await store.scalar("SELECT count(*) FROM timers") == 0


async def test_timers_are_written_by_the_commit_only_and_the_last_call_for_a_name_wins(
    store: PlatformStore, tenant: str
) -> None:
    due = utc_now() + timedelta(hours=1)
    async with store.sessions() as session:
        await session.begin()
        schedule(session, "rolled-back", due, fact(tenant, "rolled_back"))
        await session.rollback()  # the handler failed
        await session.begin()
        schedule(session, "closed-uncommitted", due, fact(tenant, "closed"))
        await session.close()  # given up: neither committed nor rolled back
        async with session.begin():  # the same session, a new transaction
            schedule(session, "scheduled-then-cancelled", due, fact(tenant, "gone"))
            cancel(session, "scheduled-then-cancelled")
            cancel(session, "cancelled-then-scheduled")
            schedule(session, "cancelled-then-scheduled", due, fact(tenant, "kept"))
            schedule(session, "scheduled-twice", due, fact(tenant, "first"))
            schedule(session, "scheduled-twice", due + timedelta(minutes=5), fact(tenant, "second"))
    async with store.engine.connect() as connection:
        rows = (await connection.execute(text("SELECT name, due_at, value FROM timers ORDER BY name"))).all()
    assert [(name, parse_envelope(value).payload.reason_code) for name, _, value in rows] == [
        ("cancelled-then-scheduled", "kept"),
        ("scheduled-twice", "second"),
    ]
    assert rows[1].due_at == due + timedelta(minutes=5)
    with pytest.raises(ValueError, match="timezone-aware"):
        schedule(session, "naive", datetime(2030, 1, 1), fact(tenant, "naive"))


def start_timer_service(infra: Infra, database: str, tenant: str, schedule_in: float | None) -> subprocess.Popen[str]:
    env = {**os.environ, **infra.service_env(database), "KAFKA_TOPIC_PREFIX": PREFIX}
    args = [sys.executable, str(TIMER_SERVICE), "--tenant", tenant]
    if schedule_in is not None:
        args += ["--schedule-in", str(schedule_in)]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True)


def read_line(process: subprocess.Popen[str], expected: str) -> str:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    assert line.startswith(expected), f"timer service printed {line!r}, not {expected}"
    return line


async def test_a_timer_that_falls_due_while_its_service_is_killed_fires_once_after_the_restart(
    infra: Infra, database: str, tenant: str
) -> None:
    service = start_timer_service(infra, database, tenant, schedule_in=2.0)
    try:
        due_at = datetime.fromisoformat(read_line(service, "SCHEDULED").split()[1])
        read_line(service, "FIRING")
    finally:
        service.send_signal(signal.SIGKILL)
        service.wait()
    assert utc_now() < due_at, "the service must be killed before the timer falls due"
    engine = create_engine(infra.database_url(database))
    store = PlatformStore(engine, session_factory(engine))
    restarted: subprocess.Popen[str] | None = None
    try:
        await asyncio.sleep((due_at - utc_now()).total_seconds() + 1)
        assert await store.scalar("SELECT count(*) FROM timers") == 1, "the timer survives the kill"
        assert await store.scalar("SELECT count(*) FROM outbox") == 0, "nothing fired it while the service was down"

        restarted = start_timer_service(infra, database, tenant, schedule_in=None)
        read_line(restarted, "FIRING")
        await eventually(
            lambda: fired_and_published(store, f"kill-test:{tenant}"),
            what="the overdue timer to fire after the restart",
        )
        await asyncio.sleep(1.0)
        records = await read_topic(infra, tenant)
        assert [parse_envelope(r.value).payload.reason_code for r in records if r.value] == ["timer_fired"]
        assert await store.scalar("SELECT count(*) FROM timers") == 0
    finally:
        if restarted is not None:
            restarted.send_signal(signal.SIGTERM)
            restarted.wait(timeout=15)
        await engine.dispose()


async def test_with_100000_pending_timers_a_pass_takes_only_the_due_ones_through_the_due_at_index(
    store: PlatformStore, tenant: str
) -> None:
    pending = 100_000
    async with store.engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO timers (name, due_at, topic, key, value, headers)"
                " SELECT 'pending-' || n, now() + interval '1 hour' + n * interval '1 second', :topic,"
                " convert_to('key-' || n, 'UTF8'), convert_to('value-' || n, 'UTF8'), '{}'::jsonb"
                " FROM generate_series(1, :count) AS n"
            ),
            {"topic": ANALYTICS_FACTS.name, "count": pending},
        )
    due = [fact(tenant, f"due_{letter}") for letter in "abcde"]
    for index, envelope in enumerate(due):
        await commit_schedule(store, f"due-{index}", utc_now() - timedelta(seconds=10 - index), envelope)
    async with store.engine.connect() as connection:
        await connection.execute(text("ANALYZE timers"))  # the planner's statistics of the 100,000 rows
        plan = "\n".join((await connection.execute(text(f"EXPLAIN {FIRE_DUE}"), {"limit": 500})).scalars())
    assert "Index Scan using ix_timers_due_at on timers" in plan, plan
    assert "Seq Scan on timers" not in plan, plan

    firer = TimerFirer(store.sessions, batch_size=500)
    assert await firer.fire_due() == len(due)
    assert await store.scalar("SELECT count(*) FROM timers") == pending
    assert await store.scalar("SELECT count(*) FROM timers WHERE name LIKE 'due-%'") == 0
    # In the outbox in due order (the oldest due first), as the relay will publish them.
    assert await store.column("SELECT value FROM outbox ORDER BY id") == [e.to_json() for e in due]
    assert await firer.fire_due() == 0


async def test_two_firers_on_one_table_fire_every_timer_once(store: PlatformStore, tenant: str) -> None:
    count = 2000
    due_at = utc_now() - timedelta(seconds=1)
    envelopes = [fact(tenant, "shared_timer") for _ in range(count)]
    for first in range(0, count, 200):
        async with store.sessions() as session, session.begin():
            for number in range(first, first + 200):
                schedule(session, f"shared-{number}", due_at, envelopes[number])
    # Two replicas: their passes overlap, small batches so that each takes many.
    firers = [TimerFirer(store.sessions, batch_size=20, poll_interval=0.1) for _ in range(2)]
    fired_before = timers_fired()
    for firer in firers:
        firer.start()
    try:
        await eventually(
            lambda: _equals(store.scalar("SELECT count(*) FROM timers"), 0), what="every timer to be fired"
        )
    finally:
        for firer in firers:
            await firer.stop()
    values = await store.column("SELECT value FROM outbox")
    assert len(values) == count
    assert sorted(values) == sorted(e.to_json() for e in envelopes)
    assert timers_fired() - fired_before == count


async def _equals(value: Awaitable[Any], expected: Any) -> bool:
    return bool(await value == expected)


async def test_the_firer_keeps_retrying_through_failures_and_fires_once_the_database_recovers(
    infra: Infra, tenant: str
) -> None:
    name = await create_database(infra, "timers")
    engine = create_engine(infra.database_url(name))
    store = PlatformStore(engine, session_factory(engine))
    firer = TimerFirer(store.sessions, poll_interval=0.1)
    firer.start()  # no tables yet: every pass fails
    try:
        await asyncio.sleep(1.5)
        async with engine.begin() as connection:
            await connection.run_sync(PlatformBase.metadata.create_all)
        envelope = fact(tenant, "after_recovery")
        await commit_schedule(store, f"recovered:{tenant}", utc_now(), envelope)
        await eventually(lambda: _equals(store.scalar("SELECT count(*) FROM outbox"), 1), what="the timer to fire")
        assert await store.column("SELECT value FROM outbox") == [envelope.to_json()]
    finally:
        await firer.stop()
        await engine.dispose()
        await drop_database(infra, name)
