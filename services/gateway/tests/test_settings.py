"""The tenant's settings on the real gateway (real Kafka, PostgreSQL and Redis): the profile, the
widget's origins and appearance, the key's rotation, and the widget's public configuration.

Changes are made on tenants of their own (made here as the platform CLI makes them), so that the
demo tenant the other tests use keeps its key, origins and languages; the demo tenant is read, and
only written to show that another tenant's admin cannot."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from gateway_testkit import ADA, GIULIA, LUCINE_KEY, OTHER_KEY, SOFIA, WILE

from contracts import topics
from gateway.operators import OperatorConfig, OperatorsFile, Role, hash_password, load_operators
from gateway.tenants import NewTenant, TenantConfig, create_tenant, new_widget_key

LUCINE = "lucine-di-natale"
MUSEO_ORIGIN = "https://museo.example"
GOOD_PROFILE = {
    "name": "Museo del Vetro",
    "languages": ["it", "en", "de"],
    "default_language": "it",
    "time_zone": "Europe/Berlin",
    "business_hours": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "18:00"}],
}
GOOD_APPEARANCE = {
    "primary_color": "#1D4ED8",
    "accent_color": "#f59e0b",
    "position": "bottom-left",
    "texts": {"it": {"greeting": "Benvenuti al museo!", "operator_button": "Un operatore, grazie"}},
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(gateway: Any, username: str, password: str) -> str:
    response = await gateway.http.post("/v1/operators/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def new_tenant(gateway: Any) -> dict[str, str]:
    """A tenant (it, en) with its admin, made as `python -m gateway.tenants create` makes one."""
    tenant_id = f"s-{uuid.uuid4().hex[:8]}"
    password = f"pw-{uuid.uuid4().hex}"
    new = NewTenant(
        tenant=TenantConfig(
            tenant_id=tenant_id,
            name="Museo",
            widget_key=new_widget_key(),
            allowed_origins=[MUSEO_ORIGIN],
            default_language="it",
        ),
        languages=["it", "en"],
        admin_username=f"adm-{tenant_id}",
        admin_email=f"admin@{tenant_id}.example",
        admin_display_name="Admin",
    )
    row, _ = await create_tenant(gateway.runtime.sessions, new, await asyncio.to_thread(hash_password, password))
    await gateway.runtime.tenants.refresh()
    token = await login(gateway, f"adm-{tenant_id}", password)
    return {"tenant_id": tenant_id, "widget_key": row.widget_key, "token": token}


async def account(gateway: Any, tenant_id: str, role: Role) -> str:
    """A fresh account's access token."""
    name = f"{role.value[:3]}-{uuid.uuid4().hex[:8]}"
    config = OperatorConfig(
        operator_id=f"{tenant_id}-{name}", username=name, display_name=name, password=f"pw-{name}", role=role
    )
    await load_operators(gateway.runtime.sessions, [OperatorsFile(tenant_id=tenant_id, operators=[config])])
    return await login(gateway, name, f"pw-{name}")


async def audit(gateway: Any, token: str) -> list[dict[str, Any]]:
    response = await gateway.http.get("/v1/admin/audit", headers=bearer(token))
    assert response.status_code == 200, response.text
    return list(response.json()["entries"])


async def get(gateway: Any, path: str, token: str) -> dict[str, Any]:
    response = await gateway.http.get(path, headers=bearer(token))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def widget_config(gateway: Any, key: str, origin: str | None = None) -> Any:
    headers = {"X-Widget-Key": key} | ({"Origin": origin} if origin else {})
    return await gateway.http.get("/v1/widget/config", headers=headers)


async def profile_events(gateway: Any, tenant_id: str, count: int) -> list[dict[str, Any]]:
    """The tenant's `tenant.profile_changed` events on the (prefixed) tenant topic, oldest first."""
    envelopes = await gateway.commands(tenant_id, count, topic=topics.TENANT_EVENTS.name)
    return [e.payload.model_dump(mode="json") for e in envelopes if e.type == "tenant.profile_changed"]


