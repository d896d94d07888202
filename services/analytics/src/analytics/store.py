"""Tables of the analytics service (its own database) and the queries on them.

`facts` keeps every fact once (its id derives from the source event). Each conversation and each
ticket has one row, rebuilt from all of its facts whenever one arrives (`domain.summarise_*`); the
figures are queries over those rows, never counters, so a late or repeated event changes nothing
it should not, and a replay into an empty store rebuilds the same rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Boolean,
    ColumnElement,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    and_,
    case,
    delete,
    false,
    func,
    not_,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from analytics import domain
from contracts.common import SlaClock
from contracts.events import AnalyticsFact
from contracts.readapi import AnalyticsFigure

Fig = AnalyticsFigure


class Base(DeclarativeBase):
    """The tables of this service's own database."""


class FactRecord(Base):
    """A fact as it was published on `analytics.facts.v1`: what the summaries are rebuilt from."""

    __tablename__ = "facts"
    __table_args__ = (
        Index("ix_facts_tenant_conversation", "tenant_id", "conversation_id"),
        Index("ix_facts_tenant_ticket", "tenant_id", "ticket_id"),
    )

    fact_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(40))
    conversation_id: Mapped[uuid.UUID | None] = mapped_column()
    ticket_id: Mapped[uuid.UUID | None] = mapped_column()
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    body: Mapped[dict[str, object]] = mapped_column(JSONB)


class ConversationRecord(Base):
    """One conversation, as its facts summarise it (see `domain.ConversationSummary`)."""

    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_tenant_started", "tenant_id", "started_at"),)

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_activity_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ai_answers: Mapped[int] = mapped_column(Integer)
    ai_involved: Mapped[bool] = mapped_column(Boolean)
    ai_resolution_candidate: Mapped[bool] = mapped_column(Boolean)
    answer_confirmed: Mapped[bool] = mapped_column(Boolean)
    handed_off: Mapped[bool] = mapped_column(Boolean)
    handoff_reason: Mapped[str | None] = mapped_column(String(40))
    escalated: Mapped[bool] = mapped_column(Boolean)
    unanswered: Mapped[bool] = mapped_column(Boolean)
    left_the_queue: Mapped[bool] = mapped_column(Boolean)
    no_operator_available: Mapped[bool] = mapped_column(Boolean)
    ticket_requested: Mapped[bool] = mapped_column(Boolean)
    queue_wait_seconds: Mapped[float | None] = mapped_column(Float)
    last_operator_id: Mapped[str | None] = mapped_column(String(100))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_status: Mapped[str | None] = mapped_column(String(20))
    rating: Mapped[int | None] = mapped_column(Integer)


class OperatorSessionRecord(Base):
    """One operator's turn on a conversation (`domain.OperatorSession`)."""

    __tablename__ = "operator_sessions"
    __table_args__ = (Index("ix_operator_sessions_tenant_operator", "tenant_id", "operator_id"),)

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    turn: Mapped[int] = mapped_column(Integer, primary_key=True)
    operator_id: Mapped[str] = mapped_column(String(100))
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    first_response_seconds: Mapped[float | None] = mapped_column(Float)
    handle_seconds: Mapped[float | None] = mapped_column(Float)


class TicketRecord(Base):
    """One ticket, as its facts summarise it (`domain.TicketSummary`)."""

    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_tenant_opened", "tenant_id", "opened_at"),)

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    ticket_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    conversation_id: Mapped[uuid.UUID | None] = mapped_column()
    opened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str | None] = mapped_column(String(20))
    priority: Mapped[str | None] = mapped_column(String(10))
    source: Mapped[str | None] = mapped_column(String(20))
    first_response_due: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_response_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_response_breached: Mapped[bool] = mapped_column(Boolean)
    resolution_due: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution_breached: Mapped[bool] = mapped_column(Boolean)


