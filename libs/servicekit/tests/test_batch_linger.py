"""A busy consumer's fetches spaced by `batch_linger`: what arrives meanwhile makes one batch
(real Kafka; records produced a few milliseconds apart, as a steady trickle of events)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaProducer

from contracts import topics
from devkit.testing import Infra, topic_namespace
from servicekit.kafka import RecordStream, physical_topic

PREFIX = f"linger-{uuid.uuid4().hex[:8]}."
TOPIC = physical_topic(PREFIX, topics.CONVERSATION_EVENTS.name)


@pytest.fixture(scope="module", autouse=True)
def prefixed_topics(infra: Infra) -> Iterator[None]:
    yield from topic_namespace(infra, PREFIX)


async def batches_of_a_trickle(infra: Infra, linger: float, records: int = 40, keys: int = 1) -> list[int]:
    """The batch sizes a stream takes of `records` records produced 5 ms apart, spread over
    `keys` keys (so over that many partitions, or nearly)."""
    stream = RecordStream(
        [TOPIC],
        bootstrap_servers=infra.kafka_bootstrap_servers,
        client_id=f"linger-{linger}",
        group_id=f"linger-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="latest",
        max_batch=200,
        batch_linger=linger,
    )
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers, linger_ms=0)
    await stream.start()
    await producer.start()
    sizes: list[int] = []
    try:
        key_set = [uuid.uuid4().hex.encode() for _ in range(keys)]
        while not sizes:  # until the stream is fetching: it has taken a first record
            await producer.send_and_wait(TOPIC, b"{}", key=key_set[0])
            with contextlib.suppress(TimeoutError):
                sizes = [len(await asyncio.wait_for(stream.batch(), 1))]
        sizes = []

        async def take_batches() -> None:  # as a consumer does, while the records come
            while sum(sizes) < records:
                sizes.append(len(await stream.batch()))

        taking = asyncio.create_task(take_batches())
        for index in range(records):
            await producer.send_and_wait(TOPIC, b"{}", key=key_set[index % keys])
            await asyncio.sleep(0.005)
        await asyncio.wait_for(taking, 10)
    finally:
        await producer.stop()
        await stream.close()
    return sizes


@pytest.mark.parametrize("keys", [1, 8])
async def test_a_linger_gathers_a_trickle_into_fewer_batches_and_loses_nothing(infra: Infra, keys: int) -> None:
    """Kafka holds the fetch for the linger: records of every partition read make one batch."""
    at_once = await batches_of_a_trickle(infra, 0.0, keys=keys)
    lingering = await batches_of_a_trickle(infra, 0.1, keys=keys)
    assert sum(at_once) == sum(lingering) == 40
    assert len(lingering) <= 6, f"about one batch per 100 ms of a 0.3 s trickle, not {lingering}"
    assert len(at_once) > 2 * len(lingering), f"without a linger each fetch is a batch: {at_once}"
