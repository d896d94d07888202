"""The assistant settings (`/v1/settings/assistant`) on the real gateway, proxied to the real
ai-responder app (its own database, Redis, and the shipped knowledge bases: lucine-di-natale's, and
museo-del-vetro's as acme's) served over HTTP: roles, tenant isolation, the audit entry, and the
ai-responder's 422 passed on with nothing saved."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from gateway_testkit import ADA, ADMIN_TOKEN, GIULIA, SOFIA, WILE, free_port

from ai_responder.admin import MIGRATIONS
from ai_responder.app import build_app
from ai_responder.config import Settings
from ai_responder.kb import load_tenant
from ai_responder.store import save_knowledge_base
from devkit.testing import Infra, create_database, drop_database
from gateway.internal import InternalApi
from gateway.operators import OperatorConfig, OperatorsFile, Role, load_operators
from servicekit.migrations import upgrade_to_head

LUCINE = "lucine-di-natale"
KB_ROOT = Path(__file__).resolve().parents[2] / "ai-responder" / "kb"
URL = "/v1/settings/assistant"


@pytest.fixture(scope="module")
async def ai_responder(infra: Infra, gateway: Any) -> AsyncIterator[str]:
    """The real ai-responder's HTTP API, without its consumer (it answers no customer here), which
    the gateway's client of the ai-responder talks to while this module runs."""
    database = await create_database(infra, "ai_responder_settings")
    with pytest.MonkeyPatch.context() as env:
        for name, value in infra.service_env(database).items():
            env.setenv(name, value)
        settings = Settings(admin_token=ADMIN_TOKEN, llm_api_key=None, kb_refresh_s=3600)
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, settings.database_url)
    app = build_app(settings)
    runtime = app.state.runtime
    async with runtime.sessions() as session, session.begin():
        await save_knowledge_base(session, load_tenant(KB_ROOT / LUCINE))
        await save_knowledge_base(session, load_tenant(KB_ROOT / "museo-del-vetro", "acme"))
    await app.state.assistant.reload()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    previous = gateway.runtime.copilot_http
    gateway.runtime.copilot_http = InternalApi("the assistant", url, timeout=20, max_connections=10)
    try:
        yield url
    finally:
        await gateway.runtime.copilot_http.close()
        gateway.runtime.copilot_http = previous
        server.should_exit = True
        await asyncio.wait_for(task, 20)
        await runtime.redis.aclose()
        await runtime.engine.dispose()
        await drop_database(infra, database)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def token_of(gateway: Any, account: tuple[str, str, str]) -> str:
    response = await gateway.http.post("/v1/operators/login", json={"username": account[0], "password": account[1]})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def new_admin(gateway: Any, tenant_id: str) -> str:
    name = f"adm-{uuid.uuid4().hex[:8]}"
    account = OperatorConfig(
        operator_id=f"{tenant_id}-{name}", username=name, display_name=name, password=f"pw-{name}", role=Role.ADMIN
    )
    await load_operators(gateway.runtime.sessions, [OperatorsFile(tenant_id=tenant_id, operators=[account])])
    return await token_of(gateway, (name, f"pw-{name}", account.operator_id))


async def read(gateway: Any, token: str) -> dict[str, Any]:
    response = await gateway.http.get(URL, headers=bearer(token))
    assert response.status_code == 200, response.text
    return dict(response.json())