class QuestionRecord(Base):
    """A customer's question to the assistant, kept for the knowledge-gap report. Its text stays
    only while no confident answer to it is known, or once the customer said the answer did not
    help: the one place this store keeps what a customer wrote, and never on the public topic."""

    __tablename__ = "questions"
    __table_args__ = (Index("ix_questions_tenant_asked", "tenant_id", "asked_at"),)

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    message_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    conversation_id: Mapped[uuid.UUID | None] = mapped_column()
    asked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    text: Mapped[str | None] = mapped_column(Text)
    kb_gap: Mapped[bool] = mapped_column(Boolean)
    answered: Mapped[bool] = mapped_column(Boolean)
    not_helpful: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """The customer marked the answer not helpful: a gap however confident the answer was."""


# ------------------------------------------------------------------------------------ writing


async def lock(session: AsyncSession, keys: Iterable[str]) -> None:
    """Serialises the rebuilds of these conversations and tickets until the transaction ends: two
    transactions adding facts to one conversation (its events travel on several topics) would each
    rebuild it without the other's fact. Taken in one order, so two batches never deadlock."""
    for key in sorted(set(keys)):
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})


async def add_fact(session: AsyncSession, fact: AnalyticsFact) -> bool:
    """Stores the fact; False when it was stored before (the same source event again)."""
    added = await session.scalar(
        insert(FactRecord)
        .values(
            fact_id=fact.fact_id,
            tenant_id=fact.tenant_id,
            name=fact.name.value,
            conversation_id=fact.conversation_id,
            ticket_id=fact.ticket_id,
            occurred_at=fact.occurred_at,
            body=fact.model_dump(mode="json", exclude_none=True),
        )
        .on_conflict_do_nothing()
        .returning(FactRecord.fact_id)
    )
    return added is not None


async def facts_of(session: AsyncSession, tenant_id: str, where: ColumnElement[bool]) -> list[AnalyticsFact]:
    rows = await session.scalars(select(FactRecord.body).where(FactRecord.tenant_id == tenant_id, where))
    return [AnalyticsFact.model_validate(body) for body in rows]


async def rebuild_conversation(session: AsyncSession, tenant_id: str, conversation_id: uuid.UUID) -> None:
    """The conversation's row and operator turns, again from all of its facts."""
    facts = await facts_of(session, tenant_id, FactRecord.conversation_id == conversation_id)
    if not facts:
        return
    summary = domain.summarise_conversation(facts)
    row = {
        "tenant_id": tenant_id,
        "conversation_id": conversation_id,
        "started_at": summary.started_at,
        "last_activity_at": summary.last_activity_at,
        "ai_answers": summary.ai_answers,
        "ai_involved": summary.ai_involved,
        "ai_resolution_candidate": summary.ai_resolution_candidate,
        "answer_confirmed": summary.answer_confirmed,
        "handed_off": summary.handed_off,
        "handoff_reason": summary.handoff_reason.value if summary.handoff_reason else None,
        "escalated": summary.escalated,
        "unanswered": summary.unanswered,
        "left_the_queue": summary.left_the_queue,
        "no_operator_available": summary.no_operator_available,
        "ticket_requested": summary.ticket_requested,
        "queue_wait_seconds": summary.queue_wait_seconds,
        "last_operator_id": summary.last_operator_id,
        "closed_at": summary.closed_at,
        "closed_status": summary.closed_status.value if summary.closed_status else None,
        "rating": summary.rating,
    }
    statement = insert(ConversationRecord).values(row)
    keys = ("tenant_id", "conversation_id")
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=keys, set_={k: statement.excluded[k] for k in row if k not in keys}
        )
    )
    await session.execute(
        delete(OperatorSessionRecord).where(
            OperatorSessionRecord.tenant_id == tenant_id, OperatorSessionRecord.conversation_id == conversation_id
        )
    )
    if summary.sessions:
        await session.execute(
            insert(OperatorSessionRecord).values(
                [
                    {
                        "tenant_id": tenant_id,
                        "conversation_id": conversation_id,
                        "turn": turn,
                        "operator_id": s.operator_id,
                        "assigned_at": s.assigned_at,
                        "first_response_seconds": s.first_response_seconds,
                        "handle_seconds": s.handle_seconds,
                    }
                    for turn, s in enumerate(summary.sessions, start=1)
                ]
            )
        )


