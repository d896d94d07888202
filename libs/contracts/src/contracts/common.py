"""Value types shared by several events.

Every string and list is bounded, so that the largest valid event fits `MAX_EVENT_BYTES`
(`tests/test_contracts.py` checks every registered payload against it).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

import annotated_types
from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    UrlConstraints,
)

MAX_MESSAGE_CHARS = 4000
MAX_URL_CHARS = 1000
TRANSCRIPT_EXCERPT_LINES = 20
TRANSCRIPT_EXCERPT_LINE_CHARS = 200

# `\S`: at least one character that is not a space (stripped, blank text is refused; the schema says so).
# "Has a character that is not blank", written out so that Python (which strips and validates) and
# a JSON Schema reader (ECMAScript's `\s`) agree: the union of both languages' blanks. And no NUL
# anywhere: PostgreSQL stores no NUL in text, so such a text could only fail later, in a store.
NOT_BLANK = (
    r"^[^\x00]*[^\x00\x09-\x0d\x20\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff][^\x00]*$"
)


def _trim(value: str) -> str:
    return value.strip()


# Strips surrounding blanks once the text is valid as sent. After the constraints, not before
# (`strip_whitespace`): they are what the JSON Schema states, and a reader holds them against the
# text as sent, so a text one character too long must not pass because it starts with a space.
TRIMMED = AfterValidator(_trim)


@dataclass(frozen=True)
class RequiredText(annotated_types.GroupedMetadata):
    """A required free text of at most `max_length` characters: not blank, no NUL, and trimmed once
    valid as sent (`Annotated[str, RequiredText(60)]`); the schema states the three bounds."""

    max_length: int

    def __iter__(self) -> Iterator[Any]:
        yield from StringConstraints(min_length=1, max_length=self.max_length, pattern=NOT_BLANK)
        yield TRIMMED


MessageText = Annotated[str, RequiredText(MAX_MESSAGE_CHARS)]
ShortText = Annotated[str, RequiredText(200)]
# Patterned strings repeat their length as max_length, so that the JSON Schema states the bound.
ClientMessageId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$", max_length=64)]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$", max_length=2)]
OperatorId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.@-]{1,100}$", max_length=100)]
# Not stripped (a model that strips its strings would accept a 25th character the documented schema
# refuses): no space at either end, which is what stripping left before; clients trim what is typed.
PHONE_PATTERN = r"^(?:\+[0-9 ().-]{5,22}|[0-9().-][0-9 ().-]{4,22})[0-9().-]$"
Phone = Annotated[
    str,
    StringConstraints(strip_whitespace=False, pattern=PHONE_PATTERN, max_length=24),
]
Email = Annotated[EmailStr, Field(max_length=254)]  # the longest address SMTP allows


def _normalised_within_bound(url: AnyHttpUrl) -> AnyHttpUrl:
    # A URL is serialised normalised (percent-encoded, punycode host), which can be much longer
    # than the text it was given: bound what is sent, not only what was received.
    if len(str(url)) > MAX_URL_CHARS:
        raise ValueError(f"the URL is longer than {MAX_URL_CHARS} characters once normalised")
    return url


Link = Annotated[AnyHttpUrl, UrlConstraints(max_length=MAX_URL_CHARS), AfterValidator(_normalised_within_bound)]


class Sender(StrEnum):
    CUSTOMER = "customer"
    AI = "ai"
    OPERATOR = "operator"
    SYSTEM = "system"


class ConversationStatus(StrEnum):
    AI = "AI"
    HANDOFF_OFFERED = "HANDOFF_OFFERED"
    QUEUED = "QUEUED"
    WITH_OPERATOR = "WITH_OPERATOR"
    WAITING_CUSTOMER = "WAITING_CUSTOMER"
    TICKET_PENDING = "TICKET_PENDING"
    TICKET_CREATED = "TICKET_CREATED"
    RESOLVED = "RESOLVED"
    NOT_RESOLVED = "NOT_RESOLVED"
    CANCELLED = "CANCELLED"
    ABANDONED = "ABANDONED"


class HandoffReason(StrEnum):
    CUSTOMER_REQUEST = "customer_request"
    SENSITIVE_TOPIC = "sensitive_topic"
    NEGATIVE_SENTIMENT = "negative_sentiment"
    LOW_CONFIDENCE = "low_confidence"
    UNKNOWN_ANSWER = "unknown_answer"
    ANSWER_NOT_HELPFUL = "answer_not_helpful"
    """The customer marked an AI answer not helpful and was offered a person for it."""


class HandoffChoice(StrEnum):
    REQUEST_OPERATOR = "request_operator"
    CONTINUE_AI = "continue_ai"


class CloseOutcome(StrEnum):
    RESOLVED = "RESOLVED"
    NOT_RESOLVED = "NOT_RESOLVED"
    CANCELLED = "CANCELLED"


class ContactChannel(StrEnum):
    EMAIL = "email"
    WHATSAPP = "whatsapp"
    SMS = "sms"
    PHONE = "phone"


class TicketStatus(StrEnum):
    """A ticket's lifecycle: OPEN → IN_PROGRESS → WAITING_CUSTOMER → RESOLVED → CLOSED (the
    tickets service refuses the other moves; a customer's answer reopens it)."""

    OPEN = "OPEN"
    IN_PROGRESS = "IN_PROGRESS"
    WAITING_CUSTOMER = "WAITING_CUSTOMER"
    RESOLVED = "RESOLVED"
    CLOSED = "CLOSED"


