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
  (`SuggestionRequest`, `SuggestionView`) and the tickets service's (`TicketListView`,
  `TicketView`, `PublicTicketView`), below.

Unknown fields are ignored, so a field added by the answering side breaks no reader.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from contracts.common import (
    ContactDetails,
    ConversationStatus,
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
    """What the public status page shows: the status and the public replies, nothing else."""

    model_config = ConfigDict(extra="ignore")

    ticket_number: str
    status: TicketStatus
    created_at: datetime
    replies: list[TicketReplyView] = Field(default_factory=list)
