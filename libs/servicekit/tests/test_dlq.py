"""The dead-letter queue against real Kafka and PostgreSQL: a record a handler cannot apply lands in
`<topic>.dlq` with its headers, `python -m servicekit.dlq` lists and shows it, and a replay, once
the handler is fixed, applies it once, only in the group that dead-lettered it."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from contracts import Envelope, new_envelope
from contracts.events import AnalyticsFact
from contracts.topics import ALL_TOPICS, ANALYTICS_FACTS
from devkit.testing import (
    Infra,
    create_database,
    drop_database,
    eventually,
    probe_fact,
    topic_end_offsets,
    topic_namespace,
    wait_until_caught_up,
)
from servicekit.consumer import EventConsumer
from servicekit.db import Base as PlatformBase
from servicekit.db import create_engine, session_factory
from servicekit.dlq import DeadLetter, get_dead_letter, list_dead_letters, replay
from servicekit.kafka import create_broker

# This module's own namespace of topics: its dead-letter topics hold only its own dead letters.
PREFIX = f"dlq-{uuid.uuid4().hex[:8]}."
FACTS = PREFIX + ANALYTICS_FACTS.name
FACTS_DLQ = PREFIX + ANALYTICS_FACTS.dlq


@pytest.fixture(scope="module", autouse=True)
def prefixed_topics(infra: Infra) -> Iterator[None]:
    yield from topic_namespace(infra, PREFIX)


class Base(DeclarativeBase):
    pass


class AppliedFact(Base):
    """No unique constraint on purpose: only the idempotent consumer keeps effects single."""

    __tablename__ = "applied_facts"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    consumer_group: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))


@pytest.fixture
async def store(infra: Infra) -> AsyncIterator[str]:
    """A database with the platform's tables and `applied_facts`, shared by a test's groups."""
    name = await create_database(infra, "dlq")
    engine = create_engine(infra.database_url(name))
    async with engine.begin() as connection:
        await connection.run_sync(PlatformBase.metadata.create_all)
        await connection.run_sync(Base.metadata.create_all)
    await engine.dispose()
    yield name
    await drop_database(infra, name)


class FactConsumer:
    """An EventConsumer in a group of its own, applying the AnalyticsFact events of one tenant into
    `applied_facts`; the facts whose names are in `broken` fail, as a bug in a handler would."""

    def __init__(self, infra: Infra, database: str, tenant: str, broken: set[str] | None = None) -> None:
        self.group_id = f"dlq-test-{uuid.uuid4().hex[:8]}"
        self.tenant = tenant
        self.broken = broken or set()
        self.engine = create_engine(infra.database_url(database))
        self.sessions = session_factory(self.engine)
        self.broker = create_broker(infra.kafka_bootstrap_servers, self.group_id)
        self.consumer = EventConsumer(
            self.broker,
            self.sessions,
            group_id=self.group_id,
            bootstrap_servers=infra.kafka_bootstrap_servers,
            topic_prefix=PREFIX,
        )

        @self.consumer.on(AnalyticsFact)
        async def apply(envelope: Envelope[AnalyticsFact], session: AsyncSession) -> None:
            if envelope.tenant_id != tenant:
                return
            if envelope.payload.reason_code in self.broken:
                raise ValueError(f"cannot apply {envelope.payload.reason_code}")
            session.add(AppliedFact(consumer_group=self.group_id, name=envelope.payload.reason_code))

    async def start(self) -> None:
        await self.broker.start()
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.broker.stop()
        await self.engine.dispose()

    async def applied(self) -> list[str]:
        """The names of the facts this group applied, sorted, one per application."""
        async with self.sessions() as session:
            names = await session.scalars(select(AppliedFact.name).where(AppliedFact.consumer_group == self.group_id))
        return sorted(names)


async def publish(infra: Infra, tenant: str, *values: bytes) -> list[tuple[int, int]]:
    """Publishes under the tenant's key (one partition, in this order); returns (partition, offset)s."""
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        placed = [await producer.send_and_wait(FACTS, value, key=tenant.encode()) for value in values]
        return [(metadata.partition, metadata.offset) for metadata in placed]
    finally:
        await producer.stop()


