"""Self-service sign-up on a real gateway with `SIGNUP_ENABLED` on (and the shared one, off):
the tenant and its admin wait, refused by the access gate, until the token of the emailed link
(read from `tenant.account_email_requested` on Kafka, as the notifier receives it) is verified."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from gateway_testkit import gateway_settings, serve_app
from sqlalchemy import select

from contracts import Envelope, parse_envelope, topics
from contracts.events import AccountEmailRequested, TenantProfileChanged
from devkit.testing import Infra, create_database, drop_database
from gateway import signuplinks
from gateway.app import build_app
from gateway.runtime import GatewayRuntime
from gateway.store import AuditRow, OperatorRow, TenantRow

PUBLIC_URL = "https://support.example.test"
LINK_SECRET = "signup-tests-link-secret"
PASSWORD = "correct horse battery"


class SignupGateway:
    def __init__(self, url: str, runtime: GatewayRuntime, http: httpx.AsyncClient, infra: Infra, prefix: str) -> None:
        self.url, self.runtime, self.http, self.infra, self.prefix = url, runtime, http, infra, prefix

    async def tenant(self, tenant_id: str) -> TenantRow | None:
        assert self.runtime.sessions is not None
        async with self.runtime.sessions() as session:
            return await session.get(TenantRow, tenant_id)

    async def operator(self, username: str) -> OperatorRow | None:
        assert self.runtime.sessions is not None
        async with self.runtime.sessions() as session:
            return (await session.scalars(select(OperatorRow).where(OperatorRow.username == username))).one_or_none()

    async def audit(self, tenant_id: str) -> list[tuple[str, str]]:
        assert self.runtime.sessions is not None
        async with self.runtime.sessions() as session:
            rows = await session.scalars(
                select(AuditRow).where(AuditRow.tenant_id == tenant_id).order_by(AuditRow.entry_id)
            )
            return [(row.actor, row.action) for row in rows]

    async def tenant_events(
        self, tenant_id: str, until: Callable[[list[Envelope[Any]]], bool], timeout: float = 20
    ) -> list[Envelope[Any]]:
        """The tenant's events on `tenant.events.v1` (from the start), once `until` holds."""
        topic = self.prefix + topics.TENANT_EVENTS.name
        consumer = AIOKafkaConsumer(bootstrap_servers=self.infra.kafka_bootstrap_servers, enable_auto_commit=False)
        await consumer.start()
        found: list[Envelope[Any]] = []
        try:
            partitions = [TopicPartition(topic, p) for p in range(topics.TENANT_EVENTS.partitions)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            deadline = asyncio.get_running_loop().time() + timeout
            while not until(found) and asyncio.get_running_loop().time() < deadline:
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    found += [e for e in map(parse_envelope, (r.value for r in records)) if e.tenant_id == tenant_id]
        finally:
            await consumer.stop()
        return found


@pytest.fixture(scope="module")
async def signup_gateway(
    infra: Infra, topic_prefix: str, read_api: Any, tenants_dir: Path
) -> AsyncIterator[SignupGateway]:
    database = await create_database(infra, "gateway_signup")
    settings = gateway_settings(
        infra,
        database,
        topic_prefix,
        read_api.url,
        tenants_dir,
        signup_enabled=True,
        signup_link_secret=LINK_SECRET,
        public_base_url=PUBLIC_URL,
        signup_attempts_per_ip=1000,
        # The session's other gateways log in from this address under the same namespace.
        login_attempts_per_ip=100_000,
    )
    app = build_app(settings)
    try:
        async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=15) as http:
            yield SignupGateway(url, app.state.runtime, http, infra, topic_prefix)
    finally:
        await drop_database(infra, database)


def signup_body(tenant_id: str, username: str, **changes: Any) -> dict[str, Any]:
    admin = {"username": username, "display_name": "Marta Rossi", "email": f"{username}@example.com"}
    body: dict[str, Any] = {
        "business_name": "Pizzeria Da Marta",
        "tenant_id": tenant_id,
        "languages": ["it", "en"],
        "time_zone": "Europe/Rome",
        "admin": admin | {"password": PASSWORD} | changes.pop("admin", {}),
    }
    return body | changes