# ------------------------------------------------------------------------------ roles and tenants


async def test_admins_write_supervisors_read_operators_are_refused(gateway: Any) -> None:
    admin = await login(gateway, ADA[0], ADA[1])
    supervisor = await login(gateway, SOFIA[0], SOFIA[1])
    operator = await login(gateway, GIULIA[0], GIULIA[1])

    for token in (admin, supervisor):
        profile = await get(gateway, "/v1/settings/profile", token)
        assert profile["tenant_id"] == LUCINE
        assert profile["name"] == "Lucine di Natale"
        assert profile["default_language"] == "it"
        widget = await get(gateway, "/v1/settings/widget", token)
        assert widget["widget_key"] == LUCINE_KEY
        assert widget["embed_snippet"] == (
            f'<script src="{gateway.runtime.config.public_base_url.rstrip("/")}/widget.js" '
            f'data-widget-key="{LUCINE_KEY}" defer></script>'
        )
        assert widget["previous_key_expires_at"] is None

    profile = await get(gateway, "/v1/settings/profile", supervisor)
    widget = await get(gateway, "/v1/settings/widget", supervisor)
    body = {key: profile[key] for key in ("name", "languages", "default_language", "time_zone", "business_hours")}
    writes = [
        ("PUT", "/v1/settings/profile", body),
        ("PUT", "/v1/settings/widget", {"allowed_origins": widget["allowed_origins"]}),
        ("POST", "/v1/settings/widget/rotate-key", {"grace_seconds": 0}),
    ]
    for method, path, json_body in writes:
        response = await gateway.http.request(method, path, json=json_body, headers=bearer(supervisor))
        assert response.status_code == 403, (path, response.text)
    for method, path, json_body in [("GET", "/v1/settings/profile", None), ("GET", "/v1/settings/widget", None)]:
        response = await gateway.http.request(method, path, json=json_body, headers=bearer(operator))
        assert response.status_code == 403, (path, response.text)
    for method, path, json_body in writes:
        response = await gateway.http.request(method, path, json=json_body, headers=bearer(operator))
        assert response.status_code == 403, (path, response.text)
        assert (await gateway.http.request(method, path, json=json_body)).status_code == 401
    # Nothing changed: the same revision, the same key.
    assert (await get(gateway, "/v1/settings/profile", admin))["profile_revision"] == profile["profile_revision"]
    assert (await get(gateway, "/v1/settings/widget", admin))["widget_key"] == LUCINE_KEY


async def test_another_tenants_admin_sees_and_changes_only_their_own(gateway: Any) -> None:
    lucine_admin = await login(gateway, ADA[0], ADA[1])
    lucine_before = (
        await get(gateway, "/v1/settings/profile", lucine_admin),
        await get(gateway, "/v1/settings/widget", lucine_admin),
    )
    acme_admin = await account(gateway, "acme", Role.ADMIN)
    acme_supervisor = await login(gateway, WILE[0], WILE[1])

    acme = await get(gateway, "/v1/settings/profile", acme_admin)
    assert acme["tenant_id"] == "acme"
    assert acme["name"] == "ACME"
    assert (await get(gateway, "/v1/settings/widget", acme_supervisor))["widget_key"] == OTHER_KEY
    # A body naming lucine changes nothing of lucine (the token's tenant, always): acme's own
    # profile is saved as it was, with its next revision.
    body = {key: acme[key] for key in ("name", "languages", "default_language", "time_zone", "business_hours")}
    response = await gateway.http.put(
        "/v1/settings/profile", json={**body, "tenant_id": LUCINE}, headers=bearer(acme_admin)
    )
    assert response.status_code == 422, response.text  # no such field
    response = await gateway.http.put("/v1/settings/profile", json=body, headers=bearer(acme_admin))
    assert response.status_code == 200, response.text
    assert response.json()["tenant_id"] == "acme"
    assert response.json()["profile_revision"] == acme["profile_revision"] + 1

    assert (
        await get(gateway, "/v1/settings/profile", lucine_admin),
        await get(gateway, "/v1/settings/widget", lucine_admin),
    ) == lucine_before
    assert not [e for e in await audit(gateway, lucine_admin) if "acme" in json.dumps(e)]


