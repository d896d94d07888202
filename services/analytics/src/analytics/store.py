"""Tables of the analytics service (its own database) and the queries on them.

`facts` keeps every fact once (its id derives from the source event). Each conversation and each
ticket has one row that says what all of its facts say: a conversation's new facts are folded into
the fold kept with its row, or it is summarised again from all of its facts when a late one shapes
it (`summarise_conversations`); a ticket is rebuilt from all of its facts (`rebuild_ticket`). The
figures are queries over those rows, never counters, so a late or repeated event changes nothing
it should not, and a replay into an empty store makes the same rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter, ValidationError
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
    delete,
    false,
    func,
    not_,
    or_,
    select,
    text,
    true,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from analytics import domain
from analytics.metrics import CONVERSATIONS_SUMMARISED
from contracts.common import SlaClock
from contracts.events import AnalyticsFact
from contracts.readapi import AnalyticsFigure
from servicekit.db import column_arrays, fetch

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
    fold: Mapped[dict[str, object] | None] = mapped_column(JSONB)
    """`domain.ConversationFold`: what the next fact is folded into (None: rebuild from the facts)."""


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


# Advisory locks on the given keys, in the order given: one round trip however many keys.
_LOCK_KEYS = text(
    "SELECT pg_advisory_xact_lock(hashtextextended(key, 0))"
    " FROM unnest(CAST(:keys AS text[])) WITH ORDINALITY AS given(key, position) ORDER BY position"
)


async def lock(session: AsyncSession, keys: Iterable[str]) -> None:
    """Serialises the rebuilds of these conversations and tickets until the transaction ends: two
    transactions adding facts to one conversation (its events travel on several topics) would each
    rebuild it without the other's fact. Taken in one order, so two batches never deadlock."""
    ordered = sorted(set(keys))
    if ordered:
        await fetch(session, _LOCK_KEYS, {"keys": ordered})


# Stores the facts not stored before (by their derived id) in one statement whose text does not
# depend on their number (so its prepared statement is reused); returns the ids it stored.
_ADD_FACTS = text(
    "INSERT INTO facts (fact_id, tenant_id, name, conversation_id, ticket_id, occurred_at, body)"
    " SELECT fact_id, tenant_id, name, conversation_id, ticket_id, occurred_at, CAST(body AS jsonb)"
    " FROM unnest(CAST(:fact_ids AS uuid[]), CAST(:tenant_ids AS varchar[]), CAST(:names AS varchar[]),"
    " CAST(:conversation_ids AS uuid[]), CAST(:ticket_ids AS uuid[]), CAST(:occurred_ats AS timestamptz[]),"
    " CAST(:bodies AS text[])) AS given(fact_id, tenant_id, name, conversation_id, ticket_id, occurred_at, body)"
    " ON CONFLICT DO NOTHING RETURNING fact_id"
)


async def add_facts(session: AsyncSession, facts: Sequence[AnalyticsFact]) -> set[uuid.UUID]:
    """Stores the facts; returns the ids of those not stored before (the same source event again
    makes no second fact)."""
    if not facts:
        return set()
    rows = [
        (
            fact.fact_id,
            fact.tenant_id,
            fact.name.value,
            fact.conversation_id,
            fact.ticket_id,
            fact.occurred_at,
            fact.model_dump_json(exclude_none=True),
        )
        for fact in facts
    ]
    names = ("fact_ids", "tenant_ids", "names", "conversation_ids", "ticket_ids", "occurred_ats", "bodies")
    return {row["fact_id"] for row in await fetch(session, _ADD_FACTS, column_arrays(rows, names))}


async def facts_of(session: AsyncSession, tenant_id: str, where: ColumnElement[bool]) -> list[AnalyticsFact]:
    rows = await session.scalars(select(FactRecord.body).where(FactRecord.tenant_id == tenant_id, where))
    return [AnalyticsFact.model_validate(body) for body in rows]


FOLD = TypeAdapter(domain.ConversationFold)
Key = tuple[str, uuid.UUID]


_STORED_FOLDS = text(
    "SELECT c.tenant_id, c.conversation_id, CAST(c.fold AS text) FROM conversations c"
    " JOIN unnest(CAST(:tenant_ids AS varchar[]), CAST(:conversation_ids AS uuid[])) AS given(tenant_id, id)"
    " ON c.tenant_id = given.tenant_id AND c.conversation_id = given.id"
)


async def stored_folds(session: AsyncSession, keys: Collection[Key]) -> dict[Key, domain.ConversationFold | None]:
    """The stored fold of each of these conversations that has a row (None: a row without a
    usable fold, written before folds were kept or by another version)."""
    rows = await fetch(session, _STORED_FOLDS, column_arrays(list(keys), ("tenant_ids", "conversation_ids")))
    folds: dict[Key, domain.ConversationFold | None] = {}
    for tenant_id, conversation_id, stored in rows:
        try:
            folds[(tenant_id, conversation_id)] = FOLD.validate_json(stored) if stored is not None else None
        except ValidationError:
            folds[(tenant_id, conversation_id)] = None
    return folds