def profile_revision(envelope: Envelope[Any]) -> int | None:
    return envelope.payload.revision if isinstance(envelope.payload, TenantProfileChanged) else None


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def login(gw: SignupGateway, username: str, password: str = PASSWORD) -> httpx.Response:
    return await gw.http.post("/v1/operators/login", json={"username": username, "password": password})


async def start_conversation(gw: SignupGateway, widget_key: str) -> httpx.Response:
    return await gw.http.post("/v1/conversations", headers={"X-Widget-Key": widget_key})


async def test_signup_is_off_by_default(gateway: Any) -> None:
    assert gateway.runtime.config.signup_enabled is False
    signed = await gateway.http.post("/v1/signup", json=signup_body(unique("off"), unique("off")))
    assert signed.status_code == 404
    assert signed.json()["error"]["code"] == "not_found"
    assert (await gateway.http.post("/v1/signup/verify", json={"token": "x"})).status_code == 404


async def test_a_signed_up_tenant_is_refused_until_its_emailed_link_is_verified(signup_gateway: SignupGateway) -> None:
    gw = signup_gateway
    tenant_id, username = unique("pizzeria"), unique("marta")
    signed = await gw.http.post("/v1/signup", json=signup_body(tenant_id, username))
    assert signed.status_code == 202, signed.text
    assert signed.json() == {"tenant_id": tenant_id, "status": "pending_verification"}

    # The email the notifier is asked for, and the tenant's profile announced as refused.
    events = await gw.tenant_events(
        tenant_id, lambda found: {e.type for e in found} >= {"tenant.account_email_requested", "tenant.profile_changed"}
    )
    (email,) = [e.payload for e in events if isinstance(e.payload, AccountEmailRequested)]
    assert (email.kind, email.email, email.language, email.tenant_name) == (
        "verify_signup",
        f"{username}@example.com",
        "it",
        "Pizzeria Da Marta",
    )
    assert email.recipient_name == "Marta Rossi"
    assert email.link.startswith(f"{PUBLIC_URL}/dashboard/verify?t=")
    assert 47 * 3600 < email.expires_at.timestamp() - time.time() <= 48 * 3600
    (profile,) = [e.payload for e in events if isinstance(e.payload, TenantProfileChanged)]
    assert (profile.revision, profile.disabled, profile.languages, profile.time_zone) == (
        1,
        True,
        ["it", "en"],
        "Europe/Rome",
    )

    # Refused while pending: its widget key and its admin's login.
    tenant = await gw.tenant(tenant_id)
    assert tenant is not None
    assert tenant.pending_verification
    refused = await start_conversation(gw, tenant.widget_key)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "tenant_pending"
    assert "verified" in refused.json()["error"]["message"]
    not_verified = await login(gw, username)
    assert not_verified.status_code == 403
    assert not_verified.json()["error"]["code"] == "email_not_verified"
    assert (await login(gw, username, "wrong password!")).status_code == 401  # told only with the password

    token = email.link.split("?t=", 1)[1]
    verified = await gw.http.post("/v1/signup/verify", json={"token": token})
    assert verified.status_code == 200, verified.text
    assert verified.json() == {"tenant_id": tenant_id, "dashboard_url": f"{PUBLIC_URL}/dashboard"}

    logged_in = await login(gw, username)
    assert logged_in.status_code == 200, logged_in.text
    assert (await start_conversation(gw, tenant.widget_key)).status_code == 201

    # A second verify changes nothing and answers the same.
    again = await gw.http.post("/v1/signup/verify", json={"token": token})
    assert (again.status_code, again.json()) == (200, verified.json())
    after = await gw.tenant(tenant_id)
    assert after is not None
    assert (after.pending_verification, after.profile_revision) == (False, 2)
    events = await gw.tenant_events(
        tenant_id,
        lambda found: any(isinstance(e.payload, TenantProfileChanged) and e.payload.revision == 2 for e in found),
    )
    profiles = [e.payload for e in events if isinstance(e.payload, TenantProfileChanged)]
    assert [(p.revision, p.disabled) for p in profiles] == [(1, True), (2, False)]
    admin = await gw.operator(username)
    assert admin is not None
    assert await gw.audit(tenant_id) == [
        ("signup", "tenant.create"),
        ("signup", "operator.create"),
        (admin.operator_id, "tenant.verify_signup"),
    ]


