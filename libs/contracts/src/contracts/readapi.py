"""Bodies of the HTTP read APIs, defined once for the service that answers and those that read.

Reads that cross a service boundary go through the owning service's HTTP read API (no service
reads another's tables), so these bodies are contracts as much as the events are:

- the conversation service's internal read API (`GET /internal/conversations/{id}` and
  `.../messages?after=N`): `ConversationView`, `HistoryView[MessageView]`;
- the gateway reads the latter as `HistoryView[WidgetMessage]`, which leaves out what the widget
  must not see, and answers the widget with `MessagesResponse` and `message` stream frames
  carrying a `WidgetMessage` (its public OpenAPI documents them under these names);
- the conversation service's list of a tenant's conversations (`ConversationListView`);
- routing's internal API (`QueueView`, `OperatorView`, `TakeRequest`, `TakeResult`), the ai-responder's
  (`SuggestionRequest`, `SuggestionView`), the tickets service's (`TicketListView`,
  `TicketView`, `PublicTicketView`) and the notifier's (`DeliveryLogView`,
  `TenantChannelsView`), below.

Unknown fields are ignored, so a field added by the answering side breaks no reader.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from contracts.common import (
    TRIMMED,
    ContactChannel,
    ContactDetails,
    ConversationStatus,
    Language,
    RequiredText,
    Sender,
    SlaClock,
    SmartAction,
    Source,
    TicketPriority,
    TicketStatus,
    TranscriptExcerpt,
)


class WidgetMessage(BaseModel):
    """One message as the widget shows it (REST history and `message` frames on the stream)."""

    model_config = ConfigDict(extra="ignore")

    seq: int = Field(ge=1)
    message_id: uuid.UUID
    sender: Sender
    text: str
    smart_actions: list[SmartAction] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)
    created_at: datetime
    language: Language | None = None
    """The language the message is written in, when known (an AI reply's is the one the assistant
    read the customer's message in): the widget speaks the conversation's language by it."""


class MessageView(WidgetMessage):
    """One message as the conversation service's read API returns it: what the widget shows, and
    the operator who wrote it."""

    operator_id: str | None = None


MessageT = TypeVar("MessageT", bound=WidgetMessage)


class HistoryView(BaseModel, Generic[MessageT]):
    """`GET /internal/conversations/{id}/messages?after=N`: the messages with seq > N, in seq
    order, with the conversation's tenant (for the reader's tenant check) and status."""

    model_config = ConfigDict(extra="ignore")

    conversation_id: uuid.UUID
    tenant_id: str
    status: ConversationStatus
    messages: list[MessageT]


class ConversationView(BaseModel):
    """`GET /internal/conversations/{id}`: the conversation without its messages."""

    model_config = ConfigDict(extra="ignore")

    conversation_id: uuid.UUID
    tenant_id: str
    status: ConversationStatus
    last_seq: int
    created_at: datetime
    operator_id: str | None = None
    """The operator who has (or last had) the conversation."""


class ConversationListItem(ConversationView):
    """One conversation of a list, without its messages."""

    updated_at: datetime
    """Its last change (a message, a status, an assignment): lists are sorted by it, newest first."""
    handoff_reason: str | None = None
    locale: str | None = None


class ConversationListView(BaseModel):
    """`GET /internal/conversations?tenant_id=T&status=&operator_id=&limit=`: the tenant's
    conversations, most recently changed first (`status` and `operator_id` narrow it, together)."""

    model_config = ConfigDict(extra="ignore")

    tenant_id: str
    conversations: list[ConversationListItem]


class NoteView(BaseModel):
    """An internal note: for operators only, never in a widget's history or stream."""

    model_config = ConfigDict(extra="ignore")

    note_id: uuid.UUID
    operator_id: str
    text: str
    created_at: datetime


