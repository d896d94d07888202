"""Subscribers of the analytics service: every domain event that matters becomes one fact.

Each handler runs inside the idempotent consumer's transaction (servicekit.consumer): the fact is
stored and staged in the outbox for `analytics.facts.v1` together, exactly once. Once the batch's
facts are in, the conversations and tickets they concern are rebuilt from all of their facts
(`store.rebuild_*`), under a lock per conversation and ticket taken before the batch begins.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from analytics import domain, store
from analytics.config import Settings
from contracts import Envelope, utc_now
from contracts.common import ConversationStatus, Sender
from contracts.events import AiReplyGenerated, AnswerFeedbackGiven, MessagePosted
from servicekit.consumer import EventConsumer
from servicekit.outgoing import Outgoing


def conversation_key(envelope: Envelope[Any]) -> tuple[str, uuid.UUID] | None:
    return (envelope.tenant_id, envelope.conversation_id) if envelope.conversation_id else None


def ticket_key(envelope: Envelope[Any]) -> tuple[str, uuid.UUID] | None:
    ticket_id = getattr(envelope.payload, "ticket_id", None)
    return (envelope.tenant_id, ticket_id) if isinstance(ticket_id, uuid.UUID) else None


def register(consumer: EventConsumer, settings: Settings) -> None:
    @consumer.prepare
    async def lock_what_the_batch_touches(envelopes: list[Envelope[Any]], session: AsyncSession) -> None:
        keys = [
            f"analytics:{kind}:{key[0]}:{key[1]}"
            for envelope in envelopes
            for kind, key in (("conversation", conversation_key(envelope)), ("ticket", ticket_key(envelope)))
            if key is not None
        ]
        await store.lock(session, keys)

    @consumer.finish
    async def rebuild_what_the_batch_touched(envelopes: list[Envelope[Any]], session: AsyncSession) -> None:
        for tenant_id, conversation_id in sorted({k for e in envelopes if (k := conversation_key(e))}):
            await store.rebuild_conversation(session, tenant_id, conversation_id)
        for tenant_id, ticket_id in sorted({k for e in envelopes if (k := ticket_key(e))}):
            await store.rebuild_ticket(session, tenant_id, ticket_id)

    async def record(envelope: Envelope[Any], session: AsyncSession) -> None:
        """Stores the event's fact and publishes it (a fact stored before is not published again)."""
        fact = domain.fact_of(envelope, utc_now(), settings.kb_gap_confidence)
        if fact is not None and await store.add_fact(session, fact):
            out = Outgoing(session, envelope)
            out.emit(fact)
            out.flush()

    for source in domain.SOURCES:
        if source not in (MessagePosted, AiReplyGenerated, AnswerFeedbackGiven):
            consumer.on(source)(record)

    @consumer.on(MessagePosted)
    async def on_message(envelope: Envelope[MessagePosted], session: AsyncSession) -> None:
        await record(envelope, session)
        message = envelope.payload
        # A question to the assistant (it answers only in AI): kept for the knowledge-gap report
        # until a confident answer to it is known.
        if message.sender == Sender.CUSTOMER and message.status == ConversationStatus.AI and envelope.conversation_id:
            await store.keep_question(
                session,
                envelope.tenant_id,
                message.message_id,
                envelope.conversation_id,
                envelope.occurred_at,
                message.text,
            )

    @consumer.on(AiReplyGenerated)
    async def on_ai_reply(envelope: Envelope[AiReplyGenerated], session: AsyncSession) -> None:
        await record(envelope, session)
        reply = envelope.payload
        kb_gap = domain.is_kb_gap(reply, settings.kb_gap_confidence)
        await store.judge_question(session, envelope.tenant_id, reply.in_reply_to, kb_gap)

    @consumer.on(AnswerFeedbackGiven)
    async def on_answer_feedback(envelope: Envelope[AnswerFeedbackGiven], session: AsyncSession) -> None:
        await record(envelope, session)
        feedback = envelope.payload
        # An answer the customer said did not help: its question is a knowledge gap, however
        # confident the assistant was.
        if not feedback.helpful and feedback.question_message_id and feedback.question and envelope.conversation_id:
            await store.mark_not_helpful(
                session,
                envelope.tenant_id,
                feedback.question_message_id,
                envelope.conversation_id,
                envelope.occurred_at,
                feedback.question,
            )
