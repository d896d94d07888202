"""Alembic, shared: every service's `migrations/env.py` calls `run_env`, and services migrate
at start-up with `upgrade_to_head` (serialised by an advisory lock across replicas)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa
from alembic import command, context, op
from alembic.config import Config
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from servicekit.db import Base as PlatformBase

MIGRATION_LOCK = 7_351_001


def alembic_config(migrations_dir: Path, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_to_head(migrations_dir: Path, database_url: str) -> None:
    """Blocking: call it from a thread (`asyncio.to_thread`) in an async service."""
    command.upgrade(alembic_config(migrations_dir, database_url), "head")


def run_env(service_metadata: MetaData) -> None:
    """The body of every service's `migrations/env.py`: the service's tables plus the platform's."""
    target_metadata = [PlatformBase.metadata, service_metadata]
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set by alembic_config"
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    def migrate(connection: Connection) -> None:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.begin() as connection:
            await connection.run_sync(migrate)
        await engine.dispose()

    asyncio.run(run())


def create_outbox_and_inbox_tables() -> None:
    """Used by each service's first migration: the tables of `servicekit.db`."""
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.LargeBinary, nullable=False),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.dialects.postgresql.JSONB, nullable=False, server_default="{}"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "processed_events",
        sa.Column("consumer_group", sa.String(120), primary_key=True),
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )


def create_platform_tables_v2() -> None:
    """Used by each service's migration after `create_outbox_and_inbox_tables` (a new service
    calls both in its first one): parking of refused outbox rows, the prune index of the
    processed events, stored retries and durable timers (the later tables of `servicekit.db`)."""
    op.add_column("outbox", sa.Column("parked_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("outbox", sa.Column("parked_error", sa.Text, nullable=True))
    op.create_index("outbox_unparked_id", "outbox", ["id"], postgresql_where=sa.text("parked_at IS NULL"))
    op.create_index("ix_processed_events_processed_at", "processed_events", ["processed_at"])
    op.create_table(
        "consumer_retries",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("consumer_group", sa.String(120), nullable=False),
        sa.Column("key", sa.LargeBinary, nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.dialects.postgresql.JSONB, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text, nullable=False),
    )
    op.create_index("consumer_retries_group_key", "consumer_retries", ["consumer_group", "key"])
    op.create_index("consumer_retries_group_due", "consumer_retries", ["consumer_group", "next_attempt_at"])
    op.create_table(
        "timers",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.LargeBinary, nullable=False),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.dialects.postgresql.JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_timers_due_at", "timers", ["due_at"])


def drop_platform_tables_v2() -> None:
    """The downgrade of `create_platform_tables_v2`."""
    op.drop_table("timers")
    op.drop_table("consumer_retries")
    op.drop_index("ix_processed_events_processed_at", "processed_events")
    op.drop_index("outbox_unparked_id", "outbox")
    op.drop_column("outbox", "parked_error")
    op.drop_column("outbox", "parked_at")
