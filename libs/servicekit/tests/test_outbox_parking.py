"""A record Kafka refuses for good is parked, and the rows behind it flow on (real Kafka and
PostgreSQL); parked rows are listed and re-published with `python -m servicekit.outbox`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts import new_envelope
from contracts.events import AnalyticsFact
from contracts.topics import ANALYTICS_FACTS
from devkit.testing import Infra, probe_fact, topic_namespace
from servicekit.db import Base as PlatformBase
from servicekit.db import create_engine, session_factory
from servicekit.kafka import create_broker
from servicekit.outbox import OutboxRelay, add_to_outbox

PREFIX = f"park-{uuid.uuid4().hex[:8]}."
FACTS = PREFIX + ANALYTICS_FACTS.name


@pytest.fixture(scope="module", autouse=True)
def prefixed_topics(infra: Infra) -> Iterator[None]:
    yield from topic_namespace(infra, PREFIX)


@pytest.fixture
async def sessions(infra: Infra, database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(infra.database_url(database))
    async with engine.begin() as connection:
        await connection.run_sync(PlatformBase.metadata.create_all)
    yield session_factory(engine)
    await engine.dispose()


def fact(tenant: str, index: int, large: bool = False) -> AnalyticsFact:
    # Large: over the refusing producer's limit, well within the contract's size budget.
    return probe_fact("parking_probe", index=index, padded=large)


def _wire_size(large: bool) -> int:
    envelope = new_envelope(fact("t-0123456789", 1, large), tenant_id="t-0123456789", conversation_id=uuid.uuid4())
    return len(envelope.to_json())


# The refusing relay's producer limit: halfway between a row and a "large" row, plus a record's
# overhead and key (about 120 bytes), so that the large rows exceed it and the others do not.
SMALL_REQUESTS = (_wire_size(False) + _wire_size(True)) // 2 + 120


async def stage(
    sessions: async_sessionmaker[AsyncSession], tenant: str, key: uuid.UUID, facts: list[AnalyticsFact]
) -> None:
    async with sessions() as session, session.begin():
        add_to_outbox(session, [new_envelope(f, tenant_id=tenant, conversation_id=key) for f in facts])


class TopicReader:
    """Reads this tenant's facts from the topic as they arrive, in topic order (one key: one partition)."""

    def __init__(self, infra: Infra, tenant: str) -> None:
        self.tenant = tenant.encode()
        self.consumer = AIOKafkaConsumer(
            FACTS, bootstrap_servers=infra.kafka_bootstrap_servers, auto_offset_reset="earliest"
        )
        self.indexes: list[int] = []

    async def read_until(self, expected: int, timeout: float = 30.0) -> list[int]:
        """Every index read so far, once `expected` arrived (or the timeout passed), plus whatever
        arrives during one more second: anything published twice would show up meanwhile."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.indexes) < expected and asyncio.get_running_loop().time() < deadline:
            await self._poll()
        settle = asyncio.get_running_loop().time() + 1.0
        while asyncio.get_running_loop().time() < settle:
            await self._poll()
        return list(self.indexes)

    async def _poll(self) -> None:
        for records in (await self.consumer.getmany(timeout_ms=300)).values():
            self.indexes.extend(int(json.loads(r.value)["payload"]["seq"]) for r in records if self.tenant in r.value)


async def parked(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[int, str]]:
    async with sessions() as session:
        rows = await session.execute(
            text("SELECT id, parked_error FROM outbox WHERE parked_at IS NOT NULL ORDER BY id")
        )
        return [(row.id, row.parked_error) for row in rows]


async def waiting(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(text("SELECT count(*) FROM outbox WHERE parked_at IS NULL")) or 0)


def parked_count(topic: str) -> float:
    return REGISTRY.get_sample_value("outbox_parked_total", {"topic": topic}) or 0.0


def outbox_cli(infra: Infra, database: str, *args: str) -> str:
    env = {**os.environ, **infra.service_env(database)}
    result = subprocess.run(
        [sys.executable, "-m", "servicekit.outbox", "--service", "ledger", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_a_refused_row_is_parked_the_rows_behind_it_flow_and_it_is_republished_after_a_fix(
    infra: Infra, database: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    key = uuid.uuid4()
    before = parked_count(ANALYTICS_FACTS.name)
    reader = TopicReader(infra, tenant)
    await reader.consumer.start()
    # Left in the table before the relay starts: its first sweep takes them (the sweep path).
    await stage(sessions, tenant, key, [fact(tenant, 1), fact(tenant, 2, large=True), fact(tenant, 3)])

    broker = create_broker(infra.kafka_bootstrap_servers, "parking-test", max_request_size=SMALL_REQUESTS)
    await broker.start()
    relay = OutboxRelay(sessions, broker, topic_prefix=PREFIX)
    relay.serve(sessions)
    relay.start()
    try:
        await relay.drain()
        # Committed while the relay runs: handed over by the commit (the commit path).
        await stage(sessions, tenant, key, [fact(tenant, 4), fact(tenant, 5, large=True), fact(tenant, 6)])
        await relay.drain()
        assert await reader.read_until(4) == [1, 3, 4, 6]
    finally:
        await relay.stop()
        await broker.stop()

    refused = await parked(sessions)
    assert len(refused) == 2, "both large rows are parked, kept in the table"
    assert all("MessageSizeTooLargeError" in error for _, error in refused)
    assert await waiting(sessions) == 0, "nothing else is left waiting"
    assert parked_count(ANALYTICS_FACTS.name) - before == 2

    listing = outbox_cli(infra, database, "parked")
    assert "2 parked" in listing
    assert all(str(row_id) in listing for row_id, _ in refused)

    # The fix: a producer that takes large records. The rows handed back go out on its start.
    assert "2 handed back" in outbox_cli(infra, database, "republish", "--all")
    fixed_broker = create_broker(infra.kafka_bootstrap_servers, "parking-test-fixed")
    await fixed_broker.start()
    fixed = OutboxRelay(sessions, fixed_broker, topic_prefix=PREFIX)
    fixed.start()
    try:
        await fixed.drain()
    finally:
        await fixed.stop()
        await fixed_broker.stop()
    try:
        assert await reader.read_until(6) == [1, 3, 4, 6, 2, 5]
    finally:
        await reader.consumer.stop()
    assert await parked(sessions) == []
    assert "0 parked" in outbox_cli(infra, database, "parked")
