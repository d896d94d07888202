"""The whole system as real processes on real Kafka, PostgreSQL and Redis, for one test session.

Topics are namespaced with a unique prefix and every service gets a fresh database, so the
stack is isolated from `make up` and from earlier runs on the same infrastructure.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaConsumer

from contracts.topics import CONVERSATION_EVENTS
from devkit.mailsink import MailSink
from devkit.receivers import TwilioLike, WebhookReceiver
from devkit.stack import REPO, SERVICES, SHIPPED_DEMO_TENANTS, Stack, free_port
from devkit.testing import Infra, create_database, drop_database
from servicekit.topics import delete_topics, ensure_topics

DEMO_TENANT = "lucine-di-natale"
DEMO_WIDGET_KEY = "wk_lucine_demo_2025"
ADMIN_TOKEN = f"admin-{uuid.uuid4().hex}"


@contextmanager
def isolated_stack(
    infra: Infra,
    log_dir: Path,
    extra_env: dict[str, dict[str, str]] | None = None,
    demo_seeds: Path = SHIPPED_DEMO_TENANTS,
) -> Iterator[Stack]:
    """Every built service as a process, on topics under a prefix of their own and fresh
    databases; `extra_env` adds settings per service (a short timeout, an LLM's address);
    `demo_seeds`, the demo tenants it seeds through the API."""
    prefix = f"e2e-{uuid.uuid4().hex[:8]}."
    asyncio.run(ensure_topics(infra.kafka_bootstrap_servers, prefix=prefix))
    specs = [spec for spec in SERVICES if spec.built]
    databases = {spec.name: asyncio.run(create_database(infra, spec.module)) for spec in specs if spec.database}
    ports = {spec.name: free_port() for spec in specs}
    env = {
        "ai-responder": {"ADMIN_TOKEN": ADMIN_TOKEN},
        # The session's tests log the demo operators in again and again from one address; the
        # throttling has its own tests.
        "gateway": {"LOGIN_ATTEMPTS_PER_ACCOUNT": "100000", "LOGIN_ATTEMPTS_PER_IP": "100000"},
    }
    for name, values in (extra_env or {}).items():
        env[name] = {**env.get(name, {}), **values}
    running = Stack(
        base_env={**infra.service_env(""), "KAFKA_TOPIC_PREFIX": prefix, "LOG_LEVEL": "INFO"},
        ports=ports,
        databases=databases,
        log_dir=log_dir,
        extra_env=env,
        demo_seeds=demo_seeds,
    )
    try:
        running.seed_knowledge_bases()
        running.start_all()
        yield running
    finally:
        running.stop_all()
        for name in databases.values():
            asyncio.run(drop_database(infra, name))
        asyncio.run(delete_topics(infra.kafka_bootstrap_servers, prefix))


@pytest.fixture(scope="session")
def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with isolated_stack(infra, Path(tmp_path_factory.mktemp("services"))) as running:
        yield running


@pytest.fixture
async def gateway(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=15) as client:
        yield client


async def first_event(stack: Stack, conversation_id: str, event_type: str, timeout: float = 30.0) -> dict[str, Any]:
    """The first event of `event_type` about a conversation on the stack's conversation.events topic."""
    topic = stack.base_env["KAFKA_TOPIC_PREFIX"] + CONVERSATION_EVENTS.name
    reader = AIOKafkaConsumer(
        topic, bootstrap_servers=stack.base_env["KAFKA_BOOTSTRAP_SERVERS"], auto_offset_reset="earliest"
    )
    await reader.start()
    try:
        async with asyncio.timeout(timeout):
            while True:
                for records in (await reader.getmany(timeout_ms=500)).values():
                    for record in records:
                        event = json.loads(record.value)
                        if event["conversation_id"] == conversation_id and event["type"] == event_type:
                            return event  # type: ignore[no-any-return]
    finally:
        await reader.stop()


# ------------------------------------------------------------------------------ a stack that notifies
# The notifier sends to real servers on loopback (an SMTP server, a Twilio-like API, the tenant's
# webhook receiver) and the demo tenant's urgent and high tickets have SLA targets of seconds, with
# no business hours, so that a test sees clocks at risk and breached.

TWILIO_SID = "AC" + "0" * 31 + "7"
TWILIO_TOKEN = "twilio-token-of-the-e2e-tests"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"lucine-e2e-webhook-secret-32-byte").decode()
WEBHOOK_MAX_AGE_SECONDS = 10.0  # the receiver refuses a request older than this (a replay)
WEBHOOK_EVENTS = [
    "tickets.ticket_opened",
    "tickets.ticket_updated",
    "tickets.reply_posted",
    "tickets.note_added",
    "tickets.sla_warning",
    "tickets.sla_breached",
]
SHORT_SLA = {
    "urgent": {"first_response": "20s", "resolution": "1h"},
    "high": {"first_response": "30s", "resolution": "2h"},
    "normal": {"first_response": "2h", "resolution": "15h"},
    "low": {"first_response": "5h", "resolution": "25h"},
}


