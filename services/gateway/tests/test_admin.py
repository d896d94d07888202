"""Tenant self-service on the real gateway (real Kafka, PostgreSQL and Redis; stand-ins for the
other services' APIs): the platform CLI (`python -m gateway.tenants`, run as a process against the
gateway's database), disabling a tenant, deactivating an operator, and the audit log."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid
from typing import Any

import websockets
from gateway_testkit import GIULIA, LUCINE_KEY, LUCINE_ORIGIN, SOFIA, WILE, message
from websockets.exceptions import ConnectionClosed

from contracts import topics
from contracts.events import SetOperatorPresence, TransferConversation
from gateway.operators import OperatorConfig, OperatorsFile, Role, load_operators

LUCINE = "lucine-di-natale"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(gateway: Any, username: str, password: str) -> dict[str, Any]:
    response = await gateway.http.post("/v1/operators/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def new_account(gateway: Any, tenant_id: str, role: Role) -> tuple[str, str, str]:
    """A fresh account (username, password, operator id), so that no other test's account changes."""
    name = f"{role.value[:3]}-{uuid.uuid4().hex[:8]}"
    account = OperatorConfig(
        operator_id=f"{tenant_id}-{name}", username=name, display_name=name, password=f"pw-{name}", role=role
    )
    await load_operators(gateway.runtime.sessions, [OperatorsFile(tenant_id=tenant_id, operators=[account])])
    return name, f"pw-{name}", account.operator_id


async def token_of(gateway: Any, account: tuple[str, str, str]) -> str:
    return str((await login(gateway, account[0], account[1]))["access_token"])


async def audit(gateway: Any, token: str, **params: Any) -> list[dict[str, Any]]:
    response = await gateway.http.get("/v1/admin/audit", params=params, headers=bearer(token))
    assert response.status_code == 200, response.text
    return list(response.json()["entries"])


async def cli(gateway: Any, *args: str) -> tuple[int, str, str]:
    """`python -m gateway.tenants ...` as a process of its own, on the gateway's database and Redis."""
    settings = gateway.runtime.config
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "POSTGRES_HOST": settings.postgres_host,
        "POSTGRES_PORT": str(settings.postgres_port),
        "POSTGRES_USER": settings.postgres_user,
        "POSTGRES_PASSWORD": settings.postgres_password,
        "POSTGRES_DB": settings.postgres_db,
        "REDIS_URL": settings.redis_url,
        "KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.tenants", *args, env=env, stdout=-1, stderr=-1
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def create_tenant(gateway: Any) -> dict[str, str]:
    tenant_id = f"t-{uuid.uuid4().hex[:8]}"
    code, out, err = await cli(
        gateway,
        "create",
        "--tenant-id",
        tenant_id,
        "--name",
        "Museo di prova",
        "--languages",
        "en,it",
        "--origin",
        "https://museo.example/",
        "--admin-username",
        f"admin-{tenant_id}",
        "--admin-email",
        f"admin@{tenant_id}.example",
    )
    assert code == 0, err
    found = dict(re.findall(r"^(widget key|password): (\S+)$", out, re.MULTILINE))
    return {
        "tenant_id": tenant_id,
        "widget_key": found["widget key"],
        "password": found["password"],
        "username": f"admin-{tenant_id}",
        "operator_id": f"{tenant_id}-admin-{tenant_id}",
    }


async def start(gateway: Any, widget_key: str) -> Any:
    return await gateway.http.post("/v1/conversations", headers={"X-Widget-Key": widget_key})


