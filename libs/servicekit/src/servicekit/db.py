"""Async SQLAlchemy engine and sessions, and the two tables every service with a store has:
the transactional outbox and the processed-events inbox of the idempotent consumer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Identity, LargeBinary, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


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


class ProcessedEvent(Base):
    """An event id a consumer group has applied; the primary key makes a redelivery a no-op."""

    __tablename__ = "processed_events"

    consumer_group: Mapped[str] = mapped_column(String(120), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


def column_arrays(rows: Sequence[Sequence[Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    """Rows turned into one list per column, named: the parameters of a set-based statement over
    `unnest(...)`, whose text (so its prepared statement) stays the same whatever the row count."""
    columns: list[list[Any]] = [[] for _ in names]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return dict(zip(names, columns, strict=True))


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