def fact(tenant: str, name: str) -> Envelope[AnalyticsFact]:
    return new_envelope(probe_fact(name), tenant_id=tenant)


async def dead_letters_of(infra: Infra, consumer: FactConsumer) -> list[DeadLetter]:
    """The consumer's dead letters of its tenant's records (a new group also reads the records
    earlier tests left in the topic)."""
    letters = await list_dead_letters(infra.kafka_bootstrap_servers, [FACTS_DLQ], group=consumer.group_id)
    return [letter for letter in letters if consumer.tenant.encode() in (letter.value or b"")]


async def dlq_cli(infra: Infra, *args: str) -> str:
    """Runs `python -m servicekit.dlq` as an operator would, in this module's namespace; its output."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers, "KAFKA_TOPIC_PREFIX": PREFIX}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "servicekit.dlq",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, f"dlq {' '.join(args)} failed: {stderr.decode()}"
    return stdout.decode()


async def test_a_dead_letter_is_listed_shown_and_replayed_into_its_group_once(infra: Infra, store: str) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    failing = FactConsumer(infra, store, tenant, broken={"broken_fact"})
    healthy = FactConsumer(infra, store, tenant)  # another service's group on the same topic
    await failing.start()
    await healthy.start()
    broken = fact(tenant, "broken_fact")
    try:
        garbage = f"not an event from {tenant}".encode()
        placed = await publish(infra, tenant, garbage, broken.to_json(), fact(tenant, "good_fact").to_json())
        (broken_partition, broken_offset) = placed[1]
        await eventually(lambda: _applied_equal(failing, ["good_fact"]), what="the fact behind the broken one")
        await eventually(lambda: _applied_equal(healthy, ["broken_fact", "good_fact"]), what="the healthy group")
        await eventually(lambda: _dead_letters_equal(infra, failing, 2), what="two dead letters")

        # The dead letter, as the Python API reads it: the failing group's, with its headers.
        letter = next(d for d in await dead_letters_of(infra, failing) if d.event_id == str(broken.event_id))
        assert letter.consumer_group == failing.group_id
        assert letter.error == "ValueError: cannot apply broken_fact"
        assert (letter.original_topic, letter.original_partition, letter.original_offset) == (
            FACTS,
            broken_partition,
            broken_offset,
        )
        assert letter.event_type == "analytics.fact"
        assert letter.value == broken.to_json()
        assert letter.key == tenant.encode()

        # `list`: one line per dead letter, the non-JSON one shown as such.
        listed = (await dlq_cli(infra, "list", "--group", failing.group_id)).splitlines()
        line = next(line for line in listed if str(broken.event_id) in line)
        assert line.startswith(f"{FACTS_DLQ}  offset={letter.offset}  group={failing.group_id}  ")
        assert f"original={FACTS}/{broken_partition}/{broken_offset}" in line
        assert f"event=analytics.fact {broken.event_id}" in line
        assert "error=ValueError: cannot apply broken_fact" in line
        assert any("event=(not JSON)" in line and "error=ValueError" in line for line in listed)
        assert all(failing.group_id in line for line in listed[:-1])
        assert listed[-1] == f"2 dead letters ({len(ALL_TOPICS)} dead-letter topics read)"
        everyone = await dlq_cli(infra, "list")  # every dead-letter topic, every group
        assert f"group={healthy.group_id}" in everyone  # the garbage was dead-lettered by both groups

        # `show`: the headers and the value, pretty-printed.
        shown = await dlq_cli(infra, "show", "--topic", ANALYTICS_FACTS.dlq, "--offset", str(letter.offset))
        assert f"  dlq-consumer-group: {failing.group_id}" in shown
        assert f"  dlq-original-offset: {broken_offset}" in shown
        assert '    "reason_code": "broken_fact",' in shown

        # The handler is fixed; the replay re-drives the dead letter into the failing group only.
        failing.broken.clear()
        replayed = await dlq_cli(infra, "replay", "--topic", ANALYTICS_FACTS.dlq, "--offset", str(letter.offset))
        assert f"replayed {FACTS_DLQ} offset {letter.offset} to {FACTS}" in replayed
        assert f"for group {failing.group_id}" in replayed
        await eventually(
            lambda: _applied_equal(failing, ["broken_fact", "good_fact"]), what="the replayed fact to be applied"
        )

        # Everything replayed once more: nothing applies twice. The failing group remembers the
        # event id; the healthy group applied the original long ago, so its event id alone keeps the
        # replay out even where replays for another group are not skipped.
        again = await dlq_cli(infra, "replay", "--topic", ANALYTICS_FACTS.dlq, "--all", "--group", failing.group_id)
        assert again.splitlines()[-1] == "2 dead letters replayed"
        for group in (failing, healthy):
            await wait_until_caught_up(infra, group.group_id, FACTS, timeout=60)
            assert await group.applied() == ["broken_fact", "good_fact"]
    finally:
        await healthy.stop()
        await failing.stop()


async def test_a_replay_is_applied_only_by_the_group_it_is_replayed_for(infra: Infra, store: str) -> None:
    """A group that never had the event (it joined after the original record was gone) skips a
    replay meant for another group: the event id does not protect it, `dlq-replay-group` does."""
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    failing = FactConsumer(infra, store, tenant, broken={"broken_fact"})
    newcomer = FactConsumer(infra, store, tenant)
    await failing.start()
    try:
        await publish(infra, tenant, fact(tenant, "broken_fact").to_json())
        await eventually(lambda: _dead_letters_equal(infra, failing, 1), what="the dead letter")
        await start_at_the_end(infra, newcomer)

        failing.broken.clear()
        [letter] = await dead_letters_of(infra, failing)
        [replayed] = await replay(infra.kafka_bootstrap_servers, [letter])
        assert (replayed.topic, replayed.group) == (FACTS, failing.group_id)
        await publish(infra, tenant, fact(tenant, "later_fact").to_json())

        await eventually(lambda: _applied_equal(failing, ["broken_fact", "later_fact"]), what="the failing group")
        await eventually(lambda: _applied_equal(newcomer, ["later_fact"]), what="the newcomer to apply what is new")
        await wait_until_caught_up(infra, newcomer.group_id, FACTS, timeout=60)
        assert await newcomer.applied() == ["later_fact"]  # the replay for the other group skipped
    finally:
        await newcomer.stop()
        await failing.stop()


async def test_reading_an_offset_without_a_dead_letter_says_so(infra: Infra) -> None:
    with pytest.raises(LookupError, match="no dead letter at offset 999999"):
        await get_dead_letter(infra.kafka_bootstrap_servers, FACTS_DLQ, 999_999)


async def start_at_the_end(infra: Infra, consumer: FactConsumer) -> None:
    """Starts a consumer whose group's offsets are at the end of the topic, as for a group that
    joined after the records so far were gone."""
    positioner = AIOKafkaConsumer(
        bootstrap_servers=infra.kafka_bootstrap_servers, group_id=consumer.group_id, enable_auto_commit=False
    )
    await positioner.start()
    try:
        ends = await topic_end_offsets(infra, FACTS)
        positioner.assign(list(ends))
        await positioner.commit(ends)
    finally:
        await positioner.stop()
    await consumer.start()


async def _applied_equal(consumer: FactConsumer, expected: list[str]) -> bool:
    applied = await consumer.applied()
    assert len(applied) <= len(expected), f"{consumer.group_id} applied too much: {applied}"
    return applied == expected


async def _dead_letters_equal(infra: Infra, consumer: FactConsumer, count: int) -> bool:
    letters = await dead_letters_of(infra, consumer)
    assert len(letters) <= count, f"{consumer.group_id} dead-lettered too much: {letters}"
    return len(letters) == count
