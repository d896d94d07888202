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
outbox commits with it. Offsets are committed only after that transaction.

What happens when something fails depends on what failed:

- **The service's own database, cache or broker** (asked directly whenever an error could be
  theirs): consumption pauses. No new batch is taken, the fetched queue stops growing, the group
  membership stays alive (the client keeps polling with its partitions paused), `/readyz` says
  why, and the batch in hand is applied once the dependency answers again. Nothing is retried
  record by record and nothing is dead-lettered for it, since the records are not at fault.
- **A handler's outside call** (an LLM, SMTP, a webhook, an HTTP API), marked by the handler with
  `with outside_call("smtp"): ...`: that record is stored (`consumer_retries`) and tried again
  with growing back-off, and later records with the same key wait behind it, so one
  conversation's records still apply in order while all others flow on. After
  `outside_call_attempts` tries it goes to the dead-letter topic.
- **The record itself** (a handler error, a record that is not an envelope): a few quick tries,
  then `<topic>.dlq` with the error, the consumer group and the original topic, partition and
  offset in its headers; the partition moves on. `python -m servicekit.dlq` lists and replays
  dead letters; a replay carries `dlq-replay-group`, so only that group applies it again.
- **An event type this code does not know** (a newer producer's) is skipped and counted in
  `events_skipped_total`, never dead-lettered; a newer version of a known type is read with the
  newest model this code has (see `contracts.parse_envelope`).

When partitions move between the group's members, the one letting go finishes the batch under
way and publishes what it committed before the partitions leave, and the one taking over first
publishes every outbox row left in its store (by a replica that crashed, or a failed publish)
before it applies anything newer: a conversation's events reach Kafka in the order of their
commits, whichever replica committed them.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

import asyncpg
import redis.exceptions
from aiokafka import ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker
from sqlalchemy import delete, select, text, update
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from contracts import Envelope, Payload, UnknownEventError, parse_envelope, read_header
from contracts.envelope import payload_class_for
from servicekit.db import StoredRetry, driver_transaction
from servicekit.kafka import RecordStream, physical_topic
from servicekit.logs import get_logger, log_context
from servicekit.metrics import (
    CONSUMER_BATCH_SIZE,
    CONSUMER_LAG,
    CONSUMER_PAUSED,
    CONSUMER_REBALANCES,
    DLQ_MESSAGES,
    EVENTS_DEDUPLICATED,
    EVENTS_SKIPPED,
    HANDLER_SECONDS,
    RETRIES_STORED,
)
from servicekit.outbox import OutboxRelay, OutboxRow, hand_to_relay, write_staged_events
from servicekit.timers import write_staged_timers
from servicekit.tracing import consumer_span, exporting, headers_of, trace_context_from

log = get_logger(__name__)

P = TypeVar("P", bound=Payload)
Handler = Callable[[Envelope[Any], AsyncSession], Awaitable[None]]
BatchStep = Callable[[list[Envelope[Any]], AsyncSession], Awaitable[None]]
Probe = Callable[[], Awaitable[object]]
HANDLER_ATTEMPTS = 3  # quick tries of a failing record before it is dead-lettered
OFFSET_COMMIT_INTERVAL = 0.2  # seconds between two offset commits of a consumer, at most
LET_GO_TIMEOUT = 10.0  # seconds a revocation waits for the outbox to publish what this member committed
MAX_PAUSE_BACKOFF = 5.0  # seconds between two probes of a dependency that is down, at most
MAX_RETRY_BACKOFF = timedelta(minutes=10)

# Dead-letter headers, read by `servicekit.dlq`.
DLQ_ERROR = "dlq-error"
DLQ_CONSUMER_GROUP = "dlq-consumer-group"
DLQ_ORIGINAL_TOPIC = "dlq-original-topic"
DLQ_ORIGINAL_PARTITION = "dlq-original-partition"
DLQ_ORIGINAL_OFFSET = "dlq-original-offset"
# Set by a replay: only this consumer group applies the record; the others skip it.
DLQ_REPLAY_GROUP = "dlq-replay-group"

# Claims a batch's event ids in one statement whose text does not depend on the batch size (so
# the driver's prepared statement is reused); returns the ids not claimed before.
CLAIM_EVENTS = (
    "INSERT INTO processed_events (consumer_group, event_id) SELECT $1, unnest(CAST($2 AS varchar[]))"
    " ON CONFLICT DO NOTHING RETURNING event_id"
)
# Concurrent transactions can collide on locks; tried again at once, they succeed.
COLLISIONS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)
# Errors that may come from the service's own database, cache or broker, or from anything else on
# the network: which one it was is asked of the service's own dependencies (`own_dependency_down`).
MAYBE_INFRASTRUCTURE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    OperationalError,
    InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    redis.exceptions.ConnectionError,
    KafkaError,
)


