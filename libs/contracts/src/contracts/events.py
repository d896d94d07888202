"""Every command and event of the platform, grouped by the topic it travels on.

Commands ask a service to do something (it may refuse); events state what happened.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from contracts import topics
from contracts.common import (
    TRIMMED,
    ClientMessageId,
    CloseOutcome,
    ContactChannel,
    ContactDetails,
    ConversationStatus,
    DeliveryChannel,
    Email,
    FactName,
    HandoffChoice,
    HandoffReason,
    Language,
    MessageText,
    OperatorId,
    OperatorPresence,
    RequiredText,
    Sender,
    ShortText,
    SlaClock,
    SmartAction,
    Source,
    TicketPriority,
    TicketStatus,
    TranscriptExcerpt,
)
from contracts.envelope import EventType, Payload, TenantId, UtcDatetime, event

Confidence = Annotated[float, Field(ge=0, le=1)]
NoteText = Annotated[str, RequiredText(4000)]
# `TCK-2026-000123`: a prefix, the year the ticket was opened, and a per-tenant counter.
TicketNumber = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2,5}-[0-9]{4}-[0-9]{6,10}$", max_length=21)]
TicketSubject = Annotated[str, StringConstraints(max_length=1000), TRIMMED]
Skill = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,40}$", max_length=40)]
TicketMessage = Annotated[str, StringConstraints(max_length=4000), TRIMMED]
RatingComment = Annotated[str, StringConstraints(max_length=2000), TRIMMED]
OperatorRole = Literal["operator", "supervisor", "admin"]

# --------------------------------------------------------------------------- conversation.commands.v1


@event("conversation.start", 1, topics.CONVERSATION_COMMANDS.name)
class StartConversation(Payload):
    """A customer opened the widget and started a conversation."""

    channel: Literal["widget"] = "widget"
    locale: Language | None = None
    page_url: Annotated[str, StringConstraints(max_length=2000)] | None = None


@event("conversation.post_customer_message", 1, topics.CONVERSATION_COMMANDS.name)
class PostCustomerMessage(Payload):
    """The customer sent a message; `client_message_id` makes a retry the same message."""

    message_id: uuid.UUID
    client_message_id: ClientMessageId
    text: MessageText


@event("conversation.choose_handoff", 1, topics.CONVERSATION_COMMANDS.name)
class ChooseHandoff(Payload):
    """The customer pressed one of the two handoff buttons."""

    choice: HandoffChoice


@event("conversation.submit_ticket_details", 1, topics.CONVERSATION_COMMANDS.name)
class SubmitTicketDetails(Payload):
    """The customer left contact details so that a ticket can be opened."""

    contact: ContactDetails
    message: TicketMessage = ""

    @model_validator(mode="after")
    def _reachable(self) -> SubmitTicketDetails:
        if not self.contact.email and not self.contact.phone:
            raise ValueError("an email or a phone number is required")
        if self.contact.preferred_contact == ContactChannel.EMAIL and not self.contact.email:
            raise ValueError("preferred contact is email but no email was given")
        if self.contact.preferred_contact != ContactChannel.EMAIL and not self.contact.phone:
            raise ValueError(f"preferred contact is {self.contact.preferred_contact} but no phone was given")
        return self


@event("conversation.rate", 1, topics.CONVERSATION_COMMANDS.name)
class RateConversation(Payload):
    """The customer rated the conversation."""

    score: int = Field(ge=1, le=5)
    comment: RatingComment = ""


@event("conversation.give_answer_feedback", 1, topics.CONVERSATION_COMMANDS.name)
class GiveAnswerFeedback(Payload):
    """The customer marked one of the assistant's answers helpful or not (the widget's 👍/👎).
    Only the first feedback on a message counts; "not helpful" offers the customer a person."""

    message_id: uuid.UUID
    """The AI message of this conversation the feedback is about."""
    helpful: bool


@event("conversation.check_inactivity", 1, topics.CONVERSATION_COMMANDS.name)
class CheckInactivity(Payload):
    """Delivered by the conversation service's own durable timer: the customer has been silent
    since `since`. Ignored when the customer wrote after it (a newer timer is pending then)."""

    since: UtcDatetime


# --------------------------------------------------------------------------- operator.commands.v1


@event("operator.set_presence", 2, topics.OPERATOR_COMMANDS.name)
class SetOperatorPresence(Payload):
    """An operator went online, away or offline (revision 2 added `chosen`)."""

    operator_id: OperatorId
    display_name: ShortText
    presence: OperatorPresence
    skills: list[Skill] = Field(default_factory=list, max_length=20)
    capacity: int = Field(default=3, ge=1, le=20)
    chosen: bool = False
    """True when the operator (or an admin) chose this presence just now; False when the gateway
    repeats it as a heartbeat. Routing keeps the away it decided (missed offers) against a
    repeat, but a choice applies even when it is the same as the last one."""

    @property
    def aggregate_id(self) -> str:
        return self.operator_id


@event("operator.take_conversation", 1, topics.OPERATOR_COMMANDS.name)
class TakeConversation(Payload):
    """An operator accepts an offer or takes a waiting conversation from the queue."""

    operator_id: OperatorId


@event("operator.post_message", 1, topics.OPERATOR_COMMANDS.name)
class PostOperatorMessage(Payload):
    """An operator wrote to the customer."""

    operator_id: OperatorId
    message_id: uuid.UUID
    text: MessageText
    role: OperatorRole = "operator"
    """The sender's role, from their token: a supervisor or admin may act on a conversation
    assigned to someone else."""


@event("operator.add_note", 1, topics.OPERATOR_COMMANDS.name)
class AddInternalNote(Payload):
    """An internal note, visible to operators only."""

    operator_id: OperatorId
    note_id: uuid.UUID
    text: NoteText
    role: OperatorRole = "operator"
    """The sender's role, from their token: a supervisor or admin may act on a conversation
    assigned to someone else."""


@event("operator.transfer", 1, topics.OPERATOR_COMMANDS.name)
class TransferConversation(Payload):
    """An operator hands the conversation to another operator or back to the queue."""

    operator_id: OperatorId
    to_operator_id: OperatorId | None = None
    reason: Annotated[str, StringConstraints(max_length=500)] = ""
    role: OperatorRole = "operator"
    """The sender's role, from their token: a supervisor or admin may act on a conversation
    assigned to someone else."""


@event("operator.close", 1, topics.OPERATOR_COMMANDS.name)
class CloseConversation(Payload):
    """An operator closes the conversation with an outcome."""

    operator_id: OperatorId
    outcome: CloseOutcome
    role: OperatorRole = "operator"
    """The sender's role, from their token: a supervisor or admin may act on a conversation
    assigned to someone else."""


@event("operator.release", 1, topics.OPERATOR_COMMANDS.name)
class ReleaseConversation(Payload):
    """An operator hands the conversation back to the AI assistant."""

    operator_id: OperatorId
    role: OperatorRole = "operator"
    """The sender's role, from their token: a supervisor or admin may act on a conversation
    assigned to someone else."""


@event("operator.decline_offer", 1, topics.OPERATOR_COMMANDS.name)
class DeclineOffer(Payload):
    """An operator turns an offer down: routing offers the conversation to the next operator."""

    operator_id: OperatorId
    offer_id: uuid.UUID


# --------------------------------------------------------------------------- conversation.events.v1


@event("conversation.started", 1, topics.CONVERSATION_EVENTS.name)
class ConversationStarted(Payload):
    """A conversation exists, with the AI assistant answering."""

    channel: Literal["widget"] = "widget"
    locale: Language | None = None
    status: ConversationStatus = ConversationStatus.AI


@event("conversation.message_posted", 1, topics.CONVERSATION_EVENTS.name)
class MessagePosted(Payload):
    """A message was added to the conversation at sequence number `seq` (gap-free from 1)."""

    message_id: uuid.UUID
    seq: int = Field(ge=1)
    sender: Sender
    text: MessageText
    client_message_id: ClientMessageId | None = None
    operator_id: OperatorId | None = None
    language: Language | None = None
    confidence: Confidence | None = None
    sources: list[Source] = Field(default_factory=list, max_length=10)
    smart_actions: list[SmartAction] = Field(default_factory=list, max_length=6)
    status: ConversationStatus
    """The conversation's status right after this message; the AI answers only in `AI`."""


