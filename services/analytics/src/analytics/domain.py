"""The rules of analytics, free of I/O: which fact a domain event makes, what a conversation's or a
ticket's facts say about it, and how unanswered questions group.

A summary is a pure function of the set of its facts, which are sorted by time first: the order the
events arrived in, and how often, changes nothing. That is why the figures survive late and
duplicate events, and why a replay into an empty store gives the same numbers.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from rapidfuzz import fuzz, process, utils

from contracts import Envelope, Payload
from contracts.common import ConversationStatus, FactName, HandoffReason, Sender, SlaClock, TicketStatus
from contracts.events import (
    AiReplyGenerated,
    AnalyticsFact,
    AnswerFeedbackGiven,
    ConversationQueued,
    ConversationRated,
    ConversationStarted,
    HandoffRequested,
    MessagePosted,
    NoOperatorAvailable,
    OfferClosed,
    OfferMade,
    OperatorAssigned,
    OperatorPresenceChanged,
    OperatorReleased,
    SlaBreached,
    SlaWarning,
    StatusChanged,
    TicketOpened,
    TicketReplyPosted,
    TicketUpdated,
)

S = ConversationStatus
F = FactName

# The domain events that make a fact; every other event of the topics is skipped by the consumer.
SOURCES: tuple[type[Payload], ...] = (
    ConversationStarted,
    MessagePosted,
    StatusChanged,
    HandoffRequested,
    ConversationRated,
    AiReplyGenerated,
    ConversationQueued,
    OfferMade,
    OfferClosed,
    OperatorAssigned,
    OperatorReleased,
    NoOperatorAvailable,
    OperatorPresenceChanged,
    TicketOpened,
    TicketUpdated,
    TicketReplyPosted,
    SlaWarning,
    SlaBreached,
    AnswerFeedbackGiven,
)

CLOSED = frozenset({S.RESOLVED, S.NOT_RESOLVED, S.CANCELLED, S.ABANDONED})
WITH_AN_OPERATOR = frozenset({S.WITH_OPERATOR, S.WAITING_CUSTOMER})
TICKET_STATUSES = frozenset({S.TICKET_PENDING, S.TICKET_CREATED})
# Leaving the queue for one of these is the customer giving up on the wait (left the queue for the
# assistant, closed the widget, went silent), not being served or sent to the ticket form.
LEFT_THE_QUEUE = frozenset({S.AI, S.CANCELLED, S.ABANDONED})
KB_GAP_REASONS = frozenset({HandoffReason.UNKNOWN_ANSWER, HandoffReason.LOW_CONFIDENCE})
RESOLVED_TICKET = frozenset({TicketStatus.RESOLVED, TicketStatus.CLOSED})

_CODE = re.compile(r"^[a-z_]{1,60}$")
_OPERATOR_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,100}$")


# ------------------------------------------------------------------------------------------ facts


def is_kb_gap(reply: AiReplyGenerated, confidence_below: float) -> bool:
    """The knowledge base could not answer: the assistant said it does not know (and offered a
    person for it), or answered with less confidence than an answer needs."""
    if reply.handoff_reason in KB_GAP_REASONS:
        return True
    return reply.handoff_reason is None and reply.confidence < confidence_below


def reason_code(reason: str) -> str | None:
    """A status change's reason when it is a code; anything else (a ticket number) is left out."""
    return reason if _CODE.match(reason) else None


