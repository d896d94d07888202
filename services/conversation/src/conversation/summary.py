"""The handover summary an operator sees at takeover, built from the conversation's own messages:
no LLM, so it works in retrieval mode too."""

from __future__ import annotations

from collections.abc import Sequence

from contracts.common import Sender, TranscriptLine
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
    grounded = [m for m in ai_part if m.sender == Sender.AI.value and m.sources]
    answered: list[str] = []
    for reply in grounded:
        for source in reply.sources:
            title = str(source.get("title", ""))
            if title and title not in answered:
                answered.append(title)
    after_last_answer = grounded[-1].seq if grounded else 0
    still_open = [TranscriptLine.excerpt_text(m.text) for m in customer if m.seq > after_last_answer]
    last_ai = next((m for m in reversed(ai_part) if m.sender == Sender.AI.value), None)
    return HandoverSummaryView(
        conversation_id=conversation.id,
        tenant_id=conversation.tenant_id,
        status=conversation.state,
        customer_wants=TranscriptLine.excerpt_text(customer[0].text) if customer else "",
        ai_answered=answered,
        still_open=still_open[-MAX_OPEN_ITEMS:],
        mood="upset" if is_upset(conversation) else "neutral",
        handoff_reason=conversation.handoff_reason,
        last_ai_confidence=last_ai.confidence if last_ai is not None else None,
    )
