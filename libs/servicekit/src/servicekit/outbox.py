"""The transactional outbox: events are written in the same transaction as the state change
(`add_to_outbox`) and published to Kafka after it commits, each row deleted only once Kafka has
acknowledged it. A crash between commit and publish loses nothing: the rows wait in the table.

Two paths publish them, one relay per process running both:
- the commit hands the rows it wrote to the relay (`OutboxRelay.serve`), which publishes them at
  once, in commit order, and then deletes them: no query to find them, no transaction held;
- a sweep takes rows left behind (by a crash, or a publish that failed) from the table, oldest
  first, locked, so the relays of several replicas take turns on them.

A row Kafka refuses for good (larger than the producer's `max_request_size`, say) is parked: kept
in the table, marked with its error, logged with its event id and counted in
`outbox_parked_total`, while the rows behind it flow on. A parked row is out of its
conversation's order by nature. `python -m servicekit.outbox parked|republish` lists parked rows
and hands them back to the relay after a fix. Other publish errors are retried, never parked.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiokafka.errors import (
    CorruptRecordException,
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from faststream.kafka import KafkaBroker
from sqlalchemy import Interval, bindparam, event, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction

from contracts import Envelope
from servicekit.db import OutboxRecord, column_arrays
from servicekit.kafka import physical_topic
from servicekit.logs import get_logger
from servicekit.metrics import OUTBOX_BACKLOG, OUTBOX_PARKED, OUTBOX_PARKED_ROWS, OUTBOX_RELAYED
from servicekit.settings import ServiceSettings
from servicekit.tracing import current_trace_headers

log = get_logger(__name__)
_PENDING = "outbox_pending"  # session.info: rows staged by add_to_outbox, written at commit
_WRITTEN = "outbox_written"  # session.info: rows the commit under way wrote, for the relay
_RELAY = "outbox_relay"  # session.info (from the sessionmaker): the relay that publishes commits
DELETION_INTERVAL = 0.05  # seconds between two deletions of published rows, at most

# One statement for all of a transaction's events, whatever their number (so the driver's
# prepared statement is reused), keeping their order in the identity column. In the driver's own
# parameter style, sent as it is (no compiling).
_INSERT_ROWS = (
    "INSERT INTO outbox (topic, key, value, headers)"
    " SELECT topic, key, value, CAST(headers AS jsonb) FROM unnest(CAST($1 AS varchar[]),"
    " CAST($2 AS bytea[]), CAST($3 AS bytea[]), CAST($4 AS text[]))"
    " WITH ORDINALITY AS staged(topic, key, value, headers, position) ORDER BY position RETURNING id"
)
_DELETE_PUBLISHED = text("DELETE FROM outbox WHERE id = ANY(CAST(:ids AS bigint[]))")
# The oldest rows still to publish, written before a moment, locked: a relay of another replica
# waits for them, then finds them gone and takes the next ones, so the relays take turns.
_TAKE_OLDEST = (
    select(OutboxRecord.id, OutboxRecord.topic, OutboxRecord.key, OutboxRecord.value, OutboxRecord.headers)
    .where(
        OutboxRecord.parked_at.is_(None),
        OutboxRecord.created_at < func.now() - bindparam("age", type_=Interval),
    )
    .order_by(OutboxRecord.id)
    .limit(bindparam("limit"))
    .with_for_update()
)
COUNT_CAP = 100_000  # rows counted at most by a gauge's query
_COUNT_BACKLOG = text(
    "SELECT (SELECT count(*) FROM (SELECT 1 FROM outbox WHERE parked_at IS NULL LIMIT :cap) AS waiting),"
    " (SELECT count(*) FROM (SELECT 1 FROM outbox WHERE parked_at IS NOT NULL LIMIT :cap) AS parked)"
)
# Errors about the record itself: publishing it again can never succeed.
REFUSED_FOR_GOOD: tuple[type[BaseException], ...] = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    InvalidTopicError,
    CorruptRecordException,
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


def add_record_to_outbox(
    session: AsyncSession, topic: str, key: bytes, value: bytes, headers: Mapping[str, str] | None = None
) -> None:
    """Stages a record that is not one of the contracts' events, such as a dead letter a service
    writes itself (`topic` by its contract name, e.g. `notifications.events.v1.dlq`): it is written
    with the transaction's events, in order, and leaves only if the transaction commits."""
    pending: list[tuple[str, bytes, bytes, dict[str, str]]] = session.info.setdefault(_PENDING, [])
    pending.append((topic, key, value, {**current_trace_headers(), **(headers or {})}))


