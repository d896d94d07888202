"""The widget REST API against real Kafka, PostgreSQL and Redis."""

from __future__ import annotations

import uuid

import jwt
import pytest
from gateway_testkit import JWT_SECRET, LUCINE_KEY, LUCINE_ORIGIN, OTHER_KEY, OTHER_ORIGIN, message

from contracts.events import (
    ChooseHandoff,
    PostCustomerMessage,
    RateConversation,
    StartConversation,
    SubmitTicketDetails,
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_openapi_documents_the_widget_endpoints(gateway):
    spec = (await gateway.http.get("/openapi.json")).json()
    paths = spec["paths"]
    assert set(paths) >= {
        "/v1/conversations",
        "/v1/conversations/{conversation_id}/messages",
        "/v1/conversations/{conversation_id}/actions",
        "/v1/conversations/{conversation_id}/ticket",
        "/v1/conversations/{conversation_id}/rating",
    }
    start = paths["/v1/conversations"]["post"]
    assert "201" in start["responses"]
    assert start["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert paths["/v1/conversations/{conversation_id}/messages"]["post"]["responses"].keys() >= {"202", "413", "429"}
    assert paths["/v1/conversations/{conversation_id}/messages"]["get"]["responses"]["200"]["content"]
    assert {"X-Widget-Key", "HTTPBearer"} <= set(spec["components"]["securitySchemes"]) | {
        s.get("name") for s in spec["components"]["securitySchemes"].values()
    }


async def test_start_conversation_publishes_the_command_and_returns_a_token(gateway):
    response = await gateway.http.post(
        "/v1/conversations", headers={"X-Widget-Key": LUCINE_KEY}, json={"page_url": "https://lucine.example/faq"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "AI"
    conversation_id = uuid.UUID(body["conversation_id"])
    claims = jwt.decode(body["customer_token"], JWT_SECRET, algorithms=["HS256"], audience="widget")
    assert claims["sub"] == str(conversation_id)
    assert claims["tenant_id"] == "lucine-di-natale"
    assert claims["exp"] - claims["iat"] >= 7 * 24 * 3600

    [command] = await gateway.commands(conversation_id, 1)
    assert isinstance(command.payload, StartConversation)
    assert command.tenant_id == "lucine-di-natale"
    assert command.conversation_id == conversation_id
    assert command.payload.locale == "it"  # the tenant's default language
    assert command.payload.page_url == "https://lucine.example/faq"


async def test_start_conversation_keeps_the_requested_locale_and_accepts_no_body(gateway):
    conversation_id, _ = await gateway.start_conversation(locale="en")
    [command] = await gateway.commands(conversation_id, 1)
    assert command.payload.locale == "en"
    response = await gateway.http.post("/v1/conversations", headers={"X-Widget-Key": LUCINE_KEY})
    assert response.status_code == 201


async def test_unknown_or_missing_widget_key_is_401(gateway):
    response = await gateway.http.post("/v1/conversations", headers={"X-Widget-Key": "wk_nope_000000"}, json={})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    response = await gateway.http.post("/v1/conversations", json={})
    assert response.status_code == 401


async def test_unsupported_locale_is_422(gateway):
    response = await gateway.http.post("/v1/conversations", headers={"X-Widget-Key": LUCINE_KEY}, json={"locale": "xx"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


async def test_posting_a_message_twice_gives_one_message_id(gateway):
    conversation_id, token = await gateway.start_conversation()
    body = {"text": "Quando apre il villaggio?", "client_message_id": "c-1"}
    first = await gateway.http.post(f"/v1/conversations/{conversation_id}/messages", json=body, headers=bearer(token))
    again = await gateway.http.post(f"/v1/conversations/{conversation_id}/messages", json=body, headers=bearer(token))
    other = await gateway.http.post(
        f"/v1/conversations/{conversation_id}/messages",
        json={**body, "client_message_id": "c-2"},
        headers=bearer(token),
    )
    assert first.status_code == again.status_code == other.status_code == 202
    assert first.json() == again.json()
    assert first.json()["message_id"] == str(uuid.uuid5(conversation_id, "c-1"))
    assert other.json() != first.json()

    commands = await gateway.commands(conversation_id, 4)
    posts = [c.payload for c in commands if isinstance(c.payload, PostCustomerMessage)]
    assert [str(p.message_id) for p in posts] == [first.json()["message_id"]] * 2 + [other.json()["message_id"]]
    assert {p.client_message_id for p in posts} == {"c-1", "c-2"}
    assert posts[0].text == "Quando apre il villaggio?"


async def test_token_of_another_conversation_is_403_and_a_bad_token_401(gateway):
    first, token = await gateway.start_conversation()
    second, _ = await gateway.start_conversation()
    body = {"text": "ciao", "client_message_id": "x"}
    response = await gateway.http.post(f"/v1/conversations/{second}/messages", json=body, headers=bearer(token))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    response = await gateway.http.get(f"/v1/conversations/{second}/messages", headers=bearer(token))
    assert response.status_code == 403

    response = await gateway.http.post(f"/v1/conversations/{first}/messages", json=body)
    assert response.status_code == 401
    forged = jwt.encode(
        {"sub": str(first), "tenant_id": "lucine-di-natale", "aud": "widget", "exp": 9999999999}, "x" * 40
    )
    response = await gateway.http.post(f"/v1/conversations/{first}/messages", json=body, headers=bearer(forged))
    assert response.status_code == 401
    expired = jwt.encode({"sub": str(first), "tenant_id": "lucine-di-natale", "aud": "widget", "exp": 1}, JWT_SECRET)
    response = await gateway.http.post(f"/v1/conversations/{first}/messages", json=body, headers=bearer(expired))
    assert response.status_code == 401
    assert await gateway.commands(second, 2, timeout=2) != []  # only its StartConversation
    assert len(await gateway.commands(second, 2, timeout=2)) == 1


async def test_too_long_text_is_422_and_a_too_large_body_413(gateway):
    conversation_id, token = await gateway.start_conversation()
    url = f"/v1/conversations/{conversation_id}/messages"
    response = await gateway.http.post(
        url, json={"text": "a" * 4001, "client_message_id": "long"}, headers=bearer(token)
    )
    assert response.status_code == 422
    assert "4000" in response.json()["error"]["message"]
    assert "text" in response.json()["error"]["message"]
    response = await gateway.http.post(
        url, json={"text": "a" * 4000, "client_message_id": "max"}, headers=bearer(token)
    )
    assert response.status_code == 202
    # The longest valid text of astral characters, each escaped as two \uXXXX: 48 KB, accepted.
    escaped = b'{"text": "' + b"\\ud83c\\udf84" * 4000 + b'", "client_message_id": "emoji"}'
    response = await gateway.http.post(
        url, content=escaped, headers={**bearer(token), "Content-Type": "application/json"}
    )
    assert response.status_code == 202, response.text

    huge = b'{"text": "' + b"a" * 70_000 + b'", "client_message_id": "huge"}'
    response = await gateway.http.post(url, content=huge, headers={**bearer(token), "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"

    async def chunks():  # no Content-Length: the limit is counted while reading
        for _ in range(70):
            yield b"a" * 1024

    response = await gateway.http.post(
        url, content=chunks(), headers={**bearer(token), "Content-Type": "application/json"}
    )
    assert response.status_code == 413

    response = await gateway.http.post(
        url, content=b"{not json", headers={**bearer(token), "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    response = await gateway.http.post(url, json={"text": "   ", "client_message_id": "blank"}, headers=bearer(token))
    assert response.status_code == 422
    response = await gateway.http.post(url, json={"text": "ok", "client_message_id": "bad id!"}, headers=bearer(token))
    assert response.status_code == 422
    response = await gateway.http.post(
        "/v1/conversations/not-a-uuid/messages", json={"text": "ok", "client_message_id": "x"}, headers=bearer(token)
    )
    assert response.status_code == 422


async def test_messages_of_one_conversation_are_rate_limited(gateway):
    conversation_id, token = await gateway.start_conversation()
    url = f"/v1/conversations/{conversation_id}/messages"
    statuses = []
    for index in range(7):
        response = await gateway.http.post(
            url, json={"text": "hi", "client_message_id": f"m{index}"}, headers=bearer(token)
        )
        statuses.append(response.status_code)
    assert statuses == [202] * 5 + [429] * 2  # the session's gateway allows 5 per window
    assert response.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    # Another conversation is not affected.
    other, other_token = await gateway.start_conversation()
    response = await gateway.http.post(
        f"/v1/conversations/{other}/messages",
        json={"text": "hi", "client_message_id": "m0"},
        headers=bearer(other_token),
    )
    assert response.status_code == 202


async def test_history_is_proxied_from_the_conversation_service(gateway):
    conversation_id, token = await gateway.start_conversation()
    url = f"/v1/conversations/{conversation_id}/messages"
    # Not materialised by the conversation service yet: empty, with the initial status.
    response = await gateway.http.get(url, headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == {"conversation_id": str(conversation_id), "status": "AI", "messages": []}

    actions = [{"type": "open_url", "label": "Biglietti", "url": "https://lucine.example/tickets"}]
    sources = [{"article_id": "orari", "title": "Orari", "score": 0.9}]
    gateway.read_api.put(
        conversation_id,
        "lucine-di-natale",
        [
            message(1, "customer", "Orari?"),
            message(2, "ai", "Dalle 17", smart_actions=actions, sources=sources, language="it"),
        ],
        status="HANDOFF_OFFERED",
    )
    data = (await gateway.http.get(url, headers=bearer(token))).json()
    assert data["status"] == "HANDOFF_OFFERED"
    assert [(m["seq"], m["sender"], m["text"]) for m in data["messages"]] == [
        (1, "customer", "Orari?"),
        (2, "ai", "Dalle 17"),
    ]
    assert data["messages"][1]["smart_actions"] == actions
    assert data["messages"][1]["sources"] == sources
    # Each message's language, when the conversation service knows it: the widget follows it.
    assert [m["language"] for m in data["messages"]] == [None, "it"]
    data = (await gateway.http.get(url, params={"after": 1}, headers=bearer(token))).json()
    assert [m["seq"] for m in data["messages"]] == [2]
    assert (await gateway.http.get(url, params={"after": -1}, headers=bearer(token))).status_code == 422

    # The conversation service says it belongs to another tenant: refused.
    gateway.read_api.put(conversation_id, "acme", [message(1)])
    assert (await gateway.http.get(url, headers=bearer(token))).status_code == 403


async def test_actions_ticket_and_rating_publish_their_commands(gateway):
    conversation_id, token = await gateway.start_conversation()
    base = f"/v1/conversations/{conversation_id}"
    response = await gateway.http.post(f"{base}/actions", json={"action": "request_operator"}, headers=bearer(token))
    assert response.status_code == 202
    assert response.json()["accepted"] is True
    ticket = {
        "name": "Maria Rossi",
        "email": "maria@example.com",
        "phone": "",
        "preferred_contact": "email",
        "message": "Vorrei informazioni sui gruppi",
    }
    assert (await gateway.http.post(f"{base}/ticket", json=ticket, headers=bearer(token))).status_code == 202
    rating = {"score": 5, "comment": "Grazie!"}
    assert (await gateway.http.post(f"{base}/rating", json=rating, headers=bearer(token))).status_code == 202

    commands = await gateway.commands(conversation_id, 4)
    payloads = [c.payload for c in commands]
    assert isinstance(payloads[1], ChooseHandoff)
    assert payloads[1].choice == "request_operator"
    assert isinstance(payloads[2], SubmitTicketDetails)
    assert payloads[2].contact.email == "maria@example.com"
    assert payloads[2].contact.phone is None
    assert payloads[2].message == "Vorrei informazioni sui gruppi"
    assert isinstance(payloads[3], RateConversation)
    assert (payloads[3].score, payloads[3].comment) == (5, "Grazie!")
    assert all(c.tenant_id == "lucine-di-natale" and c.conversation_id == conversation_id for c in commands)


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("actions", {"action": "dance"}, "action"),
        ("ticket", {"name": "Ugo", "preferred_contact": "email"}, "email or a phone"),
        ("ticket", {"name": "Ugo", "email": "ugo@example.com", "preferred_contact": "whatsapp"}, "no phone"),
        ("ticket", {"name": "Ugo", "email": "not-an-email"}, "email"),
        ("rating", {"score": 6}, "score"),
        ("rating", {"score": 0}, "score"),
    ],
)
async def test_invalid_commands_are_422(gateway, path, body, fragment):
    conversation_id, token = await gateway.start_conversation()
    response = await gateway.http.post(f"/v1/conversations/{conversation_id}/{path}", json=body, headers=bearer(token))
    assert response.status_code == 422, response.text
    assert fragment in response.json()["error"]["message"]
    assert len(await gateway.commands(conversation_id, 2, timeout=1.5)) == 1  # only the StartConversation


async def test_cors_allows_only_the_tenants_origins(gateway):
    preflight = {
        "Origin": LUCINE_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-widget-key",
    }
    response = await gateway.http.options("/v1/conversations", headers=preflight)
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == LUCINE_ORIGIN
    assert "X-Widget-Key" in response.headers["access-control-allow-headers"]
    response = await gateway.http.options("/v1/conversations", headers={**preflight, "Origin": "https://evil.example"})
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers

    response = await gateway.http.post(
        "/v1/conversations", headers={"X-Widget-Key": LUCINE_KEY, "Origin": LUCINE_ORIGIN}
    )
    assert response.status_code == 201
    assert response.headers["access-control-allow-origin"] == LUCINE_ORIGIN
    token = response.json()["customer_token"]
    conversation_id = response.json()["conversation_id"]

    # ACME's origin passes the preflight (ACME allows it) but not with Lucine's key or token.
    response = await gateway.http.options("/v1/conversations", headers={**preflight, "Origin": OTHER_ORIGIN})
    assert response.status_code == 204
    response = await gateway.http.post(
        "/v1/conversations", headers={"X-Widget-Key": LUCINE_KEY, "Origin": OTHER_ORIGIN}
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "origin_not_allowed"
    response = await gateway.http.get(
        f"/v1/conversations/{conversation_id}/messages", headers={**bearer(token), "Origin": OTHER_ORIGIN}
    )
    assert response.status_code == 403
    response = await gateway.http.post("/v1/conversations", headers={"X-Widget-Key": OTHER_KEY, "Origin": OTHER_ORIGIN})
    assert response.status_code == 201
    response = await gateway.http.post(
        "/v1/conversations", headers={"X-Widget-Key": LUCINE_KEY, "Origin": "https://evil.example"}
    )
    assert response.status_code == 403
    # No Origin: a server, not a browser.
    response = await gateway.http.post("/v1/conversations", headers={"X-Widget-Key": OTHER_KEY})
    assert response.status_code == 201


async def test_widget_script_and_demo_page(gateway):
    response = await gateway.http.get("/widget.js")
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    page = await gateway.http.get("/demo/lucine-di-natale")
    assert page.status_code == 200
    assert LUCINE_KEY in page.text
    assert "Lucine di Natale" in page.text
    assert f"{gateway.runtime.config.public_base_url}/widget.js" in page.text
    assert "__WIDGET_KEY__" not in page.text
    assert (await gateway.http.get("/demo/nobody")).status_code == 404


async def test_health_endpoints(gateway):
    assert (await gateway.http.get("/healthz")).json() == {"status": "ok"}
    ready = await gateway.http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"kafka": "ok", "database": "ok", "cache": "ok"}
