"""Value types shared by several events."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

MAX_MESSAGE_CHARS = 4000

MessageText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_MESSAGE_CHARS)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ClientMessageId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")]
OperatorId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.@-]{1,100}$")]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ().-]{6,24}$")]


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


class SmartActionType(StrEnum):
    OPEN_URL = "open_url"
    REQUEST_OPERATOR = "request_operator"
    CONTINUE_AI = "continue_ai"


class SmartAction(BaseModel):
    """A button shown under a message: a link, or one of the two mechanical handoff choices."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: SmartActionType
    label: ShortText
    url: AnyHttpUrl | None = None


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
    email: EmailStr | None = None
    phone: Phone | None = None
    preferred_contact: ContactChannel = ContactChannel.EMAIL


class TranscriptLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    seq: int = Field(ge=1)
    sender: Sender
    text: Annotated[str, StringConstraints(max_length=MAX_MESSAGE_CHARS)]


OperatorPresence = Literal["online", "away", "offline"]