class TicketPriority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class SlaClock(StrEnum):
    FIRST_RESPONSE = "first_response"
    RESOLUTION = "resolution"


class DeliveryChannel(StrEnum):
    """Where the notifier sends: the customer's contact channels, and tenants' webhooks."""

    EMAIL = "email"
    WHATSAPP = "whatsapp"
    SMS = "sms"
    WEBHOOK = "webhook"


class SmartActionType(StrEnum):
    OPEN_URL = "open_url"
    REQUEST_OPERATOR = "request_operator"
    CONTINUE_AI = "continue_ai"


class SmartAction(BaseModel):
    """A button shown under a message: a link, or one of the two mechanical handoff choices."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: SmartActionType
    label: ShortText
    url: Link | None = None


class Source(BaseModel):
    """A knowledge-base article an AI answer is grounded in."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    article_id: Annotated[str, StringConstraints(min_length=1, max_length=120)]
    title: ShortText
    score: float = Field(ge=0, le=1)


class ContactDetails(BaseModel):
    """How a customer wants to be reached about a ticket."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    name: ShortText
    email: Email | None = None
    phone: Phone | None = None
    preferred_contact: ContactChannel = ContactChannel.EMAIL


def shortened(text: str, limit: int) -> str:
    """`text`, cut to `limit` characters with an ellipsis when longer (a list line, a subject)."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


class TranscriptLine(BaseModel):
    """One message of a transcript excerpt; a longer text is cut (see `excerpt_text`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    seq: int = Field(ge=1)
    sender: Sender
    text: Annotated[str, StringConstraints(max_length=TRANSCRIPT_EXCERPT_LINE_CHARS)]

    @staticmethod
    def excerpt_text(text: str) -> str:
        """`text`, cut to the line bound with an ellipsis when longer."""
        return shortened(text, TRANSCRIPT_EXCERPT_LINE_CHARS)


class TranscriptExcerpt(BaseModel):
    """The end of a conversation and where to read all of it: an event carries a bounded excerpt,
    never a whole transcript, which the conversation service's read API returns."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    lines: list[TranscriptLine] = Field(default_factory=list, max_length=TRANSCRIPT_EXCERPT_LINES)
    """The last messages, oldest first."""
    total_messages: int = Field(ge=0)
    transcript_url: Annotated[str, StringConstraints(max_length=200)]
    """Path of the conversation service's read API returning every message, e.g.
    `/internal/conversations/{conversation_id}/messages`."""

    @staticmethod
    def url_of(conversation_id: uuid.UUID) -> str:
        return f"/internal/conversations/{conversation_id}/messages"


OperatorPresence = Literal["online", "away", "offline"]


class FactName(StrEnum):
    """The facts on the public analytics topic (`analytics.facts.v1`), one per domain event that
    matters to analysts; docs/analytics-topic.md explains each and the fields it sets."""

    CONVERSATION_STARTED = "conversation_started"
    CUSTOMER_MESSAGE_POSTED = "customer_message_posted"
    AI_ANSWER_POSTED = "ai_answer_posted"
    OPERATOR_MESSAGE_POSTED = "operator_message_posted"
    STATUS_CHANGED = "status_changed"
    CONVERSATION_CLOSED = "conversation_closed"
    HANDOFF_REQUESTED = "handoff_requested"
    CONVERSATION_RATED = "conversation_rated"
    AI_REPLY_DRAFTED = "ai_reply_drafted"
    CONVERSATION_QUEUED = "conversation_queued"
    OFFER_MADE = "offer_made"
    OFFER_CLOSED = "offer_closed"
    OPERATOR_ASSIGNED = "operator_assigned"
    OPERATOR_RELEASED = "operator_released"
    NO_OPERATOR_AVAILABLE = "no_operator_available"
    OPERATOR_PRESENCE_CHANGED = "operator_presence_changed"
    TICKET_OPENED = "ticket_opened"
    TICKET_UPDATED = "ticket_updated"
    TICKET_REPLIED = "ticket_replied"
    SLA_WARNING = "sla_warning"
    SLA_BREACHED = "sla_breached"
    ANSWER_FEEDBACK = "answer_feedback"
