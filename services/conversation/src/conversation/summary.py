"""The handover summary an operator sees at takeover, built from the conversation's own messages:
no LLM, so it works in retrieval mode too."""

from __future__ import annotations

from collections.abc import Sequence

from contracts.common import HandoffReason, Sender, TranscriptLine
from contracts.readapi import HandoverSummaryView
from conversation.store import Conversation, Message, is_upset

MAX_OPEN_ITEMS = 5


def handover_summary(conversation: Conversation, messages: Sequence[Message]) -> HandoverSummaryView:
    # The AI part: everything before an operator first wrote.
    ai_part: list[Message] = []
    for message in messages:
        if message.sender == Sender.OPERATOR.value:
            break
        ai_part.append(message)
    customer = [m for m in ai_part if m.sender == Sender.CUSTOMER.value]
    # A message that only asked for a person is neither a topic nor open: the handoff answers it.
    asked_for_a_person = requests_for_a_person(ai_part)
    topics = [m for m in customer if m.seq not in asked_for_a_person] or customer[:1]
    grounded = [m for m in ai_part if m.sender == Sender.AI.value and m.sources]
    answered: list[str] = []
    for reply in grounded:
        for source in reply.sources:
            title = str(source.get("title", ""))
            if title and title not in answered:
                answered.append(title)
    after_last_answer = grounded[-1].seq if grounded else 0
    still_open = [
        TranscriptLine.excerpt_text(m.text)
        for m in customer
        if m.seq > after_last_answer and m.seq not in asked_for_a_person
    ]
    last_ai = next((m for m in reversed(ai_part) if m.sender == Sender.AI.value), None)
    return HandoverSummaryView(
        conversation_id=conversation.id,
        tenant_id=conversation.tenant_id,
        status=conversation.state,
        customer_wants=TranscriptLine.excerpt_text(topics[0].text) if topics else "",
        ai_answered=answered,
        still_open=still_open[-MAX_OPEN_ITEMS:],
        mood="upset" if is_upset(conversation) else "neutral",
        handoff_reason=conversation.handoff_reason,
        last_ai_confidence=last_ai.confidence if last_ai is not None else None,
    )


def requests_for_a_person(messages: Sequence[Message]) -> set[int]:
    """The seqs of the customer's messages that the assistant answered with the offer of a person
    alone, for the customer's own request (a question asked with the request got an answer too)."""
    asked: set[int] = set()
    since_last_reply: list[int] = []
    for message in messages:
        if message.sender == Sender.CUSTOMER.value:
            since_last_reply.append(message.seq)
        elif message.sender == Sender.AI.value:
            if message.handoff_reason == HandoffReason.CUSTOMER_REQUEST and not message.sources:
                asked.update(since_last_reply)
            since_last_reply = []
    return asked