def hand_to_relay(session: Session | AsyncSession, rows: Sequence[OutboxRow]) -> None:
    """Hands committed outbox rows to the relay that serves the session's commits."""
    relay = session.info.get(_RELAY)
    if rows and relay is not None:
        relay.publish_committed(rows)


def write_staged_events(session: Session) -> list[OutboxRow]:
    """Writes the events staged in the session's transaction, with one statement whatever their
    number, and returns their rows, to be handed to the relay once that transaction has committed.
    Called by the session's commit, and by a transaction that does not commit its session (see
    `servicekit.db.driver_transaction`). Synchronous: run in SQLAlchemy's greenlet."""
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return []
    rows = [(topic, key, value, json.dumps(headers)) for topic, key, value, headers in pending]
    columns = column_arrays(rows, ("topics", "keys", "values", "headers"))
    # Ids come from the identity in insertion order, so sorted they match the rows.
    ids = sorted(session.connection().exec_driver_sql(_INSERT_ROWS, tuple(columns.values())).scalars())
    return [OutboxRow(i, *row) for i, row in zip(ids, pending, strict=True)]


@event.listens_for(Session, "before_commit")
def _write_staged_events(session: Session) -> None:
    # Inside the commit, before the transaction ends.
    session.info[_WRITTEN] = write_staged_events(session)


@event.listens_for(Session, "after_commit")
def _hand_committed_events_to_the_relay(session: Session) -> None:
    hand_to_relay(session, session.info.pop(_WRITTEN, None) or [])


@event.listens_for(Session, "after_transaction_end")
def _drop_staged_events(session: Session, transaction: SessionTransaction) -> None:
    # Events of a transaction that did not commit (rolled back, or its session closed) must never
    # reach a later one on this session. A savepoint's end is not the transaction's.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
        session.info.pop(_WRITTEN, None)