def body_of(view: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = {k: v for k, v in view.items() if k not in ("tenant_id", "version", "updated_at")}
    return {**body, **changes}


async def audit(gateway: Any, token: str) -> list[dict[str, Any]]:
    response = await gateway.http.get("/v1/admin/audit", params={"limit": 200}, headers=bearer(token))
    assert response.status_code == 200, response.text
    return [e for e in response.json()["entries"] if e["action"] == "assistant.update"]


async def test_admins_change_supervisors_read_operators_are_refused(gateway: Any, ai_responder: str) -> None:
    admin_token, supervisor_token, operator_token = [await token_of(gateway, a) for a in (ADA, SOFIA, GIULIA)]
    view = await read(gateway, admin_token)
    assert view["tenant_id"] == LUCINE
    assert "parlare staff" in view["handoff_phrases"]
    assert await read(gateway, supervisor_token) == view

    for token, status in ((operator_token, 403), (supervisor_token, 403)):
        response = await gateway.http.put(URL, json=body_of(view, llm_enabled=False), headers=bearer(token))
        assert response.status_code == status, response.text
    assert (await gateway.http.get(URL, headers=bearer(operator_token))).status_code == 403
    assert (await gateway.http.get(URL)).status_code == 401
    assert await read(gateway, admin_token) == view  # nothing changed

    changed = body_of(view, answer_threshold=0.5, handoff_phrases=[*view["handoff_phrases"], "biglietto omaggio"])
    response = await gateway.http.put(URL, json=changed, headers=bearer(admin_token))
    assert response.status_code == 200, response.text
    after = response.json()
    assert after["version"] == view["version"] + 1
    assert after["answer_threshold"] == 0.5
    assert await read(gateway, supervisor_token) == after

    # The audit entry, in the gateway's database: who, and the settings before and after.
    [entry, *_] = await audit(gateway, admin_token)
    assert entry["actor"] == ADA[2]
    assert entry["target"] == "assistant"
    assert entry["before"]["version"] == view["version"]
    assert entry["before"]["answer_threshold"] == view["answer_threshold"]
    assert entry["after"]["version"] == after["version"]
    assert "biglietto omaggio" in entry["after"]["handoff_phrases"]
    assert "biglietto omaggio" not in entry["before"]["handoff_phrases"]

    # Put back for the other tests.
    response = await gateway.http.put(URL, json=body_of(view), headers=bearer(admin_token))
    assert response.status_code == 200, response.text


async def test_another_tenants_admin_reads_and_changes_only_its_own(gateway: Any, ai_responder: str) -> None:
    acme_admin = await new_admin(gateway, "acme")
    lucine_admin = await token_of(gateway, ADA)
    lucine_before = await read(gateway, lucine_admin)
    acme = await read(gateway, acme_admin)
    assert acme["tenant_id"] == "acme"
    assert acme != {**lucine_before, "tenant_id": "acme"}

    # A tenant_id in the body or the query changes nothing: the token's tenant is the one changed.
    body = body_of(acme, answer_threshold=0.6, llm_enabled=False)
    refused = await gateway.http.put(URL, json={**body, "tenant_id": LUCINE}, headers=bearer(acme_admin))
    assert refused.status_code == 422
    response = await gateway.http.put(URL, params={"tenant_id": LUCINE}, json=body, headers=bearer(acme_admin))
    assert response.status_code == 200, response.text
    assert response.json()["tenant_id"] == "acme"
    assert (await read(gateway, acme_admin))["llm_enabled"] is False
    assert await read(gateway, lucine_admin) == lucine_before

    # Each tenant's audit log has its own changes only; a supervisor of acme reads acme's settings.
    acme_entries = await audit(gateway, acme_admin)
    assert acme_entries[0]["after"]["answer_threshold"] == 0.6
    assert all(e["actor"].startswith("acme-") for e in acme_entries)
    assert all(not e["actor"].startswith("acme-") for e in await audit(gateway, lucine_admin))
    wile = await token_of(gateway, WILE)
    assert (await read(gateway, wile))["tenant_id"] == "acme"


async def test_the_ai_responders_422_is_passed_on_and_nothing_is_saved(gateway: Any, ai_responder: str) -> None:
    admin = await token_of(gateway, ADA)
    before = await read(gateway, admin)
    entries = len(await audit(gateway, admin))
    # Well-formed, so the gateway forwards it; the ai-responder knows the tenant speaks it and en only.
    actions = [
        *before["smart_actions"],
        {"id": "gift", "url": "https://example.org/gift", "label": {"de": "Gutschein"}},
    ]
    response = await gateway.http.put(
        URL, json=body_of(before, smart_actions=actions, answer_threshold=0.7), headers=bearer(admin)
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_settings"
    assert error["message"].startswith(f"smart_actions.{len(actions) - 1}.label: language(s) ['de']")

    # An action an article offers cannot go.
    kept = [a for a in before["smart_actions"] if a["id"] != "buy_tickets"]
    response = await gateway.http.put(URL, json=body_of(before, smart_actions=kept), headers=bearer(admin))
    assert response.status_code == 422
    assert "buy_tickets" in response.json()["error"]["message"]

    # Out of bounds: the gateway's own check, with the field named.
    response = await gateway.http.put(URL, json=body_of(before, unknown_threshold=0.9), headers=bearer(admin))
    assert response.status_code == 422
    assert "unknown_threshold" in response.json()["error"]["message"]

    assert await read(gateway, admin) == before
    assert len(await audit(gateway, admin)) == entries