@event("conversation.status_changed", 1, topics.CONVERSATION_EVENTS.name)
class StatusChanged(Payload):
    """The conversation moved from one state to another."""

    previous: ConversationStatus
    status: ConversationStatus
    reason: Annotated[str, StringConstraints(max_length=200)] = ""
    operator_id: OperatorId | None = None


@event("conversation.handoff_requested", 1, topics.CONVERSATION_EVENTS.name)
class HandoffRequested(Payload):
    """The customer accepted a person: routing must find an operator."""

    reason: HandoffReason | None = None
    language: Language | None = None
    skills: list[Skill] = Field(default_factory=list, max_length=10)
    excluded_operator_id: OperatorId | None = None
    confidence: Confidence | None = None
    """The AI's confidence in its last answer, when the offer came from the AI."""
    intent: Skill | None = None
    """What the customer asked about (the AI's topic, e.g. `tickets`): routing matches it to skills."""
    priority: Literal["normal", "high"] = "normal"
    """`high` for an upset customer or one who may be in danger: served before the others in the
    queue."""


@event("conversation.queue_position_updated", 1, topics.CONVERSATION_EVENTS.name)
class QueuePositionUpdated(Payload):
    """Where a waiting conversation is in the operators' queue: a status for the widget to show
    in place (not a message), emitted when the conversation is queued and when its place changes."""

    position: int = Field(ge=1)
    estimated_wait_seconds: int | None = Field(default=None, ge=0, le=86_400)


