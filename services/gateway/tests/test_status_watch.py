"""A take waits for the conversation's own status change among the events the gateway fans out:
the real `Hub` fed conversation events, with no socket of that conversation in this process."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import ConsumerRecord

from contracts import Payload, new_envelope
from contracts.common import ConversationStatus as S
from contracts.events import StatusChanged
from gateway.hub import Hub
from gateway.readapi import ConversationReader


def record(payload: Payload, conversation_id: uuid.UUID) -> ConsumerRecord[bytes, bytes]:
    envelope = new_envelope(payload, tenant_id="lucine-di-natale", conversation_id=conversation_id)
    value = envelope.to_json()
    return ConsumerRecord("conversation.events.v1", 0, 0, 0, 0, envelope.key, value, None, 0, len(value), [])


async def test_a_watch_is_resolved_by_the_first_change_it_accepts_and_forgotten_after() -> None:
    hub = Hub(ConversationReader(None))  # type: ignore[arg-type]  # no history is read here
    conversation_id = uuid.uuid4()

    def held_by_giulia(change: StatusChanged) -> bool:
        return change.status == S.WITH_OPERATOR and change.operator_id == "lucine-giulia"

    with hub.watching(conversation_id, held_by_giulia) as applied:
        await hub.on_record(record(StatusChanged(previous=S.AI, status=S.QUEUED), conversation_id))
        other = StatusChanged(previous=S.QUEUED, status=S.WITH_OPERATOR, operator_id="lucine-marco")
        await hub.on_record(record(other, uuid.uuid4()))  # another conversation
        assert not applied.done()
        mine = StatusChanged(previous=S.QUEUED, status=S.WITH_OPERATOR, operator_id="lucine-giulia")
        await hub.on_record(record(mine, conversation_id))
        await asyncio.wait_for(applied, 1)
    assert hub.watches == {}, "nothing is kept once the take has its answer"
