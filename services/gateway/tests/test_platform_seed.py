"""The platform API and the demo seeder on the real gateway: a tenant created over HTTP with its
first admin, and a seed file applied through the public API, twice, the second time changing
nothing (the demo tenants are seeded this way by every `make up`)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from gateway.seed import demo_files, read_seed, seed_all
from gateway.store import AuditRow

PLATFORM_TOKEN = "platform-tests-token"


@pytest.fixture
def platform(gateway: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(gateway.runtime.config, "platform_admin_token", PLATFORM_TOKEN)
    return gateway


def new_tenant(tenant_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "name": "Bottega Esempio",
        "languages": ["it", "en"],
        "admin": {
            "username": f"{tenant_id}-boss",
            "display_name": "Boss",
            "email": f"boss@{tenant_id}.example",
            "password": "a-long-enough-password",
        },
        **extra,
    }


async def audit_actions(gateway: Any, tenant_id: str) -> list[tuple[str, str]]:
    async with gateway.runtime.sessions() as session:
        rows = await session.scalars(
            select(AuditRow).where(AuditRow.tenant_id == tenant_id).order_by(AuditRow.entry_id)
        )
        return [(row.actor, row.action) for row in rows]


async def test_the_platform_api_is_absent_without_a_token(gateway: Any) -> None:
    response = await gateway.http.post("/v1/platform/tenants", json=new_tenant("nobody-here"))
    assert response.status_code == 404


async def test_the_platform_api_creates_a_tenant_whose_admin_logs_in(platform: Any) -> None:
    tenant_id = f"shop-{uuid.uuid4().hex[:8]}"
    body = new_tenant(tenant_id, widget_key=f"wk_{tenant_id}", allowed_origins=["https://shop.example"])
    refused = await platform.http.post("/v1/platform/tenants", json=body, headers={"Authorization": "Bearer wrong"})
    assert refused.status_code == 401

    auth = {"Authorization": f"Bearer {PLATFORM_TOKEN}"}
    created = await platform.http.post("/v1/platform/tenants", json=body, headers=auth)
    assert created.status_code == 201, created.text
    assert created.json() == {
        "tenant_id": tenant_id,
        "widget_key": f"wk_{tenant_id}",
        "admin_operator_id": f"{tenant_id}-{tenant_id}-boss",
    }
    again = await platform.http.post("/v1/platform/tenants", json=body, headers=auth)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "tenant_taken"

    login = await platform.http.post(
        "/v1/operators/login", json={"username": f"{tenant_id}-boss", "password": "a-long-enough-password"}
    )
    assert login.status_code == 200
    # The widget key works at once, from the allowed origin.
    config = await platform.http.get(
        "/v1/widget/config", headers={"X-Widget-Key": f"wk_{tenant_id}", "Origin": "https://shop.example"}
    )
    assert config.status_code == 200
    assert config.json()["tenant_name"] == "Bottega Esempio"
    assert await audit_actions(platform, tenant_id) == [
        ("platform-api", "tenant.create"),
        ("platform-api", "operator.create"),
    ]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"allowed_origins": ["not a url"]}, "allowed_origins"),
        ({"languages": ["xx"]}, "languages"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"tenant_id": "Not_Valid"}, "tenant_id"),
    ],
)
async def test_bad_input_is_a_422_and_creates_nothing(platform: Any, change: dict[str, Any], field: str) -> None:
    tenant_id = f"bad-{uuid.uuid4().hex[:8]}"
    response = await platform.http.post(
        "/v1/platform/tenants",
        json={**new_tenant(tenant_id), **change},
        headers={"Authorization": f"Bearer {PLATFORM_TOKEN}"},
    )
    assert response.status_code == 422
    assert field in response.text
    assert await audit_actions(platform, tenant_id) == []


async def test_a_seed_file_goes_through_the_api_and_a_second_run_changes_nothing(
    platform: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tenant_id = f"seeded-{uuid.uuid4().hex[:8]}"
    seed = {
        "tenant": new_tenant(tenant_id, widget_key=f"wk_{tenant_id}"),
        "profile": {
            "name": "Bottega Esempio",
            "languages": ["it", "en"],
            "default_language": "it",
            "time_zone": "Europe/Rome",
            "business_hours": [{"days": ["mon", "tue"], "start": "09:00", "end": "13:00"}],
        },
        "widget": {"allowed_origins": ["https://bottega.example"]},
        "operators": [
            {
                "operator_id": f"{tenant_id}-op",
                "username": f"{tenant_id}-op",
                "display_name": "Op",
                "email": f"op@{tenant_id}.example",
                "password": "another-long-password",
                "role": "operator",
                "skills": ["tickets"],
                "capacity": 4,
            }
        ],
        "canned_responses": [{"language": "it", "shortcut": "ciao", "title": "Saluto", "text": "Ciao!"}],
    }
    path = tmp_path / "seed.yaml"
    path.write_text(yaml.safe_dump(seed))

    await seed_all(platform.url, [path], PLATFORM_TOKEN)
    first = capsys.readouterr().out
    assert "tenant created" in first
    assert "operators: 1 created" in first
    assert "canned responses: 1 created" in first
    actions = await audit_actions(platform, tenant_id)
    assert [action for _, action in actions] == [
        "tenant.create",
        "operator.create",
        "tenant.update_profile",
        "widget.update",
        "operator.create",
        "canned.create",
    ]

    await seed_all(platform.url, [path], PLATFORM_TOKEN)
    second = capsys.readouterr().out
    assert "tenant already there" in second
    assert "/v1/settings/profile: unchanged" in second
    assert "operators: 0 created, 0 updated, 1 unchanged" in second
    assert "canned responses: 0 created, 0 updated" in second
    assert await audit_actions(platform, tenant_id) == actions

    # A changed seed is applied: the operator's capacity, a canned response's text.
    seed["operators"][0]["capacity"] = 6
    seed["canned_responses"][0]["text"] = "Ciao, come posso aiutarti?"
    path.write_text(yaml.safe_dump(seed))
    await seed_all(platform.url, [path], PLATFORM_TOKEN)
    third = capsys.readouterr().out
    assert "operators: 0 created, 1 updated" in third
    assert "canned responses: 0 created, 1 updated" in third


def test_the_shipped_demo_tenants_are_seed_files() -> None:
    seeds = [read_seed(path) for path in demo_files()]
    assert {seed.tenant_id for seed in seeds} >= {"lucine-di-natale", "museo-del-vetro"}
    for seed in seeds:
        assert seed.tenant["admin"]["password"]