class NotesView(BaseModel):
    """`GET /internal/conversations/{id}/notes`: the conversation's internal notes, oldest first."""

    model_config = ConfigDict(extra="ignore")

    conversation_id: uuid.UUID
    tenant_id: str
    notes: list[NoteView]


class HandoverSummaryView(BaseModel):
    """`GET /internal/conversations/{id}/summary`: the AI part of a conversation at a glance, for
    the operator taking it over; built from the conversation's own messages (no LLM needed)."""

    model_config = ConfigDict(extra="ignore")

    conversation_id: uuid.UUID
    tenant_id: str
    status: ConversationStatus
    customer_wants: str
    """The customer's first request, cut to a line."""
    ai_answered: list[str]
    """What the assistant answered from the knowledge base: the titles of the articles it used."""
    still_open: list[str]
    """The customer's messages after the assistant's last grounded answer, cut to a line each."""
    mood: str
    """`upset` when the assistant saw negative sentiment, else `neutral`."""
    handoff_reason: str | None = None
    last_ai_confidence: float | None = None


# The widget API's `GET /v1/conversations/{id}/messages?after=N` (no docstring: the gateway's
# public OpenAPI has documented this schema without a description).
class MessagesResponse(BaseModel):
    conversation_id: uuid.UUID
    status: ConversationStatus
    messages: list[WidgetMessage]


# ---------------------------------------------------------------------- routing's internal API
# `GET /internal/queue?tenant_id=T` answers `QueueView`; `GET /internal/operators?tenant_id=T` a list
# of `OperatorView`; `POST /internal/conversations/{id}/take`
# takes `TakeRequest` and answers `TakeResult` (200), or `{"error": {"code": "already_taken"}}`
# (409) when another operator has it, or `not_waiting` (404) when it is neither queued nor offered.


class QueueEntryView(BaseModel):
    """One conversation waiting for an operator, as the dashboard's queue shows it."""

    model_config = ConfigDict(extra="ignore")

    conversation_id: uuid.UUID
    tenant_id: str
    position: int
    priority: str
    reason: str | None = None
    intent: str | None = None
    waiting_since: datetime
    offered_to: str | None = None
    """The operator it is offered to now, if any."""


