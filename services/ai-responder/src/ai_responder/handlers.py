"""Subscribers of the ai-responder: it answers customer messages while the AI has the conversation,
and gives a tenant created through the platform its knowledge base from its profile (`profiles.py`).

Each handler runs in the idempotent consumer's transaction: one customer message gets exactly one
reply, even when Kafka delivers it twice. The reply id is derived from the message id, so a reply
the conversation service sees twice is recognised there too.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ai_responder.answering import Answer, AnswerMode, Question
from ai_responder.assistant import Assistant
from ai_responder.profiles import apply_profile
from ai_responder.store import (
    PostedMessage,
    QuestionContext,
    StartedConversation,
    UnansweredQuestion,
    record_unanswered,
    remember_conversations,
    remember_messages_and_recall,
)
from contracts import Envelope
from contracts.common import ConversationStatus, HandoffReason, Sender
from contracts.envelope import idempotency_key
from contracts.events import AiReplyGenerated, ConversationStarted, MessagePosted, TenantProfileChanged
from servicekit.consumer import EventConsumer
from servicekit.logs import get_logger
from servicekit.outgoing import Outgoing

log = get_logger(__name__)
ANSWERS = "ai_responder.answers"  # session.info: the answers to the batch's questions, by (conversation, seq)


def reply_id_for(message_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(message_id, "ai-reply")


def is_question(message: MessagePosted) -> bool:
    """A customer message the assistant answers: one sent while the AI has the conversation."""
    return message.sender == Sender.CUSTOMER and message.status == ConversationStatus.AI


def is_gap(answer: Answer) -> bool:
    """No KB answer and a person offered for it: not a request for a person, nor only a mood, nor
    someone who may be in danger (whom no article is meant to answer)."""
    return (
        answer.handoff_reason is not None
        and not answer.sources
        and answer.handoff_reason not in (HandoffReason.CUSTOMER_REQUEST, HandoffReason.NEGATIVE_SENTIMENT)
        and not answer.urgent
    )


def question_of(envelope: Envelope[MessagePosted], context: QuestionContext) -> Question:
    return Question(
        tenant_id=envelope.tenant_id,
        text=envelope.payload.text,
        language=context.locale,
        history=[(Sender(sender), text) for sender, text in context.history],
        idempotency_key=idempotency_key(envelope.event_id, "llm-answer"),
    )


def register(consumer: EventConsumer, assistant: Assistant, history_messages: int) -> None:
    @consumer.prepare
    async def prepare(envelopes: list[Envelope[Any]], session: AsyncSession) -> None:
        """Stores what the batch tells about conversations, loads its questions' contexts (two
        statements at most, whatever the batch size) and answers them together; the handlers
        below then only reply."""
        started: list[StartedConversation] = []
        posted: list[PostedMessage] = []
        asked: list[Envelope[MessagePosted]] = []
        for e in envelopes:
            if e.conversation_id is None:
                continue
            if isinstance(e.payload, ConversationStarted):
                started.append(StartedConversation(e.conversation_id, e.tenant_id, e.payload.locale))
            elif isinstance(e.payload, MessagePosted):
                posted.append(PostedMessage(e.conversation_id, e.payload.seq, e.payload.sender.value, e.payload.text))
                if is_question(e.payload):
                    asked.append(e)
        await remember_conversations(session, started)
        keys = [(e.conversation_id, e.payload.seq) for e in asked if e.conversation_id is not None]
        contexts = await remember_messages_and_recall(session, posted, keys, history_messages)
        questions = [question_of(e, contexts.get(key) or QuestionContext()) for e, key in zip(asked, keys, strict=True)]
        answers = await assistant.answer_all(questions)
        session.info[ANSWERS] = dict(zip(keys, answers, strict=True))
        # Questions the KB did not answer are its gaps: kept for the knowledge-base page.
        await record_unanswered(
            session,
            [
                UnansweredQuestion(
                    question_id=e.payload.message_id,
                    tenant_id=e.tenant_id,
                    conversation_id=e.conversation_id,
                    text=e.payload.text,
                    language=a.language,
                    reason=str(a.handoff_reason),
                )
                for e, a in zip(asked, answers, strict=True)
                if is_gap(a)
            ],
        )

    @consumer.on(ConversationStarted)
    async def on_started(envelope: Envelope[ConversationStarted], session: AsyncSession) -> None:
        """Nothing more to do: `prepare` stored the conversation's context."""

    @consumer.on(MessagePosted)
    async def on_message(envelope: Envelope[MessagePosted], session: AsyncSession) -> None:
        message = envelope.payload
        assert envelope.conversation_id is not None
        if not is_question(message):
            return
        answer: Answer = session.info[ANSWERS][(envelope.conversation_id, message.seq)]
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
            upset=answer.upset,
            urgent=answer.urgent,
        )
        out = Outgoing(session, envelope)
        out.emit(reply)
        out.flush()

    @consumer.on(TenantProfileChanged)
    async def on_profile_changed(envelope: Envelope[TenantProfileChanged], session: AsyncSession) -> None:
        """Every replica answers from the knowledge base this stores at its next refresh (`kb_refresh_s`)."""
        await apply_profile(session, envelope)
