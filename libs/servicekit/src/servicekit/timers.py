"""Durable timers: "deliver this command or event at that time", kept in the service's database
(the `timers` table of `servicekit.db`), so that a restart, a crash or a deployment loses none.

A handler schedules in its own transaction, like it stages events with `add_to_outbox`:

    schedule(session, f"offer-timeout:{conversation_id}", utc_now() + OFFER_TIMEOUT, envelope)
    cancel(session, f"offer-timeout:{conversation_id}")

Both are staged and written by the commit (one statement for all of a transaction's timers, one
for its cancellations), so they take effect only if the transaction commits; within a transaction
the last call for a name wins. Scheduling a name that exists replaces its due time and envelope.

A `TimerFirer` per process (several replicas may run one each on the same table) moves due
timers to the outbox: one statement deletes a batch of them, oldest due first, and inserts their
envelopes into the outbox, in one transaction, then hands the rows to the outbox relay.

What is guaranteed:
- a timer that commits fires once a firer runs, unless a `cancel` or `schedule` of its name
  commits before;
- it never fires before its due time (compared with the database's clock);
- it fires (moves to the outbox) once: its deletion and its outbox row commit together, and replicas skip the timers
  another one holds locked. Its envelope (and so its `event_id`) was fixed when it was scheduled;
- timers that fell due while no firer ran (a crash, a deployment) fire when one starts: late
  rather than never, oldest due first.

What is not:
- punctuality: a timer fires up to the firer's `poll_interval` after its due time (a firer learns
  of new timers only by looking), and reaches Kafka after the relay's delay: at once when handed
  over, up to the relay's `left_behind_after` plus a sweep when not (no relay given, or one
  recovering from a failed publish); later still while the database or Kafka is down or when many
  timers fall due together;
- exactly once on Kafka: the outbox delivers at least once (a crash between publishing and
  deleting the row publishes it again), so consumers skip the repeat by event id, as they do for
  every event: exactly once in effect for idempotent consumers;
- a cancellation that commits after the timer fired changes nothing: the fired command is already
  in the outbox, so its handler must check that it still applies (the offer still open, the
  conversation still inactive);
- order beyond the outbox's: a batch goes to the outbox oldest due first, but the batches of
  several replicas commit side by side, and a fired envelope takes its place among other events
  when its firing commits, whatever its due time or `occurred_at`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, LargeBinary, String, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction

from contracts import Envelope
from servicekit.db import column_arrays
from servicekit.logs import get_logger
from servicekit.metrics import TIMERS_FIRED, TIMERS_OVERDUE, TIMERS_PENDING
from servicekit.outbox import OutboxRelay, OutboxRow
from servicekit.tracing import current_trace_headers

log = get_logger(__name__)
_STAGED = "timers_staged"  # session.info: name -> row to upsert, or None to cancel; last call wins
NAME_LENGTH = 200  # of timers.name
LOCKED_RETRY = 0.1  # seconds before looking again when the due timers are held by another firer
ERROR_RETRY = 1.0  # seconds before trying again after a failure

# Rows in name order, so that concurrent transactions upserting the same names lock them in one
# order; the text does not depend on the row count (one prepared statement).
_UPSERT = text(
    "INSERT INTO timers (name, due_at, topic, key, value, headers)"
    " SELECT name, due_at, topic, key, value, CAST(headers AS jsonb) FROM unnest(CAST(:names AS varchar[]),"
    " CAST(:due_ats AS timestamptz[]), CAST(:topics AS varchar[]), CAST(:keys AS bytea[]),"
    " CAST(:values AS bytea[]), CAST(:headers AS text[])) AS staged(name, due_at, topic, key, value, headers)"
    " ORDER BY name"
    " ON CONFLICT (name) DO UPDATE SET due_at = excluded.due_at, topic = excluded.topic, key = excluded.key,"
    " value = excluded.value, headers = excluded.headers, created_at = now()"
)
_CANCEL = text("DELETE FROM timers WHERE name = ANY(CAST(:names AS varchar[]))")

# The due scan walks the due_at index from its oldest end and stops after a batch. Locked rows
# are skipped: another replica's firer is firing them, or a transaction is rescheduling or
# cancelling them (the firer sees its outcome next time). Deleted and moved to the outbox in the
# same statement, so both commit or neither does; the outbox ids follow the due order.
FIRE_DUE = text(
    "WITH due AS ("
    " DELETE FROM timers WHERE name IN ("
    "SELECT name FROM timers WHERE due_at <= now() ORDER BY due_at LIMIT :limit FOR UPDATE SKIP LOCKED)"
    " RETURNING name, due_at, topic, key, value, headers)"
    " INSERT INTO outbox (topic, key, value, headers)"
    " SELECT topic, key, value, headers FROM due ORDER BY due_at, name"
    " RETURNING id, topic, key, value, headers"
).columns(id=BigInteger, topic=String, key=LargeBinary, value=LargeBinary, headers=JSONB)
# Seconds until the earliest timer falls due (negative when overdue, NULL when none): read from
# the index's first entry, by the database's clock, the one the due scan uses.
_NEXT_DUE_IN = text("SELECT EXTRACT(EPOCH FROM min(due_at) - now()) FROM timers")
OVERDUE_AFTER = timedelta(seconds=10)  # a firer polls every second: a timer due this long is late
COUNT_CAP = 100_000  # timers counted at most by a gauge's query
_COUNT_PENDING = text(
    "SELECT (SELECT count(*) FROM (SELECT 1 FROM timers LIMIT :cap) AS pending),"
    " (SELECT count(*) FROM (SELECT 1 FROM timers WHERE due_at < now() - CAST(:late AS interval) LIMIT :cap)"
    " AS overdue)"
)


def schedule(session: AsyncSession, name: str, due_at: datetime, envelope: Envelope[Any]) -> None:
    """Delivers `envelope` (to its payload's topic, with its key) at `due_at`, if the caller's
    transaction commits. An existing timer of that name is replaced: new due time, new envelope.
    The active trace context goes along, as with `add_to_outbox`."""
    if due_at.tzinfo is None or due_at.utcoffset() is None:
        raise ValueError("due_at must be timezone-aware")
    if len(name) > NAME_LENGTH:
        raise ValueError(f"timer name longer than {NAME_LENGTH} characters: {name[:60]}...")
    row = (name, due_at, envelope.payload.topic, envelope.key, envelope.to_json(), current_trace_headers())
    session.info.setdefault(_STAGED, {})[name] = row


def cancel(session: AsyncSession, name: str) -> None:
    """Removes the timer `name`, if the caller's transaction commits; nothing when there is none.
    A timer that already fired is not called back (see the module's guarantees)."""
    session.info.setdefault(_STAGED, {})[name] = None


def write_staged_timers(session: Session) -> None:
    """Writes the timers scheduled and cancelled in the session's transaction: one statement for
    all the cancellations and one for all the timers, whatever the number of handlers. Called by
    the session's commit, as the outbox writes its rows, and by a transaction that does not commit
    its session (see `servicekit.db.driver_transaction`)."""
    staged: dict[str, tuple[Any, ...] | None] | None = session.info.pop(_STAGED, None)
    if not staged:
        return
    cancelled = [name for name, row in staged.items() if row is None]
    if cancelled:
        session.execute(_CANCEL, {"names": cancelled})
    rows = [(*row[:5], json.dumps(row[5])) for row in staged.values() if row is not None]
    if rows:
        names = ("names", "due_ats", "topics", "keys", "values", "headers")
        session.execute(_UPSERT, column_arrays(rows, names))


@event.listens_for(Session, "before_commit")
def _write_staged_timers(session: Session) -> None:
    write_staged_timers(session)


@event.listens_for(Session, "after_transaction_end")
def _drop_staged_timers(session: Session, transaction: SessionTransaction) -> None:
    # Timers of a transaction that did not commit (rolled back, or its session closed) must never
    # reach a later one on this session. A savepoint's end is not the transaction's.
    if transaction.parent is None:
        session.info.pop(_STAGED, None)


class TimerFirer:
    """Moves due timers to the outbox, batch after batch, and hands them to `relay` (the process's
    outbox relay) so they are published at once; without a relay, or when it is not taking
    commits, they wait in the outbox for its sweep. It looks for due timers when the earliest one
    falls due and at least every `poll_interval` seconds (timers scheduled by other processes are
    seen then), and keeps going through any failure, retrying."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        relay: OutboxRelay | None = None,
        batch_size: int = 500,
        poll_interval: float = 1.0,
    ) -> None:
        self._sessions = sessions
        self._relay = relay
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="timer-firer")

    async def stop(self, timeout: float = 5.0) -> None:
        """Lets the batch under way finish and hand its rows over (for at most `timeout`; one cut
        short rolls back and its timers fire at the next start), then stops."""
        if self._task is None:
            return
        self._stopping.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def fire_due(self) -> int:
        """Fires up to one batch of due timers, oldest due first; returns how many fired."""
        async with self._sessions() as session:
            async with session.begin():
                result = await session.execute(FIRE_DUE, {"limit": self._batch_size})
                rows = sorted((OutboxRow(*row) for row in result.all()), key=lambda row: row.id)
            # Handed over with no await after the commit, so the relay gets them in commit order
            # with the rows that other commits of this process hand it.
            if rows and self._relay is not None:
                self._relay.publish_committed(rows)
        TIMERS_FIRED.inc(len(rows))
        return len(rows)

    async def seconds_to_next_due(self) -> float:
        """Seconds until the earliest timer falls due: 0 or less when one is due, infinite when
        there is none."""
        async with self._sessions() as session:
            # One round trip: no transaction to begin and end around a single read.
            connection = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            seconds = await connection.scalar(_NEXT_DUE_IN)
        return math.inf if seconds is None else float(seconds)

    async def observe_pending(self) -> None:
        """Sets `timers_pending` and `timers_overdue` from the table (one query, capped counts).
        Called every sampling period by `Runtime`."""
        async with self._sessions() as session:
            connection = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            pending, overdue = (
                await connection.execute(_COUNT_PENDING, {"cap": COUNT_CAP, "late": OVERDUE_AFTER})
            ).one()
        TIMERS_PENDING.set(pending)
        TIMERS_OVERDUE.set(overdue)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                wait = await self.seconds_to_next_due()
                if wait <= 0:
                    if await self.fire_due():
                        continue  # more may be due: look again at once
                    wait = LOCKED_RETRY
            except Exception:
                log.exception("firing timers failed; retrying")
                wait = ERROR_RETRY
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(wait, self._poll_interval)):  # not wait_for: see OutboxRelay._run
                    await self._stopping.wait()
