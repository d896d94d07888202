"""Subscribers of the analytics service: every domain event that matters becomes one fact.

The handlers only note what each event means (its fact, a question asked, a reply judged) in the
transaction's `Work`; the closing batch step then writes it all in a few set-based statements,
inside the idempotent consumer's transaction (servicekit.consumer): the facts not stored before
are stored and staged in the outbox for `analytics.facts.v1` together, exactly once, the
conversations they concern are brought up to date by folding the new facts into each one's stored
fold (`store.summarise_conversations`), and the tickets are rebuilt from all of their facts
(`store.rebuild_ticket`). A lock per conversation and ticket is taken before the batch begins.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from analytics import domain, store
from analytics.config import Settings
from contracts import Envelope, utc_now
from contracts.common import ConversationStatus, Sender
from contracts.events import AiReplyGenerated, AnalyticsFact, AnswerFeedbackGiven, MessagePosted
from servicekit.consumer import EventConsumer
from servicekit.outgoing import Outgoing

WORK = "analytics_work"  # session.info: the transaction's `Work`


@dataclass
class Work:
    """What a batch's events mean, written by the closing batch step."""

    facts: list[tuple[Envelope[Any], AnalyticsFact]] = field(default_factory=list)
    questions: list[store.Question] = field(default_factory=list)
    judgements: list[tuple[str, uuid.UUID, bool]] = field(default_factory=list)

    @staticmethod
    def of(session: AsyncSession) -> Work:
        work: Work | None = session.info.get(WORK)
        if work is None:  # not `setdefault(WORK, Work())`, which would make one for every event
            work = session.info[WORK] = Work()
        return work


def conversation_key(envelope: Envelope[Any]) -> tuple[str, uuid.UUID] | None:
    return (envelope.tenant_id, envelope.conversation_id) if envelope.conversation_id else None


def ticket_key(envelope: Envelope[Any]) -> tuple[str, uuid.UUID] | None:
    payload = envelope.payload
    # Asked of the model's fields first: a pydantic model without the attribute raises inside.
    ticket_id = getattr(payload, "ticket_id", None) if "ticket_id" in type(payload).model_fields else None
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
    async def write_what_the_batch_means(envelopes: list[Envelope[Any]], session: AsyncSession) -> None:
        work = session.info.pop(WORK, None) or Work()
        stored = await store.add_facts(session, [fact for _, fact in work.facts])
        new_facts = [(envelope, fact) for envelope, fact in work.facts if fact.fact_id in stored]
        for envelope, fact in new_facts:  # a fact stored before is not published again
            out = Outgoing(session, envelope)
            out.emit(fact)
            out.flush()
        await store.keep_questions(session, work.questions)
        await store.judge_questions(session, work.judgements)
        await store.summarise_conversations(session, [fact for _, fact in new_facts])
        for tenant_id, ticket_id in sorted({k for e in envelopes if (k := ticket_key(e))}):
            await store.rebuild_ticket(session, tenant_id, ticket_id)

    async def record(envelope: Envelope[Any], session: AsyncSession) -> None:
        """Notes the event's fact, stored and published at the end of the batch."""
        fact = domain.fact_of(envelope, utc_now(), settings.kb_gap_confidence)
        if fact is not None:
            Work.of(session).facts.append((envelope, fact))

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
            question = store.Question(
                envelope.tenant_id, message.message_id, envelope.conversation_id, envelope.occurred_at, message.text
            )
            Work.of(session).questions.append(question)

    @consumer.on(AiReplyGenerated)
    async def on_ai_reply(envelope: Envelope[AiReplyGenerated], session: AsyncSession) -> None:
        await record(envelope, session)
        reply = envelope.payload
        kb_gap = domain.is_kb_gap(reply, settings.kb_gap_confidence)
        Work.of(session).judgements.append((envelope.tenant_id, reply.in_reply_to, kb_gap))

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