class OutboxRelay:
    """Publishes the outbox, keeping the order of each conversation's events: its transactions
    are serialised by its row lock, so they commit in order, and the relay publishes what each
    commit hands over in that order. Should a publish fail, the relay stops taking rows from
    commits (they wait in the table) until its sweep has emptied the table again, oldest first,
    so that nothing newer overtakes what was left behind. `drain` does the same on demand: the
    consumer calls it when partitions move between replicas (see `servicekit.consumer`)."""

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
        self._drains_asked = 0  # drains asked for, and how many the loop has done (see `drain`)
        self._drains_done = 0
        self._drained = asyncio.Event()
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

    async def drain(self) -> None:
        """Returns once every row the table held when it was called (whoever wrote it: another
        replica that crashed, a failed publish) and every row handed over before has been
        published, or parked. Commits made meanwhile wait in the table and go out after them."""
        if self._task is None:
            # Not started, or stopped (the process is shutting down): nothing here publishes; the
            # rows wait in the table for the next relay that starts, which drains them first.
            log.warning("outbox drain asked of a relay that is not running")
            return
        self._drains_asked += 1
        wanted = self._drains_asked
        self._taking_commits = False
        self._wake.set()
        while self._drains_done < wanted:
            self._drained.clear()
            await self._drained.wait()

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
                    asked = self._drains_asked
                    await self._sweep(timedelta(0))
                    if asked == self._drains_asked:  # else a drain was asked meanwhile: another pass
                        self._taking_commits = True
                        await self._sweep(timedelta(0))
                        self._drains_done = asked
                        self._drained.set()
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
            if not self._committed and self._taking_commits:
                until = min(next_sweep, next_deletion) if self._published else next_sweep
                # `asyncio.timeout`, not `wait_for`: on Python 3.11 a cancellation arriving as
                # `wait_for` times out comes back as TimeoutError, and `stop` would wait forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(until - loop.time(), 0.005)):
                        await self._wake.wait()
            self._wake.clear()

    async def _sweep(self, age: timedelta) -> None:
        """Relays the rows written more than `age` ago, batch after batch."""
        while await self.relay_batch(age) == self._batch_size:
            pass

    async def _publish_committed(self) -> None:
        rows, self._committed = self._committed, []
        refused = await self._publish(rows)
        if refused:
            async with self._sessions() as session, session.begin():
                await self._park(session, refused)
        refused_ids = {row.id for row, _ in refused}
        OUTBOX_RELAYED.inc(len(rows) - len(refused))
        self._published.extend(row.id for row in rows if row.id not in refused_ids)

    async def _delete_published(self) -> None:
        """Deletes the rows published since the last call: one statement every DELETION_INTERVAL
        at most, without a transaction (autocommit: one round trip, no lock held). Should a
        deletion be lost, the sweep publishes its rows again; consumers skip them by event id."""
        ids, self._published = self._published, []
        async with self._sessions() as session:
            connection = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            await connection.execute(_DELETE_PUBLISHED, {"ids": ids})

    async def _publish(self, rows: Sequence[OutboxRow]) -> list[tuple[OutboxRow, BaseException]]:
        """Sent without waiting one by one, then awaited together: the idempotent producer keeps
        their order within each partition. Each row's trace headers (stored with it) go along.
        Returns the rows Kafka refused for good, to be parked; any other failure is raised, and
        the rows are tried again."""
        sent: list[tuple[OutboxRow, asyncio.Future[Any]]] = []
        refused: list[tuple[OutboxRow, BaseException]] = []
        for row in rows:
            try:
                future = await self._broker.publish(
                    row.value,
                    physical_topic(self._topic_prefix, row.topic),
                    key=row.key,
                    headers=row.headers,
                    no_confirm=True,
                )
            except REFUSED_FOR_GOOD as error:  # e.g. larger than the producer's max_request_size
                refused.append((row, error))
                continue
            sent.append((row, future))
        results = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
        for (row, _), result in zip(sent, results, strict=True):
            if isinstance(result, REFUSED_FOR_GOOD):
                refused.append((row, result))
            elif isinstance(result, BaseException):
                raise result
        return refused

    async def _park(self, session: AsyncSession, refused: Sequence[tuple[OutboxRow, BaseException]]) -> None:
        for row, error in refused:
            await session.execute(
                update(OutboxRecord)
                .where(OutboxRecord.id == row.id)
                .values(parked_at=func.now(), parked_error=f"{type(error).__name__}: {error}"[:2000])
            )
            OUTBOX_PARKED.labels(row.topic).inc()
            log.error(
                "outbox row refused by Kafka; parked",
                outbox_id=row.id,
                topic=row.topic,
                event_id=_event_id_of(row.value),
                size=len(row.value),
                error=str(error),
            )

    async def relay_batch(self, age: timedelta = timedelta(0)) -> int:
        """Publishes up to one batch of the rows written more than `age` ago, oldest first;
        returns how many were taken (published or parked)."""
        async with self._sessions() as session, session.begin():
            # Taken and locked; deleted (or parked) in the same transaction, which commits only
            # once Kafka has acknowledged every row (otherwise it rolls back and they wait).
            result = await session.execute(_TAKE_OLDEST, {"limit": self._batch_size, "age": age})
            rows = [OutboxRow(*row) for row in result.all()]
            if not rows:
                return 0
            refused = await self._publish(rows)
            refused_ids = {row.id for row, _ in refused}
            await session.execute(_DELETE_PUBLISHED, {"ids": [row.id for row in rows if row.id not in refused_ids]})
            await self._park(session, refused)
        OUTBOX_RELAYED.inc(len(rows) - len(refused))
        return len(rows)

    async def observe_backlog(self) -> None:
        """Sets `outbox_backlog` and `outbox_parked_rows` from the table (one query, each count
        capped so that a huge backlog does not make it slow). Called every sampling period by
        `Runtime`: a count per relay pass would cost a query per commit."""
        async with self._sessions() as session:
            connection = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            waiting, parked = (await connection.execute(_COUNT_BACKLOG, {"cap": COUNT_CAP})).one()
        OUTBOX_BACKLOG.set(waiting)
        OUTBOX_PARKED_ROWS.set(parked)