class OutsideCallError(Exception):
    """A handler's call to something outside the service failed (see `outside_call`)."""

    def __init__(self, what: str, error: BaseException) -> None:
        super().__init__(f"{what} failed: {type(error).__name__}: {error}")
        self.what = what


@contextlib.contextmanager
def outside_call(what: str) -> Iterator[None]:
    """Marks a handler's call to something outside the service (an LLM, SMTP, a webhook):

        with outside_call("smtp"):
            await smtp.send_message(message)

    Whatever it raises becomes an `OutsideCallError`, which the consumer retries for that record
    alone, later, instead of pausing for it or dead-lettering it at once. The call must carry an
    idempotency key derived from the event id (`contracts.idempotency_key`), since a retry, or a
    redelivery after a crash, makes it again."""
    try:
        yield
    except OutsideCallError:
        raise
    except Exception as error:
        raise OutsideCallError(what, error) from error


def collided(error: BaseException) -> bool:
    """Whether a transaction failed only by colliding with a concurrent one (a deadlock, a
    serialization failure): tried again, it succeeds."""
    return _caused_by(error, COLLISIONS)


def _caused_by(error: BaseException, types: tuple[type[BaseException], ...]) -> bool:
    """Whether the error or one of its causes is of these types (SQLAlchemy wraps the driver's)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, types):
            return True
        if types is MAYBE_INFRASTRUCTURE and isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _header(record: ConsumerRecord[Any, Any], name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name and value is not None:
            return bytes(value).decode(errors="replace")
    return None


async def send_to_dlq(
    broker: KafkaBroker, record: ConsumerRecord[Any, Any], group_id: str, error: BaseException
) -> None:
    headers = {
        DLQ_ERROR: f"{type(error).__name__}: {error}"[:2000],
        DLQ_CONSUMER_GROUP: group_id,
        DLQ_ORIGINAL_TOPIC: record.topic,
        DLQ_ORIGINAL_PARTITION: str(record.partition),
        DLQ_ORIGINAL_OFFSET: str(record.offset),
    }
    await broker.publish(record.value, f"{record.topic}.dlq", key=record.key, headers=headers)
    DLQ_MESSAGES.labels(record.topic, group_id).inc()
    log.error(
        "message sent to the dead-letter topic", topic=record.topic, offset=record.offset, error=headers[DLQ_ERROR]
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
        return headers_of(self.record.headers)

    @property
    def order_key(self) -> str:
        # Row locks are taken in this order by every batch, so two batches never deadlock.
        return str(self.envelope.conversation_id or "")


# How a batch is applied: sorted by conversation, or as its records were written (see `EventConsumer`).
BatchOrder = Literal["conversation", "written"]


def in_conversation_order(deliveries: list[Delivery]) -> list[Delivery]:
    """Sorted by conversation (stable, so each conversation's records keep their order)."""
    return sorted(deliveries, key=lambda d: d.order_key)


def in_written_order(deliveries: list[Delivery]) -> list[Delivery]:
    """In the order the records were written to Kafka (their timestamps), merged across
    partitions; each partition's own order is kept as it is."""
    by_partition: dict[tuple[str, int], list[Delivery]] = {}
    for delivery in deliveries:
        by_partition.setdefault((delivery.record.topic, delivery.record.partition), []).append(delivery)
    return list(heapq.merge(*by_partition.values(), key=lambda d: d.record.timestamp))


class _GiveUpBatch(Exception):
    """The batch in hand is abandoned: its partitions are moving to another member of the group."""


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
        batch_linger: float = 0.0,
        relay: OutboxRelay | None = None,
        probes: Mapping[str, Probe] | None = None,
        outside_call_attempts: int = 6,
        retry_backoff: timedelta = timedelta(seconds=2),
        max_poll_interval_ms: int = 300_000,
        order: BatchOrder = "conversation",
    ) -> None:
        self.broker = broker  # publishes dead letters
        self.sessions = sessions
        self.group_id = group_id
        self.bootstrap_servers = bootstrap_servers
        self.topic_prefix = topic_prefix
        self.batch_size = batch_size
        self.batch_linger = batch_linger  # seconds the broker holds a fetch (`RecordStream`)
        self.relay = relay  # the outbox relay of the same store, drained when partitions move
        self.probes = dict(probes or {})  # the service's own dependencies besides database and broker
        self.outside_call_attempts = outside_call_attempts
        self.retry_backoff = retry_backoff
        self.max_poll_interval_ms = max_poll_interval_ms
        # A batch is applied sorted by conversation, so every batch takes row locks in one order
        # and two never deadlock. A service whose decisions depend on the order of events across
        # conversations (an operator going offline, a customer asking for one) and that
        # serialises its transactions itself (routing's tenant lock) applies them as written.
        self.apply_order = in_written_order if order == "written" else in_conversation_order
        self.handlers: dict[str, Handler] = {}
        self.topics: set[str] = set()
        self.prepare_batch: BatchStep | None = None
        self.finish_batch: BatchStep | None = None
        self.paused_reason: str | None = None  # why consumption is paused now, for /readyz
        self._records: RecordStream | None = None
        self._applied_offsets: dict[TopicPartition, int] = {}  # applied, not yet committed
        self._offsets_applied = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # Taken while a batch (or a stored retry) is applied; a revocation takes it to wait for that.
        self._applying = asyncio.Lock()
        self._owned: set[TopicPartition] = set()
        self._revocations = 0  # how many times partitions were taken away; batches taken before are filtered
        self._revocation_pending = False
        self._left_behind_to_publish = False  # set by an assignment: drain the outbox before applying
        self._retries_pending = True  # until a look at consumer_retries finds none of this group
        self._next_offsets: dict[TopicPartition, int] = {}  # next record to apply, per partition, for the lag
        self._lag_reported: set[TopicPartition] = set()

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
        """Joins the service's Kafka group on all the handled topics, then applies batches, tries
        stored retries and commits offsets in three tasks. A batch holds the records of every
        topic, fetched while the one before was applied, and is applied in one database
        transaction: the fewer and fuller the batches, the higher the throughput. Records of one
        conversation share a key, hence a partition, on each topic, and their batch is applied in
        fetch order."""
        self._records = RecordStream(
            [physical_topic(self.topic_prefix, topic) for topic in self.topics],
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.group_id,
            group_id=self.group_id,
            auto_offset_reset="earliest",
            max_batch=self.batch_size,
            batch_linger=self.batch_linger,
            listener=_HandOverInOrder(self),
            max_poll_interval_ms=self.max_poll_interval_ms,
        )
        await self._records.start()
        self._tasks = [
            asyncio.create_task(self._apply_batches(self._records), name=f"{self.group_id}-apply"),
            asyncio.create_task(self._commit_applied_offsets(), name=f"{self.group_id}-commit"),
            asyncio.create_task(self._retry_stored_forever(), name=f"{self.group_id}-retry"),
        ]

    async def stop(self, timeout: float = 10.0) -> None:
        """Stops fetching, lets the batch under way finish (for at most `timeout`; a transaction
        cut short rolls back and its records come again), commits the applied offsets and
        leaves the group."""
        if self._records is None:
            return
        await self._records.halt()
        apply, commit, retry = self._tasks
        retry.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(apply), timeout)
        for task in (apply, commit, retry):
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

    # ------------------------------------------------------------------ partitions moving

    def take_over(self, assigned: set[TopicPartition]) -> None:
        """Partitions assigned to this member: rows another replica left in the outbox are
        published before the next batch (see `_apply_batches`)."""
        self._owned |= assigned
        self._retries_pending = True  # the previous owner may have stored some for these
        if assigned and self.relay is not None:
            self._left_behind_to_publish = True

    async def let_go(self, revoked: set[TopicPartition]) -> None:
        """Partitions moving to another member: the batch under way finishes first (one paused by
        an outage gives up), what it committed is published, and its offsets are committed, so the
        next owner starts after it and commits nothing that could overtake it on Kafka."""
        CONSUMER_REBALANCES.labels(self.group_id).inc()
        self._revocation_pending = True
        try:
            async with self._applying:
                self._owned -= revoked
                for partition in revoked:
                    self._next_offsets.pop(partition, None)
                self._revocations += 1
                self.forget_fetched(revoked)
                if self.relay is not None:
                    try:
                        await asyncio.wait_for(self.relay.drain(), LET_GO_TIMEOUT)
                    except TimeoutError:
                        # The next owner publishes what is left before applying anything.
                        log.warning("outbox not drained before letting partitions go")
                await self.commit_applied(revoked)
        finally:
            self._revocation_pending = False

    # ------------------------------------------------------------------ the batch loop

    async def _apply_batches(self, records: RecordStream) -> None:
        while True:
            revocations = self._revocations
            batch = await records.batch()
            if not batch:
                return
            async with self._applying:
                if revocations != self._revocations:  # taken before partitions moved away
                    batch = [r for r in batch if TopicPartition(r.topic, r.partition) in self._owned]
                try:
                    await self._publish_left_behind()
                    await self.process(batch)
                except _GiveUpBatch:
                    log.info("batch given up: its partitions are moving", size=len(batch))
                    records.rewind(batch)
                except Exception:
                    # Whatever it was, rewind, so the batch comes again instead of being skipped
                    # by the next offset commit.
                    log.exception("batch not processed; it will be delivered again")
                    records.rewind(batch)
                    await asyncio.sleep(1)

    async def _publish_left_behind(self) -> None:
        """After an assignment: every outbox row in the store (left by a replica that crashed or
        stopped, or by a failed publish) reaches Kafka before this member commits anything newer."""
        if not self._left_behind_to_publish or self.relay is None:
            return
        relay = self.relay
        await self._while_paused(
            "outbox rows left behind cannot be published yet", lambda: asyncio.wait_for(relay.drain(), 5.0)
        )
        self._left_behind_to_publish = False

    async def process(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        """Handles a batch of records, then leaves their offsets to the committer: nothing is
        acknowledged unapplied."""
        deliveries: list[Delivery] = []
        for record in records:
            replay_for = _header(record, DLQ_REPLAY_GROUP) if record.headers else None
            if replay_for is not None and replay_for != self.group_id:
                EVENTS_SKIPPED.labels(record.topic, self.group_id, "replay_for_another_group").inc()
                continue
            try:
                # The type first: another service's event on a shared topic is skipped without
                # validating its payload.
                header = read_header(record.value)
                handler = self.handlers.get(header.type)
                if handler is None:
                    known = payload_class_for(header.type, header.version) is not None
                    EVENTS_SKIPPED.labels(record.topic, self.group_id, "not_handled" if known else "unknown_type").inc()
                    continue
                envelope = parse_envelope(record.value, header)
            except UnknownEventError:
                EVENTS_SKIPPED.labels(record.topic, self.group_id, "unknown_type").inc()
                continue
            except ValueError as error:
                await self._dead_letter(record, error)
                continue
            deliveries.append(Delivery(record, envelope, handler))
        if deliveries and self._retries_pending:
            deliveries = await self._queue_behind_stored_retries(deliveries)
        if deliveries:
            await self._apply_batch(self.apply_order(deliveries))
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
        """The lag of the partitions of a batch just applied, from what the client already knows
        (no request). A partition that stalls or idles is refreshed by `observe_lag`."""
        if self._records is None:
            return
        last_offsets = {(r.topic, r.partition): r.offset for r in records}
        for (topic, partition), offset in last_offsets.items():
            self._next_offsets[TopicPartition(topic, partition)] = offset + 1
            end = self._records.highwater(TopicPartition(topic, partition))
            if end is not None:
                CONSUMER_LAG.labels(topic, str(partition), self.group_id).set(max(end - offset - 1, 0))

    async def observe_lag(self) -> None:
        """Sets the lag of every partition this member holds from the brokers' end offsets (one
        request), so that a consumer that stopped applying (paused, stuck) shows its lag growing,
        and forgets the partitions it no longer holds. Called every sampling period by `Runtime`."""
        if self._records is None:
            return
        owned = self.assignment()
        for gone in self._lag_reported - owned:
            with contextlib.suppress(KeyError):
                CONSUMER_LAG.remove(gone.topic, str(gone.partition), self.group_id)
        self._lag_reported = owned
        if not owned:
            return
        ends = await self._records.end_offsets(owned)
        for partition in owned:
            position = self._next_offsets.get(partition)
            if position is None:  # nothing applied here since it was assigned: its committed offset
                position = await self._records.committed(partition)
            end = ends.get(partition)
            if end is not None and position is not None:
                lag = max(end - position, 0)
                CONSUMER_LAG.labels(partition.topic, str(partition.partition), self.group_id).set(lag)

    async def _apply_batch(self, deliveries: list[Delivery]) -> None:
        started = time.perf_counter()
        try:
            await self._through_outages(lambda: self.apply(deliveries))
        except _GiveUpBatch:
            raise
        except Exception as error:
            # One record spoils the batch: apply them one by one to find and isolate it.
            log.warning("batch failed; applying its records one by one", error=str(error), size=len(deliveries))
            waiting: set[bytes] = set()  # keys with a record stored for a retry: the later ones wait behind it
            for delivery in deliveries:
                key = delivery.record.key or b""
                if key in waiting:
                    await self._store_retries([delivery], None, attempts=0)
                elif await self._apply_one(delivery) == "stored":
                    waiting.add(key)
        elapsed = time.perf_counter() - started
        CONSUMER_BATCH_SIZE.labels(self.group_id).observe(len(deliveries))
        share = elapsed / len(deliveries)
        for delivery in deliveries:
            HANDLER_SECONDS.labels(self.group_id, delivery.envelope.type).observe(share)

    async def _apply_one(self, delivery: Delivery) -> Literal["applied", "stored", "dead-lettered"]:
        """Applies one record: an outside call that fails stores it for a later try; any other
        failure is tried a few times before the record is dead-lettered."""
        envelope = delivery.envelope
        with log_context(
            correlation_id=envelope.correlation_id,
            conversation_id=envelope.conversation_id,
            tenant_id=envelope.tenant_id,
            event_type=envelope.type,
        ):
            for attempt in range(1, HANDLER_ATTEMPTS + 1):
                try:
                    await self._through_outages(lambda: self.apply([delivery]))
                    return "applied"
                except _GiveUpBatch:
                    raise
                except Exception as error:
                    if _caused_by(error, (OutsideCallError,)):
                        log.warning("outside call failed; the record is stored for another try", error=str(error))
                        await self._store_retries([delivery], error, attempts=1)
                        return "stored"
                    if attempt == HANDLER_ATTEMPTS:
                        log.exception("handler failed; dead-lettering", attempts=attempt)
                        await self._dead_letter(delivery.record, error)
                        return "dead-lettered"
                    log.warning("handler failed; retrying", attempt=attempt, error=str(error))
                    await asyncio.sleep(0.05 * attempt)
        raise AssertionError("unreachable: the last attempt returns")

    async def apply(self, deliveries: list[Delivery]) -> None:
        """One transaction: claim the event ids, apply the effects of the new ones, stage the
        outgoing events. Ids claimed before (a redelivery) are skipped, not re-applied."""
        async with self._transaction() as (session, driver):
            await self._apply_in(session, driver, deliveries)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[tuple[AsyncSession, asyncpg.Connection]]:
        """A batch's transaction, run by the driver (`servicekit.db.driver_transaction`): the
        handlers' session works inside it, and the events it staged go to the relay once it has
        committed."""
        async with self.sessions() as session:
            async with driver_transaction(session) as driver:
                yield session, driver
                written = await session.run_sync(_write_staged)
            hand_to_relay(session, written)

    async def _apply_in(self, session: AsyncSession, driver: asyncpg.Connection, deliveries: list[Delivery]) -> None:
        ids = [str(d.envelope.event_id) for d in deliveries]
        claimed = {record[0] for record in await driver.fetch(CLAIM_EVENTS, self.group_id, ids)}
        fresh: list[Delivery] = []
        for delivery, event_id in zip(deliveries, ids, strict=True):
            if event_id in claimed:
                claimed.discard(event_id)  # the same event twice in one batch
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
                consumer_span(
                    f"handle {delivery.envelope.type}",
                    topic=delivery.record.topic,
                    group=self.group_id,
                    event_type=delivery.envelope.type,
                )
                if record_spans
                else contextlib.nullcontext(),
            ):
                await delivery.handler(delivery.envelope, session)
        if envelopes and self.finish_batch is not None:
            await self.finish_batch(envelopes, session)

    # ------------------------------------------------------------------ outages of its own dependencies

    async def own_dependency_down(self) -> str | None:
        """Why the service's own database, broker or other probed dependency is unreachable now,
        or None when they all answer."""
        try:
            async with asyncio.timeout(5.0), self.sessions() as session:
                await session.execute(text("SELECT 1"))
        except Exception as error:
            return f"database unreachable ({type(error).__name__})"
        if not await self.broker.ping(timeout=2.0):
            return "broker unreachable"
        for name, probe in self.probes.items():
            try:
                async with asyncio.timeout(5.0):
                    await probe()
            except Exception as error:
                return f"{name} unreachable ({type(error).__name__})"
        return None

    async def _through_outages(self, work: Callable[[], Awaitable[None]]) -> None:
        """Runs `work` (one transaction), again and again while the service's own dependencies are
        down: consumption is paused meanwhile. Other errors are raised to the caller."""
        while True:
            try:
                await work()
                return
            except Exception as error:
                if collided(error):
                    log.info("transaction collided with another; trying again", error=str(error))
                    await asyncio.sleep(0.05)
                    continue
                if _caused_by(error, (OutsideCallError,)) or not _caused_by(error, MAYBE_INFRASTRUCTURE):
                    raise
                reason = await self.own_dependency_down()
                if reason is None:
                    raise  # something else on the network: the record's (or its handler's) failure
                await self._while_paused(reason, self._recovered)

    async def _recovered(self) -> None:
        reason = await self.own_dependency_down()
        if reason is not None:
            raise ConnectionError(reason)

    async def _while_paused(self, reason: str, attempt: Callable[[], Awaitable[object]]) -> None:
        """Pauses consumption until `attempt` succeeds, trying it with growing back-off. The fetch
        task stops filling the queue, which the paused batch loop no longer empties, and keeps
        polling with its partitions paused, so the group does not take this member for dead.
        Gives up (raising `_GiveUpBatch`) when the partitions are taken away meanwhile."""
        first_try = True
        backoff = 0.2
        try:
            while True:
                if self._revocation_pending:
                    raise _GiveUpBatch
                try:
                    await attempt()
                    return
                except Exception as error:
                    if first_try:
                        self._pause(reason if not str(error) else f"{reason}: {error}"[:300])
                        first_try = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_PAUSE_BACKOFF)
        finally:
            if not first_try:
                self._resume()

    def _pause(self, reason: str) -> None:
        self.paused_reason = reason
        CONSUMER_PAUSED.labels(self.group_id).set(1)
        log.error("consumption paused", reason=reason)

    def _resume(self) -> None:
        log.info("consumption resumed", after=self.paused_reason)
        self.paused_reason = None
        CONSUMER_PAUSED.labels(self.group_id).set(0)

    async def _dead_letter(self, record: ConsumerRecord[Any, Any], error: BaseException) -> None:
        """Sends the record to its dead-letter topic; while the broker refuses, consumption pauses."""
        await self._while_paused(
            "dead-letter topic not writable", lambda: send_to_dlq(self.broker, record, self.group_id, error)
        )

    # ------------------------------------------------------------------ stored retries of outside calls

    async def _queue_behind_stored_retries(self, deliveries: list[Delivery]) -> list[Delivery]:
        """Records whose key has a stored retry wait behind it (stored too, in order); returns the
        others, which apply now."""
        keys = list({d.record.key or b"" for d in deliveries})
        waiting: set[bytes] = set()

        async def look() -> None:
            async with self.sessions() as session:
                found = await session.scalars(
                    select(StoredRetry.key)
                    .where(StoredRetry.consumer_group == self.group_id, StoredRetry.key.in_(keys))
                    .distinct()
                )
                waiting.update(bytes(key) for key in found)

        await self._through_outages(look)
        behind = [d for d in deliveries if (d.record.key or b"") in waiting]
        if behind:
            await self._store_retries(behind, None, attempts=0)
        return [d for d in deliveries if (d.record.key or b"") not in waiting]

    def _next_attempt_at(self, attempts: int) -> datetime:
        delay = min(self.retry_backoff * (2 ** max(attempts - 1, 0)), MAX_RETRY_BACKOFF) if attempts else timedelta(0)
        return datetime.now(UTC) + delay

    async def _store_retries(self, deliveries: list[Delivery], error: BaseException | None, attempts: int) -> None:
        """Stores records for a later try (attempts=0: waiting behind an earlier record of the
        same key, tried as soon as that one is through)."""

        async def store() -> None:
            async with self.sessions() as session, session.begin():
                for delivery in deliveries:
                    record = delivery.record
                    session.add(
                        StoredRetry(
                            consumer_group=self.group_id,
                            key=record.key or b"",
                            topic=record.topic,
                            partition=record.partition,
                            offset=record.offset,
                            value=record.value,
                            headers=delivery.trace_headers,
                            attempts=attempts,
                            next_attempt_at=self._next_attempt_at(attempts),
                            last_error=f"{type(error).__name__}: {error}"[:2000] if error else "waiting behind",
                        )
                    )

        await self._through_outages(store)
        self._retries_pending = True
        RETRIES_STORED.labels(self.group_id).inc(len(deliveries))

    async def _retry_stored_forever(self, interval: float = 1.0) -> None:
        while True:
            try:
                tried = await self.retry_stored()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("stored retries not tried; trying again later")
                tried = 0
            if not tried:
                await asyncio.sleep(interval)

    async def retry_stored(self) -> int:
        """Tries the due stored records at the head of each key's line (of partitions this member
        holds); returns how many were tried."""
        if not self._retries_pending:
            return 0
        async with self._applying:
            async with self.sessions() as session:
                heads = (
                    await session.execute(
                        select(StoredRetry.id, StoredRetry.topic, StoredRetry.partition, StoredRetry.next_attempt_at)
                        .where(StoredRetry.consumer_group == self.group_id)
                        .order_by(StoredRetry.key, StoredRetry.id)
                        .ext(distinct_on(StoredRetry.key))
                    )
                ).all()
            if not heads:
                self._retries_pending = False
                return 0
            now = datetime.now(UTC)
            due = [
                head.id
                for head in heads
                if head.next_attempt_at <= now and TopicPartition(head.topic, head.partition) in self._owned
            ]
            for retry_id in due:
                await self._retry_one(retry_id)
            return len(due)

    async def _retry_one(self, retry_id: int) -> None:
        async with self.sessions() as session:
            stored = await session.get(StoredRetry, retry_id)
            if stored is None:
                return
            record: ConsumerRecord[Any, Any] = ConsumerRecord(
                topic=stored.topic,
                partition=stored.partition,
                offset=stored.offset,
                timestamp=0,
                timestamp_type=0,
                key=stored.key,
                value=stored.value,
                checksum=None,
                serialized_key_size=len(stored.key),
                serialized_value_size=len(stored.value),
                headers=tuple((key, value.encode()) for key, value in stored.headers.items()),
            )
            attempts = stored.attempts
        envelope = parse_envelope(record.value)  # it parsed when it was stored
        delivery = Delivery(record, envelope, self.handlers[envelope.type])

        async def apply_and_forget() -> None:
            async with self._transaction() as (session, driver):
                taken = await session.execute(delete(StoredRetry).where(StoredRetry.id == retry_id))
                if getattr(taken, "rowcount", 0):
                    await self._apply_in(session, driver, [delivery])

        try:
            await self._through_outages(apply_and_forget)
        except _GiveUpBatch:
            return  # the partition moves: its next owner tries it
        except Exception as error:
            outside = _caused_by(error, (OutsideCallError,))
            if outside and attempts + 1 < self.outside_call_attempts:
                log.warning("stored record failed again", attempts=attempts + 1, error=str(error))
                async with self.sessions() as session, session.begin():
                    await session.execute(
                        update(StoredRetry)
                        .where(StoredRetry.id == retry_id)
                        .values(
                            attempts=attempts + 1,
                            next_attempt_at=self._next_attempt_at(attempts + 1),
                            last_error=f"{type(error).__name__}: {error}"[:2000],
                        )
                    )
                return
            log.error("stored record failed for good; dead-lettering", attempts=attempts + 1, error=str(error))
            await self._dead_letter(record, error)
            async with self.sessions() as session, session.begin():
                await session.execute(delete(StoredRetry).where(StoredRetry.id == retry_id))


