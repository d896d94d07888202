"""Routing as a real process on real Kafka and PostgreSQL, SIGKILLed while conversations are
queued and an offer is pending: after the restart no queue entry or assignment is lost, nothing
is assigned twice, and the pending offer still expires to the next operator."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts import Envelope, Payload, new_envelope, parse_envelope
from contracts.events import (
    ConversationQueued,
    HandoffRequested,
    OfferClosed,
    OfferMade,
    OperatorAssigned,
    OperatorPresenceChanged,
    SetOperatorPresence,
)
from contracts.topics import ROUTING_EVENTS
from devkit.testing import Infra, ServiceProcess
from servicekit.kafka import physical_topic
from servicekit.topics import delete_topics, ensure_topics

TENANT = "lucine-di-natale"
OFFER_TIMEOUT_SECONDS = 8  # long enough for the kill to come while the offer is pending


class RoutingEvents:
    """Everything on the routing events topic, read without a group from the start."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.seen: dict[uuid.UUID, Envelope[Any]] = {}  # by event id: a redelivery counts once

    async def wait_for(self, what: str, found: Callable[[list[Envelope[Any]]], bool]) -> list[Envelope[Any]]:
        for _ in range(600):
            batches = await self.consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    envelope = parse_envelope(record.value)
                    self.seen.setdefault(envelope.event_id, envelope)
            if found(list(self.seen.values())):
                return list(self.seen.values())
        pytest.fail(f"never saw {what}")

    def of(self, payload_cls: type[Payload], conversation_id: uuid.UUID | None = None) -> list[Any]:
        return [
            e.payload
            for e in self.seen.values()
            if isinstance(e.payload, payload_cls) and (conversation_id is None or e.conversation_id == conversation_id)
        ]


@pytest.fixture
async def prefix(infra: Infra) -> AsyncIterator[str]:
    name = f"routing-kill-{uuid.uuid4().hex[:8]}."
    await ensure_topics(infra.kafka_bootstrap_servers, prefix=name)
    yield name
    await delete_topics(infra.kafka_bootstrap_servers, name)


async def test_sigkill_while_queued_and_offered_loses_nothing_assigns_once_and_the_offer_still_expires(
    infra: Infra, database: str, prefix: str, tmp_path: Path
) -> None:
    routing = ServiceProcess(
        "routing",
        infra,
        database,
        tmp_path,
        prefix,
        {"OFFER_TIMEOUT_SECONDS": str(OFFER_TIMEOUT_SECONDS), "PRESENCE_TIMEOUT_SECONDS": "600"},
    )
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers, acks="all")
    consumer = AIOKafkaConsumer(
        physical_topic(prefix, ROUTING_EVENTS.name),
        bootstrap_servers=infra.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
    )
    await producer.start()
    await consumer.start()
    events = RoutingEvents(consumer)

    async def send(payload: Payload, conversation_id: uuid.UUID | None = None) -> None:
        envelope = new_envelope(payload, tenant_id=TENANT, conversation_id=conversation_id)
        await producer.send_and_wait(physical_topic(prefix, payload.topic), envelope.to_json(), key=envelope.key)

    async def go_online(operator_id: str, capacity: int) -> None:
        await send(
            SetOperatorPresence(operator_id=operator_id, display_name=operator_id, presence="online", capacity=capacity)
        )
        await events.wait_for(
            f"{operator_id} online",
            lambda _: any(p.operator_id == operator_id for p in events.of(OperatorPresenceChanged)),
        )

    def offered(conversation_id: uuid.UUID) -> list[str]:
        return [o.operator_id for o in events.of(OfferMade, conversation_id)]

    async def take(client: httpx.AsyncClient, conversation_id: uuid.UUID, operator_id: str) -> int:
        body = {"tenant_id": TENANT, "operator_id": operator_id, "display_name": operator_id}
        response = await client.post(f"{routing.url}/internal/conversations/{conversation_id}/take", json=body)
        return response.status_code

    served, pending, queued_first, queued_second = (uuid.uuid4() for _ in range(4))
    try:
        await routing.start()
        await go_online("anna", capacity=1)
        await send(HandoffRequested(), served)
        await events.wait_for("the first offer", lambda _: offered(served) == ["anna"])
        async with httpx.AsyncClient() as client:
            assert await take(client, served, "anna") == 200
        await go_online("bruno", capacity=1)
        for conversation_id in (pending, queued_first, queued_second):
            await send(HandoffRequested(), conversation_id)
        await events.wait_for(
            "an offer to bruno and two queued conversations",
            lambda _: (
                offered(pending) == ["bruno"]
                and {queued_first, queued_second}
                <= {e.conversation_id for e in _ if isinstance(e.payload, ConversationQueued)}
            ),
        )

        routing.kill()
        await routing.start()
        await go_online("carla", capacity=3)

        await events.wait_for(
            "the pending offer expiring to carla and the queue drained",
            lambda _: offered(pending) == ["bruno", "carla"] and all(offered(c) for c in (queued_first, queued_second)),
        )
        (closed,) = events.of(OfferClosed, pending)
        assert (closed.operator_id, closed.outcome) == ("bruno", "expired")

        async with httpx.AsyncClient() as client:
            assert await take(client, served, "carla") == 409, "anna's assignment survived the kill"
            for conversation_id in (pending, queued_first, queued_second):
                assert await take(client, conversation_id, offered(conversation_id)[-1]) == 200
            operators = (await client.get(f"{routing.url}/internal/operators", params={"tenant_id": TENANT})).json()
        await events.wait_for("every assignment", lambda _: len(events.of(OperatorAssigned)) >= 4)
        for conversation_id in (served, pending, queued_first, queued_second):
            assert len(events.of(OperatorAssigned, conversation_id)) == 1, "assigned exactly once"
        loads = {o["operator_id"]: o["active_conversations"] for o in operators}
        assert sum(loads.values()) == 4
        assert loads["anna"] == 1
    finally:
        routing.stop()
        await consumer.stop()
        await producer.stop()
