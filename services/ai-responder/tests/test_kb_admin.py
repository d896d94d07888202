"""The knowledge-base management API on the service's real app, PostgreSQL and Redis: documents
uploaded (PDF, HTML, bad files), articles edited, removed and rolled back with their history, the
"test the assistant" endpoint, and unanswered questions grouped and turned into an article."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from ai_responder.admin import MIGRATIONS
from ai_responder.app import build_app
from ai_responder.config import Settings
from ai_responder.kb import load_tenant
from ai_responder.store import UnansweredQuestion, record_unanswered, save_knowledge_base
from contracts.readapi import (
    AssistantTestView,
    DocumentUploadResult,
    KnowledgeArticleHistory,
    KnowledgeArticleList,
    KnowledgeArticleView,
    KnowledgeBaseChange,
    KnowledgeBaseVersionList,
    UnansweredGroupList,
)
from devkit.testing import Infra
from servicekit.migrations import upgrade_to_head

from .conftest import KB_ROOT

TENANT = "museo-del-vetro"
DOCUMENTS = KB_ROOT / TENANT / "documents"
TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = f"/admin/tenants/{TENANT}"


@pytest.fixture
async def app(infra: Infra, database: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    for name, value in infra.service_env(database).items():
        monkeypatch.setenv(name, value)
    settings = Settings(admin_token=TOKEN, llm_api_key=None, kb_refresh_s=3600, answer_cache_ttl_s=1)
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, settings.database_url)
    app = build_app(settings)
    runtime = app.state.runtime
    # The knowledge base starts as the shipped folder minus its PDF and web page, uploaded below.
    kb = load_tenant(KB_ROOT / TENANT)
    kb = kb.model_copy(update={"articles": [a for a in kb.articles if a.source.endswith(".md")]})
    async with runtime.sessions() as session, session.begin():
        await save_knowledge_base(session, kb, note="initial")
    await app.state.assistant.reload()
    yield app
    await runtime.redis.aclose()
    await runtime.engine.dispose()
    if runtime.relay_engine is not None:
        await runtime.relay_engine.dispose()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ai-responder") as client:
        yield client


async def upload(client: httpx.AsyncClient, filename: str, data: bytes, **params: str) -> httpx.Response:
    return await client.post(f"{BASE}/documents", params={"filename": filename, **params}, content=data, headers=AUTH)


async def ask(client: httpx.AsyncClient, question: str) -> AssistantTestView:
    response = await client.post(f"{BASE}/test", json={"question": question}, headers=AUTH)
    assert response.status_code == 200, response.text
    return AssistantTestView.model_validate_json(response.content)


async def versions(client: httpx.AsyncClient) -> KnowledgeBaseVersionList:
    response = await client.get(f"{BASE}/versions", headers=AUTH)
    assert response.status_code == 200, response.text
    return KnowledgeBaseVersionList.model_validate_json(response.content)


async def test_a_pdf_upload_becomes_articles_the_assistant_answers_from(client: httpx.AsyncClient) -> None:
    before = await ask(client, "Quanto costa il biglietto intero?")
    assert not before.sources  # the prices are only in the PDF
    assert before.handoff_reason is not None

    pdf = (DOCUMENTS / "tariffe-e-regolamento.pdf").read_bytes()
    response = await upload(client, "tariffe-e-regolamento.pdf", pdf)
    assert response.status_code == 200, response.text
    result = DocumentUploadResult.model_validate_json(response.content)
    assert "tariffe-e-regolamento-biglietti" in result.articles
    assert "tariffe-e-regolamento-tickets" in result.articles
    assert result.version == 2

    answer = await ask(client, "Quanto costa il biglietto intero?")
    assert answer.sources[0].article_id == "tariffe-e-regolamento-biglietti"
    assert "10 €" in answer.text
    assert answer.handoff_reason is None
    assert answer.version == 2
    assert answer.passages[0].article_id == "tariffe-e-regolamento-biglietti"
    assert answer.passages[0].confidence >= answer.answer_threshold
    assert all(p.score >= 0 for p in answer.passages)

    # The same document again replaces its articles instead of adding copies.
    again = DocumentUploadResult.model_validate_json(
        (
            await upload(client, "tariffe-e-regolamento.pdf", (DOCUMENTS / "tariffe-e-regolamento.pdf").read_bytes())
        ).content
    )
    assert again.articles == result.articles
    assert again.version == 3
    listed = KnowledgeArticleList.model_validate_json((await client.get(f"{BASE}/articles", headers=AUTH)).content)
    assert sum(a.source == "documents/tariffe-e-regolamento.pdf" for a in listed.articles) == len(result.articles)


async def test_a_saved_web_page_keeps_its_content_and_drops_its_boilerplate(client: httpx.AsyncClient) -> None:
    response = await upload(client, "mostre-e-visite.html", (DOCUMENTS / "mostre-e-visite.html").read_bytes())
    assert response.status_code == 200, response.text
    result = DocumentUploadResult.model_validate_json(response.content)
    assert "mostre-e-visite-visite-guidate" in result.articles
    assert "mostre-e-visite-guided-tours" in result.articles
    for article_id in result.articles:
        view = KnowledgeArticleView.model_validate_json(
            (await client.get(f"{BASE}/articles/{article_id}", headers=AUTH)).content
        )
        text = " ".join([*view.body.values(), *view.title.values()])
        for boilerplate in ("cookie", "Newsletter", "P.IVA", "dataLayer", "Accetta", "Home"):
            assert boilerplate not in text, (article_id, boilerplate)
    answer = await ask(client, "when is the glassblowing demonstration?")
    assert answer.sources[0].article_id == "mostre-e-visite-glassblowing-demonstrations"
    assert "4 pm" in answer.text


@pytest.mark.parametrize(
    ("filename", "data", "message"),
    [
        ("listino.docx", b"PK\x03\x04 word document", "unsupported document type"),
        ("listino.pdf", b"<html>not a pdf</html>", "not a PDF"),
        ("listino.pdf", (DOCUMENTS / "tariffe-e-regolamento.pdf").read_bytes()[:400], "PDF"),
        ("vuoto.md", b"   \n", "empty"),
        ("binario.txt", b"\x00\x01\x02\x03" * 50, "not a text file"),
        ("faq.md", b"---\nid: BAD ID\n---\n::: it\nciao\n:::\n", "id"),
    ],
)
async def test_a_bad_file_is_refused_with_a_message_and_the_live_version_stays(
    client: httpx.AsyncClient, filename: str, data: bytes, message: str
) -> None:
    before = await versions(client)
    response = await upload(client, filename, data)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_document"
    assert message in error["message"]
    after = await versions(client)
    assert [v.version for v in after.versions] == [v.version for v in before.versions]
    assert (await ask(client, "Dove si trova il museo?")).sources[0].article_id == "faq-it-dove-si-trova-il-museo"


async def test_uploads_need_the_admin_token(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{BASE}/documents", params={"filename": "a.md"}, content=b"# A\ntext")
    assert response.status_code == 401
    response = await client.get(f"{BASE}/articles", headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401


async def test_edit_delete_history_and_rollback(client: httpx.AsyncClient) -> None:
    article = "faq-it-posso-portare-il-mio-cane"
    original = KnowledgeArticleView.model_validate_json(
        (await client.get(f"{BASE}/articles/{article}", headers=AUTH)).content
    )
    edited: dict[str, Any] = {
        "title": {"it": "Posso portare il mio cane?"},
        "body": {"it": "I cani di piccola taglia sono ammessi in braccio o nel trasportino."},
        "author": "anna",
    }
    change = KnowledgeBaseChange.model_validate_json(
        (await client.put(f"{BASE}/articles/{article}", json=edited, headers=AUTH)).content
    )
    assert change.version == 2
    assert change.changed == [article]
    answer = await ask(client, "posso entrare con il cane?")
    assert "trasportino" in answer.text

    # A new article, then one that cannot be served (no title for its language) is refused.
    new = {"title": {"en": "Lost property"}, "body": {"en": "Ask at the ticket office."}}
    assert (await client.put(f"{BASE}/articles/lost-property", json=new, headers=AUTH)).status_code == 200
    bad = {"title": {"it": "Senza testo"}, "body": {"en": "Only English."}}
    refused = await client.put(f"{BASE}/articles/broken", json=bad, headers=AUTH)
    assert refused.status_code == 422, refused.text
    assert (await client.delete(f"{BASE}/articles/lost-property", headers=AUTH)).status_code == 200
    assert (await client.get(f"{BASE}/articles/lost-property", headers=AUTH)).status_code == 404

    history = KnowledgeArticleHistory.model_validate_json(
        (await client.get(f"{BASE}/articles/lost-property/history", headers=AUTH)).content
    )
    assert [r.change for r in history.revisions] == ["removed", "added"]
    history = KnowledgeArticleHistory.model_validate_json(
        (await client.get(f"{BASE}/articles/{article}/history", headers=AUTH)).content
    )
    assert [(r.version, r.change) for r in history.revisions] == [(2, "edited"), (1, "added")]
    assert history.revisions[0].author == "anna"

    rolled = await client.post(f"{BASE}/rollback", json={"version": 1, "article_id": article}, headers=AUTH)
    assert rolled.status_code == 200, rolled.text
    restored = KnowledgeArticleView.model_validate_json(
        (await client.get(f"{BASE}/articles/{article}", headers=AUTH)).content
    )
    assert restored.body == original.body
    assert "trasportino" not in (await ask(client, "posso entrare con il cane?")).text

    # The whole knowledge base back to version 1: a new version with version 1's content.
    whole = KnowledgeBaseChange.model_validate_json(
        (await client.post(f"{BASE}/rollback", json={"version": 1}, headers=AUTH)).content
    )
    listed = await versions(client)
    assert listed.versions[0].version == whole.version
    assert listed.versions[0].live
    assert listed.versions[0].note == "rollback to 1"
    assert (await client.post(f"{BASE}/rollback", json={"version": 99}, headers=AUTH)).status_code == 404


async def test_unanswered_questions_are_grouped_and_a_gap_becomes_an_article(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    asked = [
        "Il museo ha un defibrillatore?",
        "avete un defibrillatore nel museo?",
        "c'è un defibrillatore?",
        "Quanto costa il traghetto da Verbania?",
    ]
    rows = [
        UnansweredQuestion(
            question_id=uuid.uuid4(),
            tenant_id=TENANT,
            conversation_id=uuid.uuid4(),
            text=text,
            language="it",
            reason="unknown_answer",
        )
        for text in asked
    ]
    async with app.state.runtime.sessions() as session, session.begin():
        await record_unanswered(session, rows)
        await record_unanswered(session, rows[:1])  # a redelivered message is one question
    gaps = UnansweredGroupList.model_validate_json((await client.get(f"{BASE}/gaps", headers=AUTH)).content)
    assert gaps.questions == 4
    assert [g.count for g in gaps.groups] == [3, 1]
    gap = gaps.groups[0]
    assert gap.gap_id == rows[0].question_id
    assert "defibrillatore" in gap.question

    before = await ask(client, "c'è un defibrillatore?")
    assert not before.sources
    body = {
        "title": {"it": "Defibrillatore", "en": "Defibrillator"},
        "body": {
            "it": "Sì, c'è un defibrillatore alla biglietteria.",
            "en": "Yes, there is a defibrillator at the ticket office.",
        },
    }
    response = await client.post(f"{BASE}/gaps/{gap.gap_id}/article", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    change = KnowledgeBaseChange.model_validate_json(response.content)
    assert change.changed == ["gap-defibrillatore"]
    answer = await ask(client, "c'è un defibrillatore?")
    assert answer.sources[0].article_id == "gap-defibrillatore"
    gaps = UnansweredGroupList.model_validate_json((await client.get(f"{BASE}/gaps", headers=AUTH)).content)
    assert [g.count for g in gaps.groups] == [1]
    async with app.state.runtime.sessions() as session:
        resolved = (await session.scalars(select(UnansweredQuestion.resolved_by))).all()
    assert sorted(resolved, key=str) == sorted(["gap-defibrillatore"] * 3 + [None], key=str)
    assert (await client.post(f"{BASE}/gaps/{gap.gap_id}/article", json=body, headers=AUTH)).status_code == 404
