"""The whole system as real processes on real Kafka, PostgreSQL and Redis, for one test session.

Topics are namespaced with a unique prefix and every service gets a fresh database, so the
stack is isolated from `make up` and from earlier runs on the same infrastructure.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from contracts.topics import CONVERSATION_EVENTS
from devkit.stack import SERVICES, Stack, free_port
from devkit.testing import Infra, create_database, drop_database
from servicekit.topics import delete_topics, ensure_topics

DEMO_TENANT = "lucine-di-natale"
DEMO_WIDGET_KEY = "wk_lucine_demo_2025"
ADMIN_TOKEN = f"admin-{uuid.uuid4().hex}"


@contextmanager
def isolated_stack(infra: Infra, log_dir: Path, extra_env: dict[str, dict[str, str]] | None = None) -> Iterator[Stack]:
    """Every built service as a process, on topics under a prefix of their own and fresh
    databases; `extra_env` adds settings per service (a short timeout, an LLM's address)."""
    prefix = f"e2e-{uuid.uuid4().hex[:8]}."
    asyncio.run(ensure_topics(infra.kafka_bootstrap_servers, prefix=prefix))
    specs = [spec for spec in SERVICES if spec.built]
    databases = {spec.name: asyncio.run(create_database(infra, spec.module)) for spec in specs if spec.database}
    ports = {spec.name: free_port() for spec in specs}
    env = {"ai-responder": {"ADMIN_TOKEN": ADMIN_TOKEN}}
    for name, values in (extra_env or {}).items():
        env[name] = {**env.get(name, {}), **values}
    running = Stack(
        base_env={**infra.service_env(""), "KAFKA_TOPIC_PREFIX": prefix, "LOG_LEVEL": "INFO"},
        ports=ports,
        databases=databases,
        log_dir=log_dir,
        extra_env=env,
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
