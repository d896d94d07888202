"""Request and response bodies of the widget API (they are what /openapi.json documents).

The message and history bodies, shared with the conversation service's read API and the test
client, are in `contracts.readapi`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_validator

from contracts.common import (
    ClientMessageId,
    ContactChannel,
    ConversationStatus,
    HandoffChoice,
    MessageText,
    Phone,
)


class ErrorDetail(BaseModel):
    code: str = Field(examples=["unauthorized"])
    message: str


class ErrorBody(BaseModel):
    """Every error: `{"error": {"code", "message"}}`."""

    error: ErrorDetail


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: the error model under each status it can answer."""
    described = {
        401: "Missing or invalid widget key or customer token",
        403: "Token for another conversation, or Origin not allowed for the tenant",
        404: "Unknown tenant or conversation",
        413: "Request body too large",
        422: "Invalid request body or parameters",
        429: "Rate limit exceeded; see the Retry-After header",
        502: "The conversation service answered badly",
        503: "Kafka or the conversation service is unreachable",
    }
    return {status: {"model": ErrorBody, "description": described[status]} for status in statuses}


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


class TicketRequest(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    email: EmailStr | None = None
    phone: Phone | None = None
    preferred_contact: ContactChannel = ContactChannel.EMAIL
    message: Annotated[str, StringConstraints(max_length=4000)] = ""

    @field_validator("email", "phone", mode="before")
    @classmethod
    def _blank_is_absent(cls, value: Any) -> Any:
        # An empty form field means "not given", not an invalid address.
        return None if isinstance(value, str) and not value.strip() else value


class RatingRequest(BaseModel):
    score: int = Field(ge=1, le=5)
    comment: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] = ""


class Accepted(BaseModel):
    """The command is on Kafka (durably); its effect arrives on the stream."""

    accepted: Literal[True] = True
    command_id: uuid.UUID = Field(description="event_id of the command published")
