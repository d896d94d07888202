"""The team API on the real gateway (real Kafka, PostgreSQL and Redis): accounts made and changed by
the tenant's admins, invitations emailed through the outbox and accepted once through the public
routes, routing told of a new capacity at once, tenant isolation, and the audit entries."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from gateway_testkit import GIULIA, SOFIA, WILE
from sqlalchemy import func, select, update

from contracts import topics
from contracts.events import AccountEmailRequested, SetOperatorPresence
from gateway.operators import OperatorConfig, OperatorsFile, Role, load_operators
from gateway.store import InvitationRow, OperatorRow
from gateway.team_api import InvitationLink, sign_invitation

LUCINE = "lucine-di-natale"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def new_account(gateway: Any, tenant_id: str, role: Role, **extra: Any) -> tuple[str, str, str]:
    """A fresh account (username, password, operator id), so that no other test's account changes."""
    name = f"{role.value[:3]}-{uuid.uuid4().hex[:8]}"
    account = OperatorConfig(
        operator_id=f"{tenant_id}-{name}", username=name, display_name=name, password=f"pw-{name}", role=role, **extra
    )
    await load_operators(gateway.runtime.sessions, [OperatorsFile(tenant_id=tenant_id, operators=[account])])
    return name, f"pw-{name}", account.operator_id


async def token_of(gateway: Any, account: tuple[str, str, str]) -> str:
    response = await gateway.http.post("/v1/operators/login", json={"username": account[0], "password": account[1]})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def admin_token(gateway: Any, tenant_id: str = LUCINE) -> tuple[str, str]:
    """A fresh admin of the tenant: their token and operator id."""
    account = await new_account(gateway, tenant_id, Role.ADMIN)
    return await token_of(gateway, account), account[2]


async def audit_of(gateway: Any, token: str, target: str) -> list[dict[str, Any]]:
    response = await gateway.http.get("/v1/admin/audit", params={"limit": 200}, headers=bearer(token))
    assert response.status_code == 200, response.text
    return [e for e in response.json()["entries"] if e["target"] == target]


async def count_rows(gateway: Any, model: Any, *where: Any) -> int:
    async with gateway.runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def new_operator_body(**overrides: Any) -> dict[str, Any]:
    name = f"new-{uuid.uuid4().hex[:8]}"
    return {
        "username": name,
        "display_name": "Nuova Persona",
        "email": f"{name}@lucine.example",
        "password": "a-long-password",
        "role": "operator",
        "skills": ["tickets", "groups"],
        "capacity": 4,
    } | overrides


async def invite(gateway: Any, token: str, **overrides: Any) -> dict[str, Any]:
    body = {"email": f"inv-{uuid.uuid4().hex[:8]}@lucine.example", "role": "supervisor", "skills": ["groups"]}
    body |= {"capacity": 5, "language": "it"} | overrides
    response = await gateway.http.post("/v1/team/invitations", json=body, headers=bearer(token))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def emailed_token(gateway: Any, invitation_id: str) -> tuple[AccountEmailRequested, str]:
    """The email request on Kafka (keyed by the invitation) and the token of its link."""
    [envelope] = await gateway.commands(invitation_id, 1, topic=topics.TENANT_EVENTS.name)
    assert envelope.type == "tenant.account_email_requested"
    request = envelope.payload
    assert isinstance(request, AccountEmailRequested)
    assert envelope.tenant_id == LUCINE
    return request, parse_qs(urlsplit(request.link).query)["t"][0]


# ------------------------------------------------------------------------------ roles