@event("conversation.note_added", 1, topics.CONVERSATION_EVENTS.name)
class NoteAdded(Payload):
    """An internal note was added."""

    note_id: uuid.UUID
    operator_id: OperatorId
    text: NoteText


@event("conversation.rated", 1, topics.CONVERSATION_EVENTS.name)
class ConversationRated(Payload):
    """The customer's rating."""

    score: int = Field(ge=1, le=5)
    comment: RatingComment = ""


@event("conversation.answer_feedback_given", 1, topics.CONVERSATION_EVENTS.name)
class AnswerFeedbackGiven(Payload):
    """The customer's first feedback on an AI answer (later ones are rejected `already_given`)."""

    message_id: uuid.UUID
    """The AI message."""
    helpful: bool
    question_message_id: uuid.UUID | None = None
    """The customer's last message before the answer: the question it answered."""
    question: MessageText | None = None
    """That question's text, for the knowledge-gap report of an answer that did not help."""


@event("conversation.command_rejected", 1, topics.CONVERSATION_EVENTS.name)
class CommandRejected(Payload):
    """A command could not be applied (illegal transition, unknown conversation...)."""

    command_type: EventType
    command_event_id: uuid.UUID
    code: Annotated[str, StringConstraints(max_length=60)]
    message: Annotated[str, StringConstraints(max_length=500)]


# --------------------------------------------------------------------------- ai.replies.v1