def _write_staged(session: Session) -> list[OutboxRow]:
    """What the session's commit hooks would write, in the transaction of the driver (the session
    itself never commits): its pending changes, its timers and its events; returns the events'
    outbox rows."""
    session.flush()
    write_staged_timers(session)
    return write_staged_events(session)


class _HandOverInOrder(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """When partitions move between members of the group, the one letting go finishes and
    publishes first, and the one taking over publishes what was left behind before anything new
    (see `EventConsumer.let_go` and `take_over`)."""

    def __init__(self, consumer: EventConsumer) -> None:
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.consumer.let_go(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.consumer.take_over(set(assigned))


PRUNE_LOCK = 7_351_002  # advisory lock: one replica prunes at a time
PRUNE_BATCH = 5_000
_PRUNE_ONE_BATCH = text(
    "DELETE FROM processed_events WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM processed_events WHERE processed_at < now() - CAST(:age AS interval) LIMIT :limit))"
)


async def prune_processed_events(
    sessions: async_sessionmaker[AsyncSession], older_than: timedelta, batch_size: int = PRUNE_BATCH
) -> int:
    """Forgets event ids older than Kafka keeps records: those can no longer be redelivered, and
    the table would otherwise grow forever. Deletes in small batches, each its own short
    transaction (found through the index on `processed_at`), and one replica at a time: a replica
    that finds another pruning stops. Returns how many were removed."""
    removed = 0
    while True:
        async with sessions() as session, session.begin():
            if not await session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": PRUNE_LOCK}):
                return removed
            result = await session.execute(_PRUNE_ONE_BATCH, {"age": older_than, "limit": batch_size})
        count = int(getattr(result, "rowcount", 0) or 0)
        removed += count
        if count < batch_size:
            return removed