async def test_operators_may_not_see_the_team_supervisors_read_it_admins_change_it(gateway):
    operator, supervisor = await token_of(gateway, GIULIA), await token_of(gateway, SOFIA)
    refused = await gateway.http.get("/v1/team", headers=bearer(operator))
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")
    seen = await gateway.http.get("/v1/team", headers=bearer(supervisor))
    assert seen.status_code == 200, seen.text
    giulia = next(o for o in seen.json()["operators"] if o["operator_id"] == GIULIA[2])
    assert set(giulia) == {"operator_id", "username", "display_name", "email", "role", "skills", "capacity", "active"}
    assert all(o["operator_id"].startswith("lucine-") for o in seen.json()["operators"])
    writes = [
        ("POST", "/v1/team/operators", new_operator_body()),
        ("PATCH", f"/v1/team/operators/{GIULIA[2]}", {"capacity": 2}),
        ("POST", "/v1/team/invitations", {"email": "x@lucine.example", "language": "it"}),
        ("DELETE", f"/v1/team/invitations/{uuid.uuid4()}", None),
    ]
    for token in (operator, supervisor):
        for method, path, body in writes:
            response = await gateway.http.request(method, path, json=body, headers=bearer(token))
            assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden"), path
    assert (await gateway.http.get("/v1/team")).status_code == 401


# ------------------------------------------------------------------------------ accounts


async def test_an_admin_creates_an_account_that_logs_in_with_its_role_and_the_creation_is_audited(gateway):
    token, admin_id = await admin_token(gateway)
    body = new_operator_body(username="Mixed.Case-" + uuid.uuid4().hex[:6])
    response = await gateway.http.post("/v1/team/operators", json=body, headers=bearer(token))
    assert response.status_code == 201, response.text
    created = response.json()
    username = body["username"].lower()
    assert created == {
        "operator_id": f"{LUCINE}-{username}",
        "username": username,
        "display_name": "Nuova Persona",
        "email": body["email"],
        "role": "operator",
        "skills": ["tickets", "groups"],
        "capacity": 4,
        "active": True,
    }
    login = await gateway.http.post("/v1/operators/login", json={"username": username, "password": body["password"]})
    assert login.status_code == 200, login.text
    team = (await gateway.http.get("/v1/team", headers=bearer(token))).json()
    assert created in team["operators"]
    [entry] = await audit_of(gateway, token, f"operator:{created['operator_id']}")
    assert (entry["action"], entry["actor"], entry["before"]) == ("operator.create", admin_id, None)
    assert (entry["after"]["skills"], entry["after"]["capacity"]) == (["tickets", "groups"], 4)
    assert "password_hash" not in entry["after"]
    assert "password" not in entry["after"]
    # Usernames are unique across tenants: another tenant's username is taken too.
    for taken in (username.upper(), WILE[0]):
        again = await gateway.http.post(
            "/v1/team/operators", json=new_operator_body(username=taken), headers=bearer(token)
        )
        assert (again.status_code, again.json()["error"]["code"]) == (409, "username_taken")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"password": "short"}, "password"),
        ({"email": "not-an-email"}, "email"),
        ({"role": "owner"}, "role"),
        ({"capacity": 0}, "capacity"),
        ({"capacity": 21}, "capacity"),
        ({"skills": ["No Spaces"]}, "skills"),
        ({"username": "a b"}, "username"),
        ({"display_name": "  "}, "display_name"),
        ({"tenant_id": "acme"}, "tenant_id"),
    ],
)
async def test_a_bad_account_is_a_422_naming_the_field_and_nothing_is_saved(gateway, change, field):
    token, _ = await admin_token(gateway)
    body = new_operator_body(**change)
    response = await gateway.http.post("/v1/team/operators", json=body, headers=bearer(token))
    assert (response.status_code, response.json()["error"]["code"]) == (422, "invalid_request")
    assert response.json()["error"]["message"].startswith(field), response.text
    assert await count_rows(gateway, OperatorRow, OperatorRow.username == str(body["username"]).lower()) == 0