@event("ai.reply_generated", 3, topics.AI_REPLIES.name)
class AiReplyGenerated(Payload):
    """The assistant's answer to one customer message (revision 2 added `upset`, 3 `urgent`)."""

    in_reply_to: uuid.UUID
    reply_id: uuid.UUID
    text: MessageText
    language: Language
    confidence: Confidence
    mode: Literal["retrieval", "llm"]
    sources: list[Source] = Field(default_factory=list, max_length=10)
    smart_actions: list[SmartAction] = Field(default_factory=list, max_length=6)
    handoff_reason: HandoffReason | None = None
    """When set, the reply offers the YES/NO handoff choice."""
    upset: bool = False
    """The customer's message sounded upset, whatever the handoff reason: "I'm angry, get me a
    person" is a request for a person from an upset customer, who waits in the queue first."""
    urgent: bool = False
    """Someone may be in danger (a lost child, an injury: the platform's `emergency` topic): the
    reply gives the emergency advice and offers a person, who is wanted first in the queue."""


# --------------------------------------------------------------------------- routing.events.v1


@event("routing.operator_assigned", 1, topics.ROUTING_EVENTS.name)
class OperatorAssigned(Payload):
    """An operator has the conversation now: an offer accepted, a waiting conversation taken, or a transfer."""

    operator_id: OperatorId
    display_name: ShortText
    via: Literal["offer", "take", "transfer"] = "offer"
    previous_operator_id: OperatorId | None = None


@event("routing.conversation_queued", 1, topics.ROUTING_EVENTS.name)
class ConversationQueued(Payload):
    """No operator has capacity right now: the conversation waits in the queue."""

    position: int = Field(ge=1)
    estimated_wait_seconds: int | None = Field(default=None, ge=0, le=86_400)


@event("routing.queue_position_changed", 1, topics.ROUTING_EVENTS.name)
class QueuePositionChanged(Payload):
    """A waiting conversation moved in the queue (others ahead of it were served or left)."""

    position: int = Field(ge=1)
    estimated_wait_seconds: int | None = Field(default=None, ge=0, le=86_400)


@event("routing.offer_made", 1, topics.ROUTING_EVENTS.name)
class OfferMade(Payload):
    """The conversation is offered to one operator, who can accept it until `expires_at`."""

    offer_id: uuid.UUID
    operator_id: OperatorId
    expires_at: UtcDatetime
    reason: HandoffReason | None = None
    priority: Literal["normal", "high"] = "normal"


@event("routing.offer_closed", 1, topics.ROUTING_EVENTS.name)
class OfferClosed(Payload):
    """An offer ended without an assignment: declined by the operator, or expired unanswered."""

    offer_id: uuid.UUID
    operator_id: OperatorId
    outcome: Literal["declined", "expired", "withdrawn"]


@event("routing.operator_released", 1, topics.ROUTING_EVENTS.name)
class OperatorReleased(Payload):
    """An operator no longer has the conversation (closed, transferred, handed back): load freed."""

    operator_id: OperatorId
    reason: Literal["closed", "transferred", "handed_back", "requeued"]


@event("routing.no_operator_available", 1, topics.ROUTING_EVENTS.name)
class NoOperatorAvailable(Payload):
    """Nobody is online: the customer should leave contact details for a ticket."""


@event("routing.operator_presence_changed", 1, topics.ROUTING_EVENTS.name)
class OperatorPresenceChanged(Payload):
    """An operator's presence as routing sees it."""

    operator_id: OperatorId
    presence: OperatorPresence
    active_conversations: int = Field(ge=0)
    capacity: int = Field(ge=1)

    @property
    def aggregate_id(self) -> str:
        return self.operator_id


# --------------------------------------------------------------------------- routing.commands.v1


@event("routing.expire_offer", 1, topics.ROUTING_COMMANDS.name)
class ExpireOffer(Payload):
    """Delivered by routing's durable timer when an offer's time is up; ignored if it was answered."""

    offer_id: uuid.UUID
    operator_id: OperatorId


@event("routing.expire_presence", 1, topics.ROUTING_COMMANDS.name)
class ExpirePresence(Payload):
    """Delivered by routing's durable timer when an operator's heartbeats stopped; ignored if a
    heartbeat came after `last_seen_at`."""

    operator_id: OperatorId
    last_seen_at: UtcDatetime

    @property
    def aggregate_id(self) -> str:
        return self.operator_id


