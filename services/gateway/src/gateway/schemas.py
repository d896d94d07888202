"""Request and response bodies of the widget API (they are what /openapi.json documents).

The message and history bodies, shared with the conversation service's read API and the test
client, are in `contracts.readapi`."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from contracts.common import (
    PHONE_PATTERN,
    TRIMMED,
    ClientMessageId,
    CloseOutcome,
    ContactChannel,
    ConversationStatus,
    HandoffChoice,
    MessageText,
    OperatorId,
    OperatorPresence,
    Phone,
    ShortText,
)
from contracts.events import NoteText, OperatorRole


class ErrorDetail(BaseModel):
    code: str = Field(examples=["unauthorized"])
    message: str


class ErrorBody(BaseModel):
    """Every error: `{"error": {"code", "message"}}`."""

    error: ErrorDetail


def errors(*statuses: int, **overrides: str) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: the error model under each status it can answer
    (`overrides`: `s401="..."` words a status for this route)."""
    described = {
        401: "Missing or invalid widget key or customer token",
        403: "Token for another conversation, Origin not allowed for the tenant, or the tenant is disabled "
        "(`tenant_disabled`)",
        404: "Unknown tenant or conversation",
        413: "Request body too large",
        422: "Invalid request body or parameters",
        429: "Rate limit exceeded; see the Retry-After header",
        502: "The conversation service answered badly",
        503: "Kafka or the conversation service is unreachable",
    } | {int(name.removeprefix("s")): text for name, text in overrides.items()}
    return {status: {"model": ErrorBody, "description": described[status]} for status in statuses}


def operator_errors(*statuses: int, **overrides: str) -> dict[int | str, dict[str, Any]]:
    """`errors(...)` worded for the operator API."""
    worded = {
        "s401": "Missing, invalid or expired operator access token, or one of a deactivated account or a "
        "disabled tenant (`tenant_disabled`)",
        "s403": "The operator's role does not allow this",
        "s404": "No such conversation in the operator's tenant",
        "s409": "Another operator has the conversation (`already_taken`)",
        "s502": "The conversation service or routing answered badly",
        "s503": "Kafka, the conversation service or routing is unreachable",
    }
    return errors(*statuses, **(worded | overrides))


class StartConversationRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    locale: Literal["it", "en"] | None = None
    page_url: Annotated[str, StringConstraints(max_length=2000)] | None = None


class StartConversationResponse(BaseModel):
    conversation_id: uuid.UUID
    customer_token: str = Field(description="Send as `Authorization: Bearer <token>`, or `?token=` on the stream")
    status: ConversationStatus


class PostMessageRequest(BaseModel):
    text: MessageText
    client_message_id: ClientMessageId = Field(description="Chosen by the widget; a retry reuses it")


class PostMessageResponse(BaseModel):
    message_id: uuid.UUID = Field(description="uuid5(conversation_id, client_message_id): a retry gets the same id")


class ActionRequest(BaseModel):
    action: HandoffChoice


# An empty form field: documented as allowed, and read as "not given".
BlankField = Annotated[str, StringConstraints(pattern=r"^\s*$", max_length=254)]


# Addresses at special-use domains (RFC 6761) cannot receive mail and are refused: so documented.
SPECIAL_USE_DOMAIN = r"\.(arpa|invalid|local|localhost|onion|test)\.?$"
DeliverableEmail = Annotated[
    EmailStr,
    Field(max_length=254),  # the longest address SMTP allows
    WithJsonSchema({"type": "string", "format": "email", "maxLength": 254, "not": {"pattern": SPECIAL_USE_DOMAIN}}),
]
FILLED_IN: dict[str, Any] = {"not": {"pattern": r"^\s*$"}}
# The cross-field rule of `SubmitTicketDetails`, stated in the schema: the preferred channel's
# field is given (an absent `preferred_contact` is email).
REACHABLE: dict[str, Any] = {
    "if": {"properties": {"preferred_contact": {"const": "email"}}},
    "then": {"required": ["email"], "properties": {"email": {"type": "string", "format": "email"} | FILLED_IN}},
    "else": {
        "required": ["phone"],
        "properties": {"phone": {"type": "string", "pattern": PHONE_PATTERN} | FILLED_IN},
    },
}


class TicketRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra=REACHABLE)

    name: ShortText
    email: DeliverableEmail | BlankField | None = None
    phone: Phone | BlankField | None = None
    preferred_contact: ContactChannel = ContactChannel.EMAIL
    message: Annotated[str, StringConstraints(max_length=4000), TRIMMED] = ""

    @field_validator("email", "phone", mode="before")
    @classmethod
    def _blank_is_absent(cls, value: Any) -> Any:
        # An empty form field means "not given", not an invalid address; a filled one is read
        # without the blanks around it (copied and pasted, say).
        if isinstance(value, str):
            return value.strip() or None
        return value


class RatingRequest(BaseModel):
    score: int = Field(ge=1, le=5)
    comment: Annotated[str, StringConstraints(max_length=2000), TRIMMED] = ""


class FeedbackRequest(BaseModel):
    # Strict: 0, 1 or "yes" are refused rather than read as a choice the customer did not make.
    helpful: StrictBool = Field(
        description="true: the answer helped (👍); false: it did not (👎), which offers a person"
    )


class Accepted(BaseModel):
    """The command is on Kafka (durably); its effect arrives on the stream."""

    accepted: Literal[True] = True
    command_id: uuid.UUID = Field(description="event_id of the command published")


# ---------------------------------------------------------------------------------- operators


class LoginRequest(BaseModel):
    # What a username can be (gateway.operators); anything else (a NUL byte, say, which the
    # database refuses) can match no account and is a 422.
    username: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_.@-]{1,100}$")]
    password: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class RefreshRequest(BaseModel):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=4000)]


class TokenPair(BaseModel):
    access_token: str = Field(description="Send as `Authorization: Bearer <token>`, or `?access_token=` on the stream")
    refresh_token: str = Field(description="Exchanged at POST /v1/operators/refresh for a new pair")
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 -- the OAuth token type, not a secret
    expires_in: int = Field(description="Seconds the access token is valid")


class StatusRequest(BaseModel):
    status: OperatorPresence


class OperatorStatus(BaseModel):
    operator_id: str
    status: OperatorPresence
    command_id: uuid.UUID = Field(description="event_id of the SetOperatorPresence published")


class OperatorMessageRequest(BaseModel):
    text: MessageText
    client_message_id: ClientMessageId | None = Field(
        default=None, description="Chosen by the dashboard; a retry with the same id is the same message"
    )


class OperatorMessageAccepted(Accepted):
    message_id: uuid.UUID


class NoteRequest(BaseModel):
    text: NoteText


class TransferRequest(BaseModel):
    operator_id: OperatorId | None = Field(default=None, description="The operator to hand it to; none: the queue")
    reason: Annotated[str, StringConstraints(max_length=500)] = ""


class Resolution(StrEnum):
    RESOLVED = "resolved"
    NOT_RESOLVED = "not_resolved"
    CANCELLED = "cancelled"

    @property
    def outcome(self) -> CloseOutcome:
        return CloseOutcome(self.value.upper())


class CloseRequest(BaseModel):
    resolution: Resolution


class OperatorSummary(BaseModel):
    """One operator of the tenant, for the transfer picker: the account (the gateway's) with the
    presence and load routing reports (an operator routing has not heard from is offline, idle)."""

    operator_id: str
    display_name: str
    role: OperatorRole
    presence: OperatorPresence
    active_conversations: int = Field(ge=0)
    capacity: int = Field(ge=0)
    pending_offers: int = Field(ge=0)
    skills: list[str]


class OperatorsResponse(BaseModel):
    tenant_id: str
    operators: list[OperatorSummary] = Field(description="Online first, then by name")


class LiveFigures(BaseModel):
    """The tenant's support right now (the analytics page's live tiles)."""

    tenant_id: str
    as_of: datetime
    with_ai: int = Field(ge=0, description="Conversations with the assistant active in the last 30 minutes")
    queued: int = Field(ge=0, description="Conversations waiting for an operator")
    with_operators: int = Field(ge=0, description="Conversations an operator has (WITH_OPERATOR, WAITING_CUSTOMER)")
    operators_online: int = Field(ge=0)
