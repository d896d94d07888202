"""The operator API against real Kafka, PostgreSQL and Redis, with stand-ins for the conversation
service's read API and routing's internal API (other services, serving their documented bodies)."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
import websockets
from gateway_testkit import (
    GIULIA,
    MARCO,
    OPERATOR_JWT_SECRET,
    SOFIA,
    WILE,
    free_port,
    gateway_settings,
    message,
    serve_app,
)
from websockets.exceptions import ConnectionClosed

from contracts import new_envelope, topics
from contracts.common import ContactDetails
from contracts.events import (
    AddInternalNote,
    CloseConversation,
    ConversationQueued,
    MessagePosted,
    NoteAdded,
    OfferMade,
    OperatorAssigned,
    PostOperatorMessage,
    ReleaseConversation,
    SetOperatorPresence,
    SlaBreached,
    SlaWarning,
    TicketCommandRejected,
    TicketNoteAdded,
    TicketOpened,
    TicketReplyPosted,
    TicketUpdated,
    TransferConversation,
    UpdateTicket,
)
from gateway.app import build_app
from gateway.operators import OperatorConfig, OperatorsFile, Role, load_operators

LUCINE = "lucine-di-natale"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(http: httpx.AsyncClient, account: tuple[str, str, str]) -> dict[str, Any]:
    username, password, _ = account
    response = await http.post("/v1/operators/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def access(gateway, account: tuple[str, str, str]) -> str:
    return str((await login(gateway.http, account))["access_token"])


def conversation_of(
    gateway, tenant_id: str, operator_id: str | None = None, status: str = "WITH_OPERATOR"
) -> uuid.UUID:
    """A conversation the read API knows, of `tenant_id`, with `operator_id` if given."""
    conversation_id = uuid.uuid4()
    gateway.read_api.put(
        conversation_id, tenant_id, [message(1, "customer", "Aiuto")], status=status, operator_id=operator_id
    )
    return conversation_id


async def operator_commands(gateway, key: uuid.UUID | str, count: int, timeout: float = 15) -> list[Any]:
    return await gateway.commands(key, count, timeout=timeout, topic=topics.OPERATOR_COMMANDS.name)


# ------------------------------------------------------------------------------ login


async def test_login_issues_an_access_and_a_refresh_token(gateway):
    tokens = await login(gateway.http, GIULIA)
    assert tokens["expires_in"] == 15 * 60
    claims = jwt.decode(tokens["access_token"], OPERATOR_JWT_SECRET, algorithms=["HS256"], audience="operator")
    assert (claims["sub"], claims["tenant_id"], claims["role"]) == ("lucine-giulia", LUCINE, "operator")
    assert claims["exp"] - claims["iat"] == 15 * 60
    refresh = jwt.decode(
        tokens["refresh_token"], OPERATOR_JWT_SECRET, algorithms=["HS256"], audience="operator-refresh"
    )
    assert refresh["exp"] - refresh["iat"] == 12 * 3600
    # Usernames are case-insensitive.
    response = await gateway.http.post("/v1/operators/login", json={"username": "GIULIA", "password": GIULIA[1]})
    assert response.status_code == 200


async def test_a_wrong_password_and_an_unknown_user_get_the_same_answer_in_similar_time(gateway):
    async def attempt(username: str) -> tuple[httpx.Response, float]:
        started = time.perf_counter()
        response = await gateway.http.post(
            "/v1/operators/login", json={"username": username, "password": "not-the-password"}
        )
        return response, time.perf_counter() - started

    wrong = [await attempt("marco") for _ in range(3)]
    unknown = [await attempt(f"nobody-{uuid.uuid4().hex[:6]}") for _ in range(3)]
    for response, _ in wrong + unknown:
        assert response.status_code == 401
        assert response.json() == {"error": {"code": "invalid_credentials", "message": "wrong username or password"}}
    wrong_time = statistics.median(elapsed for _, elapsed in wrong)
    unknown_time = statistics.median(elapsed for _, elapsed in unknown)
    assert 1 / 3 < unknown_time / wrong_time < 3, (wrong_time, unknown_time)
    response = await gateway.http.post("/v1/operators/login", json={"username": "marco"})
    assert response.status_code == 422


async def test_login_attempts_are_throttled_per_account_and_per_ip(
    infra, database, topic_prefix, read_api, tenants_dir
):
    settings = gateway_settings(
        infra,
        database,
        topic_prefix,
        read_api.url,
        tenants_dir,
        login_attempts_per_account=2,
        login_attempts_per_ip=5,
        routing_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        redis_url=infra.redis_url.rsplit("/", 1)[0] + f"/{1 + uuid.uuid4().int % 14}",  # counters of its own
    )
    app = build_app(settings)
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=15) as client:
        await app.state.runtime.redis.flushdb()
        username, password, _ = GIULIA
        wrong = {"username": username, "password": "wrong-password"}
        statuses = [(await client.post("/v1/operators/login", json=wrong)).status_code for _ in range(2)]
        # The third attempt on the account is refused, even with the right password.
        refused = await client.post("/v1/operators/login", json={"username": username, "password": password})
        assert [*statuses, refused.status_code] == [401, 401, 429]
        assert refused.json()["error"]["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
        # Other accounts from the same IP, up to the IP's limit (5 attempts in all).
        tokens = await login(client, MARCO)
        others = [
            (await client.post("/v1/operators/login", json={"username": f"x{n}", "password": "p"})).status_code
            for n in range(2)
        ]
        assert others == [401, 429]

        # Routing unreachable: the queue answers 503 with the error shape.
        response = await client.get("/v1/queue", headers=bearer(tokens["access_token"]))
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "unavailable"
        await app.state.runtime.redis.flushdb()


async def test_refresh_and_expiry(gateway):
    tokens = await login(gateway.http, SOFIA)
    response = await gateway.http.post("/v1/operators/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 200
    renewed = response.json()
    assert renewed["access_token"] != tokens["access_token"]
    assert (await gateway.http.get("/v1/queue", headers=bearer(renewed["access_token"]))).status_code == 200

    # Neither token passes for the other.
    response = await gateway.http.post("/v1/operators/refresh", json={"refresh_token": tokens["access_token"]})
    assert response.status_code == 401
    assert (await gateway.http.get("/v1/queue", headers=bearer(tokens["refresh_token"]))).status_code == 401

    now = int(time.time())
    claims = {"sub": "lucine-sofia", "tenant_id": LUCINE, "role": "supervisor", "name": "Sofia", "iat": now - 60}
    expired = jwt.encode({**claims, "aud": "operator", "exp": now - 1}, OPERATOR_JWT_SECRET)
    response = await gateway.http.get("/v1/queue", headers=bearer(expired))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    expired_refresh = jwt.encode({**claims, "aud": "operator-refresh", "exp": now - 1}, OPERATOR_JWT_SECRET)
    response = await gateway.http.post("/v1/operators/refresh", json={"refresh_token": expired_refresh})
    assert response.status_code == 401
    forged = jwt.encode({**claims, "aud": "operator", "exp": now + 60}, "another-secret-0123456789-0123456789")
    assert (await gateway.http.get("/v1/queue", headers=bearer(forged))).status_code == 401
    assert (await gateway.http.get("/v1/queue")).status_code == 401


# ------------------------------------------------------------------------------ presence and queue


async def test_status_publishes_the_presence_and_the_stream_repeats_it(gateway):
    token = await access(gateway, MARCO)
    response = await gateway.http.put("/v1/operators/me/status", json={"status": "online"}, headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "online"
    [command] = await operator_commands(gateway, "lucine-marco", 1)
    assert isinstance(command.payload, SetOperatorPresence)
    assert command.tenant_id == LUCINE
    assert (command.payload.presence, command.payload.capacity) == ("online", 3)
    assert command.payload.skills == ["tickets", "groups", "accessibility"]
    assert command.payload.display_name == "Marco"
    assert command.payload.chosen, "a choice: routing applies it even over an away it decided"

    # While the stream is open the presence is re-sent (every 0.5 s in these tests), as a heartbeat.
    async with await websockets.connect(f"{gateway.ws_url}/v1/operators/stream?access_token={token}") as ws:
        assert (await next_frame(ws))["type"] == "ready"
        commands = await operator_commands(gateway, "lucine-marco", 4)
        assert len(commands) >= 4
        assert all(c.payload.presence == "online" for c in commands)
        assert not any(c.payload.chosen for c in commands[1:]), "repeats are no choice"
    response = await gateway.http.put("/v1/operators/me/status", json={"status": "busy"}, headers=bearer(token))
    assert response.status_code == 422
    response = await gateway.http.put("/v1/operators/me/status", json={"status": "offline"}, headers=bearer(token))
    assert response.status_code == 200


async def test_the_queue_is_routings_for_the_operators_tenant(gateway):
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    gateway.routing_api.wait(mine, LUCINE)
    gateway.routing_api.wait(theirs, "acme")
    response = await gateway.http.get("/v1/queue", headers=bearer(await access(gateway, GIULIA)))
    assert response.status_code == 200
    body = response.json()
    assert body["tenant_id"] == LUCINE
    ids = {entry["conversation_id"] for entry in body["entries"]}
    assert str(mine) in ids
    assert str(theirs) not in ids
    assert gateway.routing_api.queue_requests[-1] == LUCINE


async def test_take_is_proxied_and_a_second_take_is_409(gateway):
    conversation_id = conversation_of(gateway, LUCINE, status="QUEUED")
    giulia, marco = await access(gateway, GIULIA), await access(gateway, MARCO)

    async def conversation_service_applies_the_assignment() -> None:
        # What the conversation service does with routing's operator_assigned, a moment later.
        while str(conversation_id) not in gateway.routing_api.taken:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        messages = [message(1, "customer", "Aiuto")]
        gateway.read_api.put(conversation_id, LUCINE, messages, status="WITH_OPERATOR", operator_id="lucine-giulia")

    applied = asyncio.create_task(conversation_service_applies_the_assignment())
    first = await gateway.http.post(f"/v1/conversations/{conversation_id}/take", headers=bearer(giulia))
    assert first.status_code == 200, first.text
    assert applied.done(), "200 once the operator can write: the conversation service shows it as theirs"
    assert first.json() == {"conversation_id": str(conversation_id), "operator_id": "lucine-giulia", "via": "take"}
    second = await gateway.http.post(f"/v1/conversations/{conversation_id}/take", headers=bearer(marco))
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "already_taken"
    cid, request = gateway.routing_api.take_requests[-1]
    assert (cid, request.tenant_id, request.operator_id, request.display_name) == (
        str(conversation_id),
        LUCINE,
        "lucine-marco",
        "Marco",
    )


# ------------------------------------------------------------------------------ commands


async def test_each_command_endpoint_publishes_its_command(gateway):
    conversation_id = conversation_of(gateway, LUCINE, operator_id="lucine-giulia")
    base = f"/v1/conversations/{conversation_id}"
    headers = bearer(await access(gateway, GIULIA))
    posted = await gateway.http.post(
        f"{base}/operator-messages",
        json={"text": "Buonasera, sono Giulia", "client_message_id": "op-1"},
        headers=headers,
    )
    assert posted.status_code == 202, posted.text
    again = await gateway.http.post(
        f"{base}/operator-messages",
        json={"text": "Buonasera, sono Giulia", "client_message_id": "op-1"},
        headers=headers,
    )
    assert again.json()["message_id"] == posted.json()["message_id"]
    for path, body in [
        ("notes", {"text": "Cliente abituale"}),
        ("transfer", {"operator_id": "lucine-marco", "reason": "gruppi"}),
        ("transfer", None),
        ("close", {"resolution": "not_resolved"}),
        ("release", None),
    ]:
        response = await gateway.http.post(f"{base}/{path}", json=body, headers=headers)
        assert response.status_code == 202, (path, response.text)
        assert response.json()["accepted"] is True

    commands = await operator_commands(gateway, conversation_id, 7)
    payloads = [c.payload for c in commands]
    assert [type(p) for p in payloads] == [
        PostOperatorMessage,
        PostOperatorMessage,
        AddInternalNote,
        TransferConversation,
        TransferConversation,
        CloseConversation,
        ReleaseConversation,
    ]
    assert all(c.tenant_id == LUCINE and c.conversation_id == conversation_id for c in commands)
    assert all((p.operator_id, p.role) == ("lucine-giulia", "operator") for p in payloads)
    assert str(payloads[0].message_id) == posted.json()["message_id"]
    assert payloads[0].text == "Buonasera, sono Giulia"
    assert payloads[2].text == "Cliente abituale"
    assert (payloads[3].to_operator_id, payloads[3].reason) == ("lucine-marco", "gruppi")
    assert payloads[4].to_operator_id is None
    assert payloads[5].outcome == "NOT_RESOLVED"

    response = await gateway.http.post(f"{base}/close", json={"resolution": "done"}, headers=headers)
    assert response.status_code == 422
    response = await gateway.http.post(f"{base}/notes", json={"text": "  "}, headers=headers)
    assert response.status_code == 422


async def test_roles_an_operator_works_only_what_no_one_else_has_a_supervisor_any_of_the_tenant(gateway):
    conversation_id = conversation_of(gateway, LUCINE, operator_id="lucine-marco")
    base = f"/v1/conversations/{conversation_id}"
    giulia, sofia = bearer(await access(gateway, GIULIA)), bearer(await access(gateway, SOFIA))
    for path, body in [
        ("operator-messages", {"text": "ciao"}),
        ("notes", {"text": "nota"}),
        ("transfer", {"operator_id": "lucine-giulia"}),
        ("close", {"resolution": "resolved"}),
        ("release", None),
    ]:
        refused = await gateway.http.post(f"{base}/{path}", json=body, headers=giulia)
        assert refused.status_code == 403, path
        assert refused.json()["error"]["code"] == "forbidden"
        accepted = await gateway.http.post(f"{base}/{path}", json=body, headers=sofia)
        assert accepted.status_code == 202, path
    commands = await operator_commands(gateway, conversation_id, 5)
    assert len(commands) == 5
    # The supervisor's role goes along: the owning services let a supervisor act on Marco's conversation.
    assert {(c.payload.operator_id, c.payload.role) for c in commands} == {("lucine-sofia", "supervisor")}
    [transfer] = [c.payload for c in commands if isinstance(c.payload, TransferConversation)]
    assert transfer.to_operator_id == "lucine-giulia"  # the supervisor reassigns Marco's conversation


# ------------------------------------------------------------------------------ tenant isolation

ISOLATION_CASES = [
    ("take", None),
    ("operator-messages", {"text": "ciao"}),
    ("notes", {"text": "nota"}),
    ("transfer", {"operator_id": "lucine-giulia"}),
    ("close", {"resolution": "resolved"}),
    ("release", None),
    ("stream", None),
    ("ticket frames", None),
    # Tickets: another tenant's ticket answers 404 like an unknown one, and is never listed.
    ("GET /v1/tickets", None),
    ("GET /v1/tickets/{id}", None),
    ("PATCH /v1/tickets/{id}", {"status": "CLOSED", "assignee_id": None}),
    ("POST /v1/tickets/{id}/notes", {"text": "nota"}),
    ("POST /v1/tickets/{id}/replies", {"text": "Buongiorno"}),
    # The tenant's lists: another tenant's conversations and operators are never in them.
    ("GET /v1/conversations", None),
    ("GET /v1/operators", None),
    # Analytics: supervisors only, and only of their own tenant (the token's, whatever is asked).
    ("GET /v1/analytics/overview", None),
    ("GET /v1/analytics/live", None),
    # Tenant administration: admins only (403 for operators and supervisors); an admin's {id} of
    # another tenant is 404 like an unknown one, and the audit log is the admin's tenant's only.
    ("POST /v1/admin/operators/{id}/deactivate", None),
    ("POST /v1/admin/operators/{id}/activate", None),
    ("GET /v1/admin/audit", None),
    # The knowledge base: supervisors and admins only, of the token's tenant whatever is asked;
    # {id} is an article or a gap only the other tenant has.
    ("GET /v1/kb/articles", None),
    ("GET /v1/kb/articles/{id}", None),
    ("PUT /v1/kb/articles/{id}", {"title": {"it": "Cani"}, "body": {"it": "I cani sono ammessi."}}),
    ("DELETE /v1/kb/articles/{id}", None),
    ("GET /v1/kb/articles/{id}/history", None),
    ("GET /v1/kb/versions", None),
    ("POST /v1/kb/rollback", {"version": 1, "article_id": "acme-only"}),
    ("POST /v1/kb/documents", None),
    ("POST /v1/kb/test", {"question": "Anvils"}),
    ("GET /v1/kb/gaps", None),
    ("POST /v1/kb/gaps/{id}/article", {"title": {"en": "Rockets"}, "body": {"en": "We sell rockets."}}),
]


@pytest.mark.parametrize(("endpoint", "body"), ISOLATION_CASES, ids=[case[0] for case in ISOLATION_CASES])
@pytest.mark.parametrize("account", [GIULIA, SOFIA], ids=["operator", "supervisor"])
async def test_another_tenants_conversation_is_404_everywhere(gateway, endpoint, body, account):
    foreign = conversation_of(gateway, "acme", operator_id=account[2])  # even "owned" by this operator's id
    gateway.routing_api.wait(foreign, "acme")
    unknown = uuid.uuid4()
    token = await access(gateway, account)
    takes_before = len(gateway.routing_api.take_requests)
    if "/v1/tickets" in endpoint:
        await another_tenants_ticket_is_404(gateway, endpoint, body, token, account)
        return
    if endpoint == "ticket frames":
        await another_tenants_ticket_frames_never_arrive(gateway, token)
        return
    if "/v1/kb/" in endpoint:
        await kb_only_of_the_tenant(gateway, endpoint, body, token, account)
        return
    if "/v1/admin/" in endpoint:
        await admin_only_of_the_tenant(gateway, endpoint, token)
        return
    if endpoint.startswith("GET /v1/analytics"):
        await analytics_only_of_the_tenant(gateway, endpoint.removeprefix("GET "), token, account, foreign)
        return
    if endpoint.startswith("GET "):
        await only_the_tenants_own_are_listed(gateway, endpoint.removeprefix("GET "), token, account, foreign)
        return
    for conversation_id in (foreign, unknown):
        if endpoint == "stream":
            async with await websockets.connect(f"{gateway.ws_url}/v1/operators/stream?access_token={token}") as ws:
                assert (await next_frame(ws))["type"] == "ready"
                await ws.send(json.dumps({"type": "subscribe", "conversation_id": str(conversation_id)}))
                frame = await next_frame(ws)
                assert frame == {
                    "type": "error",
                    "error": {"code": "not_found", "message": "no such conversation"},
                    "conversation_id": str(conversation_id),
                }
                await no_more_frames(ws, 0.5)  # none of its messages
            continue
        response = await gateway.http.post(
            f"/v1/conversations/{conversation_id}/{endpoint}", json=body, headers=bearer(token)
        )
        assert response.status_code == 404, response.text
        # The same answer as for a conversation that does not exist: nothing about it leaks.
        assert response.json() == {"error": {"code": "not_found", "message": "no such conversation"}}
    assert len(gateway.routing_api.take_requests) == takes_before
    assert await operator_commands(gateway, foreign, 1, timeout=1.5) == []


async def admin_only_of_the_tenant(gateway, endpoint: str, token: str) -> None:
    method, path = endpoint.split(" ")
    # The other tenant has an admin who deactivated one of its operators (an audit entry of its own).
    acme_admin, acme_operator = await fresh_account(gateway, "acme", "admin"), await fresh_account(gateway, "acme")
    acme_token = await access(gateway, acme_admin)
    done = await gateway.http.post(f"/v1/admin/operators/{acme_operator[2]}/deactivate", headers=bearer(acme_token))
    assert done.status_code == 200, done.text
    target = path.replace("{id}", acme_operator[2] if path.endswith("/activate") else WILE[2])
    response = await gateway.http.request(method, target, params={"tenant_id": "acme"}, headers=bearer(token))
    assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden"), "admins only"
    admin = await access(gateway, await fresh_account(gateway, LUCINE, "admin"))
    response = await gateway.http.request(method, target, params={"tenant_id": "acme"}, headers=bearer(admin))
    if method == "GET":
        assert response.status_code == 200, response.text
        assert response.json()["tenant_id"] == LUCINE
        assert "acme" not in json.dumps(response.json()["entries"]), "nothing of the other tenant's audit log"
    else:
        assert response.json() == {"error": {"code": "not_found", "message": "no such operator"}}
    # The other tenant's accounts are as they were: Wile works, the deactivated one stays so.
    assert (await gateway.http.get("/v1/operators", headers=bearer(await access(gateway, WILE)))).status_code == 200
    assert (await gateway.http.get("/v1/operators", headers=bearer(acme_token))).status_code == 200
    refused = await gateway.http.post(
        "/v1/operators/login", json={"username": acme_operator[0], "password": acme_operator[1]}
    )
    assert refused.status_code == 401


async def fresh_account(gateway, tenant_id: str, role: str = "operator") -> tuple[str, str, str]:
    name = f"{role[:3]}-{uuid.uuid4().hex[:8]}"
    account = OperatorConfig(
        operator_id=f"{tenant_id}-{name}", username=name, display_name=name, password=f"pw-{name}", role=Role(role)
    )
    await load_operators(gateway.runtime.sessions, [OperatorsFile(tenant_id=tenant_id, operators=[account])])
    return name, f"pw-{name}", account.operator_id


async def analytics_only_of_the_tenant(
    gateway, path: str, token: str, account: tuple[str, str, str], foreign: uuid.UUID
) -> None:
    params = {"from": "2025-12-01", "to": "2025-12-01", "tenant_id": "acme"}
    asked = len(gateway.analytics_api.requests)
    response = await gateway.http.get(path, params=params, headers=bearer(token))
    if account is GIULIA:
        assert response.status_code == 403, response.text  # a plain operator reads no analytics
        assert len(gateway.analytics_api.requests) == asked
        return
    assert response.status_code == 200, response.text
    assert response.json()["tenant_id"] == LUCINE
    assert {r["tenant_id"] for r in gateway.analytics_api.requests[asked:]} <= {LUCINE}
    if path.endswith("/live"):
        gateway.routing_api.seen(WILE[2], "acme")
        before = response.json()
        conversation_of(gateway, "acme", operator_id=WILE[2])  # another tenant's: never counted
        lists_before = len(gateway.read_api.list_requests)
        again = (await gateway.http.get(path, headers=bearer(token))).json()
        assert again["with_operators"] == before["with_operators"], "another tenant's conversation counted"
        assert {r["tenant_id"] for r in gateway.read_api.list_requests[lists_before:]} == {LUCINE}


async def kb_only_of_the_tenant(gateway, endpoint: str, body: Any, token: str, account: tuple[str, str, str]) -> None:
    kb = gateway.ai_responder_api.kb
    method, path = endpoint.split(" ")
    [acme_gap] = kb.gaps["acme"]
    put = path.startswith("/v1/kb/articles/") and method == "PUT"
    # A PUT adds an article of that id to the caller's tenant: a fresh id keeps the others' 404.
    article_id = f"isolation-{uuid.uuid4().hex[:8]}" if put else "acme-only"
    path = path.replace("{id}", str(acme_gap.gap_id) if "/gaps/" in path else article_id)
    # A tenant named in the query or the body changes nothing.
    options: dict[str, Any] = {"params": {"tenant_id": "acme"}, "headers": bearer(token)}
    if path.endswith("/documents"):
        options["files"] = {"file": ("incudini.md", b"# Incudini\n\nLe incudini arrivano in un giorno.")}
        options["data"] = {"tenant_id": "acme"}
    elif body is not None:
        options["json"] = {**body, "tenant_id": "acme"}
    asked, acme_versions = len(kb.requests), len(kb.versions["acme"])
    response = await gateway.http.request(method, path, **options)
    if account is GIULIA:
        assert response.status_code == 403, response.text  # a plain operator manages no knowledge base
        assert response.json()["error"]["code"] == "forbidden"
        assert len(kb.requests) == asked, "the ai-responder is never asked"
        return
    assert {tenant for _, tenant, _ in kb.requests[asked:]} == {LUCINE}, "only the token's tenant is asked"
    assert len(kb.versions["acme"]) == acme_versions, "the other tenant's knowledge base is untouched"
    foreign = ("GET", "DELETE") if "/articles/{id}" in endpoint else ("POST",) if "/gaps/" in endpoint else ()
    if method in foreign:
        assert response.status_code == 404, response.text  # the other tenant's article or gap is not found
        return
    assert response.status_code == 200, response.text
    answer = json.dumps(response.json())
    assert "Anvils ship in a day" not in answer, "nothing of the other tenant's knowledge base"
    assert "acme-only" not in answer or path.endswith("/rollback"), "(a rollback names the id it was asked)"
    if path.endswith("/gaps"):
        assert "Do you sell rockets?" not in [g["question"] for g in response.json()["groups"]]
    if path.endswith("/test"):
        assert response.json()["sources"] == [], "the other tenant's article is no answer"


async def only_the_tenants_own_are_listed(
    gateway, path: str, token: str, account: tuple[str, str, str], foreign: uuid.UUID
) -> None:
    queued_elsewhere = conversation_of(gateway, "acme", status="QUEUED")
    ours = conversation_of(gateway, LUCINE, operator_id=account[2])
    gateway.routing_api.seen(WILE[2], "acme")
    gateway.routing_api.seen(account[2], LUCINE, active=1)
    # Only this request's reads: the stand-in is shared by the module's tests (an acme admin's too).
    lists_before = len(gateway.read_api.list_requests)
    response = await gateway.http.get(path, headers=bearer(token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tenant_id"] == LUCINE
    if path == "/v1/operators":
        listed = {o["operator_id"] for o in body["operators"]}
        assert WILE[2] not in listed
        assert {GIULIA[2], MARCO[2], SOFIA[2]} <= listed, "the tenant's accounts, heard from by routing or not"
        return
    listed = {c["conversation_id"] for c in body["conversations"]}
    assert str(ours) in listed
    assert not {str(foreign), str(queued_elsewhere)} & listed
    assert {r["tenant_id"] for r in gateway.read_api.list_requests[lists_before:]} == {LUCINE}


async def test_the_conversation_list_shows_an_operator_their_own_and_the_queue_and_a_supervisor_all(gateway):
    giulias = conversation_of(gateway, LUCINE, operator_id=GIULIA[2])
    marcos = conversation_of(gateway, LUCINE, operator_id=MARCO[2])
    waiting = conversation_of(gateway, LUCINE, status="QUEUED")
    with_ai = conversation_of(gateway, LUCINE, status="AI")

    async def listed(account: tuple[str, str, str], **params: Any) -> list[str]:
        response = await gateway.http.get(
            "/v1/conversations", params=params, headers=bearer(await access(gateway, account))
        )
        assert response.status_code == 200, response.text
        return [c["conversation_id"] for c in response.json()["conversations"]]

    mine = set(await listed(GIULIA))
    assert {str(giulias), str(waiting)} <= mine
    assert not {str(marcos), str(with_ai)} & mine, "another operator's, and the assistant's, are not hers"
    assert set(await listed(GIULIA, status="QUEUED")) >= {str(waiting)}
    assert str(giulias) not in await listed(GIULIA, status="QUEUED")
    everything = await listed(SOFIA, limit=200)
    assert {str(giulias), str(marcos), str(waiting), str(with_ai)} <= set(everything)
    assert everything.index(str(with_ai)) < everything.index(str(giulias)), "the newest change first"
    assert await listed(SOFIA, limit=1) == [everything[0]]
    refused = await gateway.http.get(
        "/v1/conversations", params={"status": "NOPE"}, headers=bearer(await access(gateway, SOFIA))
    )
    assert refused.status_code == 422
    assert (await gateway.http.get("/v1/conversations")).status_code == 401


async def test_the_operator_list_joins_the_accounts_with_routings_presence_and_load(gateway):
    gateway.routing_api.seen(MARCO[2], LUCINE, presence="online", active=2)
    response = await gateway.http.get("/v1/operators", headers=bearer(await access(gateway, GIULIA)))
    assert response.status_code == 200, response.text
    operators = {o["operator_id"]: o for o in response.json()["operators"]}
    marco = operators[MARCO[2]]
    assert (marco["display_name"], marco["presence"], marco["active_conversations"]) == ("Marco", "online", 2)
    assert operators[SOFIA[2]]["role"] == "supervisor"
    ranks = [["online", "away", "offline"].index(o["presence"]) for o in operators.values()]
    assert ranks == sorted(ranks), "online first"
    assert (await gateway.http.get("/v1/operators")).status_code == 401


async def another_tenants_ticket_is_404(
    gateway, endpoint: str, body: Any, token: str, account: tuple[str, str, str]
) -> None:
    method, path = endpoint.split(" ", 1)
    foreign = gateway.tickets_api.put("acme", assignee_id=account[2])  # even "assigned" to this operator's id
    ours = gateway.tickets_api.put(LUCINE)
    if path == "/v1/tickets":
        response = await gateway.http.get(path, headers=bearer(token))
        listed = {ticket["ticket_id"] for ticket in response.json()["tickets"]}
        assert str(ours.ticket_id) in listed
        assert str(foreign.ticket_id) not in listed
        return
    for ticket_id in (foreign.ticket_id, uuid.uuid4()):
        url = path.replace("{id}", str(ticket_id))
        response = await gateway.http.request(method, url, json=body, headers=bearer(token))
        assert response.status_code == 404, response.text
        # The same answer as for a ticket that does not exist: nothing about it leaks.
        assert response.json() == {"error": {"code": "not_found", "message": "no such ticket"}}
    assert await gateway.commands(foreign.ticket_id, 1, timeout=1.5, topic=topics.TICKETS_COMMANDS.name) == []


async def another_tenants_ticket_frames_never_arrive(gateway, token: str) -> None:
    async with await websockets.connect(f"{gateway.ws_url}/v1/operators/stream?access_token={token}") as ws:
        assert (await next_frame(ws))["type"] == "ready"
        theirs, ours = ticket_opened("acme"), ticket_opened(LUCINE)
        await gateway.publish(theirs, ours)  # in this order, on one partition (keyed by the conversation)
        frame = await next_frame(ws)
        assert (frame["type"], frame["ticket_id"]) == ("ticket", str(ours.payload.ticket_id)), "acme's never came"
        await no_more_frames(ws, 0.5)


def ticket_opened(tenant_id: str, conversation_id: uuid.UUID | None = None) -> Any:
    contact = ContactDetails(name="Anna Rossi", email="anna.rossi@example.com", phone="+39 333 1234567")
    payload = TicketOpened(
        ticket_id=uuid.uuid4(),
        ticket_number="TCK-2026-000042",
        contact=contact,
        priority="high",
        subject="Rimborso del biglietto di Anna",
        first_response_due="2030-01-01T10:00:00Z",
    )
    # One conversation for every probe: one partition, so the frames come in publishing order.
    return new_envelope(payload, tenant_id=tenant_id, conversation_id=conversation_id or TICKET_PROBES)


TICKET_PROBES = uuid.uuid4()


async def test_ticket_events_reach_every_operator_of_the_tenant_once_with_no_contact_details(gateway):
    giulia, sofia, wile = [await operator_socket(gateway, account) for account in (GIULIA, SOFIA, WILE)]
    try:
        opened = ticket_opened(LUCINE)
        ticket_id, number = opened.payload.ticket_id, opened.payload.ticket_number

        def about(payload: Any, cause: Any = None) -> Any:
            return new_envelope(payload, tenant_id=LUCINE, conversation_id=TICKET_PROBES, causation=cause)

        update = about(UpdateTicket(ticket_id=ticket_id, operator_id=GIULIA[2], status="CLOSED"))
        ids = {"ticket_id": ticket_id, "ticket_number": number}
        events = [
            opened,
            opened,  # a redelivery: pushed once
            about(TicketNoteAdded(**ids, note_id=uuid.uuid4(), operator_id=GIULIA[2], text="nota interna")),
            about(TicketReplyPosted(**ids, reply_id=uuid.uuid4(), author="operator", text="Gentile Anna, ...")),
            about(
                TicketUpdated(
                    **ids,
                    status="IN_PROGRESS",
                    previous_status="OPEN",
                    priority="urgent",
                    assignee_id=GIULIA[2],
                    changed_by=GIULIA[2],
                )
            ),
            about(SlaWarning(**ids, clock="first_response", due_at="2030-01-01T10:00:00Z")),
            about(SlaBreached(**ids, clock="resolution", due_at="2030-01-02T10:00:00Z")),
            about(TicketReplyPosted(**ids, reply_id=uuid.uuid4(), author="customer", text="Grazie, Anna Rossi")),
            about(
                TicketCommandRejected(
                    ticket_id=ticket_id, command_type=update.type, code="illegal_transition", message="no"
                ),
                cause=update,
            ),
            ticket_opened("acme"),
        ]
        await gateway.publish(*events)
        expected = [
            ("ticket_opened", {"status": "OPEN", "priority": "high", "assignee_id": None, "source": "conversation"}),
            ("ticket_updated", {"status": "IN_PROGRESS", "priority": "urgent", "assignee_id": GIULIA[2]}),
            ("sla_warning", {"clock": "first_response", "sla_state": "at_risk"}),
            ("sla_breached", {"clock": "resolution", "sla_state": "breached"}),
            ("reply_posted", {"author": "customer"}),
            ("command_rejected", {"command_id": str(update.event_id), "code": "illegal_transition"}),
        ]
        for ws in (giulia, sofia):  # every operator of the tenant: tickets are the tenant's desk
            texts = [await asyncio.wait_for(ws.recv(), 10) for _ in expected]
            await no_more_frames(ws, 0.7)  # no duplicate, no note, no operator reply, nothing of acme's
            frames = [json.loads(text) for text in texts]
            assert [(f["type"], f["event"]) for f in frames] == [("ticket", event) for event, _ in expected]
            for frame, (_, data) in zip(frames, expected, strict=True):
                assert (frame["ticket_id"], frame["conversation_id"]) == (str(ticket_id), str(TICKET_PROBES))
                assert frame["data"].items() >= data.items(), frame
            assert len({f["event_id"] for f in frames}) == len(frames)
            assert frames[0]["ticket_number"] == number
            assert frames[0]["data"]["first_response_due"] == "2030-01-01T10:00:00Z"
            for text in texts:  # ids, number, status, priority and SLA only
                leaked = [
                    word for word in ("Anna", "example.com", "1234567", "Rimborso", "Grazie", "nota") if word in text
                ]
                assert leaked == [], text
        frame = await next_frame(wile)
        assert (frame["event"], frame["ticket_id"]) == ("ticket_opened", str(events[-1].payload.ticket_id))
        await no_more_frames(wile, 0.5)
    finally:
        for ws in (giulia, sofia, wile):
            await ws.close()


async def test_the_other_tenants_operator_is_kept_out_too(gateway):
    conversation_id = conversation_of(gateway, LUCINE, operator_id="lucine-giulia")
    token = await access(gateway, WILE)
    response = await gateway.http.post(
        f"/v1/conversations/{conversation_id}/operator-messages", json={"text": "hi"}, headers=bearer(token)
    )
    assert response.status_code == 404
    assert (await gateway.http.get("/v1/queue", headers=bearer(token))).json()["tenant_id"] == "acme"


# ------------------------------------------------------------------------------ stream


async def next_frame(ws: Any, timeout: float = 10) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), timeout)))


async def frames_until(ws: Any, predicate: Any, timeout: float = 10) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while not frames or not predicate(frames[-1]):
        frames.append(await next_frame(ws, max(deadline - asyncio.get_running_loop().time(), 0.01)))
    return frames


async def no_more_frames(ws: Any, wait: float = 1.0) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ws.recv(), wait)


def posted(seq: int, sender: str, text: str, status: str = "WITH_OPERATOR") -> MessagePosted:
    return MessagePosted(message_id=uuid.uuid4(), seq=seq, sender=sender, text=text, status=status)


async def operator_socket(gateway, account: tuple[str, str, str]) -> Any:
    token = await access(gateway, account)
    ws = await websockets.connect(f"{gateway.ws_url}/v1/operators/stream?access_token={token}")
    ready = await next_frame(ws)
    assert (ready["type"], ready["operator_id"]) == ("ready", account[2])
    return ws


async def test_the_stream_pushes_the_tenants_routing_events_and_not_another_tenants(gateway):
    giulia, marco, sofia, wile = [await operator_socket(gateway, account) for account in (GIULIA, MARCO, SOFIA, WILE)]
    try:
        theirs, ours = uuid.uuid4(), uuid.uuid4()
        await gateway.publish_event(ConversationQueued(position=1), theirs, tenant_id="acme")
        await gateway.publish_event(ConversationQueued(position=2, estimated_wait_seconds=40), ours)
        for ws in (giulia, marco, sofia):
            frame = await next_frame(ws)
            assert (frame["type"], frame["event"], frame["conversation_id"]) == (
                "queue",
                "conversation_queued",
                str(ours),
            )
            assert frame["data"]["position"] == 2
        frame = await next_frame(wile)
        assert frame["conversation_id"] == str(theirs)  # acme's own event, and only that one
        await no_more_frames(wile, 0.5)

        # An offer goes to the operator offered and to the supervisor; a colleague learns only that
        # the queue moved (it lists offered conversations too), not to whom.
        offer = OfferMade(offer_id=uuid.uuid4(), operator_id="lucine-giulia", expires_at="2030-01-01T00:00:00Z")
        await gateway.publish_event(offer, ours)
        for ws in (giulia, sofia):
            frame = await next_frame(ws)
            assert (frame["type"], frame["data"]["operator_id"]) == ("offer", "lucine-giulia")
        moved = await next_frame(marco)
        assert (moved["type"], moved["event"], moved["conversation_id"], moved["data"]) == (
            "queue",
            "queue_changed",
            str(ours),
            {},
        )
        await no_more_frames(marco, 0.5)
        await no_more_frames(wile, 0.5)
    finally:
        for ws in (giulia, marco, sofia, wile):
            await ws.close()


async def test_an_assigned_conversation_streams_its_messages_and_notes_with_no_gap_or_duplicate(gateway):
    conversation_id = uuid.uuid4()
    history = [message(1, "customer", "Vorrei parlare con una persona"), message(2, "system", "In coda")]
    gateway.read_api.put(conversation_id, LUCINE, history, status="QUEUED")
    customer_conversation, customer_token = await gateway.start_conversation()
    giulia = await operator_socket(gateway, GIULIA)
    widget = await websockets.connect(
        f"{gateway.ws_url}/v1/conversations/{customer_conversation}/stream?token={customer_token}"
    )
    try:
        assert (await next_frame(widget))["type"] == "status"
        await gateway.publish_event(
            OperatorAssigned(operator_id="lucine-giulia", display_name="Giulia"), conversation_id
        )
        frames = await frames_until(giulia, lambda f: f["type"] == "status")
        assert frames[0]["type"] == "assignment"
        followed = [f for f in frames if f["type"] in {"message", "status"}]
        assert {f["conversation_id"] for f in followed} == {str(conversation_id)}
        assert [f["message"]["seq"] for f in followed if f["type"] == "message"] == [1, 2]
        assert followed[-1]["status"] == "QUEUED"

        await gateway.publish_event(posted(2, "system", "In coda"), conversation_id)  # a redelivery: skipped
        await gateway.publish_event(posted(3, "operator", "Buonasera!"), conversation_id)
        frame = await next_frame(giulia)
        assert (frame["type"], frame["message"]["seq"], frame["conversation_id"]) == (
            "message",
            3,
            str(conversation_id),
        )
        note = NoteAdded(note_id=uuid.uuid4(), operator_id="lucine-giulia", text="cliente gentile")
        await gateway.publish_event(note, conversation_id)
        frame = await next_frame(giulia)
        assert (frame["type"], frame["note"]["text"]) == ("note", "cliente gentile")

        # Notes never reach a customer's socket.
        await gateway.publish_event(note, customer_conversation)
        await no_more_frames(widget, 0.7)
    finally:
        await giulia.close()
        await widget.close()


async def test_a_supervisor_can_subscribe_to_any_conversation_of_the_tenant(gateway):
    conversation_id = conversation_of(gateway, LUCINE, operator_id="lucine-marco")
    sofia, giulia = await operator_socket(gateway, SOFIA), await operator_socket(gateway, GIULIA)
    try:
        await sofia.send(json.dumps({"type": "subscribe", "conversation_id": str(conversation_id)}))
        frames = await frames_until(sofia, lambda f: f["type"] == "status")
        assert [f["message"]["seq"] for f in frames if f["type"] == "message"] == [1]
        await giulia.send(json.dumps({"type": "subscribe", "conversation_id": str(conversation_id)}))
        assert (await next_frame(giulia))["error"]["code"] == "forbidden"
        # A waiting conversation (last had by Marco) any operator may look at before taking it.
        waiting = conversation_of(gateway, LUCINE, operator_id="lucine-marco", status="QUEUED")
        await giulia.send(json.dumps({"type": "subscribe", "conversation_id": str(waiting)}))
        frames = await frames_until(giulia, lambda f: f["type"] == "status")
        assert frames[-1] == {"conversation_id": str(waiting), "type": "status", "status": "QUEUED"}
        await giulia.send(json.dumps({"type": "ping"}))
        assert await next_frame(giulia) == {"type": "pong"}
    finally:
        await sofia.close()
        await giulia.close()


async def test_any_operator_of_the_tenant_reads_a_conversation_that_became_a_ticket(gateway):
    # The ticket desk is the tenant's: its transcript ("full conversation") is too, not its summary's owner's.
    ticketed = conversation_of(gateway, LUCINE, status="TICKET_CREATED")
    with_ai = conversation_of(gateway, LUCINE, status="AI")
    giulia = await operator_socket(gateway, GIULIA)
    try:
        await giulia.send(json.dumps({"type": "subscribe", "conversation_id": str(ticketed)}))
        frames = await frames_until(giulia, lambda f: f["type"] in {"status", "error"})
        assert [f["message"]["text"] for f in frames if f["type"] == "message"] == ["Aiuto"]
        assert frames[-1]["status"] == "TICKET_CREATED"
        await giulia.send(json.dumps({"type": "subscribe", "conversation_id": str(with_ai)}))
        assert (await next_frame(giulia))["error"]["code"] == "forbidden"
    finally:
        await giulia.close()


async def test_the_stream_needs_a_valid_access_token(gateway):
    async def closed_with(url: str, first: str | None = None) -> int:
        ws = await websockets.connect(url)
        if first is not None:
            await ws.send(first)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 15)
        return closed.value.rcvd.code

    assert await closed_with(f"{gateway.ws_url}/v1/operators/stream?access_token=garbage") == 4401
    refresh = (await login(gateway.http, GIULIA))["refresh_token"]
    assert await closed_with(f"{gateway.ws_url}/v1/operators/stream?access_token={refresh}") == 4401
    assert await closed_with(f"{gateway.ws_url}/v1/operators/stream", json.dumps({"type": "hello"})) == 4401
    token = await access(gateway, GIULIA)
    async with await websockets.connect(f"{gateway.ws_url}/v1/operators/stream") as ws:
        await ws.send(json.dumps({"type": "auth", "access_token": token}))
        assert (await next_frame(ws))["type"] == "ready"


# ------------------------------------------------------------------------------ OpenAPI


async def test_openapi_declares_every_operator_error(gateway):
    paths = (await gateway.http.get("/openapi.json")).json()["paths"]
    assert set(paths["/v1/operators/login"]["post"]["responses"]) >= {"200", "401", "422", "429"}
    assert set(paths["/v1/conversations/{conversation_id}/take"]["post"]["responses"]) >= {
        "200",
        "401",
        "404",
        "409",
        "503",
    }
    for path in ("operator-messages", "notes", "transfer", "close", "release"):
        responses = paths[f"/v1/conversations/{{conversation_id}}/{path}"]["post"]["responses"]
        assert set(responses) >= {"202", "401", "403", "404", "422", "429", "503"}, path
    assert set(paths["/v1/queue"]["get"]["responses"]) >= {"200", "401", "503"}
    assert set(paths["/v1/operators/me/status"]["put"]["responses"]) >= {"200", "401", "422"}
