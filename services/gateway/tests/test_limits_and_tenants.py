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


async def test_tenants_load_command_upserts_a_tenant(infra, database, tmp_path, tenants_dir):
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
        str(tenants_dir / "lucine-di-natale.yaml"),
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

    real = {
        "environment": "production",
        "postgres_password": "a-real-one",
        "operator_jwt_secret": "y" * 40,
        "ai_responder_admin_token": "z" * 40,
        "invitation_link_secret": "i" * 40,
        "signup_link_secret": "s" * 40,
    }
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(**{**real, "jwt_secret": "dev-secret-change-me"})
    with pytest.raises(ValidationError, match="OPERATOR_JWT_SECRET"):
        Settings(**{**real, "jwt_secret": "x" * 40, "operator_jwt_secret": "dev-secret-change-me"})
    # The knowledge-base page needs the ai-responder's admin token (which it refuses to run without).
    with pytest.raises(ValidationError, match="AI_RESPONDER_ADMIN_TOKEN"):
        Settings(**{**real, "jwt_secret": "x" * 40, "ai_responder_admin_token": ""})
    for link_secret in ("invitation_link_secret", "signup_link_secret"):
        with pytest.raises(ValidationError, match=link_secret.upper()):
            Settings(**{**real, "jwt_secret": "x" * 40, link_secret: "dev-secret-change-me"})
    assert Settings(**{**real, "jwt_secret": "x" * 40}).jwt_secret


async def test_lookups_that_find_the_directory_stale_together_refresh_it_once(infra, database, tenants_dir):
    url = infra.database_url(database)
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, url)
    engine = create_engine(url)
    try:
        real_sessions = session_factory(engine)
        await load_tenants(real_sessions, [read_tenant_file(tenants_dir / "lucine-di-natale.yaml")])
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


async def test_operators_command_creates_lists_and_loads_accounts(infra, database, tmp_path, tenants_dir):
    env = {**os.environ, **infra.service_env(database)}

    async def run(*arguments: str, stdin: bytes = b"") -> str:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.operators",
            *arguments,
            env=env,
            cwd=SERVICE_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate(stdin)
        assert process.returncode == 0, output.decode()
        return output.decode()

    await load_tenants_of(infra, database, tenants_dir)
    await run("load", str(tenants_dir.parent / "operators" / "lucine-di-natale.yaml"))  # needs no running gateway
    await run(
        *("create", "--tenant", "lucine-di-natale", "--username", "Anna", "--display-name", "Anna"),
        *("--role", "admin", "--skills", "tickets,groups", "--capacity", "4", "--password-stdin"),
        stdin=b"a-long-enough-password\n",
    )
    listing = await run("list", "--tenant", "lucine-di-natale")
    assert [line.split()[2] for line in listing.splitlines()] == ["anna", "giulia", "marco", "sofia"]

    connection = await asyncpg.connect(infra.database_url(database, driver="postgresql"))
    try:
        row = await connection.fetchrow(
            "SELECT operator_id, role, skills, capacity, password_hash FROM operators WHERE username = 'anna'"
        )
        seeded = await connection.fetchval("SELECT password_hash FROM operators WHERE username = 'giulia'")
    finally:
        await connection.close()
    assert (row["operator_id"], row["role"], row["skills"], row["capacity"]) == (
        "lucine-di-natale-anna",
        "admin",
        ["tickets", "groups"],
        4,
    )
    assert row["password_hash"].startswith("$argon2id$")
    # Loading the seed file again keeps a password set since.
    await run("load", str(tenants_dir.parent / "operators" / "lucine-di-natale.yaml"))
    connection = await asyncpg.connect(infra.database_url(database, driver="postgresql"))
    try:
        assert await connection.fetchval("SELECT password_hash FROM operators WHERE username = 'giulia'") == seeded
    finally:
        await connection.close()


async def load_tenants_of(infra, database, tenants_dir) -> None:
    url = infra.database_url(database)
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, url)
    engine = create_engine(url)
    try:
        await load_tenants(session_factory(engine), [read_tenant_file(tenants_dir / "lucine-di-natale.yaml")])
    finally:
        await engine.dispose()