class QueueView(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tenant_id: str
    entries: list[QueueEntryView]


class OperatorView(BaseModel):
    """One operator as routing sees it; `GET /internal/operators?tenant_id=T` answers a list of
    them (operators routing has heard from: the gateway owns the accounts)."""

    model_config = ConfigDict(extra="ignore")

    operator_id: str
    display_name: str
    presence: str
    """`online`, `away` or `offline`, as routing decides it (heartbeats, missed offers)."""
    skills: list[str]
    capacity: int
    active_conversations: int
    pending_offers: int


class TakeRequest(BaseModel):
    """An operator accepts an offer or takes a waiting conversation (the gateway has checked the
    operator's token and that the conversation is of the operator's tenant)."""

    tenant_id: str
    operator_id: str
    display_name: str


class TakeResult(BaseModel):
    model_config = ConfigDict(extra="ignore")

    conversation_id: uuid.UUID
    operator_id: str
    via: str


# ---------------------------------------------------------------------- the ai-responder's internal API
# `POST /internal/suggestions` takes `SuggestionRequest` and answers `SuggestionView` (200): a reply
# for an operator to edit and send, written as the assistant answers customers. It posts nothing.


class SuggestionRequest(BaseModel):
    """The customer's latest message(s) in a conversation, for which an operator wants a reply."""

    tenant_id: str = Field(min_length=1, max_length=64)
    conversation_id: uuid.UUID
    question: str = Field(min_length=1, max_length=4000)


class SuggestionView(BaseModel):
    """A suggested reply grounded in the tenant's knowledge base, with its sources; only text."""

    model_config = ConfigDict(extra="ignore")

    conversation_id: uuid.UUID
    question: str
    """What was answered: the customer's latest message(s)."""
    text: str
    """Empty when there is nothing grounded to suggest: the knowledge base does not answer what the
    customer wrote, or they asked nothing (`handoff_reason` then says why). Never the assistant's
    apology or offer of a person: the operator is that person."""
    language: str
    confidence: float = Field(ge=0, le=1)
    mode: str
    """`retrieval`, `llm`, or `fallback` (LLM mode answered by retrieval)."""
    sources: list[Source] = Field(default_factory=list)
    smart_actions: list[SmartAction] = Field(default_factory=list)
    handoff_reason: str | None = None
    """Set when the assistant would have offered a person instead of answering."""


# ---------------------------------------------------------------------- the tickets service's internal API
# `GET /internal/tickets?tenant_id=T&status=&priority=&sla=&assignee_id=&q=&limit=` answers
# `TicketListView`; `GET /internal/tickets/{id}?tenant_id=T` answers `TicketView` (404 `not_found`
# for another tenant's ticket). The public status page reads through `POST /internal/tickets/lookup`
# (`TicketLookupRequest`) or `POST /internal/tickets/link` (`TicketLinkRequest`, the signed link of
# an email), which answer `PublicTicketView`, or one and the same 404 `not_found` whatever was wrong.

SlaState = Literal["on_time", "at_risk", "breached", "paused", "met"]


class SlaClockView(BaseModel):
    """One SLA clock of a ticket as the dashboard's badges show it."""

    model_config = ConfigDict(extra="ignore")

    clock: SlaClock
    state: SlaState
    due_at: datetime | None = None
    """When it breaches if nothing happens (None while paused: the remaining time is frozen)."""
    remaining_seconds: float | None = None
    """Business seconds left (negative once breached); None once met."""


class TicketSummaryView(BaseModel):
    """One line of the dashboard's ticket list."""

    model_config = ConfigDict(extra="ignore")

    ticket_id: uuid.UUID
    tenant_id: str
    ticket_number: str
    status: TicketStatus
    priority: TicketPriority
    assignee_id: str | None = None
    contact_name: str
    subject: str
    """What the customer wants, in a line or two."""
    conversation_id: uuid.UUID | None = None
    created_at: datetime
    updated_at: datetime
    sla_state: SlaState
    """The worst state of its clocks."""
    sla: list[SlaClockView] = Field(default_factory=list)


class TicketListView(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tenant_id: str
    tickets: list[TicketSummaryView]


class TicketReplyView(BaseModel):
    """A public reply: what the customer sees on the status page."""

    model_config = ConfigDict(extra="ignore")

    reply_id: uuid.UUID
    author: Literal["customer", "operator"]
    text: str
    created_at: datetime


class TicketOperatorReplyView(TicketReplyView):
    operator_id: str | None = None


class TicketStatusChangeView(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: TicketStatus
    previous_status: TicketStatus | None = None
    changed_by: str
    changed_at: datetime


class TicketView(TicketSummaryView):
    """`GET /internal/tickets/{id}`: everything an operator sees of a ticket."""

    contact: ContactDetails
    language: str | None = None
    message: str
    transcript: TranscriptExcerpt | None = None
    replies: list[TicketOperatorReplyView] = Field(default_factory=list)
    notes: list[NoteView] = Field(default_factory=list)
    history: list[TicketStatusChangeView] = Field(default_factory=list)


class TicketLookupRequest(BaseModel):
    """The public status page's question: a ticket number and the email or phone it was opened with."""

    tenant_id: str = Field(min_length=1, max_length=64)
    ticket_number: str = Field(min_length=1, max_length=40)
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=24)


class TicketLinkRequest(BaseModel):
    """The signed link of an email (see `contracts.ticketlinks`)."""

    token: str = Field(min_length=1, max_length=1000)


class PublicTicketView(BaseModel):
    """What the public status page shows: the status, the customer's own request, when an answer
    is promised and the public replies; nothing internal (no operator, note or id but the
    replies'). The fields after `replies` came later and are optional, so an older body parses."""

    model_config = ConfigDict(extra="ignore")

    ticket_number: str
    status: TicketStatus
    created_at: datetime
    replies: list[TicketReplyView] = Field(default_factory=list)
    request: str = ""
    """What the customer asked when the ticket was opened (the form's message, else the subject),
    as the acknowledgment quotes it back."""
    answer_due: datetime | None = None
    """The answer the acknowledgment promises: the first-response deadline while that clock runs;
    None once an operator answered, while the ticket waits on the customer (paused) or is solved."""
    tenant_name: str | None = None
    """The tenant's display name (the gateway's, which owns tenants; the tickets service leaves it out)."""
    time_zone: str | None = None
    """The tenant's IANA time zone, in which the page writes `answer_due` (the gateway's too)."""


# ---------------------------------------------------------------------- the analytics service's internal API
# Every read takes `tenant_id`, `from` and `to` (dates, both included) and `tz` (an IANA time zone,
# default UTC, for days and hours), and answers CSV instead of JSON with `format=csv`:
# `GET /internal/analytics/overview` → `AnalyticsOverview`; `.../series?granularity=day|hour` →
# `AnalyticsSeries`; `.../handoff-reasons` → `HandoffReasonsView`; `.../operators` →
# `OperatorFiguresView`; `.../kb-gaps` → `KbGapsView`; `.../conversations?figure=F` (the drill-down:
# what is behind a figure, filtered by `handoff_reason`, `operator_id`, `score` or `hour`) →
# `DrilldownView`. Conversation figures count the conversations started in the range; ticket
# figures the tickets opened in it.


class AnalyticsFigure(StrEnum):
    """A figure that drills down to the conversations (or tickets) behind it."""

    STARTED = "started"
    AI_INVOLVED = "ai_involved"
    AI_RESOLVED = "ai_resolved"
    AI_RESOLVED_CONFIRMED = "ai_resolved_confirmed"
    AI_RESOLVED_ASSUMED = "ai_resolved_assumed"
    AI_PENDING = "ai_pending"
    HANDED_OFF = "handed_off"
    ABANDONED = "abandoned"
    ABANDONED_IN_QUEUE = "abandoned_in_queue"
    ABANDONED_UNANSWERED = "abandoned_unanswered"
    NO_OPERATOR_AVAILABLE = "no_operator_available"
    QUEUE_WAIT = "queue_wait"
    OPERATOR_HANDLED = "operator_handled"
    RATED = "rated"
    TICKETS_CREATED = "tickets_created"
    SLA_FIRST_RESPONSE_MET = "sla_first_response_met"
    SLA_FIRST_RESPONSE_MISSED = "sla_first_response_missed"
    SLA_FIRST_RESPONSE_PENDING = "sla_first_response_pending"
    SLA_RESOLUTION_MET = "sla_resolution_met"
    SLA_RESOLUTION_MISSED = "sla_resolution_missed"
    SLA_RESOLUTION_PENDING = "sla_resolution_pending"


class ReportPeriod(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tenant_id: str
    from_date: date
    to_date: date
    timezone: str


class DurationFigure(BaseModel):
    """Durations in seconds over `count` cases (None when there are none)."""

    model_config = ConfigDict(extra="ignore")

    count: int
    mean_seconds: float | None = None
    p50_seconds: float | None = None
    p90_seconds: float | None = None


class SlaFigure(BaseModel):
    """One SLA clock of the tickets opened in the range. `compliance` = met / (met + missed)."""

    model_config = ConfigDict(extra="ignore")

    met: int
    missed: int
    pending: int
    compliance: float | None = None


class ScoreCount(BaseModel):
    model_config = ConfigDict(extra="ignore")

    score: int
    count: int


class CsatFigure(BaseModel):
    model_config = ConfigDict(extra="ignore")

    count: int
    average: float | None = None
    distribution: list[ScoreCount]
    """Every score from 1 to 5, with how many ratings gave it."""


class HourCount(BaseModel):
    model_config = ConfigDict(extra="ignore")

    hour: int = Field(ge=0, le=23)
    """Hour of the day on the tenant's clock (`tz`)."""
    conversations: int


class AnalyticsOverview(ReportPeriod):
    """The figures of a tenant's period. Rates are None when their denominator is 0.

    - `involvement_rate` = ai_involved / conversations_started (the AI answered at all);
    - `ai_resolution_rate` = ai_resolved / ai_involved;
    - `automation_rate` = ai_resolved / conversations_started = involvement × resolution;
    - an AI resolution is `confirmed` when the customer's latest feedback marked an answer helpful
      and `assumed` otherwise; `ai_pending` are not yet settled (quiet for
      less than the resolution window).
    """

    as_of: datetime
    """When the figures were judged (settled conversations, pending SLA clocks)."""
    conversations_started: int
    ai_involved: int
    involvement_rate: float | None = None
    ai_resolved: int
    ai_resolved_confirmed: int
    ai_resolved_assumed: int
    ai_pending: int
    ai_resolution_rate: float | None = None
    automation_rate: float | None = None
    handed_off: int
    handoff_rate: float | None = None
    abandoned: int
    abandoned_in_queue: int
    abandoned_unanswered: int
    abandonment_rate: float | None = None
    no_operator_available: int
    queue_wait: DurationFigure
    """From the customer's request for a person to the first operator's assignment."""
    operator_first_response: DurationFigure
    """Per operator turn: from the assignment to the operator's first message."""
    operator_handle_time: DurationFigure
    """Per operator turn: from the assignment until released, transferred or closed."""
    tickets_created: int
    sla_first_response: SlaFigure
    sla_resolution: SlaFigure
    csat: CsatFigure
    busiest_hours: list[HourCount]
    """Conversations started per hour of the day, the busiest first (hours with none left out)."""


class SeriesPoint(BaseModel):
    model_config = ConfigDict(extra="ignore")

    period_start: datetime
    conversations_started: int
    ai_involved: int
    ai_resolved: int
    handed_off: int
    abandoned: int
    tickets_created: int


class AnalyticsSeries(ReportPeriod):
    granularity: Literal["day", "hour"]
    points: list[SeriesPoint]
    """Only the days or hours with something to count, in time order."""


class HandoffReasonCount(BaseModel):
    model_config = ConfigDict(extra="ignore")

    reason: str
    """A `HandoffReason`, or `unspecified`."""
    conversations: int
    share: float
    """Of the conversations handed off in the range."""


class HandoffReasonsView(ReportPeriod):
    handed_off: int
    reasons: list[HandoffReasonCount]


class OperatorFigures(BaseModel):
    """One operator's turns on the conversations started in the range."""

    model_config = ConfigDict(extra="ignore")

    operator_id: str
    conversations: int
    turns: int
    first_response_mean_seconds: float | None = None
    first_response_p50_seconds: float | None = None
    handle_time_mean_seconds: float | None = None
    handle_time_p50_seconds: float | None = None
    csat_count: int
    """Ratings of the conversations this operator had last."""
    csat_average: float | None = None


class OperatorFiguresView(ReportPeriod):
    operators: list[OperatorFigures]


class KbGap(BaseModel):
    """Similar questions the knowledge base could not answer, with examples as customers wrote them."""

    model_config = ConfigDict(extra="ignore")

    question: str
    count: int
    examples: list[str]
    conversation_ids: list[uuid.UUID]


class KbGapsView(ReportPeriod):
    unanswered_questions: int
    gaps: list[KbGap]
    """The most frequent first."""


class DrilldownItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    conversation_id: uuid.UUID | None = None
    ticket_id: uuid.UUID | None = None
    at: datetime
    """When the conversation started, or the ticket was opened."""


class DrilldownView(ReportPeriod):
    figure: AnalyticsFigure
    count: int
    """All the items behind the figure; `items` holds at most `limit` of them."""
    items: list[DrilldownItem]


# ---------------------------------------------------------------------- the notifier's internal API
# `GET /internal/deliveries?tenant_id=T&ticket_id=` answers `DeliveryLogView`: every notification
# about the ticket (to the customer, the supervisors, the tenant's webhooks), oldest first.
# `POST /internal/deliveries/{id}/retry?tenant_id=T` sends a failed one again (`DeliveryView`).

DeliveryStatus = Literal["pending", "sending", "sent", "failed"]


class DeliveryView(BaseModel):
    """One delivery, its recipient masked (`g***@example.com`, `+39 *** **12`, a webhook's host)."""

    model_config = ConfigDict(extra="ignore")

    delivery_id: uuid.UUID
    """The idempotency key: the email's Message-ID and the webhook's `webhook-id` derive from it."""
    source_event_id: uuid.UUID
    source_event_type: str
    ticket_id: uuid.UUID | None = None
    channel: Literal["email", "whatsapp", "sms", "webhook"]
    template: str
    """`ticket_created`, `operator_replied`, `ticket_resolved`, `sla_breach`, or a webhook's event type."""
    recipient: str
    status: DeliveryStatus
    """pending (waiting for its next try), sending (a try under way), sent, failed (after its last try)."""
    attempts: int = Field(ge=0)
    last_error: str = ""
    next_attempt_at: datetime | None = None
    """When a pending delivery is tried next."""
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None = None


class DeliveryLogView(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tenant_id: str
    ticket_id: uuid.UUID
    deliveries: list[DeliveryView]


# `GET /internal/tenants/{tenant_id}/channels` answers `TenantChannelsView`: the channels the
# notifier can write to the tenant's customers on, so that the widget offers no other. Email
# always; WhatsApp and SMS only with Twilio configured and the tenant's sender number for them.


class TenantChannelsView(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tenant_id: str
    channels: list[ContactChannel]
    """Email first, then WhatsApp and SMS when available; never `phone` (a call is made by a person)."""


# ---------------------------------------------------------------------- the ai-responder's knowledge-base API
# For the dashboard's knowledge-base pages (admins and supervisors; the gateway proxies them after
# checking the role and the tenant). Under `/admin/tenants/{tenant_id}` of the ai-responder, with its
# admin bearer token:
#   GET    /articles                        -> KnowledgeArticleList
#   GET    /articles/{article_id}           -> KnowledgeArticleView
#   PUT    /articles/{article_id}           KnowledgeArticleInput -> KnowledgeBaseChange (new or edited)
#   DELETE /articles/{article_id}           -> KnowledgeBaseChange
#   GET    /articles/{article_id}/history   -> KnowledgeArticleHistory
#   GET    /versions                        -> KnowledgeBaseVersionList
#   POST   /rollback                        KnowledgeRollbackRequest -> KnowledgeBaseChange
#   POST   /documents?filename=&language=   the file's bytes -> DocumentUploadResult
#   POST   /test                            AssistantTestRequest -> AssistantTestView
#   GET    /gaps?days=&limit=               -> UnansweredGroupList
#   POST   /gaps/{gap_id}/article           GapArticleRequest -> KnowledgeBaseChange
# Every change makes a new version of the whole knowledge base; the previous one stays live until the
# new one has been validated and indexed, and a bad file or article is a 4xx naming the problem.


class KnowledgeArticleSummary(BaseModel):
    model_config = ConfigDict(extra="ignore")

    article_id: str
    title: dict[str, str]
    """By language."""
    languages: list[str]
    tags: list[str] = Field(default_factory=list)
    source: str = ""
    """Where it came from: `documents/faq.it.md`, `articles/prices.md`, `dashboard`, `gap`."""
    has_keywords: bool = False
    updated_in_version: int
    """The knowledge-base version that last changed this article."""


class KnowledgeArticleList(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tenant_id: str
    version: int
    """The live knowledge-base version."""
    articles: list[KnowledgeArticleSummary]


class KnowledgeArticleInput(BaseModel):
    """An article as an admin writes it: a title and a text per language, optional tags."""

    title: dict[str, str] = Field(min_length=1)
    body: dict[str, str] = Field(min_length=1)
    """Markdown text by language (`it`, `en`); every language needs its title."""
    tags: list[str] = Field(default_factory=list, max_length=50)
    actions: list[str] = Field(default_factory=list, max_length=10)
    """Smart actions defined in the tenant's configuration (e.g. `buy_tickets`)."""
    topics: list[str] = Field(default_factory=list, max_length=10)
    author: str = Field(default="", max_length=200)
    note: str = Field(default="", max_length=500)


class KnowledgeArticleView(KnowledgeArticleSummary):
    body: dict[str, str]
    keywords: dict[str, list[str]] = Field(default_factory=dict)
    actions: list[str] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)
    version: int
    """The version this view was read from (the live one, or the one asked for)."""


class KnowledgeBaseChange(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tenant_id: str
    version: int
    """The new live version."""
    articles: int
    """How many articles it holds."""
    changed: list[str] = Field(default_factory=list)
    """Ids of the articles added, edited or removed."""


class KnowledgeBaseVersionView(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: int
    created_at: datetime
    author: str = ""
    note: str = ""
    """What made it: `upload faq.pdf`, `edit prices`, `rollback to 3`..."""
    articles: int
    live: bool = False


class KnowledgeBaseVersionList(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tenant_id: str
    versions: list[KnowledgeBaseVersionView]
    """Newest first."""


class KnowledgeArticleRevision(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: int
    created_at: datetime
    author: str = ""
    note: str = ""
    change: Literal["added", "edited", "removed"]
    article: KnowledgeArticleView | None = None
    """The article as that version had it (None once removed)."""


class KnowledgeArticleHistory(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tenant_id: str
    article_id: str
    revisions: list[KnowledgeArticleRevision]
    """Newest first: each version that added, changed or removed the article."""


class KnowledgeRollbackRequest(BaseModel):
    version: int = Field(ge=1)
    """The version whose content becomes live again (as a new version)."""
    article_id: str | None = Field(default=None, max_length=120)
    """Only this article goes back to how that version had it (removed if it did not exist then)."""
    author: str = Field(default="", max_length=200)


class DocumentUploadResult(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tenant_id: str
    filename: str
    version: int
    articles: list[str]
    """The articles made from the document (its previous articles are replaced)."""
    removed: list[str] = Field(default_factory=list)
    """Articles of an earlier upload of the same document that it no longer has."""


class AssistantTestRequest(BaseModel):
    question: str = Field(min_length=1, max_length=4000)
    language: str | None = Field(default=None, pattern=r"^[a-z]{2}$")
    history: list[tuple[Sender, str]] = Field(default_factory=list, max_length=20)


class PassageScore(BaseModel):
    model_config = ConfigDict(extra="ignore")

    article_id: str
    title: str
    language: str
    passage: int
    """Which passage of the article (0 for a short article)."""
    text: str
    score: float
    """BM25 score (unbounded)."""
    confidence: float = Field(ge=0, le=1)


class AssistantTestView(BaseModel):
    """What the assistant would answer, and why: the candidates retrieval found and their scores."""

    model_config = ConfigDict(extra="ignore")

    question: str
    text: str
    language: str
    confidence: float = Field(ge=0, le=1)
    answer_threshold: float
    mode: str
    sources: list[Source] = Field(default_factory=list)
    smart_actions: list[SmartAction] = Field(default_factory=list)
    handoff_reason: str | None = None
    passages: list[PassageScore] = Field(default_factory=list)
    """The best candidates, best first, whether or not they were confident enough to answer."""
    version: int


class UnansweredGroup(BaseModel):
    """Customer questions the assistant could not answer from the knowledge base, grouped by wording."""

    model_config = ConfigDict(extra="ignore")

    gap_id: uuid.UUID
    """Stable for the group: the id of its first question."""
    question: str
    """A representative question of the group."""
    count: int
    examples: list[str]
    languages: list[str]
    reasons: list[str]
    """Why no answer was given: `unknown_answer`, `low_confidence`, `sensitive_topic`..."""
    first_asked: datetime
    last_asked: datetime


class UnansweredGroupList(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tenant_id: str
    since: datetime
    questions: int
    groups: list[UnansweredGroup]
    """The most frequent first; questions turned into an article are left out."""


class GapArticleRequest(BaseModel):
    """A new article answering a group of unanswered questions."""

    article_id: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]{0,119}$")
    """Defaults to one made from the title."""
    title: dict[str, str] = Field(min_length=1)
    body: dict[str, str] = Field(min_length=1)
    tags: list[str] = Field(default_factory=list, max_length=50)
    author: str = Field(default="", max_length=200)


# ---------------------------------------------------------------------- the ai-responder's assistant settings
# What the tenant's admins change about the assistant (the gateway proxies it after checking the role
# and the tenant). Under `/admin/tenants/{tenant_id}` of the ai-responder, with its admin bearer token:
#   GET    /assistant                       -> AssistantSettingsView
#   PUT    /assistant                       AssistantSettingsInput -> AssistantSettingsView
# The bounds below are checked by both; the ai-responder also checks what depends on the tenant (label
# languages, actions and topics its articles use) and answers 422 naming the field.

SettingsPhrase = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"\w"), TRIMMED]
"""A few words matched tolerant of typos and inflection; `=word` matches that word exactly."""
SettingsId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,40}$")]
SettingsLanguage = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")]
SettingsLabel = Annotated[str, RequiredText(80)]


class SmartActionSetting(BaseModel):
    """A link button the assistant offers with the answers of the articles naming it (or when the
    customer's message contains one of its triggers)."""

    model_config = ConfigDict(extra="forbid")

    id: SettingsId
    url: AnyHttpUrl = Field(max_length=2000)
    label: dict[SettingsLanguage, SettingsLabel] = Field(min_length=1, max_length=20)
    """By language: only the tenant's languages."""
    triggers: list[SettingsPhrase] = Field(default_factory=list, max_length=50)


class AssistantSettingsInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer_threshold: float = Field(ge=0, le=1)
    """Minimum retrieval confidence to answer from an article."""
    unknown_threshold: float = Field(ge=0, le=1)
    """Below it nothing is close (`unknown_answer`); between the two, `low_confidence`. At most answer_threshold."""
    handoff_phrases: list[SettingsPhrase] = Field(max_length=200)
    """The tenant's phrases that ask for a person, besides the generic ones ("operatore", "human"...)."""
    sensitive_topics: dict[SettingsId, Annotated[list[SettingsPhrase], Field(min_length=1, max_length=200)]] = Field(
        max_length=50
    )
    """Topic -> phrases: the answer comes with the offer of a person, and the topic goes to routing."""
    smart_actions: list[SmartActionSetting] = Field(max_length=30)
    llm_enabled: bool = True
    """False: this tenant is answered by retrieval alone, even where an LLM is configured."""

    @model_validator(mode="after")
    def _consistent(self) -> AssistantSettingsInput:
        if self.unknown_threshold > self.answer_threshold:
            raise ValueError("unknown_threshold must not exceed answer_threshold")
        ids = [action.id for action in self.smart_actions]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"smart_actions: duplicate id(s) {duplicates}")
        return self


class AssistantSettingsView(AssistantSettingsInput):
    model_config = ConfigDict(extra="ignore")

    tenant_id: str
    version: int
    """Bumped by every change; 1 is the settings as first taken from the tenant's files."""
    updated_at: datetime