async def test_a_taken_tenant_id_or_username_is_409(signup_gateway: SignupGateway) -> None:
    gw = signup_gateway
    tenant_id, username = unique("taken"), unique("taken")
    assert (await gw.http.post("/v1/signup", json=signup_body(tenant_id, username))).status_code == 202

    same_tenant = await gw.http.post("/v1/signup", json=signup_body(tenant_id, unique("other")))
    assert same_tenant.status_code == 409
    assert same_tenant.json()["error"]["code"] == "tenant_taken"
    same_username = await gw.http.post("/v1/signup", json=signup_body(unique("other"), username))
    assert same_username.status_code == 409
    assert same_username.json()["error"]["code"] == "username_taken"
    # The tenants of the demo files are taken too (the CLI's and the sign-up's ids are one space).
    assert (await gw.http.post("/v1/signup", json=signup_body("acme", unique("x")))).status_code == 409


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"tenant_id": "Pizzeria_Marta"}, "tenant_id"),
        ({"tenant_id": "-x"}, "tenant_id"),
        ({"languages": ["it", "de"]}, "languages"),
        ({"languages": []}, "languages"),
        ({"languages": ["it", "it"]}, "languages"),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"admin": {"password": "short"}}, "admin.password"),
        ({"admin": {"email": "not-an-address"}}, "admin.email"),
        ({"business_name": "  "}, "business_name"),
    ],
)
async def test_bad_input_is_422_naming_the_field_and_nothing_is_saved(
    signup_gateway: SignupGateway, changes: dict[str, Any], field: str
) -> None:
    gw = signup_gateway
    username = unique("bad")
    body = signup_body(unique("bad"), username) | {k: v for k, v in changes.items() if k != "admin"}
    body["admin"] |= changes.get("admin", {})
    response = await gw.http.post("/v1/signup", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"].startswith(field)
    assert await gw.tenant(body["tenant_id"]) is None
    assert await gw.operator(username) is None


async def test_an_expired_forged_or_unknown_token_is_410(signup_gateway: SignupGateway) -> None:
    gw = signup_gateway
    tenant_id, username = unique("late"), unique("late")
    assert (await gw.http.post("/v1/signup", json=signup_body(tenant_id, username))).status_code == 202
    admin = await gw.operator(username)
    assert admin is not None
    link = signuplinks.SignupLink(tenant_id, admin.operator_id)
    # Signed 49 hours ago: the clock is moved for the signing only.
    with mock.patch("time.time", return_value=time.time() - 49 * 3600):
        expired = signuplinks.sign(LINK_SECRET, link)
    forged = signuplinks.sign("another-secret-of-16-chars", link)
    unknown = signuplinks.sign(LINK_SECRET, signuplinks.SignupLink(unique("nobody"), "nobody-admin"))
    for token in (expired, forged, unknown, "not a token"):
        response = await gw.http.post("/v1/signup/verify", json={"token": token})
        assert response.status_code == 410, token
        assert response.json()["error"]["code"] == "link_gone"
    tenant = await gw.tenant(tenant_id)
    assert tenant is not None
    assert tenant.pending_verification  # still waiting
    assert (await login(gw, username)).json()["error"]["code"] == "email_not_verified"


async def test_signups_are_limited_per_ip(signup_gateway: SignupGateway) -> None:
    gw = signup_gateway
    gw.runtime.config.signup_attempts_per_ip = 2
    key = f"{gw.prefix}gateway:ratelimit:signup-ip:127.0.0.1"
    assert gw.runtime.redis is not None
    await gw.runtime.redis.delete(key)
    try:
        statuses = [
            (await gw.http.post("/v1/signup", json=signup_body(unique("many"), unique("many")))).status_code
            for _ in range(3)
        ]
        assert statuses == [202, 202, 429]
    finally:
        gw.runtime.config.signup_attempts_per_ip = 1000
        await gw.runtime.redis.delete(key)
