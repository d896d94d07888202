"""Subscribers of the ai-responder: it answers customer messages while the AI has the conversation.

Each handler runs in the idempotent consumer's transaction: one customer message gets exactly one
reply, even when Kafka delivers it twice. The reply id is derived from the message id, so a reply
the conversation service sees twice is recognised there too.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ai_responder.answering import Answer, AnswerMode, Question, UnknownTenantError
from ai_responder.assistant import Assistant
from ai_responder.store import (
    PostedMessage,
    QuestionContext,
    StartedConversation,
    question_contexts,
    remember_conversations,
    remember_messages,
)
from contracts import Envelope, new_envelope
from contracts.common import ConversationStatus, HandoffReason, Sender, SmartAction, SmartActionType
from contracts.events import AiReplyGenerated, ConversationStarted, MessagePosted
from servicekit.consumer import EventConsumer
from servicekit.logs import get_logger
from servicekit.outbox import add_to_outbox

log = get_logger(__name__)
QUESTION_CONTEXTS = "ai_responder.question_contexts"  # session.info: the batch's questions' contexts

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


def is_question(message: MessagePosted) -> bool:
    """A customer message the assistant answers: one sent while the AI has the conversation."""
    return message.sender == Sender.CUSTOMER and message.status == ConversationStatus.AI


def register(consumer: EventConsumer, assistant: Assistant, history_messages: int) -> None:
    @consumer.prepare
    async def prepare(envelopes: list[Envelope[Any]], session: AsyncSession) -> None:
        """Stores what the batch tells about conversations and loads its questions' contexts, in
        three statements whatever the batch size; the handlers below then only answer."""
        started: list[StartedConversation] = []
        posted: list[PostedMessage] = []
        questions: list[tuple[uuid.UUID, int]] = []
        for e in envelopes:
            if e.conversation_id is None:
                continue
            if isinstance(e.payload, ConversationStarted):
                started.append(StartedConversation(e.conversation_id, e.tenant_id, e.payload.locale))
            elif isinstance(e.payload, MessagePosted):
                posted.append(PostedMessage(e.conversation_id, e.payload.seq, e.payload.sender.value, e.payload.text))
                if is_question(e.payload):
                    questions.append((e.conversation_id, e.payload.seq))
        await remember_conversations(session, started)
        await remember_messages(session, posted)
        session.info[QUESTION_CONTEXTS] = await question_contexts(session, questions, history_messages)

    @consumer.on(ConversationStarted)
    async def on_started(envelope: Envelope[ConversationStarted], session: AsyncSession) -> None:
        """Nothing more to do: `prepare` stored the conversation's context."""

    @consumer.on(MessagePosted)
    async def on_message(envelope: Envelope[MessagePosted], session: AsyncSession) -> None:
        message = envelope.payload
        assert envelope.conversation_id is not None
        if not is_question(message):
            return
        contexts: dict[tuple[uuid.UUID, int], QuestionContext] = session.info[QUESTION_CONTEXTS]
        context = contexts.get((envelope.conversation_id, message.seq)) or QuestionContext()
        question = Question(
            tenant_id=envelope.tenant_id,
            text=message.text,
            language=context.locale,
            history=[(Sender(sender), text) for sender, text in context.history],
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