def fact_of(envelope: Envelope[Any], processed_at: datetime, kb_gap_confidence: float) -> AnalyticsFact | None:
    """The fact a domain event makes, or None for an event analysts need no fact of (a system
    notice). Copies ids, codes, numbers and times only: never a text, a name or a contact."""
    payload = envelope.payload
    dims: dict[str, Any]
    match payload:
        case ConversationStarted():
            name, dims = F.CONVERSATION_STARTED, {"channel": payload.channel, "language": payload.locale}
            dims["status"] = payload.status
        case MessagePosted(sender=Sender.CUSTOMER):
            name, dims = F.CUSTOMER_MESSAGE_POSTED, {"seq": payload.seq, "status": payload.status}
        case MessagePosted(sender=Sender.AI):
            name = F.AI_ANSWER_POSTED
            dims = {"seq": payload.seq, "status": payload.status, "confidence": payload.confidence}
            dims |= {"language": payload.language, "source_count": len(payload.sources)}
        case MessagePosted(sender=Sender.OPERATOR):
            name = F.OPERATOR_MESSAGE_POSTED
            dims = {"seq": payload.seq, "status": payload.status, "operator_id": payload.operator_id}
        case MessagePosted():
            return None  # the system's notices to the customer: their causes have facts of their own
        case StatusChanged():
            name = F.CONVERSATION_CLOSED if payload.status in CLOSED else F.STATUS_CHANGED
            dims = {"status": payload.status, "previous_status": payload.previous, "operator_id": payload.operator_id}
            dims["reason_code"] = reason_code(payload.reason)
        case HandoffRequested():
            name = F.HANDOFF_REQUESTED
            dims = {"handoff_reason": payload.reason, "language": payload.language, "confidence": payload.confidence}
            dims["queue_priority"] = payload.priority
        case ConversationRated():
            name, dims = F.CONVERSATION_RATED, {"score": payload.score, "has_comment": bool(payload.comment)}
        case AnswerFeedbackGiven():
            name = F.ANSWER_FEEDBACK
            dims = {"message_id": payload.message_id, "helpful": payload.helpful}
            dims["in_reply_to"] = payload.question_message_id
        case AiReplyGenerated():
            name = F.AI_REPLY_DRAFTED
            dims = {"in_reply_to": payload.in_reply_to, "confidence": payload.confidence, "language": payload.language}
            dims |= {"answer_mode": payload.mode, "source_count": len(payload.sources)}
            dims |= {"handoff_reason": payload.handoff_reason, "kb_gap": is_kb_gap(payload, kb_gap_confidence)}
        case ConversationQueued():
            name = F.CONVERSATION_QUEUED
            dims = {"queue_position": payload.position, "estimated_wait_seconds": payload.estimated_wait_seconds}
        case OfferMade():
            name = F.OFFER_MADE
            dims = {"operator_id": payload.operator_id, "offer_id": payload.offer_id, "handoff_reason": payload.reason}
            dims["queue_priority"] = payload.priority
        case OfferClosed():
            name = F.OFFER_CLOSED
            dims = {"operator_id": payload.operator_id, "offer_id": payload.offer_id, "offer_outcome": payload.outcome}
        case OperatorAssigned():
            name = F.OPERATOR_ASSIGNED
            dims = {"operator_id": payload.operator_id, "assignment_via": payload.via}
            dims["previous_operator_id"] = payload.previous_operator_id
        case OperatorReleased():
            name, dims = F.OPERATOR_RELEASED, {"operator_id": payload.operator_id, "release_reason": payload.reason}
        case NoOperatorAvailable():
            name, dims = F.NO_OPERATOR_AVAILABLE, {}
        case OperatorPresenceChanged():
            name = F.OPERATOR_PRESENCE_CHANGED
            dims = {"operator_id": payload.operator_id, "presence": payload.presence, "capacity": payload.capacity}
            dims["active_conversations"] = payload.active_conversations
        case TicketOpened():
            name = F.TICKET_OPENED
            dims = {"ticket_id": payload.ticket_id, "ticket_number": payload.ticket_number}
            dims |= {"ticket_status": TicketStatus.OPEN, "ticket_priority": payload.priority}
            dims |= {"ticket_source": payload.source, "language": payload.language}
            dims |= {"assignee_id": payload.assignee_id, "operator_id": payload.assignee_id}
            dims |= {"first_response_due": payload.first_response_due, "resolution_due": payload.resolution_due}
        case TicketUpdated():
            actor, operator_id = _actor(payload.changed_by)
            name = F.TICKET_UPDATED
            dims = {"ticket_id": payload.ticket_id, "ticket_number": payload.ticket_number}
            dims |= {"ticket_status": payload.status, "previous_ticket_status": payload.previous_status}
            dims |= {"ticket_priority": payload.priority, "assignee_id": payload.assignee_id}
            dims |= {"actor": actor, "operator_id": operator_id}
            dims |= {"first_response_due": payload.first_response_due, "resolution_due": payload.resolution_due}
        case TicketReplyPosted():
            name = F.TICKET_REPLIED
            dims = {"ticket_id": payload.ticket_id, "ticket_number": payload.ticket_number}
            dims |= {"actor": payload.author, "operator_id": payload.operator_id}
        case SlaWarning() | SlaBreached():
            name = F.SLA_WARNING if isinstance(payload, SlaWarning) else F.SLA_BREACHED
            dims = {"ticket_id": payload.ticket_id, "ticket_number": payload.ticket_number}
            dims |= {"sla_clock": payload.clock, "due_at": payload.due_at}
        case _:
            return None
    return AnalyticsFact(
        fact_id=uuid.uuid5(envelope.event_id, name.value),
        name=name,
        tenant_id=envelope.tenant_id,
        conversation_id=envelope.conversation_id,
        occurred_at=envelope.occurred_at,
        processed_at=processed_at,
        source_event_id=envelope.event_id,
        source_event_type=envelope.type,
        **{key: value for key, value in dims.items() if value is not None},
    )


