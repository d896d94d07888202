"""Kafka for every service: the FastStream broker that publishes (acks=all, idempotent producer,
no automatic topic creation: topics are made by `servicekit.topics`), and `RecordStream`, which
consumes.

Trace context travels in the records' headers, put there by the outbox and the gateway and read
by the idempotent consumer, which opens one span per event. FastStream's tracing middleware is
left out: it would add a span per publish, and cost a sixth of a busy service's CPU. Its
Prometheus middleware is left out too: the platform's own metrics count what matters per event
(handled, published, relayed, dead-lettered, batch sizes, lag), and the middleware's per-message
bookkeeping cost a few percent of each service's CPU."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from faststream.kafka import KafkaBroker

from servicekit.logs import get_logger

log = get_logger(__name__)


def physical_topic(prefix: str, name: str) -> str:
    """The Kafka topic a contract topic name lives in, under the deployment's namespace prefix."""
    return f"{prefix}{name}"


def create_broker(bootstrap_servers: str, client_id: str) -> KafkaBroker:
    return KafkaBroker(
        bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=1,
        allow_auto_create_topics=False,
        apply_types=False,  # it only publishes: no handler arguments to inject
        # FastStream logs every message at its log level; per-message lines belong at DEBUG.
        log_level=logging.DEBUG,
        # Its own logger would print coloured text; this one propagates to the JSON handler.
        logger=logging.getLogger("broker"),
        graceful_timeout=10.0,
    )


class RecordStream:
    """The records of some topics, fetched continuously into a bounded queue and taken in batches.

    aiokafka sends no new fetch while the records of its last one are unread. Were they read only
    between batches, whatever reaches Kafka while a batch is handled would wait at the broker for
    one batch more; here a task moves fetched records into the queue at once, so they make the
    next batch. With a `group_id` the partitions are shared out among the group's members (and
    `listener` hears when they move); without one, this process reads all of them."""

    def __init__(
        self,
        topics: Sequence[str],
        *,
        bootstrap_servers: str,
        client_id: str,
        group_id: str | None,
        auto_offset_reset: str,
        max_batch: int,
        listener: ConsumerRebalanceListener | None = None,
    ) -> None:
        self.max_batch = max_batch
        self.client_id = client_id
        self._topics = sorted(topics)
        self._listener = listener
        self._settings = {
            "bootstrap_servers": bootstrap_servers,
            "client_id": client_id,
            "group_id": group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": auto_offset_reset,
            "max_poll_records": max_batch,
        }
        self._kafka: Any = None  # made by `start`: aiokafka wants the running event loop
        self._queue: deque[ConsumerRecord[Any, Any]] = deque()  # fetched, not yet taken into a batch
        self._records_queued = asyncio.Event()
        self._room_in_queue = asyncio.Event()
        self._halted = False
        self._fetcher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._kafka = AIOKafkaConsumer(**self._settings)
        self._kafka.subscribe(self._topics, listener=self._listener)
        await self._kafka.start()
        self._fetcher = asyncio.create_task(self._fetch(), name=f"{self.client_id}-fetch")

    async def halt(self) -> None:
        """Stops fetching; `batch` then returns nothing. The group is left only by `close`, so
        offsets can still be committed in between."""
        self._halted = True
        self._records_queued.set()
        if self._fetcher is not None:
            self._fetcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fetcher
            self._fetcher = None
        self._queue.clear()

    async def close(self) -> None:
        await self.halt()
        if self._kafka is not None:
            await self._kafka.stop()

    async def batch(self) -> list[ConsumerRecord[Any, Any]]:
        """The next batch, in fetch order (hence in order within each partition): as many
        queued records as fit, waiting for the first one. Empty once halted."""
        await self._records_queued.wait()
        if self._halted:
            return []
        taken = [self._queue.popleft() for _ in range(min(len(self._queue), self.max_batch))]
        if not self._queue:
            self._records_queued.clear()
        self._room_in_queue.set()
        return taken

    def rewind(self, batch: Iterable[ConsumerRecord[Any, Any]]) -> None:
        """Seeks each partition of a batch that was not handled back to its earliest record;
        the records fetched after it are forgotten too, and all come again in order."""
        earliest: dict[TopicPartition, int] = {}
        for record in batch:
            partition = TopicPartition(record.topic, record.partition)
            earliest[partition] = min(record.offset, earliest.get(partition, record.offset))
        self.forget(set(earliest))
        for partition, offset in earliest.items():
            with contextlib.suppress(IllegalStateError):  # no longer assigned: its new owner has it
                self._kafka.seek(partition, offset)

    def forget(self, partitions: set[TopicPartition]) -> None:
        """Drops the queued records of these partitions (revoked, or rewound)."""
        self._queue = deque(r for r in self._queue if TopicPartition(r.topic, r.partition) not in partitions)
        if not self._queue and not self._halted:
            self._records_queued.clear()
        self._room_in_queue.set()

    def assignment(self) -> set[TopicPartition]:
        """The partitions this process reads now."""
        return set(self._kafka.assignment()) if self._kafka is not None else set()

    def highwater(self, partition: TopicPartition) -> int | None:
        end: int | None = self._kafka.highwater(partition)
        return end

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commits the group's offsets; a failure (e.g. the partition moved to another member,
        which then gets the records again) is logged, not raised."""
        if not offsets:
            return
        try:
            await self._kafka.commit(offsets)
        except (KafkaError, IllegalStateError) as error:
            log.warning("offsets not committed; the records will be delivered again", error=str(error))

    async def _fetch(self) -> None:
        while True:
            if len(self._queue) >= self.max_batch:  # enough for a full batch: stop pulling
                self._room_in_queue.clear()
                await self._room_in_queue.wait()
                continue
            try:
                polled = await self._kafka.getmany(timeout_ms=1000, max_records=self.max_batch)
            except KafkaError as error:
                log.warning("fetching from Kafka failed; retrying", error=str(error))
                await asyncio.sleep(1)
                continue
            except Exception:  # whatever it is, this task must not end while the service runs
                log.exception("fetching from Kafka failed unexpectedly; retrying")
                await asyncio.sleep(1)
                continue
            for records in polled.values():
                self._queue.extend(records)
            if self._queue:
                self._records_queued.set()
