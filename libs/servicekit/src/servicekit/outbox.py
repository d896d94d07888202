"""The transactional outbox: events are written in the same transaction as the state change
(`add_to_outbox`) and published to Kafka after it commits, each row deleted only once Kafka has
acknowledged it. A crash between commit and publish loses nothing: the rows wait in the table.

Two paths publish them, one relay per process running both:
- the commit hands the rows it wrote to the relay (`OutboxRelay.serve`), which publishes them at
  once, in commit order, and then deletes them: no query to find them, no transaction held;
- a sweep takes rows left behind (by a crash, or a publish that failed) from the table, oldest
  first, locked, so the relays of several replicas take turns on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from faststream.kafka import KafkaBroker
from sqlalchemy import Interval, bindparam, delete, event, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from contracts import Envelope
from servicekit.db import OutboxRecord, column_arrays
from servicekit.kafka import physical_topic
from servicekit.logs import get_logger
from servicekit.metrics import OUTBOX_BACKLOG, OUTBOX_RELAYED
from servicekit.tracing import current_trace_headers

log = get_logger(__name__)
_PENDING = "outbox_pending"  # session.info: rows staged by add_to_outbox, written at commit
_WRITTEN = "outbox_written"  # session.info: rows the commit under way wrote, for the relay
_RELAY = "outbox_relay"  # session.info (from the sessionmaker): the relay that publishes commits
DELETION_INTERVAL = 0.05  # seconds between two deletions of published rows, at most

# One statement for all of a transaction's events, whatever their number (so the driver's
# prepared statement is reused), keeping their order in the identity column.
_INSERT_ROWS = text(
    "INSERT INTO outbox (topic, key, value, headers)"
    " SELECT topic, key, value, CAST(headers AS jsonb) FROM unnest(CAST(:topics AS varchar[]),"
    " CAST(:keys AS bytea[]), CAST(:values AS bytea[]), CAST(:headers AS text[]))"
    " WITH ORDINALITY AS staged(topic, key, value, headers, position) ORDER BY position RETURNING id"
)
_DELETE_PUBLISHED = text("DELETE FROM outbox WHERE id = ANY(CAST(:ids AS bigint[]))")
# The oldest rows written before a moment, locked: a relay of another replica waits for them,
# then finds them gone and takes the next ones, so the relays of several replicas take turns.
_OLDEST = (
    select(OutboxRecord.id)
    .where(OutboxRecord.created_at < func.now() - bindparam("age", type_=Interval))
    .order_by(OutboxRecord.id)
    .limit(bindparam("limit"))
    .with_for_update()
)
_TAKE_OLDEST = (
    delete(OutboxRecord)
    .where(OutboxRecord.id.in_(_OLDEST.scalar_subquery()))
    .returning(OutboxRecord.id, OutboxRecord.topic, OutboxRecord.key, OutboxRecord.value, OutboxRecord.headers)
)


@dataclass(frozen=True)
class OutboxRow:
    id: int
    topic: str
    key: bytes
    value: bytes
    headers: dict[str, str]


def add_to_outbox(session: AsyncSession, envelopes: Iterable[Envelope[Any]]) -> None:
    """Stages events in the caller's transaction; they are written when it commits, in the same
    transaction, and so leave only if it commits."""
    headers = current_trace_headers()
    pending: list[tuple[str, bytes, bytes, dict[str, str]]] = session.info.setdefault(_PENDING, [])
    pending.extend((envelope.payload.topic, envelope.key, envelope.to_json(), headers) for envelope in envelopes)


@event.listens_for(Session, "before_commit")
def _write_staged_events(session: Session) -> None:
    # Runs inside the commit (in SQLAlchemy's greenlet, so synchronous calls are allowed): the
    # rows of any number of handlers go in with one statement, before the transaction ends.
    session.info.pop(_WRITTEN, None)
    pending = session.info.pop(_PENDING, None)
    if pending:
        rows = [(topic, key, value, json.dumps(headers)) for topic, key, value, headers in pending]
        # Ids come from the identity in insertion order, so sorted they match the rows.
        ids = sorted(
            session.execute(_INSERT_ROWS, column_arrays(rows, ("topics", "keys", "values", "headers"))).scalars()
        )
        session.info[_WRITTEN] = [OutboxRow(i, *row) for i, row in zip(ids, pending, strict=True)]


@event.listens_for(Session, "after_commit")
def _hand_committed_events_to_the_relay(session: Session) -> None:
    written = session.info.pop(_WRITTEN, None)
    relay = session.info.get(_RELAY)
    if written and relay is not None:
        relay.publish_committed(written)


@event.listens_for(Session, "after_rollback")
def _drop_staged_events(session: Session) -> None:
    # Events of a transaction that did not commit must never reach a later one on this session.
    session.info.pop(_PENDING, None)
    session.info.pop(_WRITTEN, None)


class OutboxRelay:
    """Publishes the outbox, keeping the order of each conversation's events: its transactions
    are serialised by its row lock, so they commit in order, and the relay publishes what each
    commit hands over in that order. Should a publish fail, the relay stops taking rows from
    commits (they wait in the table) until its sweep has emptied the table again, oldest first,
    so that nothing newer overtakes what was left behind."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        broker: KafkaBroker,
        *,
        topic_prefix: str = "",
        batch_size: int = 500,
        sweep_interval: float = 5.0,
        left_behind_after: timedelta = timedelta(seconds=30),
    ) -> None:
        self._sessions = sessions
        self._broker = broker
        self._topic_prefix = topic_prefix
        self._batch_size = batch_size
        self._sweep_interval = sweep_interval
        self._left_behind_after = left_behind_after
        self._committed: list[OutboxRow] = []
        self._published: list[int] = []  # ids of rows published from commits, not deleted yet
        self._taking_commits = False  # off until a sweep has found the table empty
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def serve(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Commits of these sessions hand the outbox rows they wrote to this relay."""
        sessions.configure(info={_RELAY: self})

    def publish_committed(self, rows: Sequence[OutboxRow]) -> None:
        """Called by a commit with the rows it wrote: published at once, in commit order."""
        if self._taking_commits:
            self._committed.extend(rows)
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        self._taking_commits = False
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._published:
            try:
                await self._delete_published()
            except Exception:
                log.warning("published outbox rows not deleted; the next start publishes them again")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = next_deletion = 0.0
        while True:
            try:
                if self._committed:
                    await self._publish_committed()
                if self._published and loop.time() >= next_deletion:
                    await self._delete_published()
                    next_deletion = loop.time() + DELETION_INTERVAL
                if not self._taking_commits:
                    # Everything waiting, whatever its age (rows left from before the start, or
                    # behind a failed publish), goes out before any newer commit. Commits are taken
                    # again before the last pass, so none falls between: a row both swept and
                    # handed over is published twice, and skipped by consumers the second time.
                    await self._sweep(timedelta(0))
                    self._taking_commits = True
                    await self._sweep(timedelta(0))
                elif loop.time() >= next_sweep:
                    await self._sweep(self._left_behind_after)
                    next_sweep = loop.time() + self._sweep_interval
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed; retrying")
                self._taking_commits = False
                self._committed.clear()  # they wait in the table for the sweep
                await asyncio.sleep(1)
            if not self._committed:
                until = min(next_sweep, next_deletion) if self._published else next_sweep
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(until - loop.time(), 0.005))
            self._wake.clear()

    async def _sweep(self, age: timedelta) -> None:
        """Relays the rows written more than `age` ago, batch after batch."""
        while await self.relay_batch(age) == self._batch_size:
            pass

    async def _publish_committed(self) -> None:
        rows, self._committed = self._committed, []
        await self._publish(rows)
        OUTBOX_RELAYED.inc(len(rows))
        self._published.extend(row.id for row in rows)

    async def _delete_published(self) -> None:
        """Deletes the rows published since the last call: one statement every DELETION_INTERVAL
        at most, without a transaction (autocommit: one round trip, no lock held). Should a
        deletion be lost, the sweep publishes its rows again; consumers skip them by event id."""
        ids, self._published = self._published, []
        async with self._sessions() as session:
            connection = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            await connection.execute(_DELETE_PUBLISHED, {"ids": ids})

    async def _publish(self, rows: Sequence[OutboxRow]) -> None:
        """Sent without waiting one by one, then awaited together: the idempotent producer keeps
        their order within each partition. Each row's trace headers (stored with it) go along."""
        pending = [
            await self._broker.publish(
                row.value,
                physical_topic(self._topic_prefix, row.topic),
                key=row.key,
                headers=row.headers,
                no_confirm=True,
            )
            for row in rows
        ]
        await asyncio.gather(*pending)

    async def relay_batch(self, age: timedelta = timedelta(0)) -> int:
        """Publishes up to one batch of the rows written more than `age` ago, oldest first;
        returns how many went out."""
        async with self._sessions() as session, session.begin():
            # Taken, locked and deleted in one statement; the deletion commits only once Kafka has
            # acknowledged every row (otherwise it rolls back and the rows wait for the next try).
            result = await session.execute(_TAKE_OLDEST, {"limit": self._batch_size, "age": age})
            rows = sorted((OutboxRow(*row) for row in result.all()), key=lambda row: row.id)
            if not rows:
                OUTBOX_BACKLOG.set(0)
                return 0
            await self._publish(rows)
        OUTBOX_RELAYED.inc(len(rows))
        # A full batch means more rows are waiting; the exact count is not worth a query each time.
        OUTBOX_BACKLOG.set(0 if len(rows) < self._batch_size else self._batch_size)
        return len(rows)
