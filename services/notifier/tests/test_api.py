"""The notifier's internal API as the gateway calls it, against the real app: the channels a
tenant's customers can be written to on, by the same rule the notifications follow."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.readapi import TenantChannelsView
from devkit.testing import Infra
from notifier.app import build_app
from notifier.config import Settings

from .conftest import TENANT, TWILIO_SID, TWILIO_TOKEN, write_tenant

TWILIO = {"twilio_account_sid": TWILIO_SID, "twilio_auth_token": TWILIO_TOKEN}


@asynccontextmanager
async def notifier_api(infra: Infra, tenants_dir: Path, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    # The channels need no database: the app is built on the real infrastructure's addresses and
    # asked without starting its consumers and worker.
    app = build_app(Settings(tenants_dir=tenants_dir, database_url=infra.database_url("postgres"), **settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notifier") as client:
        yield client
    runtime = app.state.runtime
    await runtime.engine.dispose()
    await runtime.relay_engine.dispose()


async def channels(client: httpx.AsyncClient, tenant_id: str) -> list[str]:
    response = await client.get(f"/internal/tenants/{tenant_id}/channels")
    assert response.status_code == 200, response.text
    view = TenantChannelsView.model_validate_json(response.content)
    assert view.tenant_id == tenant_id
    return [channel.value for channel in view.channels]


@pytest.mark.parametrize(
    ("twilio", "numbers", "expected"),
    [
        (True, {"sms_from": "+15005550006", "whatsapp_from": "+14155238886"}, ["email", "whatsapp", "sms"]),
        (True, {"whatsapp_from": "+14155238886"}, ["email", "whatsapp"]),
        (True, {"sms_from": "+15005550006"}, ["email", "sms"]),
        (True, {}, ["email"]),
        # The tenant's numbers without a Twilio account send nothing: email only.
        (False, {"sms_from": "+15005550006", "whatsapp_from": "+14155238886"}, ["email"]),
    ],
)
async def test_channels_follow_twilio_and_the_tenants_numbers(
    infra: Infra, tmp_path: Path, twilio: bool, numbers: dict[str, str], expected: list[str]
) -> None:
    write_tenant(tmp_path / "tenants", twilio=numbers)
    async with notifier_api(infra, tmp_path / "tenants", **(TWILIO if twilio else {})) as client:
        assert await channels(client, TENANT) == expected


async def test_a_tenant_without_a_file_is_written_to_by_email_only(infra: Infra, tmp_path: Path) -> None:
    # A tenant that signed up has no file: the notifier writes to its customers from the
    # platform's address, and has no Twilio senders for it.
    write_tenant(tmp_path / "tenants")
    async with notifier_api(infra, tmp_path / "tenants", **TWILIO) as client:
        assert await channels(client, "signed-up-shop") == ["email"]
        too_long = await client.get(f"/internal/tenants/{'x' * 65}/channels")
        assert too_long.status_code == 422
