"""Async SQLAlchemy engine and sessions, and the tables every service with a store has: the
transactional outbox, the processed-events inbox of the idempotent consumer, the stored retries
of records whose outside call failed, and the durable timers."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import BigInteger, DateTime, Identity, Index, Integer, LargeBinary, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import TextClause


class Base(DeclarativeBase):
    """The platform's own tables, present in every service database. A service declares its
    tables on a base of its own, so that each service's metadata holds only its schema."""


class OutboxRecord(Base):
    """An event committed with the state change that caused it, waiting to be relayed to Kafka."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    topic: Mapped[str] = mapped_column(String(200))
    key: Mapped[bytes] = mapped_column(LargeBinary)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Set when Kafka refused the row for good (e.g. too large): the relay passes it by, and
    # `python -m servicekit.outbox` lists and re-publishes it after a fix.
    parked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    parked_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        # The relay's sweep reads only the rows still to publish, oldest first.
        Index("outbox_unparked_id", "id", postgresql_where=parked_at.is_(None)),
    )


class ProcessedEvent(Base):
    """An event id a consumer group has applied; the primary key makes a redelivery a no-op."""

    __tablename__ = "processed_events"

    consumer_group: Mapped[str] = mapped_column(String(120), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)


class StoredRetry(Base):
    """A record whose handler's outside call (an LLM, SMTP, a webhook) failed, kept for another
    try at `next_attempt_at`. While one waits, later records with the same key wait behind it, so
    a conversation's records still apply in order; other keys flow on."""

    __tablename__ = "consumer_retries"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    consumer_group: Mapped[str] = mapped_column(String(120))
    key: Mapped[bytes] = mapped_column(LargeBinary)
    topic: Mapped[str] = mapped_column(String(200))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict)
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        Index("consumer_retries_group_key", "consumer_group", "key"),
        Index("consumer_retries_group_due", "consumer_group", "next_attempt_at"),
    )


class Timer(Base):
    """A command or event to deliver at `due_at` (see `servicekit.timers`): the serialised
    envelope waits here and, once due, moves to the outbox in one transaction."""

    __tablename__ = "timers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    topic: Mapped[str] = mapped_column(String(200))
    key: Mapped[bytes] = mapped_column(LargeBinary)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


def column_arrays(rows: Sequence[Sequence[Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    """Rows turned into one list per column, named: the parameters of a set-based statement over
    `unnest(...)`, whose text (so its prepared statement) stays the same whatever the row count."""
    columns: list[list[Any]] = [[] for _ in names]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return dict(zip(names, columns, strict=True))


async def store_if_newer(
    session: AsyncSession,
    table: type[DeclarativeBase],
    values: Mapping[str, Any],
    *,
    key: str,
    revision: str = "revision",
    also_set: Mapping[str, Any] | None = None,
) -> bool:
    """Inserts a snapshot row, or replaces the stored one with the same `key` only when its
    `revision` is newer: an older or equal one (a redelivery, a snapshot arriving late) changes
    nothing. One statement, so two transactions storing snapshots of one key never lose the newer.
    `also_set`: columns set only when a stored row is replaced (e.g. a `func.now()` timestamp).
    Returns whether the snapshot was stored."""
    upsert = insert(table).values(**values)
    newer_only = upsert.on_conflict_do_update(
        index_elements=[getattr(table, key)],
        set_={**{name: upsert.excluded[name] for name in values if name != key}, **(also_set or {})},
        where=getattr(table, revision) < upsert.excluded[revision],
    ).returning(getattr(table, key))
    return (await session.execute(newer_only)).first() is not None


def create_engine(database_url: str, pool_size: int = 10, *, durable_commits: bool = True) -> AsyncEngine:
    """`durable_commits=False` lets a commit return before its WAL reaches the disk: only for
    work whose loss in a database crash is harmless (see the outbox relay)."""
    # No pre-ping (a round trip per checkout): a dropped connection fails its transaction, which
    # the consumer retries as transient, and connections are recycled before servers drop them.
    # Each statement planned for its parameters: a cached generic plan is made once, while a table
    # is still small, and kept until the next ANALYZE; the outbox's "delete these ids" then stayed
    # a sequential scan while the table filled with dead rows, costing more with every commit.
    server_settings = {"plan_cache_mode": "force_custom_plan"}
    if not durable_commits:
        server_settings["synchronous_commit"] = "off"
    connect_args = {"server_settings": server_settings}
    return create_async_engine(
        database_url, pool_size=pool_size, max_overflow=10, pool_recycle=1800, connect_args=connect_args
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # Autoflush stays on: handlers of one batch read what earlier handlers of the same batch
    # wrote (a conversation started and its first message arrive together).
    return async_sessionmaker(engine, expire_on_commit=False)


_DRIVER = "servicekit.driver"  # session.info: the driver connection of a `driver_transaction`


@contextlib.asynccontextmanager
async def driver_transaction(session: AsyncSession) -> AsyncIterator[asyncpg.Connection]:
    """A transaction the driver (asyncpg) runs itself on the session's connection: BEGIN on
    entry, COMMIT on a clean exit, ROLLBACK on an error. The session's statements and flushes run
    inside it (SQLAlchemy is put in autocommit mode, so it sends no BEGIN or COMMIT of its own),
    and so do statements sent straight to the yielded driver connection.

    For a transaction of a few statements run many times a second (the consumer's batch): a
    statement sent to the driver costs about a third of its CPU through the session, and the
    session's own transaction bookkeeping is skipped. The session must not be committed (its
    commit hooks would hand the outbox's rows to the relay before the driver's COMMIT): the caller
    writes what they would have (`servicekit.outbox.write_staged_events`, and the timers'), and
    hands the rows over after the exit (see `EventConsumer`)."""
    connection = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    driver: asyncpg.Connection = (await connection.get_raw_connection()).driver_connection
    session.info[_DRIVER] = driver
    try:
        async with driver.transaction():
            yield driver
    except BaseException:
        if driver.is_closed():  # lost: the pool must not hand it out again
            await connection.invalidate()
        raise
    finally:
        del session.info[_DRIVER]


@functools.lru_cache(maxsize=256)  # the services' statements are module constants: a few dozen
def _driver_sql(statement: TextClause) -> tuple[str, tuple[str, ...]]:
    """A text statement as the driver takes it: `:name` parameters numbered `$n`, in that order."""
    compiled = statement.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
    return compiled.string, tuple(compiled.positiontup or ())


async def fetch(
    session: AsyncSession, statement: TextClause, parameters: Mapping[str, Any] | None = None
) -> list[asyncpg.Record]:
    """Runs a `text()` statement on the driver connection of the session's `driver_transaction`
    (a consumer batch's) and returns its rows as the driver's records (JSON already decoded). For
    the few fixed statements a consumer batch runs many times a second: through the session each
    cost about three times the CPU. As with `session.execute`, the session's pending changes are
    flushed first, so the statement sees them. The parameters go to the driver as given (no
    SQLAlchemy type processing): the statement casts them (`CAST(:ids AS uuid[])`).

    Only inside a `driver_transaction`: elsewhere the session begins its transaction on the server
    at its own first statement, so a statement sent to the driver before it would commit alone."""
    driver: asyncpg.Connection | None = session.info.get(_DRIVER)
    if driver is None:
        raise RuntimeError("servicekit.db.fetch runs inside a driver_transaction (a consumer batch's)")
    if session.new or session.dirty or session.deleted:
        await session.flush()
    sql, names = _driver_sql(statement)
    given = parameters or {}
    records: list[asyncpg.Record] = await driver.fetch(sql, *(given[name] for name in names))
    return records
