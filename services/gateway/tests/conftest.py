"""Gateway tests: the real app under uvicorn against real Kafka, PostgreSQL and Redis, with a
topic prefix of its own per session and a stand-in for the conversation service's read API."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from contracts import Envelope, Payload, new_envelope, parse_envelope, topics
from contracts.events import NoOperatorAvailable, SlaWarning, StatusChanged
from devkit.testing import Infra, create_database, drop_database
from gateway.app import build_app
from gateway.runtime import GatewayRuntime
from gateway.seed import read_seed
from servicekit.topics import delete_topics, ensure_topics


def _load_helpers() -> Any:
    # Loaded under a unique name: every service has a tests/utils, and pytest runs them together.
    path = Path(__file__).parent / "utils" / "servers.py"
    spec = importlib.util.spec_from_file_location("gateway_testkit", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


servers = _load_helpers()
LUCINE_KEY, OTHER_KEY, OTHER_ORIGIN, JWT_SECRET = (
    servers.LUCINE_KEY,
    servers.OTHER_KEY,
    servers.OTHER_ORIGIN,
    servers.JWT_SECRET,
)
SERVICE_DIR = Path(__file__).resolve().parents[1]


@dataclass
class Gateway:
    url: str
    runtime: GatewayRuntime
    read_api: Any
    prefix: str
    infra: Infra
    routing_api: Any = None
    tickets_api: Any = None
    analytics_api: Any = None
    ai_responder_api: Any = None
    notifier_api: Any = None
    http: httpx.AsyncClient = field(init=False)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    async def start_conversation(self, key: str = LUCINE_KEY, **body: Any) -> tuple[uuid.UUID, str]:
        response = await self.http.post("/v1/conversations", headers={"X-Widget-Key": key}, json=body or None)
        assert response.status_code == 201, response.text
        data = response.json()
        return uuid.UUID(data["conversation_id"]), data["customer_token"]

    async def publish_event(
        self, payload: Payload, conversation_id: uuid.UUID, tenant_id: str = "lucine-di-natale"
    ) -> None:
        await self.publish(new_envelope(payload, tenant_id=tenant_id, conversation_id=conversation_id))

    async def publish(self, *envelopes: Envelope[Any]) -> None:
        """Publishes envelopes as they are (the same one twice is a redelivery), in order."""
        producer = AIOKafkaProducer(bootstrap_servers=self.infra.kafka_bootstrap_servers, acks="all")
        await producer.start()
        try:
            for envelope in envelopes:
                topic = self.prefix + envelope.payload.topic
                await producer.send_and_wait(topic, envelope.to_json(), key=envelope.key)
        finally:
            await producer.stop()

    async def wait_live(self) -> None:
        """The subscribers start at "latest": wait until they demonstrably receive, or events
        published by a test right after start-up could land before their position is set."""
        probe = uuid.uuid4()
        hub, operator_hub = self.runtime.hub, self.runtime.operator_hub
        ticket_probe = SlaWarning(
            ticket_id=probe, ticket_number="TCK-2025-000001", clock="first_response", due_at=datetime.now(UTC)
        )
        counters: list[tuple[Callable[[], int], Payload]] = [
            (lambda: hub.events_seen, StatusChanged(previous="AI", status="QUEUED")),
            (lambda: operator_hub.events_seen, NoOperatorAvailable()),
            (lambda: operator_hub.ticket_events_seen, ticket_probe),
        ]
        for events_seen, event in counters:
            seen = events_seen()
            for _ in range(100):
                await self.publish_event(event, probe)
                await asyncio.sleep(0.2)
                if events_seen() > seen:
                    break
            else:
                raise AssertionError(f"the gateway never received an event from {event.topic}")

    async def commands(
        self, conversation_id: uuid.UUID | str, count: int, timeout: float = 15, topic: str | None = None
    ) -> list[Envelope[Any]]:
        """Reads back the commands of one conversation (or other key) from a (prefixed) commands
        topic: the widget's by default."""
        return await read_commands(self.infra, self.prefix, conversation_id, count, timeout, topic)


async def read_commands(
    infra: Infra,
    prefix: str,
    conversation_id: uuid.UUID | str,
    count: int,
    timeout: float = 15,
    topic_name: str | None = None,
) -> list[Envelope[Any]]:
    topic = prefix + (topic_name or topics.CONVERSATION_COMMANDS.name)
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    found: list[Envelope[Any]] = []
    try:
        # Its declared partitions: assigning one the topic does not have stalls every fetch.
        count_of = {t.name: t.partitions for t in topics.ALL_TOPICS}
        partitions = [TopicPartition(topic, p) for p in range(count_of[topic.removeprefix(prefix)])]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = asyncio.get_running_loop().time() + timeout
        while len(found) < count and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if record.key == str(conversation_id).encode():
                        found.append(parse_envelope(record.value))
    finally:
        await consumer.stop()
    return found


@pytest.fixture(scope="session")
async def topic_prefix(infra: Infra) -> AsyncIterator[str]:
    prefix = f"gwtest-{uuid.uuid4().hex[:8]}."
    await ensure_topics(infra.kafka_bootstrap_servers, prefix=prefix)
    yield prefix
    await delete_topics(infra.kafka_bootstrap_servers, prefix)


@pytest.fixture(scope="session")
async def read_api() -> AsyncIterator[Any]:
    api = servers.ReadApi()
    async with servers.serve_app(api.app) as url:
        api.url = url
        yield api


