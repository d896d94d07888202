"""Canned responses on the real gateway (real PostgreSQL and Redis): every role of the tenant reads
them, admins change them (409 on a shortcut the language has), another tenant's are out of reach,
bad input saves nothing, and each change is audited."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from gateway_testkit import GIULIA, SOFIA, WILE
from sqlalchemy import func, select

from gateway.operators import OperatorConfig, OperatorsFile, Role, load_operators
from gateway.seed import DEMO_DIR, read_seed
from gateway.store import CannedResponseRow

LUCINE = "lucine-di-natale"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def token_of(gateway: Any, account: tuple[str, str, str]) -> str:
    response = await gateway.http.post("/v1/operators/login", json={"username": account[0], "password": account[1]})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def admin_token(gateway: Any, tenant_id: str = LUCINE) -> tuple[str, str]:
    name = f"adm-{uuid.uuid4().hex[:8]}"
    account = OperatorConfig(
        operator_id=f"{tenant_id}-{name}", username=name, display_name=name, password=f"pw-{name}", role=Role.ADMIN
    )
    await load_operators(gateway.runtime.sessions, [OperatorsFile(tenant_id=tenant_id, operators=[account])])
    return await token_of(gateway, (name, f"pw-{name}", account.operator_id)), account.operator_id


def body(**overrides: Any) -> dict[str, Any]:
    return {"language": "it", "shortcut": f"s-{uuid.uuid4().hex[:8]}", "title": "Saluto", "text": "Ciao!"} | overrides


async def create(gateway: Any, token: str, **overrides: Any) -> dict[str, Any]:
    response = await gateway.http.post("/v1/canned-responses", json=body(**overrides), headers=bearer(token))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def listed(gateway: Any, token: str, **params: str) -> list[dict[str, Any]]:
    response = await gateway.http.get("/v1/canned-responses", params=params, headers=bearer(token))
    assert response.status_code == 200, response.text
    return list(response.json()["responses"])


async def audit_of(gateway: Any, token: str, target: str) -> list[dict[str, Any]]:
    response = await gateway.http.get("/v1/admin/audit", params={"limit": 200}, headers=bearer(token))
    assert response.status_code == 200, response.text
    return [e for e in response.json()["entries"] if e["target"] == target]


async def count_of(gateway: Any, *where: Any) -> int:
    async with gateway.runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(CannedResponseRow).where(*where)) or 0)


async def test_the_shipped_demo_responses_load_through_the_api_and_every_role_reads_them(gateway):
    token, _ = await admin_token(gateway)
    shipped = read_seed(DEMO_DIR / f"{LUCINE}.yaml").canned_responses  # what `gateway.seed` posts
    english = {r["shortcut"] for r in shipped if r["language"] == "en"}
    assert english
    for response in shipped:
        await create(gateway, token, **response)
    for account in (GIULIA, SOFIA):  # an operator, a supervisor
        seen = await listed(gateway, await token_of(gateway, account))
        assert {r["shortcut"] for r in seen} >= {r["shortcut"] for r in shipped}
        assert {"response_id", "language", "shortcut", "title", "text", "created_at", "updated_at"} == set(seen[0])
    italian = await listed(gateway, token, language="it")
    assert {r["language"] for r in italian} == {"it"}
    assert [r["shortcut"] for r in italian] == sorted(r["shortcut"] for r in italian)
    assert {r["shortcut"] for r in await listed(gateway, token, language="en")} >= english
    bad = await gateway.http.get("/v1/canned-responses", params={"language": "ita"}, headers=bearer(token))
    assert (bad.status_code, bad.json()["error"]["message"].split(":")[0]) == (422, "query.language")
    assert (await gateway.http.get("/v1/canned-responses")).status_code == 401


async def test_admins_add_change_and_delete_with_an_audit_entry_each(gateway):
    token, admin_id = await admin_token(gateway)
    created = await create(gateway, token, shortcut="  Orari-Sera ")
    assert created["shortcut"] == "orari-sera"
    path = f"/v1/canned-responses/{created['response_id']}"
    changed = await gateway.http.put(
        path, json=body(shortcut="orari-sera", title="Orari", text="Aperti fino alle 23."), headers=bearer(token)
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["title"], changed.json()["text"]) == ("Orari", "Aperti fino alle 23.")
    assert changed.json()["updated_at"] > created["updated_at"]
    deleted = await gateway.http.delete(path, headers=bearer(token))
    assert deleted.status_code == 204
    assert created["response_id"] not in [r["response_id"] for r in await listed(gateway, token)]
    assert (await gateway.http.delete(path, headers=bearer(token))).status_code == 404
    entries = await audit_of(gateway, token, f"canned:{created['response_id']}")
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("canned.delete", admin_id),
        ("canned.update", admin_id),
        ("canned.create", admin_id),
    ]
    assert (entries[1]["before"]["title"], entries[1]["after"]["title"]) == ("Saluto", "Orari")
    assert (entries[2]["before"], entries[0]["after"]) == (None, None)
    assert entries[0]["before"]["text"] == "Aperti fino alle 23."


async def test_a_shortcut_is_unique_per_language_of_a_tenant(gateway):
    token, _ = await admin_token(gateway)
    first = await create(gateway, token)
    shortcut = first["shortcut"]
    taken = await gateway.http.post("/v1/canned-responses", json=body(shortcut=shortcut), headers=bearer(token))
    assert (taken.status_code, taken.json()["error"]["code"]) == (409, "shortcut_taken")
    await create(gateway, token, shortcut=shortcut, language="en")  # another language may have it
    acme_token, _ = await admin_token(gateway, "acme")
    await create(gateway, acme_token, shortcut=shortcut)  # and another tenant
    other = await create(gateway, token)
    renamed = await gateway.http.put(
        f"/v1/canned-responses/{other['response_id']}", json=body(shortcut=shortcut), headers=bearer(token)
    )
    assert (renamed.status_code, renamed.json()["error"]["code"]) == (409, "shortcut_taken")
    assert [r["shortcut"] for r in await listed(gateway, token) if r["response_id"] == other["response_id"]] == [
        other["shortcut"]
    ]


async def test_only_admins_change_them(gateway):
    token, _ = await admin_token(gateway)
    existing = await create(gateway, token)
    for account in (GIULIA, SOFIA):
        other = await token_of(gateway, account)
        for method, path, payload in (
            ("POST", "/v1/canned-responses", body()),
            ("PUT", f"/v1/canned-responses/{existing['response_id']}", body()),
            ("DELETE", f"/v1/canned-responses/{existing['response_id']}", None),
        ):
            response = await gateway.http.request(method, path, json=payload, headers=bearer(other))
            assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden"), path
    assert [r for r in await listed(gateway, token) if r["response_id"] == existing["response_id"]] == [existing]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"language": "italiano"}, "language"),
        ({"shortcut": "two words"}, "shortcut"),
        ({"shortcut": "/ciao"}, "shortcut"),
        ({"shortcut": "x" * 41}, "shortcut"),
        ({"title": " "}, "title"),
        ({"text": ""}, "text"),
        ({"text": "x" * 4001}, "text"),
        ({"text": "Buongiorno\u0000"}, "text"),  # PostgreSQL stores no NUL: refused here, not there
        ({"tenant_id": "acme"}, "tenant_id"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field_and_nothing_is_saved(gateway, change, field):
    token, _ = await admin_token(gateway)
    existing = await create(gateway, token)
    saved = await count_of(gateway, CannedResponseRow.tenant_id == LUCINE)
    response = await gateway.http.post("/v1/canned-responses", json=body(**change), headers=bearer(token))
    assert (response.status_code, response.json()["error"]["code"]) == (422, "invalid_request")
    assert response.json()["error"]["message"].startswith(field), response.text
    put = await gateway.http.put(
        f"/v1/canned-responses/{existing['response_id']}", json=body(**change), headers=bearer(token)
    )
    assert (put.status_code, put.json()["error"]["message"].split(":")[0]) == (422, field)
    assert await count_of(gateway, CannedResponseRow.tenant_id == LUCINE) == saved
    assert [r for r in await listed(gateway, token) if r["response_id"] == existing["response_id"]] == [existing]
    assert [e["action"] for e in await audit_of(gateway, token, f"canned:{existing['response_id']}")] == [
        "canned.create"
    ]


# Each endpoint, called by a lucine account on acme's response: 404 like an unknown one, nothing
# changed; the list holds only the token's tenant whatever is asked.
ISOLATION_CASES = [
    ("GET /v1/canned-responses", None),
    ("PUT /v1/canned-responses/{id}", {"language": "en", "shortcut": "mine", "title": "Mine", "text": "Mine."}),
    ("DELETE /v1/canned-responses/{id}", None),
]


@pytest.mark.parametrize(("endpoint", "body_"), ISOLATION_CASES, ids=[case[0] for case in ISOLATION_CASES])
async def test_another_tenants_responses_are_out_of_reach(gateway, endpoint, body_):
    acme_token, _ = await admin_token(gateway, "acme")
    acme = await create(gateway, acme_token, language="en", text="ACME only")
    method, path = endpoint.split(" ")
    if method == "GET":
        for account in (GIULIA, SOFIA):
            seen = await listed(gateway, await token_of(gateway, account), tenant_id="acme")
            assert acme["response_id"] not in [r["response_id"] for r in seen]
            assert "ACME only" not in [r["text"] for r in seen]
        assert acme in await listed(gateway, await token_of(gateway, WILE))
        return
    token, _ = await admin_token(gateway)
    for one in (acme["response_id"], str(uuid.uuid4())):
        response = await gateway.http.request(method, path.replace("{id}", one), json=body_, headers=bearer(token))
        assert response.json() == {"error": {"code": "not_found", "message": "no such canned response"}}
    assert [r for r in await listed(gateway, acme_token) if r["response_id"] == acme["response_id"]] == [acme]