async def summarise_conversations(session: AsyncSession, new_facts: Iterable[AnalyticsFact]) -> None:
    """Brings the row (and operator turns) of every conversation these newly stored facts belong to
    up to date: the facts are folded into the conversation's stored fold when they all happened
    after the facts folded in before (the usual case), otherwise the conversation is summarised
    again from all of its facts. Either way the row is what all of its facts say."""
    by_conversation: dict[Key, list[AnalyticsFact]] = {}
    for fact in new_facts:
        if fact.conversation_id is not None:
            by_conversation.setdefault((fact.tenant_id, fact.conversation_id), []).append(fact)
    if not by_conversation:
        return
    stored = await stored_folds(session, by_conversation.keys())
    folds: dict[Key, domain.ConversationFold] = {}
    for key, facts in sorted(by_conversation.items()):
        before = stored.get(key, domain.ConversationFold())  # no row yet: no fact of it stored before
        extended = domain.extend_conversation(before, facts) if before is not None else None
        if extended is None:
            every_fact = await all_facts_of_conversation(session, key)
            extended = domain.fold_conversation(domain.ConversationFold(), every_fact)
            CONVERSATIONS_SUMMARISED.labels("rebuilt").inc()
        else:
            CONVERSATIONS_SUMMARISED.labels("extended").inc()
        folds[key] = extended
    await write_conversations(session, folds)
    await write_operator_sessions(
        session,
        {
            key: fold
            for key, fold in folds.items()
            if (before := stored.get(key)) is None or before.summary.sessions != fold.summary.sessions
        },
    )


async def all_facts_of_conversation(session: AsyncSession, key: Key) -> list[AnalyticsFact]:
    return domain.in_time_order(await facts_of(session, key[0], FactRecord.conversation_id == key[1]))


# (column, array type) of a conversation row, in `conversation_row`'s order.
_CONVERSATION_COLUMNS = (
    ("tenant_id", "varchar"),
    ("conversation_id", "uuid"),
    ("started_at", "timestamptz"),
    ("last_activity_at", "timestamptz"),
    ("ai_answers", "int"),
    ("ai_involved", "bool"),
    ("ai_resolution_candidate", "bool"),
    ("answer_confirmed", "bool"),
    ("handed_off", "bool"),
    ("handoff_reason", "varchar"),
    ("escalated", "bool"),
    ("unanswered", "bool"),
    ("left_the_queue", "bool"),
    ("no_operator_available", "bool"),
    ("ticket_requested", "bool"),
    ("queue_wait_seconds", "float8"),
    ("last_operator_id", "varchar"),
    ("closed_at", "timestamptz"),
    ("closed_status", "varchar"),
    ("rating", "int"),
    ("fold", "text"),
)
_KEY_COLUMNS = ("tenant_id", "conversation_id")
# Every row of a batch in one upsert whose text does not depend on their number (written out from
# the constant column list above: no outside value reaches the text).
_WRITE_CONVERSATIONS = text(
    f"INSERT INTO conversations ({', '.join(c for c, _ in _CONVERSATION_COLUMNS)})"  # noqa: S608
    f" SELECT {', '.join('CAST(fold AS jsonb)' if c == 'fold' else c for c, _ in _CONVERSATION_COLUMNS)}"
    f" FROM unnest({', '.join(f'CAST(:{c} AS {t}[])' for c, t in _CONVERSATION_COLUMNS)})"
    f" AS given({', '.join(c for c, _ in _CONVERSATION_COLUMNS)})"
    f" ON CONFLICT (tenant_id, conversation_id) DO UPDATE SET"
    f" {', '.join(f'{c} = excluded.{c}' for c, _ in _CONVERSATION_COLUMNS if c not in _KEY_COLUMNS)}"
)


async def write_conversations(session: AsyncSession, folds: Mapping[Key, domain.ConversationFold]) -> None:
    rows = [conversation_row(key, fold) for key, fold in folds.items()]
    await fetch(session, _WRITE_CONVERSATIONS, column_arrays(rows, [c for c, _ in _CONVERSATION_COLUMNS]))


def conversation_row(key: Key, fold: domain.ConversationFold) -> tuple[object, ...]:
    summary = fold.summary
    return (
        key[0],
        key[1],
        summary.started_at,
        summary.last_activity_at,
        summary.ai_answers,
        summary.ai_involved,
        summary.ai_resolution_candidate,
        summary.answer_confirmed,
        summary.handed_off,
        summary.handoff_reason.value if summary.handoff_reason else None,
        summary.escalated,
        summary.unanswered,
        summary.left_the_queue,
        summary.no_operator_available,
        summary.ticket_requested,
        summary.queue_wait_seconds,
        summary.last_operator_id,
        summary.closed_at,
        summary.closed_status.value if summary.closed_status else None,
        summary.rating,
        FOLD.dump_json(fold).decode(),
    )


