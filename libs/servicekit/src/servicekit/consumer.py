"""Consuming events: the idempotent consumer and the dead-letter queue, written once.

A service declares handlers per payload type:

    consumer = EventConsumer(broker, sessions, group_id="conversation", bootstrap_servers=...)

    @consumer.on(PostCustomerMessage)
    async def on_message(envelope: Envelope[PostCustomerMessage], session: AsyncSession) -> None: ...

A service can also register batch steps that run in each transaction, with all of its envelopes:
`@consumer.prepare` before the handlers and `@consumer.finish` after them, so that the rows they
need are loaded, locked and written in a few set-based statements rather than a few per event.

Each record is handled in one database transaction that also records its `event_id`, so a
redelivered event is skipped instead of applied twice, and whatever the handler staged in the
outbox commits with it. Offsets are committed only after that transaction. A record that cannot
be parsed, or whose handler keeps failing, goes to `<topic>.dlq` with the error and the partition
moves on; failures of the infrastructure itself (database, broker) are retried, never dead-lettered,
because the record is not at fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import asyncpg
import redis.exceptions
from aiokafka import ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker
from sqlalchemy import delete, func, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts import Envelope, Payload, parse_envelope
from servicekit.db import ProcessedEvent
from servicekit.kafka import RecordStream, physical_topic
from servicekit.logs import get_logger, log_context
from servicekit.metrics import CONSUMER_BATCH_SIZE, CONSUMER_LAG, DLQ_MESSAGES, EVENTS_DEDUPLICATED, HANDLER_SECONDS
from servicekit.tracing import exporting, trace_context_from, tracer

log = get_logger(__name__)
TRACER = tracer(__name__)

P = TypeVar("P", bound=Payload)
Handler = Callable[[Envelope[Any], AsyncSession], Awaitable[None]]
BatchStep = Callable[[list[Envelope[Any]], AsyncSession], Awaitable[None]]
HANDLER_ATTEMPTS = 3
OFFSET_COMMIT_INTERVAL = 0.2  # seconds between two offset commits of a consumer, at most
# Claims a batch's event ids in one statement whose text does not depend on the batch size (so
# the driver's prepared statement is reused); returns the ids not claimed before.
CLAIM_EVENTS = text(
    "INSERT INTO processed_events (consumer_group, event_id) SELECT :group, unnest(CAST(:ids AS varchar[]))"
    " ON CONFLICT DO NOTHING RETURNING event_id"
)
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    OperationalError,
    InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    redis.exceptions.ConnectionError,
    KafkaError,
    # Concurrent transactions can still collide; the retry succeeds.
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)


def is_transient(error: BaseException) -> bool:
    """Failures of the infrastructure rather than of the record. SQLAlchemy wraps the driver's
    errors, so the whole chain of causes is judged."""
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, TRANSIENT_ERRORS):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__
    return False


async def send_to_dlq(
    broker: KafkaBroker, record: ConsumerRecord[Any, Any], group_id: str, error: BaseException
) -> None:
    headers = {
        "dlq-error": f"{type(error).__name__}: {error}"[:2000],
        "dlq-consumer-group": group_id,
        "dlq-original-topic": record.topic,
        "dlq-original-partition": str(record.partition),
        "dlq-original-offset": str(record.offset),
    }
    await broker.publish(record.value, f"{record.topic}.dlq", key=record.key, headers=headers)
    DLQ_MESSAGES.labels(record.topic, group_id).inc()
    log.error(
        "message sent to the dead-letter topic", topic=record.topic, offset=record.offset, error=headers["dlq-error"]
    )


@dataclass(frozen=True)
class Delivery:
    """One consumed record with its parsed envelope and the handler it goes to."""

    record: ConsumerRecord[Any, Any]
    envelope: Envelope[Any]
    handler: Handler

    @property
    def trace_headers(self) -> dict[str, str]:
        """The producer's trace context (W3C headers), so the handling joins the customer's trace."""
        return {key: value.decode(errors="replace") for key, value in self.record.headers or () if value is not None}

    @property
    def order_key(self) -> str:
        # Row locks are taken in this order by every batch, so two batches never deadlock.
        return str(self.envelope.conversation_id or "")


class EventConsumer:
    def __init__(
        self,
        broker: KafkaBroker,
        sessions: async_sessionmaker[AsyncSession],
        *,
        group_id: str,
        bootstrap_servers: str,
        topic_prefix: str = "",
        batch_size: int = 200,
    ) -> None:
        self.broker = broker  # publishes dead letters
        self.sessions = sessions
        self.group_id = group_id
        self.bootstrap_servers = bootstrap_servers
        self.topic_prefix = topic_prefix
        self.batch_size = batch_size
        self.handlers: dict[str, Handler] = {}
        self.topics: set[str] = set()
        self.prepare_batch: BatchStep | None = None
        self.finish_batch: BatchStep | None = None
        self._records: RecordStream | None = None
        self._applied_offsets: dict[TopicPartition, int] = {}  # applied, not yet committed
        self._offsets_applied = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def on(self, payload_cls: type[P]) -> Callable[[Callable[[Envelope[P], AsyncSession], Awaitable[None]]], Handler]:
        """Registers the handler of one payload type; `start` then listens to their topics."""

        def register(handler: Callable[[Envelope[P], AsyncSession], Awaitable[None]]) -> Handler:
            self.handlers[payload_cls.event_type] = handler
            self.topics.add(payload_cls.topic)
            return handler

        return register

    def prepare(self, step: BatchStep) -> BatchStep:
        """Registers the service's batch step, called in each transaction before its handlers
        with the envelopes about to be applied (redeliveries already left out)."""
        self.prepare_batch = step
        return step

    def finish(self, step: BatchStep) -> BatchStep:
        """Registers the service's closing batch step, called in each transaction after its
        handlers, before the commit."""
        self.finish_batch = step
        return step

    async def start(self) -> None:
        """Joins the service's Kafka group on all the handled topics, then applies batches and
        commits offsets in two tasks. A batch holds the records of every topic, fetched while
        the one before was applied, and is applied in one database transaction: the fewer and
        fuller the batches, the higher the throughput. Records of one conversation share a key,
        hence a partition, on each topic, and their batch is applied in fetch order."""
        self._records = RecordStream(
            [physical_topic(self.topic_prefix, topic) for topic in self.topics],
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.group_id,
            group_id=self.group_id,
            auto_offset_reset="earliest",
            max_batch=self.batch_size,
            listener=_CommitBeforeRevocation(self),
        )
        await self._records.start()
        self._tasks = [
            asyncio.create_task(self._apply_batches(self._records), name=f"{self.group_id}-apply"),
            asyncio.create_task(self._commit_applied_offsets(), name=f"{self.group_id}-commit"),
        ]

    async def stop(self, timeout: float = 10.0) -> None:
        """Stops fetching, lets the batch under way finish (for at most `timeout`; a transaction
        cut short rolls back and its records come again), commits the applied offsets and
        leaves the group."""
        if self._records is None:
            return
        await self._records.halt()
        apply, commit = self._tasks
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(apply), timeout)
        for task in (apply, commit):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.commit_applied()
        await self._records.close()
        self._records = None

    def assignment(self) -> set[TopicPartition]:
        """The partitions this member of the group holds now."""
        return self._records.assignment() if self._records is not None else set()

    def forget_fetched(self, partitions: set[TopicPartition]) -> None:
        """Drops the fetched, not yet applied records of these partitions (moving elsewhere)."""
        if self._records is not None:
            self._records.forget(partitions)

    async def _apply_batches(self, records: RecordStream) -> None:
        while batch := await records.batch():
            try:
                await self.process(batch)
            except Exception:
                # E.g. Kafka unreachable while dead-lettering: rewind, so the batch comes again
                # instead of being skipped by the next offset commit.
                log.exception("batch not processed; it will be delivered again")
                records.rewind(batch)
                await asyncio.sleep(1)

    async def process(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        """Handles a batch of records, then leaves their offsets to the committer: nothing is
        acknowledged unapplied."""
        deliveries: list[Delivery] = []
        for record in records:
            try:
                envelope = parse_envelope(record.value)
            except ValueError as error:
                await send_to_dlq(self.broker, record, self.group_id, error)
                continue
            handler = self.handlers.get(envelope.type)
            if handler is not None:  # else: another service's event on a shared topic
                deliveries.append(Delivery(record, envelope, handler))
        if deliveries:
            await self._apply_batch(sorted(deliveries, key=lambda d: d.order_key))
        self._leave_offsets_to_committer(records)
        self._observe_lag(records)

    def _leave_offsets_to_committer(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        """Leaves the offsets of an applied batch to the committer task, which commits what has
        been applied at most every OFFSET_COMMIT_INTERVAL: awaiting the broker here would idle
        the consumer for a round trip per batch, and a commit per batch would double its Kafka
        requests. Records applied but not yet committed when the process stops are delivered
        again, and then skipped by event id."""
        for record in records:
            self._applied_offsets[TopicPartition(record.topic, record.partition)] = record.offset + 1
        self._offsets_applied.set()

    async def _commit_applied_offsets(self) -> None:
        while True:
            await self._offsets_applied.wait()
            self._offsets_applied.clear()
            await self.commit_applied()
            await asyncio.sleep(OFFSET_COMMIT_INTERVAL)

    async def commit_applied(self, partitions: set[TopicPartition] | None = None) -> None:
        """Commits the applied offsets (of these partitions only, if given) now."""
        taken = {p: o for p, o in self._applied_offsets.items() if partitions is None or p in partitions}
        for partition in taken:
            del self._applied_offsets[partition]
        if self._records is not None:
            await self._records.commit(taken)

    def _observe_lag(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        if self._records is None:
            return
        last_offsets = {(r.topic, r.partition): r.offset for r in records}
        for (topic, partition), offset in last_offsets.items():
            end = self._records.highwater(TopicPartition(topic, partition))
            if end is not None:
                CONSUMER_LAG.labels(topic, str(partition), self.group_id).set(max(end - offset - 1, 0))

    async def _apply_batch(self, deliveries: list[Delivery]) -> None:
        started = time.perf_counter()
        try:
            await self._apply_through_outages(deliveries)
        except Exception as error:
            # One record spoils the batch: apply them one by one to find and isolate it.
            log.warning("batch failed; applying its records one by one", error=str(error), size=len(deliveries))
            for delivery in deliveries:
                await self._apply_one(delivery)
        elapsed = time.perf_counter() - started
        CONSUMER_BATCH_SIZE.labels(self.group_id).observe(len(deliveries))
        for delivery in deliveries:
            HANDLER_SECONDS.labels(delivery.record.topic, self.group_id, "applied").observe(elapsed / len(deliveries))

    async def _apply_one(self, delivery: Delivery) -> None:
        """Applies one record, retrying a failing handler a few times before dead-lettering it."""
        envelope = delivery.envelope
        with log_context(
            correlation_id=envelope.correlation_id,
            conversation_id=envelope.conversation_id,
            tenant_id=envelope.tenant_id,
            event_type=envelope.type,
        ):
            for attempt in range(1, HANDLER_ATTEMPTS + 1):
                try:
                    await self._apply_through_outages([delivery])
                    return
                except Exception as error:
                    if attempt == HANDLER_ATTEMPTS:
                        log.exception("handler failed; dead-lettering", attempts=attempt)
                        await send_to_dlq(self.broker, delivery.record, self.group_id, error)
                        return
                    log.warning("handler failed; retrying", attempt=attempt, error=str(error))
                    await asyncio.sleep(0.05 * attempt)

    async def _apply_through_outages(self, deliveries: list[Delivery]) -> None:
        """`apply`, retried with back-off for as long as the infrastructure fails (the records
        are not at fault then); any other error is raised to the caller."""
        backoff = 0.2
        while True:
            try:
                await self.apply(deliveries)
                return
            except Exception as error:
                if not is_transient(error):
                    raise
                log.warning("infrastructure error; retrying", error=str(error), size=len(deliveries))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def apply(self, deliveries: list[Delivery]) -> None:
        """One transaction: claim the event ids, apply the effects of the new ones, stage the
        outgoing events. Ids claimed before (a redelivery) are skipped, not re-applied."""
        async with self.sessions() as session, session.begin():
            claimed = set(
                await session.scalars(
                    CLAIM_EVENTS, {"group": self.group_id, "ids": [str(d.envelope.event_id) for d in deliveries]}
                )
            )
            fresh: list[Delivery] = []
            for delivery in deliveries:
                if str(delivery.envelope.event_id) in claimed:
                    claimed.discard(str(delivery.envelope.event_id))  # the same event twice in one batch
                    fresh.append(delivery)
                else:
                    EVENTS_DEDUPLICATED.labels(self.group_id).inc()
            envelopes = [d.envelope for d in fresh]
            # Without an exporter a span would record nothing, and starting one per event cost
            # about a tenth of a consumer's CPU. The trace context of the record's headers is made
            # current either way, so the events a handler stages carry it on.
            record_spans = exporting()
            if envelopes and self.prepare_batch is not None:
                await self.prepare_batch(envelopes, session)
            for delivery in fresh:
                with (
                    log_context(
                        correlation_id=delivery.envelope.correlation_id,
                        conversation_id=delivery.envelope.conversation_id,
                        tenant_id=delivery.envelope.tenant_id,
                    ),
                    trace_context_from(delivery.trace_headers),
                    TRACER.start_as_current_span(f"handle {delivery.envelope.type}")
                    if record_spans
                    else contextlib.nullcontext(),
                ):
                    await delivery.handler(delivery.envelope, session)
            if envelopes and self.finish_batch is not None:
                await self.finish_batch(envelopes, session)


class _CommitBeforeRevocation(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """When partitions move to another member of the group, their applied offsets are committed
    first and their fetched records forgotten, so the new owner starts where this one stopped."""

    def __init__(self, consumer: EventConsumer) -> None:
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.consumer.forget_fetched(set(revoked))
        await self.consumer.commit_applied(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass


async def prune_processed_events(sessions: async_sessionmaker[AsyncSession], older_than: timedelta) -> int:
    """Forgets event ids older than Kafka keeps records: those can no longer be redelivered, and
    the table would otherwise grow forever. Returns how many were removed."""
    async with sessions() as session, session.begin():
        result = await session.execute(
            delete(ProcessedEvent).where(ProcessedEvent.processed_at < func.now() - older_than)
        )
    return int(getattr(result, "rowcount", 0) or 0)
