"""The ai-responder's conversation copy against the real local PostgreSQL (migrated schema)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ai_responder.admin import MIGRATIONS
from ai_responder.store import PostedMessage, StartedConversation, remember_conversations, remember_messages_and_recall
from devkit.testing import Infra
from servicekit.db import create_engine, driver_transaction, session_factory
from servicekit.migrations import upgrade_to_head


@pytest.fixture
async def sessions(infra: Infra, database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url = infra.database_url(database)
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, url)
    engine = create_engine(url)
    yield session_factory(engine)
    await engine.dispose()


async def test_a_question_recalls_the_history_before_it_including_messages_of_its_own_batch(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    conversation = uuid.uuid4()
    earlier = [PostedMessage(conversation, seq, "customer" if seq % 2 else "ai", f"m{seq}") for seq in range(1, 5)]
    later = [PostedMessage(conversation, 5, "ai", "m5"), PostedMessage(conversation, 6, "customer", "m6")]
    async with sessions() as session, driver_transaction(session):
        await remember_conversations(session, [StartedConversation(conversation, "t", "en")])
        await remember_messages_and_recall(session, earlier, [], limit=3)
    async with sessions() as session, driver_transaction(session):
        # m5 and the question m6 arrive in one batch: m5 is part of m6's history.
        contexts = await remember_messages_and_recall(session, later, [(conversation, 6)], limit=3)
        again = await remember_messages_and_recall(session, later, [(conversation, 6)], limit=3)  # a redelivery

    for recalled in (contexts, again):
        context = recalled[(conversation, 6)]
        assert context.locale == "en"
        assert context.history == [("customer", "m3"), ("ai", "m4"), ("ai", "m5")]