# --------------------------------------------------------------------------- tickets.commands.v1


@event("tickets.open_ticket", 1, topics.TICKETS_COMMANDS.name)
class OpenTicket(Payload):
    """Open a ticket: for a conversation nobody could take live, or directly by an operator.

    `idempotency_key` is the same for every request about one ticket-to-be (the conversation
    service derives it from the conversation id; the gateway from the operator's request id), so
    details submitted twice, or a command delivered twice, open one ticket.
    """

    idempotency_key: uuid.UUID
    contact: ContactDetails
    message: TicketMessage = ""
    language: Language | None = None
    transcript: TranscriptExcerpt | None = None
    """The end of the conversation and where to read it all; None for a ticket an operator opened."""
    subject: TicketSubject = ""
    """What the customer wants, in a line or two: the conversation's first question when the
    customer wrote no message; empty, the tickets service takes the message's first line."""
    handoff_reason: HandoffReason | None = None
    """Why the assistant offered a person, when it did: proposes the ticket's priority."""
    upset: bool = False
    """The assistant saw negative sentiment in the conversation."""
    priority: TicketPriority | None = None
    """Set by an operator who opens the ticket; otherwise proposed from the content."""
    created_by: OperatorId | None = None

    @property
    def aggregate_id(self) -> uuid.UUID:
        # An operator's ticket has no conversation: its retries share a partition by their key.
        return self.idempotency_key


@event("tickets.update_ticket", 1, topics.TICKETS_COMMANDS.name)
class UpdateTicket(Payload):
    """An operator changes a ticket's status, priority or assignee (the tickets service refuses an
    illegal status move with a `TicketCommandRejected`)."""

    ticket_id: uuid.UUID
    operator_id: OperatorId
    status: TicketStatus | None = None
    priority: TicketPriority | None = None
    assignee_id: OperatorId | None = None
    unassign: bool = False
    """Clears the assignee (`assignee_id` None alone means "unchanged")."""

    @property
    def aggregate_id(self) -> uuid.UUID:
        return self.ticket_id


@event("tickets.post_reply", 1, topics.TICKETS_COMMANDS.name)
class PostTicketReply(Payload):
    """A public reply on a ticket: an operator's answer, or the customer's (through the status page
    or the signed link of an email). A customer's reply reopens a waiting or resolved ticket."""

    ticket_id: uuid.UUID
    reply_id: uuid.UUID
    """Chosen by the caller, so that the same reply sent twice is stored once."""
    author: Literal["customer", "operator"]
    operator_id: OperatorId | None = None
    text: MessageText

    @property
    def aggregate_id(self) -> uuid.UUID:
        return self.ticket_id


@event("tickets.add_note", 1, topics.TICKETS_COMMANDS.name)
class AddTicketNote(Payload):
    """An internal note on a ticket: for operators only, never shown to the customer."""

    ticket_id: uuid.UUID
    note_id: uuid.UUID
    operator_id: OperatorId
    text: NoteText

    @property
    def aggregate_id(self) -> uuid.UUID:
        return self.ticket_id


@event("tickets.check_sla", 1, topics.TICKETS_COMMANDS.name)
class CheckSla(Payload):
    """Delivered by the tickets service's own durable timer when an SLA clock reaches its warning
    (80%) or its deadline. Ignored when the clock was paused, stopped or moved since (the stored
    clock, not the timer, decides)."""

    ticket_id: uuid.UUID
    clock: SlaClock
    threshold: Literal["warning", "breach"]
    due_at: UtcDatetime

    @property
    def aggregate_id(self) -> uuid.UUID:
        return self.ticket_id


# --------------------------------------------------------------------------- tickets.events.v1
# A ticket opened from a conversation carries its conversation id in every envelope, so that all
# of a ticket's events share one partition key (the conversation, else the ticket id).