def _actor(changed_by: str) -> tuple[Literal["customer", "operator", "system"], str | None]:
    if changed_by in ("customer", "system"):
        return changed_by, None  # type: ignore[return-value]
    return "operator", changed_by if _OPERATOR_ID.match(changed_by) else None


def in_time_order(facts: Iterable[AnalyticsFact]) -> list[AnalyticsFact]:
    """The facts in the order they happened (ties broken by id, so every replay agrees)."""
    return sorted(facts, key=time_key)


# ------------------------------------------------------------------------------- conversations


@dataclass(frozen=True)
class OperatorSession:
    """One operator's turn on a conversation: from the assignment until released, transferred,
    requeued or closed."""

    operator_id: str
    assigned_at: datetime
    first_response_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def first_response_seconds(self) -> float | None:
        return _seconds(self.assigned_at, self.first_response_at)

    @property
    def handle_seconds(self) -> float | None:
        return _seconds(self.assigned_at, self.ended_at)


@dataclass(frozen=True)
class ConversationSummary:
    """What one conversation's facts say about it, as the figures count it."""

    started_at: datetime | None = None
    """None until its `conversation_started` fact arrives: such a row is not counted yet."""
    last_activity_at: datetime | None = None
    ai_answers: int = 0
    last_ai_answer_offered_a_person: bool = False
    customer_messages: int = 0
    unanswered: bool = False
    """The customer's last message got no answer (from the assistant or an operator)."""
    handoff_requested_at: datetime | None = None
    handoff_reason: HandoffReason | None = None
    first_assigned_at: datetime | None = None
    no_operator_available: bool = False
    left_the_queue: bool = False
    ticket_requested: bool = False
    closed_at: datetime | None = None
    closed_status: ConversationStatus | None = None
    rating: int | None = None
    last_feedback_helpful: bool | None = None
    """The customer's latest feedback on an AI answer (👍 True, 👎 False), None without any."""
    sessions: tuple[OperatorSession, ...] = ()

    @property
    def answer_confirmed(self) -> bool:
        """The customer's latest feedback marked an AI answer helpful."""
        return self.last_feedback_helpful is True

    @property
    def ai_involved(self) -> bool:
        return self.ai_answers > 0

    @property
    def handed_off(self) -> bool:
        return self.handoff_requested_at is not None

    @property
    def escalated(self) -> bool:
        return self.handed_off or self.ticket_requested

    @property
    def ai_resolution_candidate(self) -> bool:
        """Resolved by the AI alone once settled (closed, or quiet for the resolution window): the
        assistant answered, nobody else was asked for, and its last word was an answer, not an
        offer of a person, after which the customer asked nothing more, and the customer's latest
        feedback (if any) did not say the answer failed them."""
        return (
            self.ai_involved
            and not self.escalated
            and not self.last_ai_answer_offered_a_person
            and not self.unanswered
            and self.last_feedback_helpful is not False
        )

    @property
    def queue_wait_seconds(self) -> float | None:
        """From the customer's request for a person to the first operator's assignment."""
        return _seconds(self.handoff_requested_at, self.first_assigned_at)

    @property
    def last_operator_id(self) -> str | None:
        return self.sessions[-1].operator_id if self.sessions else None