async def write_operator_sessions(session: AsyncSession, folds: Mapping[Key, domain.ConversationFold]) -> None:
    """Rewrites the operator turns of these conversations."""
    if not folds:
        return
    s = OperatorSessionRecord
    await session.execute(delete(s).where(tuple_(s.tenant_id, s.conversation_id).in_(list(folds))))
    rows = [
        {
            "tenant_id": tenant_id,
            "conversation_id": conversation_id,
            "turn": turn,
            "operator_id": turn_of.operator_id,
            "assigned_at": turn_of.assigned_at,
            "first_response_seconds": turn_of.first_response_seconds,
            "handle_seconds": turn_of.handle_seconds,
        }
        for (tenant_id, conversation_id), fold in folds.items()
        for turn, turn_of in enumerate(fold.summary.sessions, start=1)
    ]
    if rows:
        await session.execute(insert(s).values(rows))


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


@dataclass(frozen=True)
class Question:
    """A customer's question to the assistant, as its message tells it."""

    tenant_id: str
    message_id: uuid.UUID
    conversation_id: uuid.UUID
    asked_at: datetime
    text: str


# Questions to keep, in one statement. A question's text is kept unless a confident answer to it
# is already known (the answer can arrive first: it travels on another topic).
_KEEP_QUESTIONS = text(
    "INSERT INTO questions AS q (tenant_id, message_id, conversation_id, asked_at, text, kb_gap, answered)"
    " SELECT tenant_id, message_id, conversation_id, asked_at, text, false, false"
    " FROM unnest(CAST(:tenant_ids AS varchar[]), CAST(:message_ids AS uuid[]), CAST(:conversation_ids AS uuid[]),"
    " CAST(:asked_ats AS timestamptz[]), CAST(:texts AS text[]))"
    " AS given(tenant_id, message_id, conversation_id, asked_at, text)"
    " ON CONFLICT (tenant_id, message_id) DO UPDATE SET conversation_id = excluded.conversation_id,"
    " asked_at = excluded.asked_at,"
    " text = CASE WHEN q.answered AND NOT q.not_helpful THEN NULL ELSE excluded.text END"
)


async def keep_questions(session: AsyncSession, questions: Iterable[Question]) -> None:
    """Customers asked the assistant something: the texts are kept for the knowledge-gap report
    until a confident answer to them is known."""
    unique = {(q.tenant_id, q.message_id): q for q in questions}  # a statement may update a row once
    if unique:
        rows = [(q.tenant_id, q.message_id, q.conversation_id, q.asked_at, q.text) for q in unique.values()]
        names = ("tenant_ids", "message_ids", "conversation_ids", "asked_ats", "texts")
        await fetch(session, _KEEP_QUESTIONS, column_arrays(rows, names))


# The assistant's replies to questions, in one statement: a knowledge gap, or an answer. Once any
# reply answered a question, its text is forgotten, whatever order the question and its replies
# arrive in.
_JUDGE_QUESTIONS = text(
    "INSERT INTO questions AS q (tenant_id, message_id, text, kb_gap, answered)"
    " SELECT tenant_id, message_id, NULL, kb_gap, answered"
    " FROM unnest(CAST(:tenant_ids AS varchar[]), CAST(:message_ids AS uuid[]), CAST(:kb_gaps AS bool[]),"
    " CAST(:answereds AS bool[])) AS given(tenant_id, message_id, kb_gap, answered)"
    " ON CONFLICT (tenant_id, message_id) DO UPDATE SET kb_gap = q.kb_gap OR excluded.kb_gap,"
    " answered = q.answered OR excluded.answered,"
    " text = CASE WHEN (q.answered OR excluded.answered) AND NOT q.not_helpful THEN NULL ELSE q.text END"
)


async def judge_questions(session: AsyncSession, judgements: Iterable[tuple[str, uuid.UUID, bool]]) -> None:
    """Replies of the assistant, as (tenant, the question's message id, whether it was a knowledge
    gap). Several replies to one question count together: a gap if any was, answered if any was not."""
    merged: dict[tuple[str, uuid.UUID], tuple[bool, bool]] = {}
    for tenant_id, message_id, kb_gap in judgements:
        gap, answered = merged.get((tenant_id, message_id), (False, False))
        merged[(tenant_id, message_id)] = (gap or kb_gap, answered or not kb_gap)
    if merged:
        rows = [(tenant_id, message_id, gap, answered) for (tenant_id, message_id), (gap, answered) in merged.items()]
        names = ("tenant_ids", "message_ids", "kb_gaps", "answereds")
        await fetch(session, _JUDGE_QUESTIONS, column_arrays(rows, names))


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
