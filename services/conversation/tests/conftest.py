"""The conversation service's handlers against the real PostgreSQL (migrated schema), without Kafka.

Batches are applied in one transaction each, as the idempotent consumer applies them; what the
handlers emit is read back from the outbox, and due timers are fired into it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import contracts
from contracts import Envelope, Payload, new_envelope
from conversation import handlers
from conversation.api import router
from conversation.app import MIGRATIONS
from conversation.config import Settings
from conversation.store import Conversation, Message
from devkit.testing import Infra
from servicekit.db import OutboxRecord, create_engine, session_factory
from servicekit.migrations import upgrade_to_head
from servicekit.timers import TimerFirer

TENANT = "lucine-di-natale"
Step = Callable[[list[Envelope[Any]], AsyncSession], Awaitable[None]]
Handler = Callable[[Envelope[Any], AsyncSession], Awaitable[None]]


class HandlerHarness:
    """Collects what `handlers.register` registers on a consumer, to apply batches directly."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings
        self.by_payload: dict[type[Payload], Handler] = {}
        self.before: list[Step] = []
        self.after: list[Step] = []
        handlers.register(self, settings)  # type: ignore[arg-type]

    @staticmethod
    def command(payload: Payload, conversation_id: uuid.UUID, tenant_id: str = TENANT) -> Envelope[Any]:
        """An envelope of the tenant's widget or dashboard (or of routing) about a conversation."""
        return new_envelope(payload, tenant_id=tenant_id, conversation_id=conversation_id)

    def on(self, payload_cls: type[Payload]) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.by_payload[payload_cls] = handler
            return handler

        return register

    def prepare(self, step: Step) -> Step:
        self.before.append(step)
        return step

    def finish(self, step: Step) -> Step:
        self.after.append(step)
        return step

    async def apply(self, *envelopes: Envelope[Any]) -> None:
        batch = list(envelopes)
        async with self.sessions() as session, session.begin():
            for step in self.before:
                await step(batch, session)
            for envelope in batch:
                await self.by_payload[type(envelope.payload)](envelope, session)
            for step in self.after:
                await step(batch, session)

    async def emitted(self, payload_cls: type[Payload]) -> list[Envelope[Any]]:
        async with self.sessions() as session:
            rows = await session.scalars(select(OutboxRecord.value).order_by(OutboxRecord.id))
        return [e for e in map(contracts.parse_envelope, rows) if isinstance(e.payload, payload_cls)]

    async def conversation(self, conversation_id: uuid.UUID) -> Conversation:
        async with self.sessions() as session:
            conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        return conversation

    async def messages(self, conversation_id: uuid.UUID) -> list[Message]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Message).where(Message.conversation_id == conversation_id).order_by(Message.seq)
            )
            return list(rows)

    async def fire_timer(self, name: str) -> list[Envelope[Any]]:
        """Makes the timer `name` due now, fires it into the outbox, and returns what it delivered."""
        async with self.sessions() as session, session.begin():
            moved = await session.execute(
                text("UPDATE timers SET due_at = now() - interval '1 second' WHERE name = :name"), {"name": name}
            )
        assert moved.rowcount == 1, f"no timer {name}"  # type: ignore[attr-defined]
        before = await self.emitted(Payload)
        await TimerFirer(self.sessions).fire_due()
        seen = {e.event_id for e in before}
        return [e for e in await self.emitted(Payload) if e.event_id not in seen]

    async def timer_names(self) -> set[str]:
        async with self.sessions() as session:
            return set(await session.scalars(text("SELECT name FROM timers")))

    def read_api(self) -> httpx.AsyncClient:
        """The service's read API on this database, called in process."""
        app = FastAPI()
        app.state.runtime = SimpleNamespace(sessions=self.sessions, settings=self.settings)
        app.include_router(router)
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://conversation")


@pytest.fixture
async def conversation_handlers(infra: Infra, database: str) -> AsyncIterator[HandlerHarness]:
    url = infra.database_url(database)
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, url)
    engine = create_engine(url)
    yield HandlerHarness(session_factory(engine), Settings(inactivity_minutes=10, abandon_after_minutes=60))
    await engine.dispose()
