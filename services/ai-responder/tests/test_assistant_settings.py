"""The tenant's assistant settings API on the service's real app, PostgreSQL and Redis: taken from the
files at first, changed and read back, refused whole with a 422 naming the field, used by another
running replica's consumer within a couple of seconds, and `llm_enabled: false` answering by
retrieval while a (local, OpenAI-compatible) LLM is configured."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from ai_responder import handlers
from ai_responder.admin import MIGRATIONS
from ai_responder.app import build_app
from ai_responder.assistant import Assistant
from ai_responder.config import Settings
from ai_responder.kb import load_tenant
from ai_responder.store import save_knowledge_base
from contracts.common import ConversationStatus, HandoffReason, Sender
from contracts.envelope import new_envelope
from contracts.events import AiReplyGenerated, ConversationStarted, MessagePosted
from contracts.readapi import AssistantSettingsInput, AssistantSettingsView, AssistantTestView
from devkit.fake_llm import FakeLlm
from devkit.testing import ConsumerHarness, Infra, eventually
from servicekit.migrations import upgrade_to_head

from .conftest import KB_ROOT

TENANT = "lucine-di-natale"
TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
URL = f"/admin/tenants/{TENANT}/assistant"


async def start_app(infra: Infra, database: str, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> FastAPI:
    for name, value in infra.service_env(database).items():
        monkeypatch.setenv(name, value)
    config = Settings(admin_token=TOKEN, kb_refresh_s=3600, answer_cache_ttl_s=1, **settings)
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, config.database_url)
    app = build_app(config)
    async with app.state.runtime.sessions() as session, session.begin():
        await save_knowledge_base(session, load_tenant(KB_ROOT / TENANT), note="initial")
    await app.state.assistant.reload()
    return app


async def stop_app(app: FastAPI) -> None:
    runtime = app.state.runtime
    await runtime.redis.aclose()
    await runtime.engine.dispose()
    if runtime.relay_engine is not None:
        await runtime.relay_engine.dispose()


@pytest.fixture
async def app(infra: Infra, database: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    app = await start_app(infra, database, monkeypatch, llm_api_key=None)
    yield app
    await stop_app(app)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ai-responder") as client:
        yield client


async def read(client: httpx.AsyncClient) -> AssistantSettingsView:
    response = await client.get(URL, headers=AUTH)
    assert response.status_code == 200, response.text
    return AssistantSettingsView.model_validate_json(response.content)


def body_of(view: AssistantSettingsView, **changes: Any) -> dict[str, Any]:
    body = view.model_dump(mode="json", exclude={"tenant_id", "version", "updated_at"})
    return {**body, **changes}


async def test_taken_from_the_files_then_changed_and_read_back(client: httpx.AsyncClient) -> None:
    first = await read(client)
    assert first.version == 1
    assert (first.answer_threshold, first.unknown_threshold, first.llm_enabled) == (0.45, 0.2, True)
    assert "parlare staff" in first.handoff_phrases
    assert "rimborso" in first.sensitive_topics["refund"]
    buy = next(a for a in first.smart_actions if a.id == "buy_tickets")
    assert str(buy.url).startswith("https://lucinedinatale.it/")
    assert buy.label == {"it": "Acquista biglietti", "en": "Buy tickets"}
    assert "comprare" in buy.triggers
    assert (await read(client)).version == 1  # read again: not seeded twice

    actions = [
        *(a.model_dump(mode="json") for a in first.smart_actions),
        {"id": "gift_card", "url": "https://example.org/gift", "label": {"it": "Buono regalo", "en": "Gift card"}},
    ]
    topics = {**first.sensitive_topics, "lost_items": ["oggetto smarrito", "lost item"]}
    body = body_of(
        first,
        answer_threshold=0.5,
        unknown_threshold=0.25,
        handoff_phrases=[*first.handoff_phrases, "biglietto omaggio"],
        sensitive_topics=topics,
        smart_actions=actions,
        llm_enabled=False,
    )
    response = await client.put(URL, json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    saved = AssistantSettingsView.model_validate_json(response.content)
    assert saved.version == 2
    assert saved.updated_at >= first.updated_at
    again = await read(client)
    assert again == saved
    assert body_of(again) == AssistantSettingsInput.model_validate(body).model_dump(mode="json")
    assert again.sensitive_topics["lost_items"] == ["oggetto smarrito", "lost item"]
    assert again.smart_actions[-1].id == "gift_card"

    # The "test the assistant" view answers with them: the new threshold, a topic of the settings.
    tested = await client.post(
        f"/admin/tenants/{TENANT}/test", json={"question": "ho perso un oggetto smarrito"}, headers=AUTH
    )
    view = AssistantTestView.model_validate_json(tested.content)
    assert view.answer_threshold == 0.5
    assert view.handoff_reason == HandoffReason.SENSITIVE_TOPIC.value


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"answer_threshold": 1.5}, "answer_threshold"),
        ({"unknown_threshold": -0.1}, "unknown_threshold"),
        ({"answer_threshold": 0.3, "unknown_threshold": 0.4}, "unknown_threshold must not exceed answer_threshold"),
        ({"handoff_phrases": ["parlare staff", "   "]}, "handoff_phrases.1"),
        ({"handoff_phrases": ["x" * 101]}, "handoff_phrases.0"),
        ({"handoff_phrases": ["parlare staff"] * 201}, "handoff_phrases"),
        ({"handoff_phrases": ["_ _"]}, "handoff_phrases.0: '_ _' has no word"),
        ({"sensitive_topics": {"Refund!": ["rimborso"]}}, "sensitive_topics.Refund!"),
        ({"sensitive_topics": {"refund": []}}, "sensitive_topics.refund"),
        ({"smart_actions": [{"id": "Buy-Tickets", "url": "https://a.it", "label": {"it": "A"}}]}, "smart_actions.0.id"),
        ({"smart_actions": [{"id": "buy", "url": "ftp://a.it", "label": {"it": "A"}}]}, "smart_actions.0.url"),
        ({"smart_actions": [{"id": "buy", "url": "javascript:alert(1)", "label": {"it": "A"}}]}, "smart_actions.0.url"),
        ({"smart_actions": [{"id": "buy", "url": "https://a.it", "label": {}}]}, "smart_actions.0.label"),
        (
            {"smart_actions": [{"id": "buy", "url": "https://a.it", "label": {"de": "Kaufen"}}]},
            "smart_actions.0.label: language(s) ['de']",
        ),
        ({"llm_enabled": "maybe"}, "llm_enabled"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_settings_are_refused_whole(client: httpx.AsyncClient, change: dict[str, Any], field: str) -> None:
    before = await read(client)
    # A valid change rides along: none of it is saved when another field is wrong.
    body = {**body_of(before, handoff_phrases=["biglietto omaggio"], llm_enabled=False), **change}
    response = await client.put(URL, json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert field in error["message"], error
    assert await read(client) == before


async def test_actions_and_topics_an_article_uses_cannot_be_removed(client: httpx.AsyncClient) -> None:
    before = await read(client)
    without_buy = [a.model_dump(mode="json") for a in before.smart_actions if a.id != "buy_tickets"]
    response = await client.put(URL, json=body_of(before, smart_actions=without_buy), headers=AUTH)
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("smart_actions: article ")
    assert await read(client) == before


async def test_unauthorised_and_unknown_tenant(client: httpx.AsyncClient) -> None:
    assert (await client.get(URL)).status_code == 401
    assert (await client.get(URL, headers={"Authorization": "Bearer nope"})).status_code == 401
    response = await client.get("/admin/tenants/nobody-here/assistant", headers=AUTH)
    assert response.status_code == 404


def customer_message(seq: int, text: str) -> MessagePosted:
    return MessagePosted(
        message_id=uuid.uuid4(), seq=seq, sender=Sender.CUSTOMER, text=text, status=ConversationStatus.AI
    )


async def test_another_running_replica_answers_with_a_new_handoff_phrase(
    app: FastAPI, client: httpx.AsyncClient, redis_client: Redis
) -> None:
    """Replica A takes the change; replica B, running with the default refresh, answers the consumer's
    next customer message with it, and again without it once it is removed."""
    sessions = app.state.runtime.sessions
    replica = Assistant(Settings(llm_api_key=None, answer_cache_ttl_s=1), sessions, redis_client)
    await replica.start()
    try:
        harness = ConsumerHarness(sessions)
        handlers.register(harness.consumer, replica, history_messages=6)
        conversation = uuid.uuid4()
        await harness.apply(
            new_envelope(ConversationStarted(locale="it"), tenant_id=TENANT, conversation_id=conversation)
        )
        asked = 0

        async def reply_to(text: str) -> AiReplyGenerated:
            nonlocal asked
            asked += 1
            message = customer_message(asked, text)
            await harness.apply(new_envelope(message, tenant_id=TENANT, conversation_id=conversation))
            replies = await harness.emitted(AiReplyGenerated)
            payload: AiReplyGenerated = replies[-1].payload
            return payload

        question = "Vorrei un biglietto omaggio per mia nonna"
        assert (await reply_to(question)).handoff_reason != HandoffReason.CUSTOMER_REQUEST

        before = await read(client)
        added = body_of(before, handoff_phrases=[*before.handoff_phrases, "biglietto omaggio"])
        assert (await client.put(URL, json=added, headers=AUTH)).status_code == 200
        changed_at = asyncio.get_running_loop().time()

        async def offered() -> bool:
            reply = await reply_to(question)
            return reply.handoff_reason == HandoffReason.CUSTOMER_REQUEST and any(
                a.type == "request_operator" for a in reply.smart_actions
            )

        await eventually(offered, timeout=10, what="the other replica offering a person")
        assert asyncio.get_running_loop().time() - changed_at < 3.0

        assert (await client.put(URL, json=body_of(before), headers=AUTH)).status_code == 200

        async def not_offered() -> bool:
            return (await reply_to(question)).handoff_reason != HandoffReason.CUSTOMER_REQUEST

        await eventually(not_offered, timeout=10, what="the other replica no longer offering a person")
    finally:
        await replica.stop()


@pytest.fixture
async def llm_app(
    infra: Infra, database: str, monkeypatch: pytest.MonkeyPatch, fake_llm: FakeLlm
) -> AsyncIterator[FastAPI]:
    app = await start_app(infra, database, monkeypatch, llm_api_key="test-key", llm_base_url=f"{fake_llm.base_url}")
    yield app
    await stop_app(app)


async def test_llm_disabled_answers_by_retrieval_with_an_llm_configured(llm_app: FastAPI, fake_llm: FakeLlm) -> None:
    fake_llm.reply = lambda body: json.dumps(
        {"answer": "Il ridotto costa 7 euro.", "answerable": True, "confidence": 0.9}
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=llm_app), base_url="http://ai-responder") as client:

        async def ask(question: str) -> AssistantTestView:
            response = await client.post(f"/admin/tenants/{TENANT}/test", json={"question": question}, headers=AUTH)
            assert response.status_code == 200, response.text
            return AssistantTestView.model_validate_json(response.content)

        assert (await ask("quanto costa il biglietto ridotto?")).mode == "llm"
        assert len(fake_llm.requests) == 1

        before = await read(client)
        assert (await client.put(URL, json=body_of(before, llm_enabled=False), headers=AUTH)).status_code == 200
        answer = await ask("quanto costa il biglietto per i bambini?")
        assert answer.mode == "retrieval"
        assert answer.sources[0].article_id == "ticket-prices"
        assert "7 euro" not in answer.text
        assert len(fake_llm.requests) == 1  # the model was not asked

        assert (await client.put(URL, json=body_of(before, llm_enabled=True), headers=AUTH)).status_code == 200
        assert (await ask("quanto costa il biglietto per gli adulti?")).mode == "llm"
        assert len(fake_llm.requests) == 2
