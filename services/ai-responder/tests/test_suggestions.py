"""The operators' copilot endpoint against the real local PostgreSQL and Redis: the knowledge
base comes from the store as the running service loads it, and nothing is posted anywhere."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ai_responder.admin import MIGRATIONS
from ai_responder.assistant import Assistant
from ai_responder.config import Settings
from ai_responder.kb import load_tenant
from ai_responder.store import (
    PostedMessage,
    StartedConversation,
    remember_conversations,
    remember_messages_and_recall,
    save_knowledge_base,
)
from ai_responder.suggestions import before_latest_run, router
from contracts.common import Sender
from contracts.readapi import SuggestionView
from devkit.testing import Infra
from servicekit.db import create_engine, driver_transaction, session_factory
from servicekit.migrations import upgrade_to_head

from .conftest import KB_ROOT, TENANT


@pytest.fixture
async def sessions(infra: Infra, database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url = infra.database_url(database)
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, url)
    engine = create_engine(url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def client(
    sessions: async_sessionmaker[AsyncSession], redis_client: Redis, key_prefix: str
) -> AsyncIterator[httpx.AsyncClient]:
    async with sessions() as session, session.begin():
        await save_knowledge_base(session, load_tenant(KB_ROOT / TENANT))
    assistant = Assistant(Settings(llm_api_key=None, kb_refresh_s=3600), sessions, redis_client)
    await assistant.reload()
    app = FastAPI()
    app.include_router(router)
    app.state.assistant = assistant
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ai-responder") as client:
        yield client


async def test_a_suggestion_is_grounded_in_the_tenants_knowledge_base_with_sources(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    conversation = uuid.uuid4()
    async with sessions() as session, driver_transaction(session):
        await remember_conversations(session, [StartedConversation(conversation, TENANT, "it")])
    response = await client.post(
        "/internal/suggestions",
        json={"tenant_id": TENANT, "conversation_id": str(conversation), "question": "Quanto costano i biglietti?"},
    )
    assert response.status_code == 200, response.text
    suggestion = SuggestionView.model_validate_json(response.content)
    assert suggestion.conversation_id == conversation
    assert suggestion.language == "it"
    assert suggestion.mode == "retrieval"
    assert "€" in suggestion.text
    assert suggestion.sources[0].article_id == "ticket-prices"
    assert 0 < suggestion.confidence <= 1
    assert suggestion.handoff_reason is None


async def test_english_question_and_unknown_tenant(client: httpx.AsyncClient) -> None:
    english = await client.post(
        "/internal/suggestions",
        json={"tenant_id": TENANT, "conversation_id": str(uuid.uuid4()), "question": "How much is a ticket?"},
    )
    assert english.status_code == 200, english.text
    assert english.json()["language"] == "en"
    assert english.json()["sources"][0]["article_id"] == "ticket-prices"

    unknown = await client.post(
        "/internal/suggestions",
        json={"tenant_id": "nobody-here", "conversation_id": str(uuid.uuid4()), "question": "Quanto costa?"},
    )
    assert unknown.status_code == 200, unknown.text
    assert unknown.json()["confidence"] == 0
    assert unknown.json()["sources"] == []


async def test_an_empty_question_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/internal/suggestions", json={"tenant_id": TENANT, "conversation_id": str(uuid.uuid4()), "question": ""}
    )
    assert response.status_code == 422


async def conversation_with(
    sessions: async_sessionmaker[AsyncSession], locale: str, *messages: tuple[Sender, str]
) -> uuid.UUID:
    """A conversation as this service keeps it from the conversation events: its locale, its messages."""
    conversation = uuid.uuid4()
    posted = [PostedMessage(conversation, seq, sender.value, text) for seq, (sender, text) in enumerate(messages, 1)]
    async with sessions() as session, driver_transaction(session):
        await remember_conversations(session, [StartedConversation(conversation, TENANT, locale)])
        await remember_messages_and_recall(session, posted, [], limit=6)
    return conversation


async def suggest(client: httpx.AsyncClient, conversation: uuid.UUID, question: str) -> SuggestionView:
    response = await client.post(
        "/internal/suggestions",
        json={"tenant_id": TENANT, "conversation_id": str(conversation), "question": question},
    )
    assert response.status_code == 200, response.text
    return SuggestionView.model_validate_json(response.content)


async def test_a_request_for_a_person_gets_a_greeting_that_answers_the_earlier_question(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # The operator is the person asked for: offering to call one is no reply for them.
    conversation = await conversation_with(
        sessions,
        "it",
        (Sender.CUSTOMER, "Quanto costano i biglietti?"),
        (Sender.AI, "Ecco i biglietti del parco Lucine di Natale: ..."),
        (Sender.CUSTOMER, "Voglio parlare con un operatore"),
        (Sender.AI, "Certo! Vuoi che ti metta in contatto con un operatore?"),
        (Sender.SYSTEM, "Un operatore si è unito alla conversazione."),
    )
    suggestion = await suggest(client, conversation, "Voglio parlare con un operatore")
    assert suggestion.text.startswith("Ciao, sono un operatore")
    assert "€" in suggestion.text
    assert "Vuoi che ti metta in contatto" not in suggestion.text
    assert suggestion.language == "it"
    assert [s.article_id for s in suggestion.sources] == ["ticket-prices"]
    assert suggestion.confidence >= 0.45
    assert suggestion.handoff_reason is None
    assert {a.type.value for a in suggestion.smart_actions} <= {"open_url"}  # no YES/NO buttons


async def test_a_request_for_a_person_with_nothing_grounded_gets_no_suggestion(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    conversation = await conversation_with(sessions, "en", (Sender.CUSTOMER, "I want to talk to a human"))
    suggestion = await suggest(client, conversation, "I want to talk to a human")
    # No text to insert; the reason is the request itself (the dashboard's "would have offered an operator").
    assert suggestion.text == ""
    assert suggestion.sources == []
    assert suggestion.smart_actions == []
    assert suggestion.confidence == 0
    assert suggestion.language == "en"
    assert suggestion.handoff_reason == "customer_request"


async def test_an_upset_or_sensitive_message_gets_the_answer_without_the_offer(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # The assistant would apologise and offer a person: the operator is that person, so the
    # suggestion is the knowledge base's answer alone, and its reason stays for the dashboard's note.
    upset_text = "Sono furioso! Quanto costano i biglietti? E a che ora chiudete?"
    upset = await suggest(client, await conversation_with(sessions, "it", (Sender.CUSTOMER, upset_text)), upset_text)
    assert [s.article_id for s in upset.sources] == ["ticket-prices", "dates-hours"]
    assert "9 €" in upset.text
    assert "17:30" in upset.text
    assert "Mi dispiace" not in upset.text
    assert "operatore?" not in upset.text
    assert upset.handoff_reason == "negative_sentiment"
    assert {a.type.value for a in upset.smart_actions} <= {"open_url"}  # no YES/NO buttons
    assert upset.confidence >= 0.45

    refund_text = "Voglio il rimborso del biglietto"
    refund = await suggest(client, await conversation_with(sessions, "it", (Sender.CUSTOMER, refund_text)), refund_text)
    assert [s.article_id for s in refund.sources] == ["refunds-changes"]
    assert "info@lucinedinatale.it" in refund.text
    assert "Vuoi parlare con un operatore?" not in refund.text
    assert refund.handoff_reason == "sensitive_topic"


async def test_what_the_knowledge_base_does_not_answer_gets_no_suggestion(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    for text in ("Posso portare il cane?", "Sono molto deluso, che vergogna."):
        suggestion = await suggest(client, await conversation_with(sessions, "it", (Sender.CUSTOMER, text)), text)
        # "I don't know, shall I call a person?" or an apology alone is no reply for the person there.
        assert suggestion.text == "", text
        assert suggestion.sources == [], text
        assert suggestion.smart_actions == [], text
        assert suggestion.handoff_reason in ("unknown_answer", "low_confidence", "negative_sentiment"), text


def test_the_history_of_a_suggestion_is_what_came_before_the_customers_latest_messages() -> None:
    history = [
        ("customer", "Quanto costa?"),
        ("ai", "9 €"),
        ("customer", "e per i bambini?"),
        ("system", "..."),
        ("customer", "operatore"),
        ("ai", "Vuoi un operatore?"),
    ]
    assert before_latest_run(history, "e per i bambini?\noperatore") == [
        (Sender.CUSTOMER, "Quanto costa?"),
        (Sender.AI, "9 €"),
    ]
    # The latest messages not stored yet (their events still on the way): everything stored came before.
    assert len(before_latest_run(history[:2], "operatore")) == 2