@dataclass
class Outside:
    """The world outside the platform the notifier reaches."""

    mail: MailSink
    twilio: TwilioLike
    webhooks: WebhookReceiver


@pytest.fixture(scope="session")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outside]:
    folder = tmp_path_factory.mktemp("mail")
    with (
        MailSink(folder, port=free_port()) as mail,
        TwilioLike(TWILIO_SID, TWILIO_TOKEN) as twilio,
        WebhookReceiver(WEBHOOK_SECRET, max_age_seconds=WEBHOOK_MAX_AGE_SECONDS) as webhooks,
    ):
        yield Outside(mail, twilio, webhooks)


def tenant_files(service: str, folder: Path, **changes: Any) -> Path:
    """A copy of a service's shipped tenant files, the demo tenant's with `changes` (None drops a key)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in (REPO / "services" / service / "tenants").glob("*.yaml"):
        config = yaml.safe_load(path.read_text())
        if config["tenant_id"] == DEMO_TENANT:
            config.update(changes)
            config = {key: value for key, value in config.items() if value is not None}
        (folder / path.name).write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


@pytest.fixture(scope="session")
def ticket_stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory, outside: Outside) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("ticket-stack")
    webhook = {"url": f"{outside.webhooks.url}/hooks", "secret": WEBHOOK_SECRET, "events": WEBHOOK_EVENTS}
    notifier_env = {
        "TENANTS_DIR": str(tenant_files("notifier", root / "notifier-tenants", webhooks=[webhook])),
        "SMTP_HOST": outside.mail.host,
        "SMTP_PORT": str(outside.mail.port),
        "TWILIO_BASE_URL": outside.twilio.url,
        "TWILIO_ACCOUNT_SID": TWILIO_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "SMTP_TIMEOUT_SECONDS": "5",
        "TWILIO_TIMEOUT_SECONDS": "5",
        "WEBHOOK_TIMEOUT_SECONDS": "5",
        "DELIVERY_LEASE_SECONDS": "10",
        "DELIVERY_BACKOFF_BASE_SECONDS": "0.5",
        "DELIVERY_BACKOFF_MAX_SECONDS": "2",
        "DELIVERY_POLL_SECONDS": "0.1",
    }
    tickets_tenants = tenant_files("tickets", root / "tickets-tenants", business_hours=None, sla=SHORT_SLA)
    extra_env = {"notifier": notifier_env, "tickets": {"TENANTS_DIR": str(tickets_tenants)}}
    # SLA clocks that run at any hour: the demo tenant's profile without its business hours.
    seeds = root / "demo-seeds"
    seeds.mkdir()
    for path in SHIPPED_DEMO_TENANTS.glob("*.yaml"):
        seed = yaml.safe_load(path.read_text())
        if seed["tenant"]["tenant_id"] == DEMO_TENANT:
            seed["profile"]["business_hours"] = []
        (seeds / path.name).write_text(yaml.safe_dump(seed, sort_keys=False, allow_unicode=True))
    with isolated_stack(infra, root / "logs", extra_env, demo_seeds=seeds) as running:
        yield running