async def rebuild_ticket(session: AsyncSession, tenant_id: str, ticket_id: uuid.UUID) -> None:
    facts = await facts_of(session, tenant_id, FactRecord.ticket_id == ticket_id)
    if not facts:
        return
    summary = domain.summarise_ticket(facts)
    row = {
        "tenant_id": tenant_id,
        "ticket_id": ticket_id,
        "conversation_id": summary.conversation_id,
        "opened_at": summary.opened_at,
        "status": summary.status.value if summary.status else None,
        "priority": summary.priority,
        "source": summary.source,
        "first_response_due": summary.first_response_due,
        "first_response_at": summary.first_response_at,
        "first_response_breached": SlaClock.FIRST_RESPONSE in summary.breached,
        "resolution_due": summary.resolution_due,
        "resolved_at": summary.resolved_at,
        "resolution_breached": SlaClock.RESOLUTION in summary.breached,
    }
    statement = insert(TicketRecord).values(row)
    keys = ("tenant_id", "ticket_id")
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=keys, set_={k: statement.excluded[k] for k in row if k not in keys}
        )
    )


async def keep_question(
    session: AsyncSession,
    tenant_id: str,
    message_id: uuid.UUID,
    conversation_id: uuid.UUID,
    asked_at: datetime,
    text_: str,
) -> None:
    """A customer asked the assistant something: its text is kept unless a confident answer to
    it is already known (the answer can arrive first: it travels on another topic)."""
    q = QuestionRecord
    statement = insert(q).values(
        tenant_id=tenant_id,
        message_id=message_id,
        conversation_id=conversation_id,
        asked_at=asked_at,
        text=text_,
        kb_gap=False,
        answered=False,
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=("tenant_id", "message_id"),
            set_={
                "conversation_id": statement.excluded.conversation_id,
                "asked_at": statement.excluded.asked_at,
                "text": case((and_(q.answered, not_(q.not_helpful)), None), else_=statement.excluded.text),
            },
        )
    )


async def judge_question(session: AsyncSession, tenant_id: str, message_id: uuid.UUID, kb_gap: bool) -> None:
    """The assistant's reply to a question: a knowledge gap, or an answer. Once any reply answered
    it, its text is forgotten, whatever order the question and its replies arrive in."""
    q = QuestionRecord
    statement = insert(q).values(
        tenant_id=tenant_id, message_id=message_id, text=None, kb_gap=kb_gap, answered=not kb_gap
    )
    answered = or_(q.answered, statement.excluded.answered)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=("tenant_id", "message_id"),
            set_={
                "kb_gap": or_(q.kb_gap, statement.excluded.kb_gap),
                "answered": answered,
                "text": case((and_(answered, not_(q.not_helpful)), None), else_=q.text),
            },
        )
    )


async def mark_not_helpful(
    session: AsyncSession,
    tenant_id: str,
    message_id: uuid.UUID,
    conversation_id: uuid.UUID,
    said_at: datetime,
    text_: str,
) -> None:
    """The customer said the answer to this question did not help: a knowledge gap, whatever the
    assistant's confidence, and its text is kept for the report (given by the feedback, as the
    question's own text may have been forgotten once answered). `said_at` stands for when it was
    asked only until the question itself arrives."""
    q = QuestionRecord
    statement = insert(q).values(
        tenant_id=tenant_id,
        message_id=message_id,
        conversation_id=conversation_id,
        asked_at=said_at,
        text=text_,
        kb_gap=False,
        answered=False,
        not_helpful=True,
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=("tenant_id", "message_id"),
            set_={"not_helpful": true(), "text": func.coalesce(q.text, statement.excluded.text)},
        )
    )


