"""The queue between a RecordStream's fetch task and the task that takes its batches."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from servicekit.kafka import FetchedRecords


def record(partition: int, offset: int) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(
        topic="events",
        partition=partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=b"{}",
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=2,
        headers=(),
    )


def offsets(batch: list[ConsumerRecord[Any, Any]]) -> list[tuple[int, int]]:
    return [(r.partition, r.offset) for r in batch]


async def test_batches_keep_fetch_order_and_hold_at_most_the_batch_size() -> None:
    fetched = FetchedRecords(max_batch=3)
    fetched.put([record(0, 1), record(0, 2)])
    fetched.put([record(1, 7), record(0, 3)])
    assert offsets(await fetched.take()) == [(0, 1), (0, 2), (1, 7)]
    assert offsets(await fetched.take()) == [(0, 3)]


async def test_a_take_woken_by_records_forgotten_before_it_runs_waits_for_the_next_ones() -> None:
    fetched = FetchedRecords(max_batch=10)
    taking = asyncio.create_task(fetched.take())
    await asyncio.sleep(0)  # the take is waiting
    fetched.put([record(0, 1)])
    fetched.forget({TopicPartition("events", 0)})  # revoked before the take got to run
    await asyncio.sleep(0.05)
    assert not taking.done(), "an empty batch would end the loop that takes them"
    fetched.put([record(1, 4)])
    assert offsets(await asyncio.wait_for(taking, 1)) == [(1, 4)]


async def test_forget_drops_only_the_records_of_those_partitions() -> None:
    fetched = FetchedRecords(max_batch=10)
    fetched.put([record(0, 1), record(1, 1), record(0, 2), record(2, 5)])
    fetched.forget({TopicPartition("events", 0), TopicPartition("events", 2)})
    assert offsets(await fetched.take()) == [(1, 1)]


async def test_the_fetch_side_waits_for_room_while_a_full_batch_is_waiting() -> None:
    fetched = FetchedRecords(max_batch=2)
    fetched.put([record(0, 1), record(0, 2)])
    room = asyncio.create_task(fetched.room())
    await asyncio.sleep(0.05)
    assert not room.done()
    await fetched.take()
    await asyncio.wait_for(room, 1)


async def test_after_close_takes_return_nothing_and_the_fetch_side_stops_waiting() -> None:
    full = FetchedRecords(max_batch=1)
    full.put([record(0, 1)])
    room = asyncio.create_task(full.room())
    empty = FetchedRecords(max_batch=1)
    waiting = asyncio.create_task(empty.take())
    await asyncio.sleep(0)
    full.close()
    empty.close()
    await asyncio.wait_for(room, 1)
    assert await asyncio.wait_for(waiting, 1) == []
    assert await full.take() == []
    full.put([record(0, 2)])
    assert await full.take() == []
