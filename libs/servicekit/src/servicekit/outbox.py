"""The transactional outbox: events are written in the same transaction as the state change
(`add_to_outbox`) and a relay publishes them to Kafka afterwards, deleting each row only once
Kafka has acknowledged it. A crash between commit and publish loses nothing: the rows wait."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable
from typing import Any

from faststream.kafka import KafkaBroker
from sqlalchemy import bindparam, delete, event, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from contracts import Envelope
from servicekit.db import OutboxRecord, column_arrays
from servicekit.kafka import physical_topic
from servicekit.logs import get_logger
from servicekit.metrics import OUTBOX_BACKLOG, OUTBOX_RELAYED
from servicekit.tracing import current_trace_headers, trace_context_from

log = get_logger(__name__)
OUTBOX_STAGED = "outbox_staged"  # session.info flag: this transaction wrote outbox rows
_PENDING = "outbox_pending"  # session.info: rows staged by add_to_outbox, written at commit

# One statement for all of a transaction's events, whatever their number (so the driver's
# prepared statement is reused), keeping their order in the identity column.
_INSERT_ROWS = text(
    "INSERT INTO outbox (topic, key, value, headers)"
    " SELECT topic, key, value, CAST(headers AS jsonb) FROM unnest(CAST(:topics AS varchar[]),"
    " CAST(:keys AS bytea[]), CAST(:values AS bytea[]), CAST(:headers AS text[]))"
    " WITH ORDINALITY AS staged(topic, key, value, headers, position) ORDER BY position"
)
# The oldest rows, locked: a relay of another replica waits for them, then finds them gone and
# takes the next ones, so the relays of several replicas take turns, oldest rows first.
_OLDEST = select(OutboxRecord.id).order_by(OutboxRecord.id).limit(bindparam("limit")).with_for_update()
_TAKE_OLDEST = (
    delete(OutboxRecord)
    .where(OutboxRecord.id.in_(_OLDEST.scalar_subquery()))
    .returning(OutboxRecord.id, OutboxRecord.topic, OutboxRecord.key, OutboxRecord.value, OutboxRecord.headers)
)


def add_to_outbox(session: AsyncSession, envelopes: Iterable[Envelope[Any]]) -> None:
    """Stages events in the caller's transaction; they are written when it commits, in the same
    transaction, and so leave only if it commits."""
    headers = json.dumps(current_trace_headers())
    pending: list[tuple[str, bytes, bytes, str]] = session.info.setdefault(_PENDING, [])
    pending.extend((envelope.payload.topic, envelope.key, envelope.to_json(), headers) for envelope in envelopes)


@event.listens_for(Session, "before_commit")
def _write_staged_events(session: Session) -> None:
    # Runs inside the commit (in SQLAlchemy's greenlet, so synchronous calls are allowed): the
    # rows of any number of handlers go in with one statement, before the transaction ends.
    pending = session.info.pop(_PENDING, None)
    if pending:
        session.execute(_INSERT_ROWS, column_arrays(pending, ("topics", "keys", "values", "headers")))
        session.info[OUTBOX_STAGED] = True


@event.listens_for(Session, "after_rollback")
def _drop_staged_events(session: Session) -> None:
    # Events of a transaction that did not commit must never reach a later one on this session.
    session.info.pop(_PENDING, None)


class OutboxRelay:
    """Publishes outbox rows in id order, which keeps the order of each conversation's events:
    two transactions on one conversation are serialised by its row lock, so the later one's rows
    get the higher ids. Relays of several replicas take turns on the oldest rows (row locks)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        broker: KafkaBroker,
        *,
        topic_prefix: str = "",
        batch_size: int = 500,
        poll_interval: float = 0.5,
    ) -> None:
        self._sessions = sessions
        self._broker = broker
        self._topic_prefix = topic_prefix
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        """Called after a commit that added rows, so they go out now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                while await self.relay_batch() == self._batch_size:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed; retrying")
                await asyncio.sleep(1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            self._wake.clear()

    async def relay_batch(self) -> int:
        """Publishes up to one batch; returns how many rows went out."""
        async with self._sessions() as session, session.begin():
            # Taken, locked and deleted in one statement; the deletion commits only once Kafka has
            # acknowledged every row (otherwise it rolls back and the rows wait for the next try).
            rows = sorted((await session.execute(_TAKE_OLDEST, {"limit": self._batch_size})).all(), key=lambda r: r.id)
            if not rows:
                OUTBOX_BACKLOG.set(0)
                return 0
            # Sent without waiting one by one, then awaited together: the idempotent producer
            # keeps their order within each partition.
            pending = []
            for row in rows:
                with trace_context_from(row.headers):
                    pending.append(
                        await self._broker.publish(
                            row.value,
                            physical_topic(self._topic_prefix, row.topic),
                            key=row.key,
                            headers=row.headers,
                            no_confirm=True,
                        )
                    )
            await asyncio.gather(*pending)
        OUTBOX_RELAYED.inc(len(rows))
        # A full batch means more rows are waiting; the exact count is not worth a query each time.
        OUTBOX_BACKLOG.set(0 if len(rows) < self._batch_size else self._batch_size)
        return len(rows)