def time_key(fact: AnalyticsFact) -> tuple[datetime, str]:
    """Where a fact sorts among its conversation's facts (see `in_time_order`)."""
    return fact.occurred_at, str(fact.fact_id)


@dataclass(frozen=True)
class ConversationFold:
    """A conversation's summary as far as its facts have been folded in (in time order), with what
    the next fact needs: stored with the conversation's row, so that a new fact is folded into it
    instead of the conversation being summarised again from all of its facts."""

    summary: ConversationSummary = field(default_factory=ConversationSummary)
    last_customer_at: datetime | None = None
    last_reply_at: datetime | None = None
    through: tuple[datetime, str] | None = None
    """The time key of the last fact folded in."""
    version: int = 1
    """Bumped when the fold's rules change: a stored fold of another version is not extended."""


FOLD_VERSION = ConversationFold().version


def summarise_conversation(facts: Iterable[AnalyticsFact]) -> ConversationSummary:
    """A conversation's summary from all of its facts, whatever order they arrived in."""
    return fold_conversation(ConversationFold(), in_time_order(facts)).summary


# The facts `fold_conversation` reads more of than their time: any other fact only marks activity.
SHAPING = frozenset(
    {
        F.CONVERSATION_STARTED,
        F.CUSTOMER_MESSAGE_POSTED,
        F.AI_ANSWER_POSTED,
        F.OPERATOR_MESSAGE_POSTED,
        F.HANDOFF_REQUESTED,
        F.OPERATOR_ASSIGNED,
        F.OPERATOR_RELEASED,
        F.NO_OPERATOR_AVAILABLE,
        F.TICKET_OPENED,
        F.ANSWER_FEEDBACK,
        F.CONVERSATION_RATED,
        F.STATUS_CHANGED,
        F.CONVERSATION_CLOSED,
    }
)


def extend_conversation(fold: ConversationFold, facts: Iterable[AnalyticsFact]) -> ConversationFold | None:
    """The fold with these new facts folded in, or None when only a summary of all the facts is
    right: a fact that shapes the summary happened before one already folded in, or the fold is
    of another version. Facts after the fold's own are folded in time order, which equals folding
    them all in time order; a late fact that only marks activity (an AI reply drafted before its
    answer was posted, an offer) moves the last activity at most, as it would have in order."""
    if fold.version != FOLD_VERSION:
        return None
    ordered = in_time_order(facts)
    late = [fact for fact in ordered if fold.through is not None and time_key(fact) <= fold.through]
    if any(fact.name in SHAPING for fact in late):
        return None
    summary = fold.summary
    for fact in late:  # as in `fold_conversation`: a ticket's later life is not activity
        if not fact.ticket_id and summary.last_activity_at is not None and fact.occurred_at > summary.last_activity_at:
            summary = replace(summary, last_activity_at=fact.occurred_at)
    return fold_conversation(replace(fold, summary=summary), ordered[len(late) :])


