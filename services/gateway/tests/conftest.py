"""Gateway tests: the real app under uvicorn against real Kafka, PostgreSQL and Redis, with a
topic prefix of its own per session and a stand-in for the conversation service's read API."""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from contracts import Envelope, Payload, new_envelope, parse_envelope, topics
from contracts.events import StatusChanged
from devkit.testing import Infra, create_database, drop_database
from gateway.app import build_app
from gateway.runtime import GatewayRuntime
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
        envelope = new_envelope(payload, tenant_id=tenant_id, conversation_id=conversation_id)
        producer = AIOKafkaProducer(bootstrap_servers=self.infra.kafka_bootstrap_servers, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(
                self.prefix + topics.CONVERSATION_EVENTS.name, envelope.to_json(), key=envelope.key
            )
        finally:
            await producer.stop()

    async def wait_live(self) -> None:
        """The subscriber starts at "latest": wait until it demonstrably receives, or events
        published by a test right after start-up could land before its position is set."""
        probe = uuid.uuid4()
        seen = self.runtime.hub.events_seen
        for _ in range(100):
            await self.publish_event(StatusChanged(previous="AI", status="QUEUED"), probe)
            await asyncio.sleep(0.2)
            if self.runtime.hub.events_seen > seen:
                return
        raise AssertionError("the gateway never received an event from conversation.events")

    async def commands(self, conversation_id: uuid.UUID, count: int, timeout: float = 15) -> list[Envelope[Any]]:
        """Reads back the commands of one conversation from the (prefixed) commands topic."""
        return await read_commands(self.infra, self.prefix, conversation_id, count, timeout)


async def read_commands(
    infra: Infra, prefix: str, conversation_id: uuid.UUID, count: int, timeout: float = 15
) -> list[Envelope[Any]]:
    topic = prefix + topics.CONVERSATION_COMMANDS.name
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    found: list[Envelope[Any]] = []
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or range(6)]
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
    """The shipped tenant plus a second one, to test that nothing crosses tenants."""
    directory = tmp_path_factory.mktemp("tenants")
    shutil.copy(SERVICE_DIR / "tenants" / "lucine-di-natale.yaml", directory)
    (directory / "acme.yaml").write_text(
        "tenant_id: acme\nname: ACME\nwidget_key: " + OTHER_KEY + "\n"
        "allowed_origins: ['" + OTHER_ORIGIN + "']\ndefault_language: en\n"
    )
    return directory


@pytest.fixture(scope="session")
async def gateway(infra: Infra, topic_prefix: str, read_api: Any, tenants_dir: Path) -> AsyncIterator[Gateway]:
    database = await create_database(infra, "gateway_test")
    app = build_app(servers.gateway_settings(infra, database, topic_prefix, read_api.url, tenants_dir))
    try:
        async with servers.serve_app(app) as url:
            gw = Gateway(url=url, runtime=app.state.runtime, read_api=read_api, prefix=topic_prefix, infra=infra)
            async with httpx.AsyncClient(base_url=url, timeout=15) as client:
                gw.http = client
                await gw.wait_live()
                yield gw
    finally:
        await drop_database(infra, database)