# ------------------------------------------------------------------------------ the profile


async def test_a_profile_change_is_saved_audited_and_announced_with_the_next_revision(gateway: Any) -> None:
    tenant = await new_tenant(gateway)
    before = await get(gateway, "/v1/settings/profile", tenant["token"])
    assert before["languages"] == ["it", "en"]
    assert before["time_zone"] == "Europe/Rome"

    response = await gateway.http.put("/v1/settings/profile", json=GOOD_PROFILE, headers=bearer(tenant["token"]))
    assert response.status_code == 200, response.text
    saved = response.json()
    assert saved == {
        **GOOD_PROFILE,
        "tenant_id": tenant["tenant_id"],
        "profile_revision": before["profile_revision"] + 1,
    }
    assert await get(gateway, "/v1/settings/profile", tenant["token"]) == saved

    [entry, *_] = await audit(gateway, tenant["token"])
    assert entry["action"] == "tenant.update_profile"
    assert entry["target"] == f"tenant:{tenant['tenant_id']}"
    assert entry["before"]["name"] == "Museo"
    assert entry["before"]["time_zone"] == "Europe/Rome"
    assert entry["after"]["name"] == "Museo del Vetro"
    assert entry["after"]["languages"] == ["it", "en", "de"]
    assert entry["after"]["business_hours"] == GOOD_PROFILE["business_hours"]
    assert entry["after"]["profile_revision"] == saved["profile_revision"]
    assert tenant["widget_key"] not in json.dumps(entry)

    events = await profile_events(gateway, tenant["tenant_id"], 2)
    assert [e["revision"] for e in events] == [before["profile_revision"], saved["profile_revision"]]
    assert events[-1] == {
        "tenant_id": tenant["tenant_id"],
        "revision": saved["profile_revision"],
        "name": "Museo del Vetro",
        "languages": ["it", "en", "de"],
        "time_zone": "Europe/Berlin",
        "business_hours": GOOD_PROFILE["business_hours"],
        "disabled": False,
    }
    # The directory follows: the widget's configuration names the new languages.
    config = (await widget_config(gateway, tenant["widget_key"])).json()
    assert (config["tenant_name"], config["languages"]) == ("Museo del Vetro", ["it", "en", "de"])


BAD_PROFILES = [
    ({"languages": ["it", "xx"]}, "unknown language 'xx'"),
    ({"time_zone": "Europe/Atlantis"}, "time_zone"),
    ({"business_hours": [{"days": ["mon"], "start": "18:00", "end": "09:00"}]}, "must end after it starts"),
    ({"default_language": "fr"}, "default_language"),
    ({"languages": ["it", "it"]}, "languages"),
    ({"name": ""}, "name"),
]


