"""Subscribers of the ai-responder: it answers customer messages while the AI has the conversation.

Each handler runs in the idempotent consumer's transaction: one customer message gets exactly one
reply, even when Kafka delivers it twice. The reply id is derived from the message id, so a reply
the conversation service sees twice is recognised there too.
"""

from __future__ import annotations

import uuid

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ai_responder.answering import Answer, AnswerMode, Question, UnknownTenantError
from ai_responder.assistant import Assistant
from ai_responder.store import ConversationContext, RecentMessage, recent_history
from contracts import Envelope, new_envelope
from contracts.common import ConversationStatus, HandoffReason, Sender, SmartAction, SmartActionType
from contracts.events import AiReplyGenerated, ConversationStarted, MessagePosted
from servicekit.consumer import EventConsumer
from servicekit.logs import get_logger
from servicekit.outbox import add_to_outbox

log = get_logger(__name__)

# Said when a tenant has no knowledge base loaded: the customer still gets an answer and a person.
NO_KNOWLEDGE = {
    "it": ("Al momento non riesco a rispondere. Vuoi parlare con un operatore?", "Sì, chiama un operatore", "No"),
    "en": ("I can't answer right now. Would you like to talk to an operator?", "Yes, call an operator", "No"),
}


def reply_id_for(message_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(message_id, "ai-reply")


def cannot_answer(language: str) -> Answer:
    text, yes, no = NO_KNOWLEDGE.get(language, NO_KNOWLEDGE["it"])
    return Answer(
        text=text,
        language=language if language in NO_KNOWLEDGE else "it",
        confidence=0.0,
        smart_actions=[
            SmartAction(type=SmartActionType.REQUEST_OPERATOR, label=yes),
            SmartAction(type=SmartActionType.CONTINUE_AI, label=no),
        ],
        handoff_reason=HandoffReason.UNKNOWN_ANSWER,
    )


def register(consumer: EventConsumer, assistant: Assistant, history_messages: int) -> None:
    @consumer.on(ConversationStarted)
    async def on_started(envelope: Envelope[ConversationStarted], session: AsyncSession) -> None:
        assert envelope.conversation_id is not None
        await session.execute(
            insert(ConversationContext)
            .values(
                conversation_id=envelope.conversation_id, tenant_id=envelope.tenant_id, locale=envelope.payload.locale
            )
            .on_conflict_do_nothing()
        )

    @consumer.on(MessagePosted)
    async def on_message(envelope: Envelope[MessagePosted], session: AsyncSession) -> None:
        message = envelope.payload
        assert envelope.conversation_id is not None
        await session.execute(
            insert(RecentMessage)
            .values(conversation_id=envelope.conversation_id, seq=message.seq, sender=message.sender, text=message.text)
            .on_conflict_do_nothing()
        )
        if message.sender != Sender.CUSTOMER or message.status != ConversationStatus.AI:
            return
        context = await session.get(ConversationContext, envelope.conversation_id)
        history = await recent_history(session, envelope.conversation_id, message.seq, history_messages)
        question = Question(
            tenant_id=envelope.tenant_id,
            text=message.text,
            language=context.locale if context else None,
            history=[(Sender(m.sender), m.text) for m in history],
        )
        try:
            answer = await assistant.answer(question)
        except UnknownTenantError:
            log.error("no knowledge base for tenant", tenant=envelope.tenant_id)
            answer = cannot_answer(question.language or "it")
        reply = AiReplyGenerated(
            in_reply_to=message.message_id,
            reply_id=reply_id_for(message.message_id),
            text=answer.text,
            language=answer.language,
            confidence=answer.confidence,
            mode="llm" if answer.mode == AnswerMode.LLM else "retrieval",
            sources=answer.sources,
            smart_actions=answer.smart_actions,
            handoff_reason=answer.handoff_reason,
        )
        add_to_outbox(
            session,
            [
                new_envelope(
                    reply, tenant_id=envelope.tenant_id, conversation_id=envelope.conversation_id, causation=envelope
                )
            ],
        )
