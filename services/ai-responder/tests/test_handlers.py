"""The consumer's handlers on the real EventConsumer and PostgreSQL (devkit's ConsumerHarness): each
customer question gets one reply, and those the knowledge base could not answer are kept as gaps."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ai_responder import handlers
from ai_responder.admin import MIGRATIONS
from ai_responder.answering import Question
from ai_responder.assistant import Assistant
from ai_responder.config import Settings
from ai_responder.kb import load_tenant
from ai_responder.store import UnansweredQuestion, save_knowledge_base
from contracts.common import ConversationStatus, HandoffReason, Sender
from contracts.envelope import new_envelope
from contracts.events import AiReplyGenerated, ConversationStarted, MessagePosted
from devkit.testing import ConsumerHarness, Infra, create_database, drop_database
from servicekit.db import create_engine, session_factory
from servicekit.migrations import upgrade_to_head

from .conftest import KB_ROOT

TENANT = "museo-del-vetro"


@pytest.fixture
async def sessions(infra: Infra, database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url = infra.database_url(database)
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, url)
    engine = create_engine(url)
    yield session_factory(engine)
    await engine.dispose()


async def test_unanswered_questions_are_kept_as_gaps_once(
    sessions: async_sessionmaker[AsyncSession], redis_client: Redis, key_prefix: str
) -> None:
    async with sessions() as session, session.begin():
        await save_knowledge_base(session, load_tenant(KB_ROOT / TENANT))
    assistant = Assistant(Settings(llm_api_key=None, kb_refresh_s=3600, answer_cache_ttl_s=1), sessions, redis_client)
    await assistant.reload()
    harness = ConsumerHarness(sessions)
    handlers.register(harness.consumer, assistant, history_messages=6)

    conversation = uuid.uuid4()
    started = new_envelope(ConversationStarted(locale="it"), tenant_id=TENANT, conversation_id=conversation)

    def asked(seq: int, text: str) -> MessagePosted:
        return MessagePosted(
            message_id=uuid.uuid4(), seq=seq, sender=Sender.CUSTOMER, text=text, status=ConversationStatus.AI
        )

    questions = [
        asked(1, "Dove si trova il museo?"),  # answered
        asked(2, "Qual è la password del wi-fi?"),  # a gap
        asked(3, "Vorrei parlare con una persona"),  # a request for a person, not a gap
        asked(4, "Sono arrabbiato, vorrei parlare con una persona"),  # the same, from an upset customer
        asked(5, "Mio figlio si è perso nel museo!"),  # someone may be in danger: no article meant, no gap
    ]
    envelopes = [new_envelope(q, tenant_id=TENANT, conversation_id=conversation) for q in questions]
    await harness.apply(started, *envelopes)
    await harness.apply(envelopes[1])  # redelivered: no second reply, no second gap

    replies = await harness.emitted(AiReplyGenerated)
    assert len(replies) == 5
    assert replies[0].payload.sources[0].article_id == "faq-it-dove-si-trova-il-museo"
    assert [r.payload.handoff_reason for r in replies[2:4]] == [HandoffReason.CUSTOMER_REQUEST] * 2
    assert [r.payload.upset for r in replies] == [False, False, False, True, False]
    assert [r.payload.urgent for r in replies] == [False, False, False, False, True]
    async with sessions() as session:
        gaps = (await session.scalars(select(UnansweredQuestion))).all()
    assert [(g.text, g.reason, g.tenant_id, g.conversation_id) for g in gaps] == [
        ("Qual è la password del wi-fi?", "low_confidence", TENANT, conversation)
    ]
    assert gaps[0].question_id == questions[1].message_id


async def test_two_systems_sharing_a_redis_answer_each_from_its_own_articles(
    infra: Infra, redis_client: Redis, key_prefix: str
) -> None:
    # Both knowledge bases are at version 1 with other words: the answer cache must tell them apart.
    shipped = load_tenant(KB_ROOT / TENANT)
    article = next(a for a in shipped.articles if a.id == "faq-it-dove-si-trova-il-museo")
    moved = article.model_copy(update={"body": {**article.body, "it": "Il museo ha traslocato in Piazza Nuova 1."}})
    edited = shipped.model_copy(update={"articles": [moved if a.id == article.id else a for a in shipped.articles]})
    answers = []
    for kb in (shipped, edited):
        database = await create_database(infra, "cache")
        url = infra.database_url(database)
        await asyncio.to_thread(upgrade_to_head, MIGRATIONS, url)
        engine = create_engine(url)
        try:
            sessions = session_factory(engine)
            async with sessions() as session, session.begin():
                assert await save_knowledge_base(session, kb) == 1
            assistant = Assistant(Settings(llm_api_key=None, answer_cache_ttl_s=60), sessions, redis_client)
            await assistant.reload()
            [answer] = await assistant.answer_all([Question(tenant_id=TENANT, text="Dove si trova il museo?")])
            answers.append(answer.text)
        finally:
            await engine.dispose()
            await drop_database(infra, database)
    assert "Piazza Nuova" not in answers[0]
    assert "Piazza Nuova" in answers[1]
