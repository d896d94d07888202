"""Kafka for every service: the FastStream broker that publishes (acks=all, idempotent producer,
no automatic topic creation: topics are made by `servicekit.topics`), and `RecordStream`, which
consumes.

Trace context travels in the records' headers, put there by the outbox and the gateway and read
by the idempotent consumer, which makes it current for each event (and opens a span per event
when spans are exported). FastStream's tracing middleware is
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
# With a linger, the broker answers a fetch before the linger is over only once this much has come
# (1 MiB: a thousand events or so, more than a batch holds), when waiting longer would only add
# latency.
LINGER_FETCH_BYTES = 1_048_576


def physical_topic(prefix: str, name: str) -> str:
    """The Kafka topic a contract topic name lives in, under the deployment's namespace prefix."""
    return f"{prefix}{name}"


def create_broker(bootstrap_servers: str, client_id: str, max_request_size: int = 1_048_576) -> KafkaBroker:
    """`max_request_size` (Kafka's default) bounds one record: the outbox parks a larger one."""
    return KafkaBroker(
        bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=1,
        max_request_size=max_request_size,
        allow_auto_create_topics=False,
        apply_types=False,  # it only publishes: no handler arguments to inject
        # FastStream logs every message at its log level; per-message lines belong at DEBUG.
        log_level=logging.DEBUG,
        # Its own logger would print coloured text; this one propagates to the JSON handler.
        logger=logging.getLogger("broker"),
        graceful_timeout=10.0,
    )


class FetchedRecords:
    """The records fetched and not yet taken: filled by the fetch task, emptied batch by batch,
    bounded (the fetch task waits for room once a full batch is waiting)."""

    def __init__(self, max_batch: int) -> None:
        self.max_batch = max_batch
        self._records: deque[ConsumerRecord[Any, Any]] = deque()
        self._not_empty = asyncio.Event()
        self._not_full = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._records)

    def put(self, records: Iterable[ConsumerRecord[Any, Any]]) -> None:
        if self._closed:
            return
        self._records.extend(records)
        if self._records:
            self._not_empty.set()

    def full(self) -> bool:
        return len(self._records) >= self.max_batch and not self._closed

    async def room(self) -> None:
        """Waits until less than a full batch is waiting."""
        while self.full():
            self._not_full.clear()
            await self._not_full.wait()

    async def take(self) -> list[ConsumerRecord[Any, Any]]:
        """The next batch, in fetch order (hence in order within each partition): as many
        records as fit, waiting for the first one. Empty once closed."""
        while not self._records:
            if self._closed:
                return []
            self._not_empty.clear()
            # Woken by `put` or `close`; records forgotten meanwhile send it round again.
            await self._not_empty.wait()
        taken = [self._records.popleft() for _ in range(min(len(self._records), self.max_batch))]
        self._not_full.set()
        return taken

    def forget(self, partitions: set[TopicPartition]) -> None:
        """Drops the records of these partitions (revoked, or rewound)."""
        self._records = deque(r for r in self._records if TopicPartition(r.topic, r.partition) not in partitions)
        self._not_full.set()

    def close(self) -> None:
        """Drops everything; `take` returns nothing from now on."""
        self._closed = True
        self._records.clear()
        self._not_empty.set()
        self._not_full.set()


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
        batch_linger: float = 0.0,
        listener: ConsumerRebalanceListener | None = None,
        max_poll_interval_ms: int = 300_000,
    ) -> None:
        self.max_batch = max_batch
        # While the queue stays full, the client is polled this often (its partitions paused), so
        # the group does not take this member for dead after `max_poll_interval_ms`.
        self._keepalive = min(5.0, max_poll_interval_ms / 1000 / 4)
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
            "max_poll_interval_ms": max_poll_interval_ms,
        }
        if batch_linger:
            # The broker holds each fetch until `batch_linger` has passed (or a lot has come), so
            # a busy consumer makes one fetch request, hence one batch and one transaction, per
            # linger however many records and partitions it reads, for at most that much latency
            # per hop; an idle one makes a request per linger too. Without it the broker answers
            # as soon as any record comes, which below saturation means a fetch per record.
            self._settings |= {"fetch_max_wait_ms": round(batch_linger * 1000), "fetch_min_bytes": LINGER_FETCH_BYTES}
        self._kafka: Any = None  # made by `start`: aiokafka wants the running event loop
        self._fetched = FetchedRecords(max_batch)
        self._fetcher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._kafka = AIOKafkaConsumer(**self._settings)
        self._kafka.subscribe(self._topics, listener=self._listener)
        await self._kafka.start()
        self._fetcher = asyncio.create_task(self._fetch(), name=f"{self.client_id}-fetch")

    async def halt(self) -> None:
        """Stops fetching; `batch` then returns nothing. The group is left only by `close`, so
        offsets can still be committed in between."""
        self._fetched.close()
        if self._fetcher is not None:
            self._fetcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fetcher
            self._fetcher = None

    async def close(self) -> None:
        await self.halt()
        if self._kafka is not None:
            await self._kafka.stop()

    async def batch(self) -> list[ConsumerRecord[Any, Any]]:
        """The next batch of fetched records (see `FetchedRecords.take`); empty once halted."""
        return await self._fetched.take()

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
        """Drops the fetched records of these partitions (revoked, or rewound)."""
        self._fetched.forget(partitions)

    def assignment(self) -> set[TopicPartition]:
        """The partitions this process reads now."""
        return set(self._kafka.assignment()) if self._kafka is not None else set()

    def highwater(self, partition: TopicPartition) -> int | None:
        end: int | None = self._kafka.highwater(partition)
        return end

    async def end_offsets(self, partitions: set[TopicPartition]) -> dict[TopicPartition, int]:
        """The partitions' end offsets, asked of the brokers (the highwater above is only as fresh
        as the last fetch, which stops while consumption is paused)."""
        ends: dict[TopicPartition, int] = await self._kafka.end_offsets(list(partitions))
        return ends

    async def committed(self, partition: TopicPartition) -> int | None:
        """The group's committed offset of a partition, None when it has none."""
        offset: int | None = await self._kafka.committed(partition)
        return offset

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commits the group's offsets; a failure (e.g. the partition moved to another member,
        which then gets the records again) is logged, not raised."""
        if not offsets:
            return
        try:
            await self._kafka.commit(offsets)
        except (KafkaError, IllegalStateError) as error:
            log.warning("offsets not committed; the records will be delivered again", error=str(error))

    async def _wait_for_room(self) -> None:
        """Waits until the queue has room. A consumer that does not poll for `max_poll_interval_ms`
        is taken for dead and its partitions rebalanced, and the queue stays full for as long as
        the batch loop is paused (its database down, say): meanwhile the client is polled now and
        then with every partition paused, which fetches nothing and keeps the membership."""
        while self._fetched.full():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._keepalive):  # not wait_for: see OutboxRelay._run
                    await self._fetched.room()
                return
            assigned = self._kafka.assignment()
            self._kafka.pause(*assigned)
            try:
                await self._kafka.getmany(timeout_ms=0)
            except KafkaError as error:
                log.warning("polling Kafka failed; retrying", error=str(error))
            finally:
                self._kafka.resume(*(set(assigned) & set(self._kafka.assignment())))

    async def _fetch(self) -> None:
        while True:
            await self._wait_for_room()
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
                self._fetched.put(records)
