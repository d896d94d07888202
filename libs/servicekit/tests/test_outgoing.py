"""Outgoing: the events a handler emits in answer to one envelope (no infrastructure needed)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope, new_envelope
from contracts.events import CommandRejected, ConversationStarted, StartConversation
from servicekit import outgoing
from servicekit.outgoing import Outgoing


@pytest.fixture
def staged(monkeypatch: pytest.MonkeyPatch) -> list[list[Envelope[Any]]]:
    """What each flush hands to the outbox, one list per call."""
    calls: list[list[Envelope[Any]]] = []

    def add_to_outbox(session: AsyncSession, envelopes: Iterable[Envelope[Any]]) -> None:
        calls.append(list(envelopes))

    monkeypatch.setattr(outgoing, "add_to_outbox", add_to_outbox)
    return calls


def test_events_carry_the_cause_and_are_staged_together_in_order(staged: list[list[Envelope[Any]]]) -> None:
    cause = new_envelope(StartConversation(), tenant_id="tenant-a", conversation_id=uuid.uuid4())
    other_conversation = uuid.uuid4()
    out = Outgoing(AsyncSession(), cause)
    out.emit(ConversationStarted())
    out.emit(CommandRejected(command_type=cause.type, command_event_id=cause.event_id, code="x", message="y"))
    out.emit(ConversationStarted(), other_conversation)
    out.flush()

    [events] = staged
    assert [type(e.payload) for e in events] == [ConversationStarted, CommandRejected, ConversationStarted]
    assert [e.conversation_id for e in events] == [cause.conversation_id, cause.conversation_id, other_conversation]
    for event in events:
        assert event.tenant_id == "tenant-a"
        assert event.causation_id == cause.event_id
        assert event.correlation_id == cause.correlation_id
    assert len({e.event_id for e in events}) == 3


def test_a_second_flush_stages_only_what_was_emitted_since(staged: list[list[Envelope[Any]]]) -> None:
    cause = new_envelope(StartConversation(), tenant_id="tenant-a", conversation_id=uuid.uuid4())
    out = Outgoing(AsyncSession(), cause)
    out.emit(ConversationStarted())
    out.flush()
    out.flush()
    out.emit(ConversationStarted())
    out.flush()
    assert [len(events) for events in staged] == [1, 0, 1]
    assert staged[0][0].event_id != staged[2][0].event_id