@pytest.mark.parametrize(("change", "named"), BAD_PROFILES)
async def test_a_bad_profile_is_a_422_naming_the_field_and_nothing_is_saved(
    gateway: Any, change: dict[str, Any], named: str
) -> None:
    tenant = await new_tenant(gateway)
    before = await get(gateway, "/v1/settings/profile", tenant["token"])
    entries = await audit(gateway, tenant["token"])

    response = await gateway.http.put(
        "/v1/settings/profile", json={**GOOD_PROFILE, **change}, headers=bearer(tenant["token"])
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    assert named in response.json()["error"]["message"]
    assert await get(gateway, "/v1/settings/profile", tenant["token"]) == before
    assert await audit(gateway, tenant["token"]) == entries


# ------------------------------------------------------------------------------ the widget


async def test_widget_settings_are_saved_audited_and_drawn_by_the_widget(gateway: Any) -> None:
    tenant = await new_tenant(gateway)
    key = tenant["widget_key"]
    # Never set: the widget's own look, the tenant's languages, no texts.
    default = await widget_config(gateway, key, MUSEO_ORIGIN)
    assert default.status_code == 200, default.text
    assert default.headers["access-control-allow-origin"] == MUSEO_ORIGIN
    assert default.json() == {
        "tenant_name": "Museo",
        "languages": ["it", "en"],
        "default_language": "it",
        "appearance": {"primary_color": "#0e3b2c", "accent_color": "#e0b54a", "position": "bottom-right", "texts": {}},
        # A tenant the notifier has no senders for: its customers are written to by email.
        "channels": ["email"],
    }

    body = {"allowed_origins": ["https://shop.museo.example/", "http://localhost:3000"], "appearance": GOOD_APPEARANCE}
    response = await gateway.http.put("/v1/settings/widget", json=body, headers=bearer(tenant["token"]))
    assert response.status_code == 200, response.text
    saved = response.json()
    assert saved["allowed_origins"] == ["https://shop.museo.example", "http://localhost:3000"]
    appearance = {**GOOD_APPEARANCE, "primary_color": "#1d4ed8"}
    appearance["texts"] = {
        "it": {"greeting": "Benvenuti al museo!", "operator_button": "Un operatore, grazie"}
        | {"launcher_label": None, "continue_button": None}
    }
    assert saved["appearance"] == appearance
    assert await get(gateway, "/v1/settings/widget", tenant["token"]) == saved

    [entry, *_] = await audit(gateway, tenant["token"])
    assert entry["action"] == "widget.update"
    assert entry["before"] == {"allowed_origins": [MUSEO_ORIGIN], "appearance": {}}
    assert entry["after"]["allowed_origins"] == saved["allowed_origins"]
    assert entry["after"]["appearance"]["primary_color"] == "#1d4ed8"
    assert key not in json.dumps(entry)

    # The widget's configuration at once, and the origins: the new one allowed, the old one not.
    config = await widget_config(gateway, key, "https://shop.museo.example")
    assert config.status_code == 200, config.text
    assert config.json()["appearance"] == appearance
    assert (await widget_config(gateway, key, MUSEO_ORIGIN)).status_code == 403
    # The widget routes follow the same origins.
    started = await gateway.http.post(
        "/v1/conversations", headers={"X-Widget-Key": key, "Origin": "http://localhost:3000"}
    )
    assert started.status_code == 201, started.text


BAD_WIDGETS = [
    ({"appearance": {**GOOD_APPEARANCE, "primary_color": "green"}}, "appearance.primary_color"),
    ({"appearance": {**GOOD_APPEARANCE, "accent_color": "#12345"}}, "appearance.accent_color"),
    ({"allowed_origins": ["not a url"]}, "allowed_origins"),
    ({"allowed_origins": ["https://museo.example/shop"]}, "allowed_origins"),
    ({"appearance": {**GOOD_APPEARANCE, "position": "top-left"}}, "appearance.position"),
    ({"appearance": {**GOOD_APPEARANCE, "texts": {"de": {"greeting": "Hallo"}}}}, "appearance.texts.de"),
    ({"appearance": {**GOOD_APPEARANCE, "texts": {"it": {"greeting": "x" * 501}}}}, "greeting"),
]


@pytest.mark.parametrize(("change", "named"), BAD_WIDGETS)
async def test_bad_widget_settings_are_a_422_naming_the_field_and_nothing_is_saved(
    gateway: Any, change: dict[str, Any], named: str
) -> None:
    tenant = await new_tenant(gateway)
    before = await get(gateway, "/v1/settings/widget", tenant["token"])
    entries = await audit(gateway, tenant["token"])

    body = {"allowed_origins": [MUSEO_ORIGIN, "https://other.example"], "appearance": GOOD_APPEARANCE} | change
    response = await gateway.http.put("/v1/settings/widget", json=body, headers=bearer(tenant["token"]))
    assert response.status_code == 422, response.text
    assert named in response.json()["error"]["message"]
    assert await get(gateway, "/v1/settings/widget", tenant["token"]) == before
    assert await audit(gateway, tenant["token"]) == entries


async def test_the_widget_configuration_needs_a_known_key(gateway: Any) -> None:
    assert (await gateway.http.get("/v1/widget/config")).status_code == 401
    assert (await widget_config(gateway, "wk_never_issued_anywhere")).status_code == 401
    lucine = await widget_config(gateway, LUCINE_KEY)
    assert lucine.status_code == 200, lucine.text
    assert lucine.json()["tenant_name"] == "Lucine di Natale"
    assert lucine.json()["appearance"]["primary_color"] == "#0e3b2c"


# ------------------------------------------------------------------------------ the key's rotation


async def test_a_rotated_key_works_for_its_grace_period_then_is_refused_like_an_unknown_key(gateway: Any) -> None:
    tenant = await new_tenant(gateway)
    old = tenant["widget_key"]
    unknown = await widget_config(gateway, "wk_never_issued_anywhere")
    assert unknown.status_code == 401

    response = await gateway.http.post(
        "/v1/settings/widget/rotate-key", json={"grace_seconds": 1}, headers=bearer(tenant["token"])
    )
    assert response.status_code == 200, response.text
    new = response.json()["widget_key"]
    assert new != old
    assert f'data-widget-key="{new}"' in response.json()["embed_snippet"]
    assert response.json()["previous_key_expires_at"] is not None
    widget = await get(gateway, "/v1/settings/widget", tenant["token"])
    assert widget["widget_key"] == new
    assert widget["previous_key_expires_at"] == response.json()["previous_key_expires_at"]

    # Within the grace period both keys work, for the configuration and for a conversation.
    assert (await widget_config(gateway, old)).status_code == 200
    assert (await widget_config(gateway, new)).status_code == 200
    started = await gateway.http.post("/v1/conversations", headers={"X-Widget-Key": old})
    assert started.status_code == 201, started.text

    await asyncio.sleep(1.2)
    refused = await widget_config(gateway, old)
    assert (refused.status_code, refused.json()) == (unknown.status_code, unknown.json())
    refused_start = await gateway.http.post("/v1/conversations", headers={"X-Widget-Key": old})
    assert refused_start.status_code == 401
    assert refused_start.json() == unknown.json()
    assert (await widget_config(gateway, new)).status_code == 200
    assert (await get(gateway, "/v1/settings/widget", tenant["token"]))["previous_key_expires_at"] is None

    [entry, *_] = await audit(gateway, tenant["token"])
    assert entry["action"] == "widget.rotate_key"
    assert entry["after"]["widget_key"] == "rotated"
    assert entry["after"]["previous_key_expires_at"] == response.json()["previous_key_expires_at"].replace(
        "Z", "+00:00"
    )
    assert old not in json.dumps(entry)
    assert new not in json.dumps(entry)


async def test_a_rotation_without_grace_refuses_the_old_key_at_once(gateway: Any) -> None:
    tenant = await new_tenant(gateway)
    old = tenant["widget_key"]
    response = await gateway.http.post(
        "/v1/settings/widget/rotate-key", json={"grace_seconds": 0}, headers=bearer(tenant["token"])
    )
    assert response.status_code == 200, response.text
    assert response.json()["previous_key_expires_at"] is None
    assert (await widget_config(gateway, old)).status_code == 401
    assert (await widget_config(gateway, response.json()["widget_key"])).status_code == 200

    for grace in (-1, 2_592_001):
        response = await gateway.http.post(
            "/v1/settings/widget/rotate-key", json={"grace_seconds": grace}, headers=bearer(tenant["token"])
        )
        assert response.status_code == 422, response.text
        assert "grace_seconds" in response.json()["error"]["message"]
