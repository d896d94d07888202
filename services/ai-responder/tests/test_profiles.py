"""Tenants created through the platform, on the service's real app, consumer (devkit's
ConsumerHarness), PostgreSQL and Redis: a `tenant.profile_changed` of a tenant with no knowledge
base gives it an empty one in its languages, which answers "I don't know" with the offer of a
person, takes documents, articles and assistant settings through the admin API, and reaches another
running replica; an older revision changes nothing; a file-loaded knowledge base keeps its articles."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import select

from ai_responder import handlers
from ai_responder.admin import MIGRATIONS
from ai_responder.app import build_app
from ai_responder.assistant import Assistant
from ai_responder.config import Settings
from ai_responder.kb import DEFAULT_MESSAGES, TenantKB, load_tenant
from ai_responder.store import KnowledgeBaseVersion, live_knowledge_base, save_knowledge_base
from contracts.common import ConversationStatus, HandoffReason, Sender, SmartActionType
from contracts.envelope import new_envelope
from contracts.events import AiReplyGenerated, ConversationStarted, MessagePosted, TenantProfileChanged
from contracts.readapi import AssistantSettingsView, AssistantTestView, DocumentUploadResult, KnowledgeBaseChange
from devkit.testing import ConsumerHarness, Infra, eventually
from servicekit.migrations import upgrade_to_head

from .conftest import KB_ROOT

NEW_TENANT = "bike-rental-como"
FILE_TENANT = "lucine-di-natale"
TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = f"/admin/tenants/{NEW_TENANT}"

GUIDE = b"""# Bike rental on Lake Como

## Where to park

Free parking for customers is behind the shop, in Via Lungolago 12, with room for twenty cars.

## Electric bikes