def fold_conversation(fold: ConversationFold, ordered: Sequence[AnalyticsFact]) -> ConversationFold:
    """Folds facts, in time order and all after the fold's own, into the fold."""
    summary = fold.summary
    last_customer_at, last_reply_at = fold.last_customer_at, fold.last_reply_at
    sessions = list(summary.sessions)
    for fact in ordered:
        at, name = fact.occurred_at, fact.name
        # A ticket's later life (replies, SLA) is not the conversation's activity.
        changes: dict[str, Any] = {} if fact.ticket_id and summary.last_activity_at else {"last_activity_at": at}
        open_session = sessions[-1] if sessions and sessions[-1].ended_at is None else None
        if name == F.CONVERSATION_STARTED and summary.started_at is None:
            changes["started_at"] = at
        elif name == F.CUSTOMER_MESSAGE_POSTED:
            changes["customer_messages"] = summary.customer_messages + 1
            last_customer_at = at
        elif name == F.AI_ANSWER_POSTED:
            changes["ai_answers"] = summary.ai_answers + 1
            changes["last_ai_answer_offered_a_person"] = fact.status == S.HANDOFF_OFFERED
            last_reply_at = at
        elif name == F.OPERATOR_MESSAGE_POSTED:
            last_reply_at = at
            if open_session and open_session.operator_id == fact.operator_id and not open_session.first_response_at:
                sessions[-1] = replace(open_session, first_response_at=at)
        elif name == F.HANDOFF_REQUESTED and summary.handoff_requested_at is None:
            changes["handoff_requested_at"], changes["handoff_reason"] = at, fact.handoff_reason
        elif name == F.OPERATOR_ASSIGNED and fact.operator_id:
            if open_session:
                sessions[-1] = replace(open_session, ended_at=at)
            sessions.append(OperatorSession(operator_id=fact.operator_id, assigned_at=at))
            if summary.first_assigned_at is None:
                changes["first_assigned_at"] = at
        elif name == F.OPERATOR_RELEASED and open_session and open_session.operator_id == fact.operator_id:
            sessions[-1] = replace(open_session, ended_at=at)
        elif name == F.NO_OPERATOR_AVAILABLE:
            changes["no_operator_available"] = True
        elif name == F.TICKET_OPENED:
            changes["ticket_requested"] = True
        elif name == F.ANSWER_FEEDBACK and fact.helpful is not None:
            changes["last_feedback_helpful"] = fact.helpful
        elif name == F.CONVERSATION_RATED and summary.rating is None:
            changes["rating"] = fact.score
        elif name in (F.STATUS_CHANGED, F.CONVERSATION_CLOSED) and fact.status is not None:
            if fact.previous_status == S.QUEUED and fact.status in LEFT_THE_QUEUE:
                changes["left_the_queue"] = True
            if fact.status in TICKET_STATUSES:
                changes["ticket_requested"] = True
            if fact.status in CLOSED and summary.closed_at is None:
                changes["closed_at"], changes["closed_status"] = at, fact.status
            if open_session and fact.status not in WITH_AN_OPERATOR:
                sessions[-1] = replace(open_session, ended_at=at)
        summary = replace(summary, **changes)
    unanswered = last_customer_at is not None and (last_reply_at is None or last_reply_at < last_customer_at)
    return ConversationFold(
        summary=replace(summary, unanswered=unanswered, sessions=tuple(sessions)),
        last_customer_at=last_customer_at,
        last_reply_at=last_reply_at,
        through=time_key(ordered[-1]) if ordered else fold.through,
    )


# ------------------------------------------------------------------------------------- tickets


@dataclass(frozen=True)
class TicketSummary:
    """What one ticket's facts say about it: when it opened, and how its SLA clocks went."""

    conversation_id: uuid.UUID | None = None
    opened_at: datetime | None = None
    status: TicketStatus | None = None
    priority: str | None = None
    source: str | None = None
    first_response_due: datetime | None = None
    first_response_at: datetime | None = None
    """The first public reply of an operator."""
    resolution_due: datetime | None = None
    resolved_at: datetime | None = None
    """When it was resolved, unless it was reopened since."""
    breached: frozenset[SlaClock] = field(default_factory=frozenset)


