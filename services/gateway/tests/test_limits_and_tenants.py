"""Per-IP rate limit (on a second gateway with a low limit), loading tenants by command, and the
tenant directory's refresh."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx
from gateway_testkit import LUCINE_KEY, gateway_settings, serve_app
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.app import build_app
from gateway.config import MIGRATIONS, Settings
from gateway.tenants import TenantDirectory, load_tenants, read_tenant_file
from servicekit.db import create_engine, session_factory
from servicekit.migrations import upgrade_to_head

SERVICE_DIR = Path(__file__).resolve().parents[1]


async def test_requests_per_ip_are_limited(infra, database, topic_prefix, read_api, tenants_dir):
    settings = gateway_settings(
        infra,
        database,
        topic_prefix,
        read_api.url,
        tenants_dir,
        rate_limit_ip_requests=3,
        redis_url=infra.redis_url.rsplit("/", 1)[0] + f"/{1 + uuid.uuid4().int % 14}",  # counters of its own
    )
    app = build_app(settings)
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url) as client:
        await app.state.runtime.redis.flushdb()
        started = await client.post("/v1/conversations", headers={"X-Widget-Key": LUCINE_KEY})
        assert started.status_code == 201
        # Posting a message counts against the same per-IP window (checked with the conversation's).
        conversation = started.json()
        posted = await client.post(
            f"/v1/conversations/{conversation['conversation_id']}/messages",
            headers={"Authorization": f"Bearer {conversation['customer_token']}"},
            json={"client_message_id": "m1", "text": "ciao"},
        )
        assert posted.status_code == 202
        statuses = [
            (await client.post("/v1/conversations", headers={"X-Widget-Key": LUCINE_KEY})).status_code for _ in range(2)
        ]
        assert statuses == [201, 429]
        response = await client.post("/v1/conversations", headers={"X-Widget-Key": LUCINE_KEY})
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) >= 1
        assert (await client.get("/healthz")).status_code == 200  # not a widget endpoint
        await app.state.runtime.redis.flushdb()


async def test_tenants_load_command_upserts_a_tenant(infra, database, tmp_path):
    tenant = tmp_path / "bolle.yaml"
    tenant.write_text(
        "tenant_id: bolle\nname: Bolle di Sapone\nwidget_key: wk_bolle_0001\n"
        "allowed_origins: ['https://bolle.example/']\ndefault_language: en\n"
    )
    env = {**os.environ, **infra.service_env(database)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.tenants",
        "load",
        str(tenant),
        str(SERVICE_DIR / "tenants" / "lucine-di-natale.yaml"),
        env=env,
        cwd=SERVICE_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()
    tenant.write_text(tenant.read_text().replace("Bolle di Sapone", "Bolle"))  # loading again updates
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.tenants",
        "load",
        str(tenant),
        env=env,
        cwd=SERVICE_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()

    connection = await asyncpg.connect(infra.database_url(database, driver="postgresql"))
    try:
        rows = await connection.fetch(
            "SELECT tenant_id, name, widget_key, allowed_origins, default_language FROM tenants ORDER BY 1"
        )
    finally:
        await connection.close()
    assert [tuple(r) for r in rows] == [
        ("bolle", "Bolle", "wk_bolle_0001", ["https://bolle.example"], "en"),
        ("lucine-di-natale", "Lucine di Natale", LUCINE_KEY, ["http://127.0.0.1:8080", "http://localhost:8080"], "it"),
    ]


def test_placeholder_jwt_secret_is_refused_in_production():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(environment="production", postgres_password="a-real-one", jwt_secret="dev-secret-change-me")
    assert Settings(environment="production", postgres_password="a-real-one", jwt_secret="x" * 40).jwt_secret


async def test_lookups_that_find_the_directory_stale_together_refresh_it_once(infra, database):
    url = infra.database_url(database)
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, url)
    engine = create_engine(url)
    try:
        real_sessions = session_factory(engine)
        await load_tenants(real_sessions, [read_tenant_file(SERVICE_DIR / "tenants" / "lucine-di-natale.yaml")])
        opened = 0

        def sessions() -> AsyncSession:  # the real sessions, counted
            nonlocal opened
            opened += 1
            return real_sessions()

        directory = TenantDirectory(sessions)  # never loaded: stale for every lookup below
        found = await asyncio.gather(*(directory.by_key(LUCINE_KEY) for _ in range(50)))
        assert {tenant.tenant_id for tenant in found if tenant} == {"lucine-di-natale"}
        assert len([tenant for tenant in found if tenant]) == 50
        assert opened == 1, f"{opened} queries for one stale directory"
    finally:
        await engine.dispose()
