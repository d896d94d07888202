"""An operator socket gets the newest queue hint and colleague presence, not every one of them,
whether it falls behind or keeps up; a colleague's assignment reaches it in full only where it
needs the details. Routing's events are fed to the real `OperatorHub`; the WebSocket is the only
stand-in: it records what the gateway writes, and a slow one does not read until told to."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import ConsumerRecord

from contracts import Payload, new_envelope
from contracts.events import (
    OfferMade,
    OperatorAssigned,
    OperatorPresenceChanged,
    OperatorReleased,
    QueuePositionChanged,
)
from gateway.hub import Hub
from gateway.operator_stream import OperatorConnection, OperatorHub
from gateway.readapi import ConversationReader
from gateway.tokens import OperatorClaims

TENANT = "lucine-di-natale"


class SlowSocket:
    """Records each text frame; each send waits until the reader is let go."""

    def __init__(self, reading: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.reading = asyncio.Event()
        if reading:
            self.reading.set()

    async def send_text(self, text: str) -> None:
        await self.reading.wait()
        self.sent.append(json.loads(text))


def record(payload: Payload, conversation_id: uuid.UUID | None = None) -> ConsumerRecord[bytes, bytes]:
    envelope = new_envelope(payload, tenant_id=TENANT, conversation_id=conversation_id)
    value = envelope.to_json()
    return ConsumerRecord("routing.events.v1", 0, 0, 0, 0, envelope.key, value, None, 0, len(value), [])


def presence(active: int) -> OperatorPresenceChanged:
    return OperatorPresenceChanged(
        operator_id="lucine-marco", presence="online", active_conversations=active, capacity=5
    )


def connect(
    operators: OperatorHub, socket: SlowSocket, role: str = "operator", hint_delay: float = 0.0
) -> OperatorConnection:
    claims = OperatorClaims(operator_id="lucine-giulia", tenant_id=TENANT, role=role, display_name="Giulia")
    connection = OperatorConnection(operators.hub, socket, claims, hint_delay)  # type: ignore[arg-type]
    operators.add(connection)
    return connection


async def settle() -> None:
    for _ in range(100):
        await asyncio.sleep(0)


async def test_a_socket_behind_gets_one_queue_frame_and_the_newest_presence_and_every_assignment() -> None:
    hub = Hub(ConversationReader(None))  # type: ignore[arg-type]  # no history is read here
    operators = OperatorHub(hub)
    socket = SlowSocket()
    connection = connect(operators, socket, role="supervisor")  # told every assignment as it is
    queued = [uuid.uuid4() for _ in range(40)]
    taken = uuid.uuid4()

    await operators.on_record(record(presence(0)))
    await asyncio.sleep(0.01)  # taken by the socket's writer, which waits: the socket is not read
    for position, conversation_id in enumerate(queued, start=1):
        await operators.on_record(record(QueuePositionChanged(position=position), conversation_id))
    for active in range(1, 6):
        await operators.on_record(record(presence(active)))
    await operators.on_record(record(OperatorAssigned(operator_id="lucine-marco", display_name="Marco"), taken))
    await operators.on_record(record(QueuePositionChanged(position=1), queued[0]))

    socket.reading.set()
    await settle()
    frames = [(f["type"], f["event"], f["data"].get("active_conversations")) for f in socket.sent]
    assert frames == [
        ("presence", "operator_presence_changed", 0),
        ("queue", "queue_position_changed", None),  # forty position changes waiting: one frame
        ("presence", "operator_presence_changed", 5),  # the newest of five, where the first waited
        ("assignment", "operator_assigned", None),
    ]
    # Once a frame has gone out, the next change of its key is sent again.
    await operators.on_record(record(QueuePositionChanged(position=2), queued[1]))
    await operators.on_record(record(presence(4)))
    await settle()
    assert [(f["type"], f["data"].get("active_conversations")) for f in socket.sent[4:]] == [
        ("queue", None),
        ("presence", 4),
    ]
    assert connection.waiting == {}


async def test_a_socket_that_keeps_up_gets_a_burst_of_hints_as_one_frame_after_the_delay() -> None:
    operators = OperatorHub(Hub(ConversationReader(None)))  # type: ignore[arg-type]
    socket = SlowSocket(reading=True)
    connect(operators, socket, hint_delay=0.05)

    for position in range(1, 11):
        await operators.on_record(record(QueuePositionChanged(position=position), uuid.uuid4()))
        await asyncio.sleep(0.001)
    await operators.on_record(record(presence(1)))
    await operators.on_record(record(presence(2)))
    await settle()
    assert socket.sent == []  # hints wait out the delay
    await asyncio.sleep(0.1)
    assert [(f["type"], f["data"].get("active_conversations")) for f in socket.sent] == [
        ("queue", None),
        ("presence", 2),
    ]

    # A frame that is always sent goes out at once, taking the hints waiting before it along.
    await operators.on_record(record(QueuePositionChanged(position=1), uuid.uuid4()))
    offer = OfferMade(
        offer_id=uuid.uuid4(), operator_id="lucine-giulia", expires_at=datetime.now(UTC) + timedelta(seconds=30)
    )
    await operators.on_record(record(offer, uuid.uuid4()))
    await settle()
    assert [f["type"] for f in socket.sent[2:]] == ["queue", "offer"]


async def test_a_colleagues_assignment_is_a_queue_hint_unless_followed_or_supervised() -> None:
    operators = OperatorHub(Hub(ConversationReader(None)))  # type: ignore[arg-type]
    plain, following, supervisor = SlowSocket(reading=True), SlowSocket(reading=True), SlowSocket(reading=True)
    connect(operators, plain)
    watcher = connect(operators, following)
    connect(operators, supervisor, role="supervisor")
    taken = uuid.uuid4()
    watcher.feeds[taken] = None  # type: ignore[assignment]  # following it is all that counts here

    await operators.on_record(record(OperatorAssigned(operator_id="lucine-marco", display_name="Marco"), taken))
    await operators.on_record(record(OperatorReleased(operator_id="lucine-marco", reason="closed"), taken))
    await settle()
    await asyncio.sleep(0.01)

    def seen(socket: SlowSocket) -> list[tuple[str, str]]:
        return [(f["type"], f["event"]) for f in socket.sent]

    assert seen(plain) == [("queue", "queue_changed")]
    assert plain.sent[0]["data"] == {}  # not even who took it
    told = [("assignment", "operator_assigned"), ("assignment", "operator_released")]
    assert seen(following) == told
    assert seen(supervisor) == told
