"""A minimal real service built on servicekit, run as replicas by the ordering test
(test_replicas.py).

    python sequencer_service.py

For each `PostCustomerMessage` command it takes the conversation's next sequence number (a
counter row, incremented under its row lock) and, in the same consumer transaction, stages in the
outbox a `MessagePosted` carrying that `seq` and the command's text. Configured like every service
by env vars (KAFKA_BOOTSTRAP_SERVERS, KAFKA_TOPIC_PREFIX, KAFKA_GROUP_ID, POSTGRES_*); replicas
share the group and the database.

SEQUENCER_RELAY_DELAY_SECONDS (read by this script only) makes the outbox relay pause before each
publish, so that commits stay unpublished long enough for a SIGKILL to leave them in the table.
SIGTERM stops the service gracefully.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Sequence
from typing import Any

import uvloop
from sqlalchemy import BigInteger, Uuid, bindparam, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from contracts import Envelope
from contracts.common import ConversationStatus, Sender
from contracts.events import MessagePosted, PostCustomerMessage
from servicekit.db import Base as PlatformBase
from servicekit.db import session_factory
from servicekit.http import Runtime
from servicekit.outbox import OutboxRelay, OutboxRow
from servicekit.outgoing import Outgoing
from servicekit.settings import ServiceSettings

RELAY_DELAY_VARIABLE = "SEQUENCER_RELAY_DELAY_SECONDS"
# Any constant of this service's own: replicas starting together create the tables one at a time.
CREATE_TABLES_LOCK = 7_351_190


class Base(DeclarativeBase):
    """The sequencer's own tables (the platform's outbox and inbox live on PlatformBase)."""


class ConversationCounter(Base):
    __tablename__ = "conversation_counters"

    conversation_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)


# One statement takes the next number: the row is created at 1 or incremented under its lock, so
# two replicas handling the same conversation during a handover still number it without gaps.
NEXT_SEQ = (
    insert(ConversationCounter)
    .values(conversation_id=bindparam("conversation_id", type_=Uuid), last_seq=1)
    .on_conflict_do_update(
        index_elements=[ConversationCounter.conversation_id],
        set_={"last_seq": ConversationCounter.last_seq + 1},
    )
    .returning(ConversationCounter.last_seq)
)


class SlowRelay(OutboxRelay):
    """The real relay, pausing before each publish: the rows of the commits made meanwhile wait
    unpublished, as they would behind a slow broker."""

    def __init__(self, *args: Any, delay: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delay = delay

    async def _publish(self, rows: Sequence[OutboxRow]) -> Any:  # what the real relay's returns
        await asyncio.sleep(self.delay)
        return await super()._publish(rows)


async def create_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": CREATE_TABLES_LOCK})
        await connection.run_sync(PlatformBase.metadata.create_all)
        await connection.run_sync(Base.metadata.create_all)


def build_runtime(relay_delay: float) -> Runtime:
    runtime = Runtime.build(ServiceSettings(service_name="sequencer"))
    assert runtime.sessions is not None
    assert runtime.relay_engine is not None
    if relay_delay > 0:
        # Installed before the consumer is made, so that everything wired to the relay gets this one.
        runtime.relay = SlowRelay(
            session_factory(runtime.relay_engine),
            runtime.broker,
            topic_prefix=runtime.settings.kafka_topic_prefix,
            delay=relay_delay,
        )
        runtime.relay.serve(runtime.sessions)
    consumer = runtime.consumer()

    @consumer.on(PostCustomerMessage)
    async def post_message(envelope: Envelope[PostCustomerMessage], session: AsyncSession) -> None:
        seq = await session.scalar(NEXT_SEQ, {"conversation_id": envelope.conversation_id})
        assert seq is not None
        out = Outgoing(session, envelope)
        out.emit(
            MessagePosted(
                message_id=envelope.payload.message_id,
                seq=seq,
                sender=Sender.CUSTOMER,
                text=envelope.payload.text,
                client_message_id=envelope.payload.client_message_id,
                status=ConversationStatus.AI,
            )
        )
        out.flush()

    return runtime


async def main() -> None:
    runtime = build_runtime(float(os.environ.get(RELAY_DELAY_VARIABLE, "0")))
    assert runtime.engine is not None
    await create_tables(runtime.engine)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await runtime.start()
    try:
        await stopping.wait()
    finally:
        await runtime.stop()


if __name__ == "__main__":
    uvloop.run(main())  # the services' loop (uvicorn picks uvloop), so `bench.batch_cost` measures theirs