def _event_id_of(value: bytes) -> str:
    try:
        return str(json.loads(value).get("event_id", "?"))
    except (ValueError, AttributeError):
        return "?"


# ---------------------------------------------------------------------- parked rows, by hand

_PARKED = select(
    OutboxRecord.id,
    OutboxRecord.topic,
    func.length(OutboxRecord.value).label("size"),
    OutboxRecord.parked_at,
    OutboxRecord.parked_error,
    func.substr(OutboxRecord.value, 1, 400).label("start"),
).where(OutboxRecord.parked_at.is_not(None))


@dataclass(frozen=True)
class ParkedRow:
    id: int
    topic: str
    size: int
    event_id: str
    error: str


async def parked_rows(sessions: async_sessionmaker[AsyncSession]) -> list[ParkedRow]:
    """The rows Kafka refused, oldest first."""
    async with sessions() as session:
        rows = (await session.execute(_PARKED.order_by(OutboxRecord.id))).all()
    return [
        ParkedRow(row.id, row.topic, row.size, _event_id_in(bytes(row.start)), row.parked_error or "") for row in rows
    ]


def _event_id_in(start: bytes) -> str:
    # Only the row's first bytes are read (a parked row can be large); the envelope's id comes first.
    marker = b'"event_id":"'
    at = start.find(marker)
    return start[at + len(marker) : at + len(marker) + 36].decode(errors="replace") if at >= 0 else "?"


async def republish_parked(sessions: async_sessionmaker[AsyncSession], ids: Sequence[int] | None) -> list[int]:
    """Hands parked rows (these, or all with None) back to the relay, whose next sweep publishes
    them; returns their ids. For after a fix, e.g. a larger `max_request_size`."""
    statement = update(OutboxRecord).where(OutboxRecord.parked_at.is_not(None))
    if ids is not None:
        statement = statement.where(OutboxRecord.id.in_(ids))
    async with sessions() as session, session.begin():
        result = await session.execute(statement.values(parked_at=None, parked_error=None).returning(OutboxRecord.id))
        return sorted(result.scalars())


async def _main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m servicekit.outbox", description="The outbox rows Kafka refused, parked."
    )
    parser.add_argument("--service", required=True, help="whose database (its POSTGRES_* settings apply)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("parked", help="list the parked rows")
    republish = commands.add_parser("republish", help="hand parked rows back to the relay")
    republish.add_argument("ids", nargs="*", type=int, help="the rows' ids")
    republish.add_argument("--all", action="store_true", help="every parked row")
    args = parser.parse_args(argv)

    from servicekit.db import create_engine, session_factory

    engine = create_engine(ServiceSettings(service_name=args.service).database_url, pool_size=1)
    sessions = session_factory(engine)
    try:
        if args.command == "parked":
            rows = await parked_rows(sessions)
            for row in rows:
                print(f"{row.id}\t{row.topic}\t{row.size} bytes\tevent {row.event_id}\t{row.error}")
            print(f"{len(rows)} parked")
            return 0
        if not args.ids and not args.all:
            parser.error("name the rows' ids, or --all")
        handed = await republish_parked(sessions, None if args.all else args.ids)
        print(f"{len(handed)} handed back to the relay: {' '.join(map(str, handed))}")
        return 0
    finally:
        await engine.dispose()


if __name__ == "__main__":
    sys.exit(asyncio.run(_main(sys.argv[1:])))