async def eventually_status(request: Any, status: int, timeout: float = 3.0) -> Any:
    """Other replicas (and this one, for a change made by the CLI) see a change within a second."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await request()
        if response.status_code == status or asyncio.get_running_loop().time() > deadline:
            return response
        await asyncio.sleep(0.1)


async def close_code(ws: Any, timeout: float = 5.0) -> int | None:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


# ------------------------------------------------------------------------------ the platform CLI


async def test_create_makes_a_tenant_with_a_widget_key_and_an_admin_and_audits_both(gateway):
    tenant = await create_tenant(gateway)
    created = await eventually_status(lambda: start(gateway, tenant["widget_key"]), 201)
    assert created.status_code == 201, created.text
    admin = await login(gateway, tenant["username"], tenant["password"])
    entries = await audit(gateway, admin["access_token"])
    assert [(e["action"], e["actor"], e["target"]) for e in entries] == [
        ("operator.create", "platform-cli", f"operator:{tenant['operator_id']}"),
        ("tenant.create", "platform-cli", f"tenant:{tenant['tenant_id']}"),
    ]
    assert all(e["before"] is None for e in entries)
    created = {
        "tenant_id": tenant["tenant_id"],
        "name": "Museo di prova",
        "languages": ["en", "it"],
        "default_language": "en",
        "allowed_origins": ["https://museo.example"],
        "disabled": False,
        "time_zone": "Europe/Rome",
        "business_hours": [],
        "profile_revision": 1,
        "appearance": {},
        "previous_key_expires_at": None,
    }
    assert {key: entries[1]["after"].get(key) for key in created} == created
    assert tenant["widget_key"] not in str(entries[1]["after"])
    assert entries[0]["after"]["role"] == "admin"
    assert entries[0]["after"]["email"] == f"admin@{tenant['tenant_id']}.example"
    # The same id again is refused; the list shows it, without its key.
    code, _, err = await cli(
        gateway, "create", "--tenant-id", tenant["tenant_id"], "--name", "X", "--admin-username", "zz-other",
        "--admin-email", "a@b.example",
    )  # fmt: skip
    assert code == 2
    assert "already exists" in err
    code, out, _ = await cli(gateway, "list")
    assert code == 0
    assert re.search(rf"^{tenant['tenant_id']} +enabled +en,it", out, re.MULTILINE), out
    assert tenant["widget_key"] not in out
    # Another tenant's admin sees none of it.
    other_admin = await new_account(gateway, LUCINE, Role.ADMIN)
    assert not [e for e in await audit(gateway, await token_of(gateway, other_admin)) if tenant["tenant_id"] in str(e)]


async def test_a_disabled_tenant_is_refused_everywhere_tokens_and_open_streams_included_until_enabled(gateway):
    tenant = await create_tenant(gateway)
    key = tenant["widget_key"]
    started = await eventually_status(lambda: start(gateway, key), 201)
    assert started.status_code == 201, started.text
    conversation_id, customer_token = started.json()["conversation_id"], started.json()["customer_token"]
    gateway.read_api.put(uuid.UUID(conversation_id), tenant["tenant_id"], [message(1, "ai", "Ciao")], status="AI")
    tokens = await login(gateway, tenant["username"], tenant["password"])
    access = tokens["access_token"]
    stream = await websockets.connect(f"{gateway.ws_url}/v1/operators/stream?access_token={access}")
    assert '"ready"' in await stream.recv()
    messages_url = f"/v1/conversations/{conversation_id}/messages"
    assert (await gateway.http.get(messages_url, headers=bearer(customer_token))).status_code == 200
    widget = await websockets.connect(
        f"{gateway.ws_url}/v1/conversations/{conversation_id}/stream?token={customer_token}"
    )
    assert '"status"' in await widget.recv() or '"status"' in await widget.recv()

    code, out, err = await cli(gateway, "disable", tenant["tenant_id"])
    assert code == 0, err
    assert await close_code(stream) == 4403, "the open operator stream is closed"
    assert await close_code(widget) == 4403, "the customer's open widget stream is closed"
    refused = await eventually_status(lambda: start(gateway, key), 403)
    assert refused.json() == {"error": {"code": "tenant_disabled", "message": "this tenant is disabled"}}
    customer = await gateway.http.get(messages_url, headers=bearer(customer_token))
    assert (customer.status_code, customer.json()["error"]["code"]) == (403, "tenant_disabled")
    async with websockets.connect(
        f"{gateway.ws_url}/v1/conversations/{conversation_id}/stream?token={customer_token}"
    ) as ws:
        assert await close_code(ws) == 4403
    api = await gateway.http.get("/v1/admin/audit", headers=bearer(access))
    assert (api.status_code, api.json()["error"]["code"]) == (401, "tenant_disabled"), "an issued token too"
    again = await gateway.http.post(
        "/v1/operators/login", json={"username": tenant["username"], "password": tenant["password"]}
    )
    assert (again.status_code, again.json()["error"]["code"]) == (403, "tenant_disabled")
    refreshed = await gateway.http.post("/v1/operators/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert (refreshed.status_code, refreshed.json()["error"]["code"]) == (403, "tenant_disabled")
    async with websockets.connect(f"{gateway.ws_url}/v1/operators/stream?access_token={access}") as ws:
        assert await close_code(ws) == 4403
    code, out, _ = await cli(gateway, "disable", tenant["tenant_id"])
    assert (code, out.strip()) == (0, f"tenant {tenant['tenant_id']} was already disabled")
    # Other tenants are untouched.
    assert (await gateway.http.get("/v1/operators", headers=bearer(await token_of(gateway, GIULIA)))).status_code == 200

    code, _, err = await cli(gateway, "enable", tenant["tenant_id"])
    assert code == 0, err
    assert (await eventually_status(lambda: start(gateway, key), 201)).status_code == 201
    assert (await gateway.http.get(messages_url, headers=bearer(customer_token))).status_code == 200
    entries = await audit(gateway, access)  # the token issued before works again
    changes = [(e["action"], e["before"]["disabled"], e["after"]["disabled"]) for e in entries[:2]]
    assert changes == [("tenant.enable", True, False), ("tenant.disable", False, True)]
    assert [e["action"] for e in entries].count("tenant.disable") == 1, "a second disable changed nothing"
    code, _, err = await cli(gateway, "disable", "no-such-tenant")
    assert (code, err.strip()) == (2, "unknown tenant no-such-tenant")


# ------------------------------------------------------------------------------ operator deactivation


async def test_a_deactivated_operator_is_refused_at_once_goes_offline_and_their_conversations_are_requeued(gateway):
    admin = await new_account(gateway, LUCINE, Role.ADMIN)
    target = await new_account(gateway, LUCINE, Role.OPERATOR)
    admin_token = await token_of(gateway, admin)
    tokens = await login(gateway, target[0], target[1])
    stream = await websockets.connect(f"{gateway.ws_url}/v1/operators/stream?access_token={tokens['access_token']}")
    assert '"ready"' in await stream.recv()
    held = {uuid.uuid4(): "WITH_OPERATOR", uuid.uuid4(): "WAITING_CUSTOMER"}
    for conversation_id, status in held.items():
        gateway.read_api.put(
            conversation_id, LUCINE, [message(1, "customer", "Aiuto")], status=status, operator_id=target[2]
        )
    assert (await gateway.http.get("/v1/operators", headers=bearer(tokens["access_token"]))).status_code == 200

    response = await gateway.http.post(f"/v1/admin/operators/{target[2]}/deactivate", headers=bearer(admin_token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["operator_id"], body["active"], body["changed"]) == (target[2], False, True)
    assert set(body["requeued"]) == {str(c) for c in held}
    # At once, with no wait: the access token, the refresh token, a login, the open stream.
    refused = await gateway.http.get("/v1/operators", headers=bearer(tokens["access_token"]))
    assert refused.status_code == 401, refused.text
    refreshed = await gateway.http.post("/v1/operators/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 401
    again = await gateway.http.post("/v1/operators/login", json={"username": target[0], "password": target[1]})
    assert again.status_code == 401
    assert await close_code(stream) == 4401
    # Routing has them offline, and each conversation they had goes back to the queue, by the admin.
    [presence] = await gateway.commands(target[2], 1, topic=topics.OPERATOR_COMMANDS.name)
    assert isinstance(presence.payload, SetOperatorPresence)
    assert presence.payload.presence == "offline"
    for conversation_id in held:
        [transfer] = await gateway.commands(conversation_id, 1, topic=topics.OPERATOR_COMMANDS.name)
        assert isinstance(transfer.payload, TransferConversation)
        assert (transfer.payload.to_operator_id, transfer.payload.operator_id) == (None, admin[2])
        assert (transfer.payload.role, transfer.tenant_id) == ("admin", LUCINE)

    [entry] = [e for e in await audit(gateway, admin_token) if e["target"] == f"operator:{target[2]}"]
    assert (entry["action"], entry["actor"]) == ("operator.deactivate", admin[2])
    assert (entry["before"]["active"], entry["after"]["active"]) == (True, False)
    assert "password_hash" not in entry["after"]

    # Again: nothing changes, and nothing is audited.
    repeat = await gateway.http.post(f"/v1/admin/operators/{target[2]}/deactivate", headers=bearer(admin_token))
    assert (repeat.status_code, repeat.json()["changed"]) == (200, False)
    activated = await gateway.http.post(f"/v1/admin/operators/{target[2]}/activate", headers=bearer(admin_token))
    assert (activated.status_code, activated.json()["changed"]) == (200, True)
    entries = [e for e in await audit(gateway, admin_token) if e["target"] == f"operator:{target[2]}"]
    assert [(e["action"], e["before"]["active"], e["after"]["active"]) for e in entries] == [
        ("operator.activate", False, True),
        ("operator.deactivate", True, False),
    ]
    # Activated again, they log in anew; the tokens issued before the deactivation stay refused.
    assert (await gateway.http.get("/v1/operators", headers=bearer(tokens["access_token"]))).status_code == 401
    fresh = await token_of(gateway, target)
    assert (await gateway.http.get("/v1/operators", headers=bearer(fresh))).status_code == 200


async def test_only_the_tenants_admins_manage_accounts_and_read_the_audit(gateway):
    admin = await new_account(gateway, LUCINE, Role.ADMIN)
    admin_token = await token_of(gateway, admin)
    for account in (GIULIA, SOFIA):  # an operator, a supervisor
        token = await token_of(gateway, account)
        for method, path in (
            ("POST", f"/v1/admin/operators/{GIULIA[2]}/deactivate"),
            ("POST", f"/v1/admin/operators/{GIULIA[2]}/activate"),
            ("GET", "/v1/admin/audit"),
        ):
            response = await gateway.http.request(method, path, headers=bearer(token))
            assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden"), path
    own = await gateway.http.post(f"/v1/admin/operators/{admin[2]}/deactivate", headers=bearer(admin_token))
    assert (own.status_code, own.json()["error"]["code"]) == (409, "own_account")
    # Another tenant's operator is not found, like an unknown one, and stays active.
    for operator_id in (WILE[2], "nobody-at-all"):
        response = await gateway.http.post(f"/v1/admin/operators/{operator_id}/deactivate", headers=bearer(admin_token))
        assert response.json() == {"error": {"code": "not_found", "message": "no such operator"}}
    assert (await gateway.http.get("/v1/operators", headers=bearer(await token_of(gateway, WILE)))).status_code == 200


async def test_the_audit_log_pages_newest_first(gateway):
    admin = await new_account(gateway, LUCINE, Role.ADMIN)
    admin_token = await token_of(gateway, admin)
    targets = [await new_account(gateway, LUCINE, Role.OPERATOR) for _ in range(3)]
    for target in targets:
        response = await gateway.http.post(f"/v1/admin/operators/{target[2]}/deactivate", headers=bearer(admin_token))
        assert response.status_code == 200, response.text
    first = await gateway.http.get("/v1/admin/audit", params={"limit": 2}, headers=bearer(admin_token))
    page = first.json()
    assert [e["target"] for e in page["entries"]] == [f"operator:{t[2]}" for t in reversed(targets[1:])]
    older = await audit(gateway, admin_token, limit=1, before=page["next_before"])
    assert [e["target"] for e in older] == [f"operator:{targets[0][2]}"]
    assert older[0]["entry_id"] < page["next_before"]


async def test_a_disabled_tenant_leaves_other_tenants_widgets_alone(gateway):
    tenant = await create_tenant(gateway)
    assert (await cli(gateway, "disable", tenant["tenant_id"]))[0] == 0
    await gateway.runtime.access.reload()  # as the replicas do within a second
    headers = {"X-Widget-Key": LUCINE_KEY, "Origin": LUCINE_ORIGIN}
    response = await gateway.http.post("/v1/conversations", headers=headers)
    assert response.status_code == 201, response.text