@event("tickets.ticket_opened", 2, topics.TICKETS_EVENTS.name)
class TicketOpened(Payload):
    """A ticket exists; the customer is told its number, what they asked and when to expect an
    answer (revision 2 added `message` and `transcript`, for that acknowledgment)."""

    ticket_id: uuid.UUID
    ticket_number: TicketNumber
    contact: ContactDetails
    language: Language | None = None
    priority: TicketPriority = TicketPriority.NORMAL
    subject: TicketSubject = ""
    source: Literal["conversation", "operator"] = "conversation"
    assignee_id: OperatorId | None = None
    first_response_due: UtcDatetime | None = None
    resolution_due: UtcDatetime | None = None
    message: TicketMessage = ""
    """The request as written when the ticket was opened (the customer's in the form, or the
    operator's); empty when none was written."""
    transcript: TranscriptExcerpt | None = None
    """The end of the conversation the ticket comes from, as `OpenTicket` carried it."""

    @property
    def aggregate_id(self) -> uuid.UUID:
        return self.ticket_id


@event("tickets.ticket_updated", 1, topics.TICKETS_EVENTS.name)
class TicketUpdated(Payload):
    """A ticket's status, priority or assignee changed."""

    ticket_id: uuid.UUID
    ticket_number: TicketNumber
    status: TicketStatus
    previous_status: TicketStatus
    priority: TicketPriority
    assignee_id: OperatorId | None = None
    changed_by: Annotated[str, StringConstraints(max_length=100)]
    """The operator id, `customer` (a reply reopened it) or `system`."""
    first_response_due: UtcDatetime | None = None
    resolution_due: UtcDatetime | None = None
    """The deadlines as they stand after the change (a paused clock moves them)."""

    @property
    def aggregate_id(self) -> uuid.UUID:
        return self.ticket_id


@event("tickets.reply_posted", 1, topics.TICKETS_EVENTS.name)
class TicketReplyPosted(Payload):
    """A public reply on a ticket; an operator's reaches the customer through the notifier."""

    ticket_id: uuid.UUID
    ticket_number: TicketNumber
    reply_id: uuid.UUID
    author: Literal["customer", "operator"]
    operator_id: OperatorId | None = None
    text: MessageText

    @property
    def aggregate_id(self) -> uuid.UUID:
        return self.ticket_id


@event("tickets.note_added", 1, topics.TICKETS_EVENTS.name)
class TicketNoteAdded(Payload):
    """An internal note on a ticket (operators only)."""

    ticket_id: uuid.UUID
    ticket_number: TicketNumber
    note_id: uuid.UUID
    operator_id: OperatorId
    text: NoteText

    @property
    def aggregate_id(self) -> uuid.UUID:
        return self.ticket_id


@event("tickets.sla_warning", 1, topics.TICKETS_EVENTS.name)
class SlaWarning(Payload):
    """A ticket's SLA clock passed 80% of its target: at risk (emitted once per clock)."""

    ticket_id: uuid.UUID
    ticket_number: TicketNumber
    clock: SlaClock
    due_at: UtcDatetime

    @property
    def aggregate_id(self) -> uuid.UUID:
        return self.ticket_id


@event("tickets.sla_breached", 1, topics.TICKETS_EVENTS.name)
class SlaBreached(Payload):
    """A ticket missed its first-response or resolution deadline (emitted once per clock)."""

    ticket_id: uuid.UUID
    ticket_number: TicketNumber
    clock: SlaClock
    due_at: UtcDatetime

    @property
    def aggregate_id(self) -> uuid.UUID:
        return self.ticket_id


@event("tickets.command_rejected", 1, topics.TICKETS_EVENTS.name)
class TicketCommandRejected(Payload):
    """A ticket command was refused (an illegal status move, an unknown ticket)."""

    ticket_id: uuid.UUID | None = None
    command_type: EventType
    code: Annotated[str, StringConstraints(max_length=60)]
    message: Annotated[str, StringConstraints(max_length=500)]


