"""The conversation service's handlers against the real PostgreSQL (migrated schema), without Kafka.

Batches are applied in one transaction each, as the idempotent consumer applies them; what the
handlers emit is read back from the outbox, and due timers are fired into it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts import Envelope, Payload, new_envelope
from conversation import handlers
from conversation.api import router
from conversation.app import MIGRATIONS
from conversation.config import Settings
from conversation.store import Conversation, Message
from devkit.testing import ConsumerHarness, Infra
from servicekit.db import create_engine, session_factory
from servicekit.migrations import upgrade_to_head

TENANT = "lucine-di-natale"


class HandlerHarness(ConsumerHarness):
    """The conversation service's handlers on its real consumer, applied batch by batch."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        super().__init__(sessions)
        self.settings = settings
        handlers.register(self.consumer, settings)

    @staticmethod
    def command(payload: Payload, conversation_id: uuid.UUID, tenant_id: str = TENANT) -> Envelope[Any]:
        """An envelope of the tenant's widget or dashboard (or of routing) about a conversation."""
        return new_envelope(payload, tenant_id=tenant_id, conversation_id=conversation_id)

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