An electric bike costs 35 euros a day, helmet and lock included.
"""


@pytest.fixture
async def app(infra: Infra, database: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    for name, value in infra.service_env(database).items():
        monkeypatch.setenv(name, value)
    # The default refresh: the replica loads a knowledge base created by its consumer within a second.
    settings = Settings(admin_token=TOKEN, llm_api_key=None, answer_cache_ttl_s=1)
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, settings.database_url)
    app = build_app(settings)
    await app.state.assistant.start()
    yield app
    await app.state.assistant.stop()
    runtime = app.state.runtime
    await runtime.redis.aclose()
    await runtime.engine.dispose()
    if runtime.relay_engine is not None:
        await runtime.relay_engine.dispose()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ai-responder") as client:
        yield client


@pytest.fixture
def harness(app: FastAPI) -> ConsumerHarness:
    """The app's own assistant behind the consumer's handlers."""
    harness = ConsumerHarness(app.state.runtime.sessions)
    handlers.register(harness.consumer, app.state.assistant, history_messages=6)
    return harness


def profile(tenant_id: str, revision: int, languages: list[str], **fields: Any) -> Any:
    payload = TenantProfileChanged(
        tenant_id=tenant_id,
        revision=revision,
        name=fields.pop("name", "Bike Rental Como"),
        languages=languages,
        time_zone="Europe/Rome",
        **fields,
    )
    return new_envelope(payload, tenant_id=tenant_id)


async def live(app: FastAPI, tenant_id: str) -> tuple[int, TenantKB] | None:
    async with app.state.runtime.sessions() as session:
        return await live_knowledge_base(session, tenant_id)


async def loaded(assistant: Assistant, tenant_id: str, version: int) -> None:
    async def done() -> bool:
        return assistant.versions.get(tenant_id) == version

    await eventually(done, timeout=5, what=f"{tenant_id}'s knowledge base version {version} loaded")


class Conversation:
    """A customer's conversation with the AI, through the consumer's handlers."""

    def __init__(self, harness: ConsumerHarness, tenant_id: str, locale: str | None = None) -> None:
        self.harness, self.tenant_id, self.id, self.locale, self.seq = harness, tenant_id, uuid.uuid4(), locale, 0

    async def start(self) -> Conversation:
        started = ConversationStarted(locale=self.locale)
        await self.harness.apply(new_envelope(started, tenant_id=self.tenant_id, conversation_id=self.id))
        return self

    async def ask(self, text: str) -> AiReplyGenerated:
        self.seq += 1
        message = MessagePosted(
            message_id=uuid.uuid4(), seq=self.seq, sender=Sender.CUSTOMER, text=text, status=ConversationStatus.AI
        )
        await self.harness.apply(new_envelope(message, tenant_id=self.tenant_id, conversation_id=self.id))
        replies = [r for r in await self.harness.emitted(AiReplyGenerated) if r.conversation_id == self.id]
        reply: AiReplyGenerated = replies[-1].payload
        assert reply.in_reply_to == message.message_id
        return reply


async def test_a_new_tenant_gets_an_empty_knowledge_base_that_answers_honestly(
    app: FastAPI, harness: ConsumerHarness
) -> None:
    assert await live(app, NEW_TENANT) is None
    announced = profile(NEW_TENANT, 1, ["en", "it"])
    await harness.apply(announced)
    await harness.apply(announced)  # redelivered: skipped by event id

    found = await live(app, NEW_TENANT)
    assert found is not None
    version, kb = found
    assert version == 1
    assert kb.articles == []
    assert kb.config.languages == ["en", "it"]
    assert kb.config.default_language == "en"
    assert kb.config.messages["en"] == DEFAULT_MESSAGES["en"]  # the generic messages, no invented text
    async with app.state.runtime.sessions() as session:
        history = (
            await session.scalars(select(KnowledgeBaseVersion).where(KnowledgeBaseVersion.tenant_id == NEW_TENANT))
        ).all()
    assert [(h.version, h.note) for h in history] == [(1, "created from profile revision 1")]

    # Not reloaded by hand: the replica's refresh finds the new knowledge base.
    await loaded(app.state.assistant, NEW_TENANT, 1)
    conversation = await Conversation(harness, NEW_TENANT).start()
    reply = await conversation.ask("What time do you open on Sundays?")
    assert reply.text == DEFAULT_MESSAGES["en"].unknown
    assert reply.language == "en"
    assert reply.handoff_reason == HandoffReason.UNKNOWN_ANSWER
    assert [a.type for a in reply.smart_actions] == [SmartActionType.REQUEST_OPERATOR, SmartActionType.CONTINUE_AI]
    assert reply.smart_actions[0].label == DEFAULT_MESSAGES["en"].operator_button

    italian = await conversation.ask("Quanto costa il noleggio di una bicicletta?")
    assert italian.text == DEFAULT_MESSAGES["it"].unknown
    assert italian.language == "it"


async def test_documents_articles_and_settings_work_for_the_new_tenant(
    app: FastAPI, client: httpx.AsyncClient, harness: ConsumerHarness
) -> None:
    await harness.apply(profile(NEW_TENANT, 1, ["en"]))

    response = await client.post(f"{BASE}/documents", params={"filename": "guide.md"}, content=GUIDE, headers=AUTH)
    assert response.status_code == 200, response.text
    uploaded = DocumentUploadResult.model_validate_json(response.content)
    assert uploaded.version == 2
    assert uploaded.articles

    conversation = await Conversation(harness, NEW_TENANT, locale="en").start()
    reply = await conversation.ask("Where can I park my car?")
    assert reply.handoff_reason is None, reply.text
    assert "Via Lungolago 12" in reply.text
    assert reply.sources
    assert reply.sources[0].article_id in uploaded.articles
    tried = await client.post(f"{BASE}/test", json={"question": "How much is an electric bike?"}, headers=AUTH)
    assert tried.status_code == 200, tried.text
    assert "35 euros" in AssistantTestView.model_validate_json(tried.content).text

    article = {"title": {"en": "Opening hours"}, "body": {"en": "We are open every day from 9 am to 7 pm."}}
    edited = await client.put(f"{BASE}/articles/opening-hours", json=article, headers=AUTH)
    assert edited.status_code == 200, edited.text
    assert KnowledgeBaseChange.model_validate_json(edited.content).version == 3
    assert "9 am to 7 pm" in (await conversation.ask("What are your opening hours?")).text

    settings = await client.get(f"{BASE}/assistant", headers=AUTH)
    assert settings.status_code == 200, settings.text
    view = AssistantSettingsView.model_validate_json(settings.content)
    assert view.smart_actions == []
    body = view.model_dump(mode="json", exclude={"tenant_id", "version", "updated_at"})
    body["handoff_phrases"] = [*view.handoff_phrases, "flat tyre"]
    body["smart_actions"] = [{"id": "book", "url": "https://example.com/book", "label": {"en": "Book a bike"}}]
    changed = await client.put(f"{BASE}/assistant", json=body, headers=AUTH)
    assert changed.status_code == 200, changed.text
    assert AssistantSettingsView.model_validate_json(changed.content).version == 2
    assert (await conversation.ask("I have a flat tyre")).handoff_reason == HandoffReason.CUSTOMER_REQUEST


async def test_an_older_revision_changes_nothing_and_a_newer_one_sets_the_languages(
    app: FastAPI, harness: ConsumerHarness
) -> None:
    await harness.apply(profile(NEW_TENANT, 2, ["it", "en"]))
    await harness.apply(profile(NEW_TENANT, 1, ["en"]))  # older, arriving late
    await harness.apply(profile(NEW_TENANT, 2, ["en"]))  # the same revision (a gateway's start-up)
    found = await live(app, NEW_TENANT)
    assert found is not None
    assert found[0] == 1
    assert (found[1].config.languages, found[1].config.default_language) == (["it", "en"], "it")

    # A newer revision: the languages the assistant speaks (no messages in German: left out).
    await harness.apply(profile(NEW_TENANT, 3, ["de", "en"]))
    found = await live(app, NEW_TENANT)
    assert found is not None
    assert found[0] == 2
    assert (found[1].config.languages, found[1].config.default_language) == (["en"], "en")

    await harness.apply(profile(NEW_TENANT, 4, ["en"], name="Bike Rental Como & Lecco"))  # same languages
    found = await live(app, NEW_TENANT)
    assert found is not None
    assert found[0] == 2


async def test_a_file_loaded_knowledge_base_keeps_its_articles(app: FastAPI, harness: ConsumerHarness) -> None:
    files = load_tenant(KB_ROOT / FILE_TENANT)
    async with app.state.runtime.sessions() as session, session.begin():
        await save_knowledge_base(session, files, note="initial")

    await harness.apply(profile(FILE_TENANT, 1, ["it", "en"], name="Lucine di Natale"))
    found = await live(app, FILE_TENANT)
    assert found is not None
    assert found == (1, files)  # the same languages: nothing written

    await harness.apply(profile(FILE_TENANT, 2, ["en", "it"], name="Lucine di Natale"))
    found = await live(app, FILE_TENANT)
    assert found is not None
    version, kb = found
    assert version == 2
    assert kb.articles == files.articles
    assert kb.config.messages == files.config.messages  # its own greetings stay
    assert kb.config.actions == files.config.actions
    assert (kb.config.languages, kb.config.default_language) == (["en", "it"], "en")


async def test_another_running_replica_answers_for_a_tenant_created_after_it_started(
    app: FastAPI, client: httpx.AsyncClient, harness: ConsumerHarness, redis_client: Redis
) -> None:
    """The profile is consumed by the app's replica; replica B, started before the tenant existed,
    loads its knowledge base and then the uploaded document at its refresh, and answers from it."""
    sessions = app.state.runtime.sessions
    replica = Assistant(Settings(llm_api_key=None, answer_cache_ttl_s=1), sessions, redis_client)
    await replica.start()
    try:
        assert NEW_TENANT not in replica.versions
        await harness.apply(profile(NEW_TENANT, 1, ["en"]))
        await loaded(replica, NEW_TENANT, 1)
        response = await client.post(f"{BASE}/documents", params={"filename": "guide.md"}, content=GUIDE, headers=AUTH)
        assert response.status_code == 200, response.text
        await loaded(replica, NEW_TENANT, 2)

        other = ConsumerHarness(sessions)
        handlers.register(other.consumer, replica, history_messages=6)
        reply = await (await Conversation(other, NEW_TENANT, locale="en").start()).ask("Where can I park my car?")
        assert "Via Lungolago 12" in reply.text
    finally:
        await replica.stop()
