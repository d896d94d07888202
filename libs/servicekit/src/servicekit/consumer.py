"""Consuming events: the idempotent consumer and the dead-letter queue, written once.

A service declares handlers per payload type:

    consumer = EventConsumer(broker, sessions, relay, group_id="conversation")

    @consumer.on(PostCustomerMessage)
    async def on_message(envelope: Envelope[PostCustomerMessage], session: AsyncSession) -> None: ...

Each record is handled in one database transaction that also records its `event_id`, so a
redelivered event is skipped instead of applied twice, and whatever the handler staged in the
outbox commits with it. Offsets are committed only after that transaction. A record that cannot
be parsed, or whose handler keeps failing, goes to `<topic>.dlq` with the error and the partition
moves on; failures of the infrastructure itself (database, broker) are retried, never dead-lettered,
because the record is not at fault.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import redis.exceptions
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts import Envelope, Payload, parse_envelope
from contracts.topics import ALL_TOPICS
from servicekit.db import ProcessedEvent
from servicekit.kafka import physical_topic
from servicekit.logs import get_logger, log_context
from servicekit.metrics import DLQ_MESSAGES, EVENTS_DEDUPLICATED, HANDLER_SECONDS
from servicekit.outbox import OUTBOX_STAGED, OutboxRelay

log = get_logger(__name__)

P = TypeVar("P", bound=Payload)
Handler = Callable[[Envelope[Any], AsyncSession], Awaitable[None]]
HANDLER_ATTEMPTS = 3
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    OperationalError,
    InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    redis.exceptions.ConnectionError,
    KafkaError,
)


def is_transient(error: BaseException) -> bool:
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, TRANSIENT_ERRORS)


async def send_to_dlq(broker: KafkaBroker, message: KafkaMessage, group_id: str, error: BaseException) -> None:
    record = message.raw_message
    assert not isinstance(record, tuple), "batch records are not dead-lettered as one"
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


class EventConsumer:
    def __init__(
        self,
        broker: KafkaBroker,
        sessions: async_sessionmaker[AsyncSession],
        relay: OutboxRelay | None,
        *,
        group_id: str,
        topic_prefix: str = "",
    ) -> None:
        self.broker = broker
        self.sessions = sessions
        self.relay = relay
        self.group_id = group_id
        self.topic_prefix = topic_prefix
        self.handlers: dict[str, Handler] = {}
        self.topics: set[str] = set()

    def on(self, payload_cls: type[P]) -> Callable[[Callable[[Envelope[P], AsyncSession], Awaitable[None]]], Handler]:
        """Registers the handler of one payload type; `subscribe` then listens to their topics."""

        def register(handler: Callable[[Envelope[P], AsyncSession], Awaitable[None]]) -> Handler:
            self.handlers[payload_cls.event_type] = handler
            self.topics.add(payload_cls.topic)
            return handler

        return register

    def kafka_group(self, topic: str) -> str:
        return f"{self.group_id}.{topic}"

    def subscribe(self, workers: int = 1) -> None:
        """One subscriber per handled topic. With several workers, partitions are processed
        concurrently (each worker is a group member owning its partitions and committing only
        its own offsets) while each partition stays in order. Each topic gets a Kafka group of
        its own, so that members joining for one topic do not rebalance the others."""
        for topic in sorted(self.topics):
            description = next((t.description for t in ALL_TOPICS if t.name == topic), "")

            @self.broker.subscriber(
                physical_topic(self.topic_prefix, topic),
                group_id=self.kafka_group(topic),
                ack_policy=AckPolicy.MANUAL,
                auto_offset_reset="earliest",
                max_workers=workers,
                title=f"{self.group_id}: {topic}",
                description=description,
            )
            async def on_record(message: KafkaMessage) -> None:
                await self.process(message)

    async def process(self, message: KafkaMessage) -> None:
        started = time.perf_counter()
        topic = message.raw_message.topic  # type: ignore[union-attr]
        try:
            envelope = parse_envelope(message.body)
        except ValueError as error:
            await send_to_dlq(self.broker, message, self.group_id, error)
            await message.ack()
            return
        handler = self.handlers.get(envelope.type)
        if handler is None:  # another service's event on a shared topic
            await message.ack()
            return
        outcome = await self._apply_with_retries(envelope, handler, message)
        await message.ack()
        HANDLER_SECONDS.labels(topic, self.group_id, outcome).observe(time.perf_counter() - started)

    async def _apply_with_retries(self, envelope: Envelope[Any], handler: Handler, message: KafkaMessage) -> str:
        failures = 0
        backoff = 0.2
        with log_context(
            correlation_id=envelope.correlation_id,
            conversation_id=envelope.conversation_id,
            tenant_id=envelope.tenant_id,
            event_type=envelope.type,
        ):
            while True:
                try:
                    return await self.apply(envelope, handler)
                except Exception as error:
                    if is_transient(error):
                        log.warning("infrastructure error; retrying", error=str(error))
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, 5.0)
                        continue
                    failures += 1
                    if failures >= HANDLER_ATTEMPTS:
                        log.exception("handler failed; dead-lettering", attempts=failures)
                        await send_to_dlq(self.broker, message, self.group_id, error)
                        return "dlq"
                    log.warning("handler failed; retrying", attempt=failures, error=str(error))
                    await asyncio.sleep(0.05 * failures)

    async def apply(self, envelope: Envelope[Any], handler: Handler) -> str:
        """One transaction: claim the event id, apply the effect, stage outgoing events."""
        async with self.sessions() as session, session.begin():
            claimed = await session.scalar(
                pg_insert(ProcessedEvent)
                .values(consumer_group=self.group_id, event_id=str(envelope.event_id))
                .on_conflict_do_nothing()
                .returning(ProcessedEvent.event_id)
            )
            if claimed is None:
                EVENTS_DEDUPLICATED.labels(self.group_id).inc()
                return "duplicate"
            await handler(envelope, session)
            staged = session.info.pop(OUTBOX_STAGED, False)
        if staged and self.relay is not None:
            self.relay.notify()
        return "applied"