# --------------------------------------------------------------------------- notifications.events.v1


@event("notifications.delivery_completed", 1, topics.NOTIFICATIONS_EVENTS.name)
class DeliveryCompleted(Payload):
    """A notification was delivered, or gave up after its retries (then it is also dead-lettered).

    `delivery_id` is the delivery's idempotency key: one per (source event, channel, recipient).
    `recipient` is masked (`g***@example.com`, `+39 *** **12`, a webhook's host) so that this topic
    carries no full contact details.
    """

    delivery_id: uuid.UUID
    source_event_id: uuid.UUID
    ticket_id: uuid.UUID | None = None
    channel: DeliveryChannel
    template: Annotated[str, StringConstraints(max_length=80)]
    recipient: Annotated[str, StringConstraints(max_length=200)]
    succeeded: bool
    attempts: int = Field(ge=1)
    error: Annotated[str, StringConstraints(max_length=1000)] = ""


# --------------------------------------------------------------------------- tenant.events.v1
# Written by the gateway, which owns tenants and their accounts, through its outbox (the change and
# its event commit together). Keyed by the tenant, so one tenant's snapshots stay in order.

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
TimeZoneName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_+/-]{1,64}$", max_length=64)]
ClockTime = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", max_length=5)]


class BusinessWindow(BaseModel):
    """Open from `start` to `end` (local time, `HH:MM`, end after start) on each of `days`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: list[Weekday] = Field(min_length=1, max_length=7)
    start: ClockTime
    end: ClockTime

    @model_validator(mode="after")
    def _ends_after_start(self) -> BusinessWindow:
        if self.end <= self.start:
            raise ValueError(f"a window must end after it starts ({self.start}-{self.end})")
        return self


@event("tenant.profile_changed", 1, topics.TENANT_EVENTS.name)
class TenantProfileChanged(Payload):
    """A tenant's profile as it is now: a full snapshot that replaces the reader's copy.

    Emitted when the tenant is created, its profile changes, or it is disabled or enabled, and again
    for every tenant when a gateway starts (so that a reader that joined after the topic's retention
    learns every tenant). `revision` grows with every change: a reader keeps the highest it has seen
    and ignores older or equal ones (redeliveries, the start-up announcements).
    """

    tenant_id: TenantId
    revision: int = Field(ge=1)
    name: ShortText
    languages: list[Language] = Field(min_length=1, max_length=20)
    """The first is the default language."""
    time_zone: TimeZoneName
    business_hours: list[BusinessWindow] = Field(default_factory=list, max_length=14)
    """When operators answer (SLA clocks count only these hours); empty: always."""
    disabled: bool = False

    @property
    def aggregate_id(self) -> str:
        return self.tenant_id


AccountEmailKind = Literal["verify_signup", "operator_invite"]


@event("tenant.account_email_requested", 1, topics.TENANT_EVENTS.name)
class AccountEmailRequested(Payload):
    """The notifier is asked to send an account email: verify a sign-up's address, or invite an
    operator. `link` is the signed, expiring link the email carries (it grants what the email is
    for, so only the notifier reads this topic's account emails); `request_id` is the idempotency
    key: one email per request, whatever the redeliveries."""

    request_id: uuid.UUID
    kind: AccountEmailKind
    email: Email
    recipient_name: ShortText | None = None
    language: Language
    tenant_name: ShortText
    invited_by: ShortText | None = None
    """The admin who sent the invitation (`operator_invite`)."""
    link: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2000)]
    expires_at: UtcDatetime

    @property
    def aggregate_id(self) -> uuid.UUID:
        return self.request_id


# --------------------------------------------------------------------------- analytics.facts.v1
# One flat fact per domain event that matters to analysts, written by the analytics service.
# Ids, codes, numbers and times only: a fact never carries a name, an email, a phone number, a
# message's text or a comment (docs/analytics-topic.md documents every field).

ReasonCode = Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,60}$", max_length=60)]


@event("analytics.fact", 1, topics.ANALYTICS_FACTS.name)
class AnalyticsFact(Payload):
    """One step of the customer journey, flat and self-describing (the public analytics topic).

    The identity and time fields are always set; each dimension is set only where it applies to
    the fact's `name` (None otherwise). `fact_id` is the same on every delivery of one fact.
    """

    fact_id: uuid.UUID
    """Derived from the source event and the fact name: deduplicate on it (delivery is at least once)."""
    name: FactName
    tenant_id: TenantId
    conversation_id: uuid.UUID | None = None
    ticket_id: uuid.UUID | None = None
    operator_id: OperatorId | None = None
    """The operator who acted, or who is concerned (assigned, offered, released, replying)."""
    occurred_at: UtcDatetime
    """When it happened: the source event's time."""
    processed_at: UtcDatetime
    """When the analytics service turned the event into this fact."""
    source_event_id: uuid.UUID
    source_event_type: EventType

    # Conversation dimensions
    status: ConversationStatus | None = None
    """The conversation's status after the event (status changes, closes, posted messages)."""
    previous_status: ConversationStatus | None = None
    reason_code: ReasonCode | None = None
    """Why the status changed, as a code (`customer_inactive`, `closed_by_operator`...)."""
    handoff_reason: HandoffReason | None = None
    language: Language | None = None
    channel: Literal["widget"] | None = None
    seq: int | None = Field(default=None, ge=1)
    """The message's place in its conversation."""
    in_reply_to: uuid.UUID | None = None
    """The customer message an AI reply answers."""
    confidence: Confidence | None = None
    answer_mode: Literal["retrieval", "llm"] | None = None
    source_count: int | None = Field(default=None, ge=0, le=10)
    """How many knowledge-base articles the answer is grounded in."""
    kb_gap: bool | None = None
    """The knowledge base could not answer (unknown answer, low confidence)."""
    score: int | None = Field(default=None, ge=1, le=5)
    has_comment: bool | None = None
    message_id: uuid.UUID | None = None
    """The AI answer the customer's feedback is about (`answer_feedback`)."""
    helpful: bool | None = None
    """Whether the customer found that answer helpful (`answer_feedback`)."""
    """Whether the customer wrote a comment with the rating (the comment itself is not here)."""

    # Routing dimensions
    queue_priority: Literal["normal", "high"] | None = None
    queue_position: int | None = Field(default=None, ge=1)
    estimated_wait_seconds: int | None = Field(default=None, ge=0, le=86_400)
    offer_id: uuid.UUID | None = None
    offer_outcome: Literal["declined", "expired", "withdrawn"] | None = None
    assignment_via: Literal["offer", "take", "transfer"] | None = None
    previous_operator_id: OperatorId | None = None
    release_reason: Literal["closed", "transferred", "handed_back", "requeued"] | None = None
    presence: OperatorPresence | None = None
    active_conversations: int | None = Field(default=None, ge=0)
    capacity: int | None = Field(default=None, ge=1)

    # Ticket dimensions
    ticket_number: TicketNumber | None = None
    ticket_status: TicketStatus | None = None
    previous_ticket_status: TicketStatus | None = None
    ticket_priority: TicketPriority | None = None
    ticket_source: Literal["conversation", "operator"] | None = None
    assignee_id: OperatorId | None = None
    actor: Literal["customer", "operator", "system"] | None = None
    """Who changed the ticket or wrote the reply."""
    sla_clock: SlaClock | None = None
    due_at: UtcDatetime | None = None
    """The SLA clock's deadline (warnings and breaches)."""
    first_response_due: UtcDatetime | None = None
    resolution_due: UtcDatetime | None = None

    @property
    def aggregate_id(self) -> uuid.UUID | str:
        # Keyed like its source (the envelope's conversation first), so one aggregate's facts stay in order.
        return self.ticket_id or self.operator_id or self.fact_id
