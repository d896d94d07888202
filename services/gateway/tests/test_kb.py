"""The knowledge-base routes (`/v1/kb/...`) on the real gateway (real Kafka, PostgreSQL, Redis),
with the ai-responder's stand-in serving its management API; tenant isolation has its rows in
test_operators.py's table."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from gateway_testkit import ADMIN_TOKEN, SOFIA, free_port

from contracts.readapi import KnowledgeArticleList, UnansweredGroup
from gateway.internal import InternalApi
from gateway.kb import KnowledgeClient
from servicekit.http import ApiError

LUCINE = "lucine-di-natale"


async def supervisor(gateway: Any) -> dict[str, str]:
    username, password, _ = SOFIA
    response = await gateway.http.post("/v1/operators/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_without_a_token_it_is_401_and_the_ai_responder_is_never_asked(gateway: Any) -> None:
    kb = gateway.ai_responder_api.kb
    asked = len(kb.requests)
    assert (await gateway.http.get("/v1/kb/articles")).status_code == 401
    assert (await gateway.http.post("/v1/kb/test", json={"question": "orari"})).status_code == 401
    assert len(kb.requests) == asked


async def test_edit_history_and_rollback_carry_the_operator_as_author(gateway: Any) -> None:
    headers = await supervisor(gateway)
    article_id = f"cani-{uuid.uuid4().hex[:6]}"
    body = {"title": {"it": "Cani"}, "body": {"it": "I cani sono ammessi al guinzaglio."}, "author": "someone else"}
    added = await gateway.http.put(f"/v1/kb/articles/{article_id}", json=body, headers=headers)
    assert added.status_code == 200, added.text
    assert added.json()["changed"] == [article_id]
    edited_body = {**body, "body": {"it": "I cani non sono ammessi."}, "note": "regola nuova"}
    edited = await gateway.http.put(f"/v1/kb/articles/{article_id}", json=edited_body, headers=headers)
    assert edited.json()["version"] == added.json()["version"] + 1

    history = (await gateway.http.get(f"/v1/kb/articles/{article_id}/history", headers=headers)).json()
    assert [(r["change"], r["author"], r["note"]) for r in history["revisions"]] == [
        ("edited", "Sofia (supervisor)", "regola nuova"),
        ("added", "Sofia (supervisor)", f"edit {article_id}"),
    ], "the author is the operator of the token, not the body's"
    old = await gateway.http.get(
        f"/v1/kb/articles/{article_id}", params={"version": added.json()["version"]}, headers=headers
    )
    assert old.json()["body"] == {"it": "I cani sono ammessi al guinzaglio."}

    back = await gateway.http.post(
        "/v1/kb/rollback", json={"version": added.json()["version"], "article_id": article_id}, headers=headers
    )
    assert back.status_code == 200, back.text
    live = (await gateway.http.get(f"/v1/kb/articles/{article_id}", headers=headers)).json()
    assert live["body"] == {"it": "I cani sono ammessi al guinzaglio."}
    versions = (await gateway.http.get("/v1/kb/versions", headers=headers)).json()["versions"]
    assert versions[0]["live"]
    assert versions[0]["author"] == "Sofia (supervisor)"

    removed = await gateway.http.delete(f"/v1/kb/articles/{article_id}", headers=headers)
    assert removed.status_code == 200, removed.text
    missing = await gateway.http.get(f"/v1/kb/articles/{article_id}", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["error"] == {"code": "not_found", "message": f"no article {article_id!r}"}


async def test_a_document_goes_through_as_its_bytes_and_a_bad_one_is_422_in_the_ai_responders_words(
    gateway: Any,
) -> None:
    headers = await supervisor(gateway)
    kb = gateway.ai_responder_api.kb
    document = "# Parcheggio\n\nIl parcheggio è gratuito.".encode()
    uploaded = await gateway.http.post(
        "/v1/kb/documents",
        files={"file": ("C:\\Users\\sofia\\parcheggio.it.md", document, "text/markdown")},
        data={"language": "it"},
        headers=headers,
    )
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["filename"] == "parcheggio.it.md", "only the file's name, not the browser's path"
    assert kb.uploads[-1] == (LUCINE, "parcheggio.it.md", document)
    method, tenant, path = kb.requests[-1]
    assert (method, tenant, path) == ("POST", LUCINE, "/documents")

    bad = await gateway.http.post(
        "/v1/kb/documents", files={"file": ("listino.pdf", b"not a pdf at all")}, headers=headers
    )
    assert bad.status_code == 422
    assert bad.json()["error"] == {"code": "invalid_document", "message": "listino.pdf: not a PDF"}
    wrong_language = await gateway.http.post(
        "/v1/kb/documents", files={"file": ("a.md", b"# A\n\ntext")}, data={"language": "ITA"}, headers=headers
    )
    assert wrong_language.status_code == 422
    no_file = await gateway.http.post("/v1/kb/documents", data={"language": "it"}, headers=headers)
    assert no_file.status_code == 422


async def test_a_document_over_the_limit_is_413_before_the_ai_responder(gateway: Any) -> None:
    headers = await supervisor(gateway)
    kb = gateway.ai_responder_api.kb
    asked = len(kb.requests)
    limit = gateway.runtime.config.kb_document_max_bytes
    big = await gateway.http.post("/v1/kb/documents", files={"file": ("big.txt", b"x" * (limit + 1))}, headers=headers)
    assert big.status_code == 413, big.text
    assert len(kb.requests) == asked
    # An article body is JSON: the ordinary limit applies to it.
    huge = {"title": {"it": "T"}, "body": {"it": "x" * (gateway.runtime.config.max_body_bytes + 1)}}
    assert (await gateway.http.put("/v1/kb/articles/huge", json=huge, headers=headers)).status_code == 413


async def test_the_test_box_and_a_gap_turned_into_an_article(gateway: Any) -> None:
    headers = await supervisor(gateway)
    kb = gateway.ai_responder_api.kb
    question = f"Posso portare il cane {uuid.uuid4().hex[:4]}?"
    now = datetime.now(UTC)
    asked = {"count": 3, "examples": [question], "languages": ["it"], "reasons": ["unknown_answer"]}
    gap = UnansweredGroup(gap_id=uuid.uuid4(), question=question, first_asked=now, last_asked=now, **asked)
    kb.gaps[LUCINE].append(gap)  # customers asked it: the ai-responder's list has it
    answer = await gateway.http.post("/v1/kb/test", json={"question": "Orari di oggi?"}, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["sources"][0]["article_id"] == "orari"
    assert answer.json()["passages"][0]["score"] > 0

    gaps = (await gateway.http.get("/v1/kb/gaps", params={"days": 30}, headers=headers)).json()
    [gap] = [g for g in gaps["groups"] if g["question"] == question]
    body = {"title": {"it": gap["question"]}, "body": {"it": "Sì, al guinzaglio."}, "author": "ignored"}
    made = await gateway.http.post(f"/v1/kb/gaps/{gap['gap_id']}/article", json=body, headers=headers)
    assert made.status_code == 200, made.text
    again = await gateway.http.post(f"/v1/kb/gaps/{gap['gap_id']}/article", json=body, headers=headers)
    assert again.status_code == 404, "the gap is answered"
    versions = (await gateway.http.get("/v1/kb/versions", headers=headers)).json()["versions"]
    assert versions[0]["author"] == "Sofia (supervisor)"


async def test_without_the_admin_token_it_is_503_a_refused_token_or_another_tenant_502() -> None:
    async def ai_responder(request: web.Request) -> web.Response:
        ok = request.headers.get("authorization") == f"Bearer {ADMIN_TOKEN}"
        return web.json_response({"tenant_id": "t", "version": 1, "articles": []}, status=200 if ok else 401)

    server = web.Application()
    server.router.add_get("/admin/tenants/{tenant_id}/articles", ai_responder)
    runner = web.AppRunner(server)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    api = InternalApi("the assistant", f"http://127.0.0.1:{port}", timeout=5.0, max_connections=2)
    try:
        with pytest.raises(ApiError) as unset:
            await KnowledgeClient(api, "", "t").call(KnowledgeArticleList, "GET", "/articles")
        assert unset.value.status == 503
        with pytest.raises(ApiError) as refused:
            await KnowledgeClient(api, "wrong", "t").call(KnowledgeArticleList, "GET", "/articles")
        assert refused.value.status == 502
        other = await KnowledgeClient(api, ADMIN_TOKEN, "t").call(KnowledgeArticleList, "GET", "/articles")
        assert other.tenant_id == "t"
        with pytest.raises(ApiError) as elsewhere:
            await KnowledgeClient(api, ADMIN_TOKEN, "u").call(KnowledgeArticleList, "GET", "/articles")
        assert elsewhere.value.status == 502, "an answer about another tenant never goes out"
    finally:
        await api.close()
        await runner.cleanup()
    with pytest.raises(ApiError) as gone:
        await KnowledgeClient(api, ADMIN_TOKEN, "t").call(KnowledgeArticleList, "GET", "/articles")
    assert (gone.value.status, gone.value.code) == (503, "unavailable"), "the assistant is not running"
    await api.close()