async def test_patch_changes_the_profile_tells_routing_the_new_capacity_at_once_and_is_audited(gateway):
    token, admin_id = await admin_token(gateway)
    target = await new_account(gateway, LUCINE, Role.OPERATOR, skills=["tickets"], capacity=3)
    target_token = await token_of(gateway, target)
    online = await gateway.http.put("/v1/operators/me/status", json={"status": "online"}, headers=bearer(target_token))
    assert online.status_code == 200, online.text
    response = await gateway.http.patch(
        f"/v1/team/operators/{target[2]}",
        json={"capacity": 7, "skills": ["groups"], "display_name": "Nome Nuovo"},
        headers=bearer(token),
    )
    assert response.status_code == 200, response.text
    assert (response.json()["capacity"], response.json()["skills"], response.json()["display_name"]) == (
        7,
        ["groups"],
        "Nome Nuovo",
    )
    # The presence command with the new capacity, the operator's presence kept (online).
    commands = await gateway.commands(target[2], 2, topic=topics.OPERATOR_COMMANDS.name)
    presences = [c.payload for c in commands if isinstance(c.payload, SetOperatorPresence)]
    assert [(p.presence, p.capacity, p.skills, p.display_name) for p in presences] == [
        ("online", 3, ["tickets"], target[0]),
        ("online", 7, ["groups"], "Nome Nuovo"),
    ]
    [entry] = await audit_of(gateway, token, f"operator:{target[2]}")
    assert (entry["action"], entry["actor"]) == ("operator.update", admin_id)
    assert (entry["before"]["capacity"], entry["after"]["capacity"]) == (3, 7)
    assert (entry["before"]["skills"], entry["after"]["skills"]) == (["tickets"], ["groups"])
    # The token still works (no role change); a second identical PATCH audits nothing.
    assert (await gateway.http.get("/v1/operators", headers=bearer(target_token))).status_code == 200
    same = await gateway.http.patch(f"/v1/team/operators/{target[2]}", json={"capacity": 7}, headers=bearer(token))
    assert same.status_code == 200
    assert len(await audit_of(gateway, token, f"operator:{target[2]}")) == 1
    # A bad value is a 422 naming the field, and nothing changes.
    bad = await gateway.http.patch(
        f"/v1/team/operators/{target[2]}", json={"capacity": 2, "role": "owner"}, headers=bearer(token)
    )
    assert (bad.status_code, bad.json()["error"]["message"].split(":")[0]) == (422, "role")
    async with gateway.runtime.sessions() as session:
        row = await session.get(OperatorRow, target[2])
    assert row is not None
    assert row.capacity == 7


async def test_a_demotion_refuses_the_old_tokens_and_the_last_admin_stays_an_admin(gateway):
    acme_admin = await new_account(gateway, "acme", Role.ADMIN)
    acme_token = await token_of(gateway, acme_admin)
    # acme may have admins made by other tests: demote them all but this one first.
    team = (await gateway.http.get("/v1/team", headers=bearer(acme_token))).json()
    for other in [o for o in team["operators"] if o["role"] == "admin" and o["active"]]:
        if other["operator_id"] != acme_admin[2]:
            done = await gateway.http.patch(
                f"/v1/team/operators/{other['operator_id']}", json={"role": "operator"}, headers=bearer(acme_token)
            )
            assert done.status_code == 200, done.text
    last = await gateway.http.patch(
        f"/v1/team/operators/{acme_admin[2]}", json={"role": "supervisor"}, headers=bearer(acme_token)
    )
    assert (last.status_code, last.json()["error"]["code"]) == (409, "last_admin")
    # With a second admin the first may step down; their admin token stops working at once.
    second = await new_account(gateway, "acme", Role.ADMIN)
    stepped = await gateway.http.patch(
        f"/v1/team/operators/{acme_admin[2]}", json={"role": "supervisor"}, headers=bearer(acme_token)
    )
    assert (stepped.status_code, stepped.json()["role"]) == (200, "supervisor")
    assert (await gateway.http.get("/v1/team", headers=bearer(acme_token))).status_code == 401
    relogged = await token_of(gateway, acme_admin)
    refused = await gateway.http.post("/v1/team/operators", json=new_operator_body(), headers=bearer(relogged))
    assert refused.status_code == 403, "now a supervisor"
    second_token = await token_of(gateway, second)
    alone = await gateway.http.patch(
        f"/v1/team/operators/{second[2]}", json={"role": "operator"}, headers=bearer(second_token)
    )
    assert (alone.status_code, alone.json()["error"]["code"]) == (409, "last_admin")


# ------------------------------------------------------------------------------ invitations