def summarise_ticket(facts: Iterable[AnalyticsFact]) -> TicketSummary:
    summary = TicketSummary()
    for fact in in_time_order(facts):
        at, name = fact.occurred_at, fact.name
        changes: dict[str, Any] = {}
        if fact.conversation_id is not None:
            changes["conversation_id"] = fact.conversation_id
        if name == F.TICKET_OPENED and summary.opened_at is None:
            changes |= {"opened_at": at, "source": fact.ticket_source, "status": fact.ticket_status}
        if fact.ticket_priority is not None:
            changes["priority"] = fact.ticket_priority.value
        # The deadlines as they stand after the latest change (a paused clock moves them).
        if fact.first_response_due is not None:
            changes["first_response_due"] = fact.first_response_due
        if fact.resolution_due is not None:
            changes["resolution_due"] = fact.resolution_due
        if name == F.TICKET_UPDATED and fact.ticket_status is not None:
            changes["status"] = fact.ticket_status
            if fact.ticket_status not in RESOLVED_TICKET:
                changes["resolved_at"] = None  # reopened: not resolved any more
            elif summary.resolved_at is None:
                changes["resolved_at"] = at
        if name == F.TICKET_REPLIED and fact.actor == "operator" and summary.first_response_at is None:
            changes["first_response_at"] = at
        if name == F.SLA_BREACHED and fact.sla_clock is not None:
            changes["breached"] = summary.breached | {fact.sla_clock}
        summary = replace(summary, **changes)
    return summary


# ---------------------------------------------------------------------------- unanswered questions


@dataclass(frozen=True)
class Question:
    """A customer's question the knowledge base could not answer."""

    message_id: uuid.UUID
    conversation_id: uuid.UUID
    asked_at: datetime
    text: str


@dataclass
class QuestionGroup:
    """Similar unanswered questions; the first one asked stands for the group."""

    questions: list[Question]

    @property
    def representative(self) -> str:
        return self.questions[0].text

    def examples(self, how_many: int) -> list[str]:
        distinct = dict.fromkeys(q.text for q in self.questions)
        return list(distinct)[:how_many]


def group_questions(questions: Iterable[Question], similarity: float) -> list[QuestionGroup]:
    """Groups questions whose words match at least `similarity` (0-100) with a group's first
    question, the most frequent groups first. The questions are taken in the order they were
    asked, so the same questions always make the same groups."""
    groups: list[QuestionGroup] = []
    keys: list[str] = []
    for question in sorted(questions, key=lambda q: (q.asked_at, str(q.message_id))):
        key = utils.default_process(question.text)
        found = process.extractOne(key, keys, scorer=fuzz.token_sort_ratio, score_cutoff=similarity)
        if found is not None:
            groups[found[2]].questions.append(question)
        else:
            groups.append(QuestionGroup([question]))
            keys.append(key)
    return sorted(groups, key=lambda g: (-len(g.questions), g.questions[0].asked_at))


# ------------------------------------------------------------------------------------ helpers


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None or end < start:
        return None
    return (end - start).total_seconds()


def rate(part: int, whole: int) -> float | None:
    """`part / whole`, or None when there is nothing to divide by (never a made-up 0%)."""
    return part / whole if whole else None


def csv_safe(value: object) -> object:
    """A cell a spreadsheet will not run as a formula: text customers wrote can start with `=`."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def flat_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for a CSV: lists joined with ` | `, every cell safe for spreadsheets."""
    return [
        {k: csv_safe(" | ".join(map(str, v)) if isinstance(v, list) else v) for k, v in row.items()} for row in rows
    ]
