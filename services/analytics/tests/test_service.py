"""The service as it runs (its app, migrations at start, its consumer group, the outbox relay) on
real Kafka and PostgreSQL: domain events in, facts out on `analytics.facts.v1`, figures served."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
from aiokafka import AIOKafkaConsumer

from analytics.app import build_app
from analytics.config import Settings
from contracts.common import FactName
from contracts.topics import ANALYTICS_FACTS
from devkit.testing import Infra, eventually, topic_namespace
from servicekit.kafka import create_broker

from .conftest import TENANT, Mix

PREFIX = f"an-{uuid.uuid4().hex[:8]}."
SCHEMA = Path(__file__).resolve().parents[3] / "docs" / "contracts" / "schemas" / "analytics.fact.v1.json"


@pytest.fixture(scope="module", autouse=True)
def prefixed_topics(infra: Infra) -> Iterator[None]:
    yield from topic_namespace(infra, PREFIX)


async def test_domain_events_on_kafka_become_facts_on_the_analytics_topic_and_figures(
    infra: Infra, database: str, mix: Mix
) -> None:
    settings = Settings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        kafka_topic_prefix=PREFIX,
        kafka_group_id=f"analytics-{PREFIX}",  # never joins a running stack's group
        postgres_host=infra.postgres_host,
        postgres_port=infra.postgres_port,
        postgres_user=infra.postgres_user,
        postgres_password=infra.postgres_password,
        postgres_db=database,
        environment="test",
    )
    app = build_app(settings)
    events = [e for batch in mix.batches for e in batch if e.tenant_id == TENANT]
    producer = create_broker(infra.kafka_bootstrap_servers, "analytics-test-producer")
    facts = AIOKafkaConsumer(
        PREFIX + ANALYTICS_FACTS.name, bootstrap_servers=infra.kafka_bootstrap_servers, auto_offset_reset="earliest"
    )
    published: dict[str, dict[str, Any]] = {}

    async def read_facts() -> bool:
        for records in (await facts.getmany(timeout_ms=300)).values():
            for record in records:
                document = json.loads(record.value)
                published[document["payload"]["fact_id"]] = document
        return len(published) >= len({e.event_id for e in events})

    async with app.router.lifespan_context(app):
        await producer.start()
        await facts.start()
        try:
            for envelope in events:  # duplicates included: each event once in effect
                await producer.publish(envelope.to_json(), PREFIX + envelope.payload.topic, key=envelope.key)
            await eventually(read_facts, what="a fact per distinct event on the analytics topic")
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://analytics") as api:
                ready = await api.get("/readyz")
                overview = await api.get(
                    "/internal/analytics/overview",
                    params={"tenant_id": TENANT, "from": "2025-03-10", "to": "2025-03-10"},
                )
        finally:
            await facts.stop()
            await producer.stop()

    assert ready.status_code == 200, ready.text
    assert len(published) == len({e.event_id for e in events})
    validator = jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))
    assert all(validator.is_valid(document) for document in published.values())
    names = {document["payload"]["name"] for document in published.values()}
    assert {FactName.CONVERSATION_STARTED, FactName.TICKET_OPENED, FactName.OPERATOR_ASSIGNED} <= names
    body = overview.json()
    assert (body["conversations_started"], body["handed_off"], body["tickets_created"]) == (8, 4, 2)