async def test_an_invitation_is_emailed_with_a_link_that_accepts_once_into_an_account_with_its_profile(gateway):
    token, admin_id = await admin_token(gateway)
    invitation = await invite(gateway, token)
    assert invitation["role"] == "supervisor"
    expires = datetime.fromisoformat(invitation["expires_at"])
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)
    team = (await gateway.http.get("/v1/team", headers=bearer(token))).json()
    assert invitation["invitation_id"] in [i["invitation_id"] for i in team["invitations"]]

    request, link_token = await emailed_token(gateway, invitation["invitation_id"])
    assert (request.kind, request.email, request.language) == ("operator_invite", invitation["email"], "it")
    assert str(request.request_id) == invitation["invitation_id"]
    assert request.link.startswith(f"{gateway.runtime.config.public_base_url}/dashboard/invite?t=")
    assert request.tenant_name == "Lucine di Natale"
    shown = await gateway.http.get(f"/v1/invitations/{link_token}")
    assert shown.status_code == 200, shown.text
    assert shown.json() == {
        "tenant_name": "Lucine di Natale",
        "email": invitation["email"],
        "role": "supervisor",
        "expires_at": invitation["expires_at"],
    }

    username = f"invited-{uuid.uuid4().hex[:6]}"
    body = {"token": link_token, "username": username, "display_name": "Invitata", "password": "invited-password"}
    accepted = await gateway.http.post("/v1/invitations/accept", json=body)
    assert accepted.status_code == 201, accepted.text
    operator_id = accepted.json()["operator_id"]
    assert accepted.json() == {"operator_id": operator_id, "username": username}
    team = (await gateway.http.get("/v1/team", headers=bearer(token))).json()
    account = next(o for o in team["operators"] if o["operator_id"] == operator_id)
    assert (account["role"], account["skills"], account["capacity"]) == ("supervisor", ["groups"], 5)
    assert account["email"] == invitation["email"]
    assert invitation["invitation_id"] not in [i["invitation_id"] for i in team["invitations"]]
    login = await gateway.http.post("/v1/operators/login", json={"username": username, "password": "invited-password"})
    assert login.status_code == 200

    # Once: the same link again (another username too) is gone, and so is its page.
    for again in (body, body | {"username": f"other-{uuid.uuid4().hex[:6]}"}):
        second = await gateway.http.post("/v1/invitations/accept", json=again)
        assert (second.status_code, second.json()["error"]["code"]) == (410, "invitation_gone")
    assert (await gateway.http.get(f"/v1/invitations/{link_token}")).status_code == 410

    created = await audit_of(gateway, token, f"invitation:{invitation['invitation_id']}")
    assert [(e["action"], e["actor"]) for e in created] == [
        ("invitation.accept", operator_id),
        ("invitation.create", admin_id),
    ]
    assert (created[0]["before"]["accepted"], created[0]["after"]["accepted"]) == (False, True)
    assert request.link.split("t=")[1] not in str(created), "the link is never in the log"
    [made] = await audit_of(gateway, token, f"operator:{operator_id}")
    assert (made["action"], made["after"]["role"]) == ("operator.create", "supervisor")


