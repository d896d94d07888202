"""An operator socket that falls behind gets the newest queue hint and colleague presence, not
every one of them: routing's events fed to the real `OperatorHub`, a socket that does not read
until told to (the WebSocket is the only stand-in: it records what the gateway writes)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiokafka import ConsumerRecord

from contracts import Payload, new_envelope
from contracts.events import OperatorAssigned, OperatorPresenceChanged, QueuePositionChanged
from gateway.hub import Hub
from gateway.operator_stream import OperatorConnection, OperatorHub
from gateway.readapi import ConversationReader
from gateway.tokens import OperatorClaims

TENANT = "lucine-di-natale"


class SlowSocket:
    """Records each text frame; each send waits until the reader is let go."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.reading = asyncio.Event()

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


async def test_a_socket_behind_gets_one_queue_frame_and_the_newest_presence_and_every_assignment() -> None:
    hub = Hub(ConversationReader(None))  # type: ignore[arg-type]  # no history is read here
    operators = OperatorHub(hub)
    socket = SlowSocket()
    claims = OperatorClaims(operator_id="lucine-giulia", tenant_id=TENANT, role="operator", display_name="Giulia")
    connection = OperatorConnection(hub, socket, claims)  # type: ignore[arg-type]
    operators.add(connection)
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
    for _ in range(100):
        await asyncio.sleep(0)
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
    for _ in range(100):
        await asyncio.sleep(0)
    assert [(f["type"], f["data"].get("active_conversations")) for f in socket.sent[4:]] == [
        ("queue", None),
        ("presence", 4),
    ]
    assert connection.waiting == {}