# ------------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class Period:
    """A report's tenant and time range [start, end), the tenant's clock for days and hours, and
    the moment the figures are judged at (what has settled, which SLA deadlines have passed)."""

    tenant_id: str
    start: datetime
    end: datetime
    zone: ZoneInfo
    as_of: datetime
    resolution_window: timedelta

    def conversations(self) -> ColumnElement[bool]:
        c = ConversationRecord
        return and_(c.tenant_id == self.tenant_id, c.started_at >= self.start, c.started_at < self.end)

    def tickets(self) -> ColumnElement[bool]:
        t = TicketRecord
        return and_(t.tenant_id == self.tenant_id, t.opened_at >= self.start, t.opened_at < self.end)

    def local(self, column: Mapped[datetime | None]) -> ColumnElement[datetime]:
        """The time as the tenant's clock shows it (for days and hours)."""
        return func.timezone(self.zone.key, column)


def conversation_figures(period: Period) -> dict[Fig, ColumnElement[bool]]:
    """Each conversation figure as a condition on a conversation's row: the same condition counts
    the figure and lists the conversations behind it."""
    c = ConversationRecord
    # Closed, or quiet for the resolution window: a customer writing within it reopened it.
    settled = or_(c.closed_at.is_not(None), c.last_activity_at <= period.as_of - period.resolution_window)
    ai_resolved = and_(c.ai_resolution_candidate, settled)
    abandoned_unanswered = and_(c.unanswered, not_(c.escalated), settled)
    return {
        Fig.STARTED: true(),
        Fig.AI_INVOLVED: c.ai_involved.is_(True),
        Fig.AI_RESOLVED: ai_resolved,
        Fig.AI_RESOLVED_CONFIRMED: and_(ai_resolved, c.answer_confirmed),
        Fig.AI_RESOLVED_ASSUMED: and_(ai_resolved, not_(c.answer_confirmed)),
        Fig.AI_PENDING: and_(c.ai_resolution_candidate, not_(settled)),
        Fig.HANDED_OFF: c.handed_off.is_(True),
        Fig.ABANDONED: or_(c.left_the_queue, abandoned_unanswered),
        Fig.ABANDONED_IN_QUEUE: c.left_the_queue.is_(True),
        Fig.ABANDONED_UNANSWERED: abandoned_unanswered,
        Fig.NO_OPERATOR_AVAILABLE: c.no_operator_available.is_(True),
        Fig.QUEUE_WAIT: c.queue_wait_seconds.is_not(None),
        Fig.OPERATOR_HANDLED: c.last_operator_id.is_not(None),
        Fig.RATED: c.rating.is_not(None),
    }


def ticket_figures(period: Period) -> dict[Fig, ColumnElement[bool]]:
    t = TicketRecord
    return {
        Fig.TICKETS_CREATED: true(),
        **sla_figures(
            period, t.first_response_due, t.first_response_at, t.first_response_breached, "sla_first_response"
        ),
        **sla_figures(period, t.resolution_due, t.resolved_at, t.resolution_breached, "sla_resolution"),
    }


def sla_figures(
    period: Period,
    due: Mapped[datetime | None],
    done: Mapped[datetime | None],
    breached: Mapped[bool],
    prefix: str,
) -> dict[Fig, ColumnElement[bool]]:
    """One SLA clock: met (done by its deadline), missed (breached, done late, or not done with
    the deadline past), pending (not done, deadline ahead). Tickets without a deadline are none."""
    has_due = due.is_not(None)
    met = and_(has_due, not_(breached), done.is_not(None), done <= due)
    missed = and_(has_due, or_(breached, done > due, and_(done.is_(None), due <= period.as_of)))
    pending = and_(has_due, not_(breached), done.is_(None), due > period.as_of)
    return {Fig(f"{prefix}_met"): met, Fig(f"{prefix}_missed"): missed, Fig(f"{prefix}_pending"): pending}