async def test_a_revoked_or_expired_invitation_is_gone_and_a_forged_link_is_unknown(gateway):
    token, admin_id = await admin_token(gateway)
    revoked, expired = await invite(gateway, token), await invite(gateway, token)
    deleted = await gateway.http.delete(f"/v1/team/invitations/{revoked['invitation_id']}", headers=bearer(token))
    assert deleted.status_code == 204, deleted.text
    again = await gateway.http.delete(f"/v1/team/invitations/{revoked['invitation_id']}", headers=bearer(token))
    assert again.status_code == 204, "revoking twice changes nothing"
    [entry] = (await audit_of(gateway, token, f"invitation:{revoked['invitation_id']}"))[:1]
    assert (entry["action"], entry["actor"], entry["after"]["revoked"]) == ("invitation.revoke", admin_id, True)
    assert len(await audit_of(gateway, token, f"invitation:{revoked['invitation_id']}")) == 2  # create, revoke
    async with gateway.runtime.sessions() as session, session.begin():
        await session.execute(
            update(InvitationRow)
            .where(InvitationRow.invitation_id == uuid.UUID(expired["invitation_id"]))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    team = (await gateway.http.get("/v1/team", headers=bearer(token))).json()
    assert not {revoked["invitation_id"], expired["invitation_id"]} & {i["invitation_id"] for i in team["invitations"]}
    for invitation in (revoked, expired):
        _, link_token = await emailed_token(gateway, invitation["invitation_id"])
        username = f"late-{uuid.uuid4().hex[:6]}"
        body = {"token": link_token, "username": username, "display_name": "Tardi", "password": "late-password"}
        response = await gateway.http.post("/v1/invitations/accept", json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (410, "invitation_gone")
        assert (await gateway.http.get(f"/v1/invitations/{link_token}")).status_code == 410
        assert await count_rows(gateway, OperatorRow, OperatorRow.username == username) == 0
    # A token older than its maximum age is gone whatever the row says; one signed with another
    # secret, or altered, is no invitation at all.
    secret = gateway.runtime.config.invitation_link_secret
    old = sign_invitation(secret, InvitationLink(LUCINE, uuid.UUID(expired["invitation_id"])))
    gateway.runtime.config.invitation_ttl_seconds, ttl = -1, gateway.runtime.config.invitation_ttl_seconds
    try:
        assert (await gateway.http.get(f"/v1/invitations/{old}")).status_code == 410
    finally:
        gateway.runtime.config.invitation_ttl_seconds = ttl
    forged = sign_invitation("another-secret-of-16-chars", InvitationLink(LUCINE, uuid.UUID(revoked["invitation_id"])))
    for bad in (forged, old[:-2] + "xx"):
        response = await gateway.http.get(f"/v1/invitations/{bad}")
        assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")


async def test_an_accepted_invitation_cannot_be_revoked_and_a_taken_username_leaves_it_open(gateway):
    token, _ = await admin_token(gateway)
    invitation = await invite(gateway, token, role="operator")
    _, link_token = await emailed_token(gateway, invitation["invitation_id"])
    taken = {"token": link_token, "username": GIULIA[0], "display_name": "X", "password": "a-long-password"}
    response = await gateway.http.post("/v1/invitations/accept", json=taken)
    assert (response.status_code, response.json()["error"]["code"]) == (409, "username_taken")
    short = taken | {"username": f"ok-{uuid.uuid4().hex[:6]}", "password": "short"}
    response = await gateway.http.post("/v1/invitations/accept", json=short)
    assert (response.status_code, response.json()["error"]["message"].split(":")[0]) == (422, "password")
    accepted = await gateway.http.post("/v1/invitations/accept", json=short | {"password": "a-long-password"})
    assert accepted.status_code == 201, "the refusals left the invitation open"
    response = await gateway.http.delete(f"/v1/team/invitations/{invitation['invitation_id']}", headers=bearer(token))
    assert (response.status_code, response.json()["error"]["code"]) == (409, "invitation_accepted")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"email": "nope"}, "email"),
        ({"language": "ITA"}, "language"),
        ({"language": "de"}, "language"),  # not one of the tenant's
        ({"role": "root"}, "role"),
        ({"capacity": 50}, "capacity"),
        ({"skills": ["x" * 41]}, "skills"),
    ],
)
async def test_a_bad_invitation_is_a_422_naming_the_field_with_nothing_stored_or_emailed(gateway, change, field):
    token, admin_id = await admin_token(gateway)
    body = {"email": f"bad-{uuid.uuid4().hex[:6]}@lucine.example", "language": "it"} | change
    response = await gateway.http.post("/v1/team/invitations", json=body, headers=bearer(token))
    assert (response.status_code, response.json()["error"]["code"]) == (422, "invalid_request")
    assert response.json()["error"]["message"].startswith(field), response.text
    assert await count_rows(gateway, InvitationRow, InvitationRow.invited_by == admin_id) == 0


# ------------------------------------------------------------------------------ tenant isolation