@pytest.fixture(scope="session")
def tenants_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo tenant (from its seed file) plus a second one, to test that nothing crosses
    tenants, as tenant files; their operators in the sibling folder `operators` (where
    `gateway_settings` points)."""
    root = tmp_path_factory.mktemp("directory")
    directory = root / "tenants"
    directory.mkdir()
    demo = read_seed(SERVICE_DIR / "demo" / "lucine-di-natale.yaml")
    tenant = {key: demo.tenant[key] for key in ("tenant_id", "name", "widget_key")}
    origins = (demo.widget or {}).get("allowed_origins", [])
    (directory / "lucine-di-natale.yaml").write_text(
        yaml.safe_dump({**tenant, "allowed_origins": origins, "default_language": demo.tenant["languages"][0]})
    )
    (directory / "acme.yaml").write_text(
        "tenant_id: acme\nname: ACME\nwidget_key: " + OTHER_KEY + "\n"
        "allowed_origins: ['" + OTHER_ORIGIN + "']\ndefault_language: en\n"
    )
    operators = root / "operators"
    operators.mkdir()
    accounts = [{key: value for key, value in o.items() if key != "email"} for o in demo.operators]
    (operators / "lucine-di-natale.yaml").write_text(
        yaml.safe_dump({"tenant_id": demo.tenant_id, "operators": accounts})
    )
    username, password, operator_id = servers.WILE
    (operators / "acme.yaml").write_text(
        f"tenant_id: acme\noperators:\n  - operator_id: {operator_id}\n    username: {username}\n"
        f"    display_name: Wile\n    password: {password}\n    role: supervisor\n"
    )
    username, password, operator_id = servers.ADA
    (operators / "lucine-admins.yaml").write_text(
        f"tenant_id: lucine-di-natale\noperators:\n  - operator_id: {operator_id}\n    username: {username}\n"
        f"    display_name: Ada\n    password: {password}\n    role: admin\n"
    )
    return directory


@pytest.fixture(scope="session")
async def routing_api() -> AsyncIterator[Any]:
    api = servers.RoutingApi()
    async with servers.serve_app(api.app) as url:
        api.url = url
        yield api


@pytest.fixture(scope="session")
async def tickets_api() -> AsyncIterator[Any]:
    api = servers.TicketsApi()
    async with servers.serve_app(api.app) as url:
        api.url = url
        yield api


@pytest.fixture(scope="session")
async def notifier_api() -> AsyncIterator[Any]:
    """The notifier's stand-in: the demo tenant has WhatsApp and SMS, the second one email only."""
    api = servers.NotifierApi()
    api.channels["lucine-di-natale"] = ["email", "whatsapp", "sms"]
    async with servers.serve_app(api.app) as url:
        api.url = url
        yield api


@pytest.fixture(scope="session")
async def analytics_api() -> AsyncIterator[Any]:
    api = servers.AnalyticsApi()
    async with servers.serve_app(api.app) as url:
        api.url = url
        yield api


@pytest.fixture(scope="session")
async def ai_responder_api() -> AsyncIterator[Any]:
    """The ai-responder's stand-in, with a knowledge base for each tenant (each with an article
    the other has not, and a gap)."""
    api = servers.AiResponderApi()
    api.kb.seed(
        "lucine-di-natale",
        {
            "orari": ("Orari di apertura", "Aperti dalle 17 alle 23."),
            "biglietti": ("Biglietti", "Il biglietto costa 9 €."),
        },
        gaps=("Posso portare il cane?",),
    )
    api.kb.seed("acme", {"acme-only": ("Anvils", "Anvils ship in a day.")}, gaps=("Do you sell rockets?",))
    async with servers.serve_app(api.app) as url:
        api.url = url
        yield api


@pytest.fixture(scope="session")
async def gateway(
    infra: Infra,
    topic_prefix: str,
    read_api: Any,
    routing_api: Any,
    tickets_api: Any,
    analytics_api: Any,
    ai_responder_api: Any,
    notifier_api: Any,
    tenants_dir: Path,
) -> AsyncIterator[Gateway]:
    database = await create_database(infra, "gateway_test")
    settings = servers.gateway_settings(
        infra,
        database,
        topic_prefix,
        read_api.url,
        tenants_dir,
        routing_url=routing_api.url,
        tickets_url=tickets_api.url,
        analytics_url=analytics_api.url,
        ai_responder_url=ai_responder_api.url,
        ai_responder_admin_token=servers.ADMIN_TOKEN,
        notifier_url=notifier_api.url,
        ticket_lookups_per_ip=100_000,  # the lookups' limits have their own test
        ticket_lookups_per_number=100_000,
        presence_heartbeat_seconds=0.5,
        login_attempts_per_ip=100_000,
        login_attempts_per_account=100_000,  # the tests log in again and again; throttling has its own test
    )
    app = build_app(settings)
    try:
        async with servers.serve_app(app) as url:
            gw = Gateway(
                url=url,
                runtime=app.state.runtime,
                read_api=read_api,
                prefix=topic_prefix,
                infra=infra,
                routing_api=routing_api,
                tickets_api=tickets_api,
                analytics_api=analytics_api,
                ai_responder_api=ai_responder_api,
                notifier_api=notifier_api,
            )
            async with httpx.AsyncClient(base_url=url, timeout=15) as client:
                gw.http = client
                await gw.wait_live()
                yield gw
    finally:
        await drop_database(infra, database)