# Each endpoint, called by a lucine admin on acme's account or invitation: 404 like an unknown one,
# nothing changed; the lists hold only the token's tenant.
ISOLATION_CASES = [
    ("GET /v1/team", None),
    ("PATCH /v1/team/operators/{id}", {"capacity": 9, "role": "operator"}),
    ("DELETE /v1/team/invitations/{id}", None),
    ("POST /v1/invitations/accept", None),
]


@pytest.mark.parametrize(("endpoint", "body"), ISOLATION_CASES, ids=[case[0] for case in ISOLATION_CASES])
async def test_another_tenants_team_is_out_of_reach(gateway, endpoint, body):
    acme_token, _ = await admin_token(gateway, "acme")
    acme_invitation = await invite(gateway, acme_token, language="en")
    acme_operator = await new_account(gateway, "acme", Role.OPERATOR)
    token, _ = await admin_token(gateway)
    method, path = endpoint.split(" ")
    if endpoint == "GET /v1/team":
        team = (await gateway.http.get(path, params={"tenant_id": "acme"}, headers=bearer(token))).json()
        assert team["tenant_id"] == LUCINE
        assert not [o for o in team["operators"] if not o["operator_id"].startswith("lucine-")]
        assert acme_invitation["invitation_id"] not in [i["invitation_id"] for i in team["invitations"]]
        return
    if endpoint == "POST /v1/invitations/accept":
        # A lucine-signed token naming acme's invitation is refused: the token names its tenant.
        link = sign_invitation(
            gateway.runtime.config.invitation_link_secret,
            InvitationLink(LUCINE, uuid.UUID(acme_invitation["invitation_id"])),
        )
        body = {"token": link, "username": f"x-{uuid.uuid4().hex[:6]}", "display_name": "X", "password": "a-password"}
        response = await gateway.http.post(path, json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")
        assert (await gateway.http.get(f"/v1/invitations/{link}")).status_code == 404
        return
    target = acme_operator[2] if "operators" in path else acme_invitation["invitation_id"]
    unknown = "acme-nobody" if "operators" in path else str(uuid.uuid4())
    for one in (target, unknown):
        response = await gateway.http.request(method, path.replace("{id}", one), json=body, headers=bearer(token))
        assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found"), response.text
    async with gateway.runtime.sessions() as session:
        operator = await session.get(OperatorRow, acme_operator[2])
        invitation = await session.get(InvitationRow, uuid.UUID(acme_invitation["invitation_id"]))
    assert operator is not None
    assert (operator.capacity, operator.role) == (3, "operator")
    assert invitation is not None
    assert invitation.revoked_at is None


# ------------------------------------------------------------------------------ the platform CLI


async def operators_cli(gateway: Any, *args: str, stdin: str) -> tuple[int, str, str]:
    """`python -m gateway.operators ...` as a process of its own, on the gateway's database."""
    settings = gateway.runtime.config
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "POSTGRES_HOST": settings.postgres_host,
        "POSTGRES_PORT": str(settings.postgres_port),
        "POSTGRES_USER": settings.postgres_user,
        "POSTGRES_PASSWORD": settings.postgres_password,
        "POSTGRES_DB": settings.postgres_db,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.operators", *args, env=env, stdin=-1, stdout=-1, stderr=-1
    )
    out, err = await process.communicate(stdin.encode())
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_cli_create_writes_an_audit_entry_as_the_platform(gateway):
    token, _ = await admin_token(gateway)
    username = f"cli-{uuid.uuid4().hex[:6]}"
    args = ["create", "--tenant", LUCINE, "--username", username, "--display-name", "Da Riga", "--password-stdin"]
    code, _, err = await operators_cli(gateway, *args, "--capacity", "4", stdin="cli-password\n")
    assert code == 0, err
    code, _, err = await operators_cli(gateway, *args, "--capacity", "6", stdin="cli-password-2\n")
    assert code == 0, err
    entries = await audit_of(gateway, token, f"operator:{LUCINE}-{username}")
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("operator.update", "platform-cli"),
        ("operator.create", "platform-cli"),
    ]
    assert entries[1]["before"] is None
    assert (entries[0]["before"]["capacity"], entries[0]["after"]["capacity"]) == (4, 6)
    assert "password_hash" not in entries[0]["after"]
