"""Request and response bodies of the tickets routes (ticket_api.py); the ticket views themselves
are the tickets service's read-API bodies, in `contracts.readapi`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from contracts.common import TRIMMED, ClientMessageId, MessageText, OperatorId, TicketPriority, TicketStatus
from gateway.schemas import Accepted, TicketRequest

# `TCK-2026-000123`; customers may type it in lower case.
TICKET_NUMBER_PATTERN = r"^[A-Za-z]{2,5}-[0-9]{4}-[0-9]{6,10}$"


class OpenTicketRequest(TicketRequest):
    """An operator opens a ticket for a customer (who phoned, wrote an email...)."""

    client_request_id: ClientMessageId = Field(
        description="Chosen by the dashboard for this ticket-to-be; a retry with the same id opens no second ticket"
    )
    message: MessageText
    subject: Annotated[str, StringConstraints(max_length=1000), TRIMMED] = ""
    priority: TicketPriority | None = Field(default=None, description="Proposed from the content when absent")
    language: Literal["it", "en"] | None = Field(default=None, description="The customer's; the tenant's when absent")


class OpenTicketAccepted(Accepted):
    idempotency_key: uuid.UUID = Field(
        description="The OpenTicket's idempotency key: uuid5 of the tenant, the operator and client_request_id, "
        "so a retried request names the same ticket-to-be"
    )


# Each branch names a field that changes something: an empty PATCH is refused, and so documented.
SOME_CHANGE: dict[str, Any] = {
    "anyOf": [{"required": ["status"]}, {"required": ["priority"]}, {"required": ["assignee_id"]}]
}


class UpdateTicketRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra=SOME_CHANGE)

    status: TicketStatus | SkipJsonSchema[None] = None
    priority: TicketPriority | SkipJsonSchema[None] = None
    assignee_id: OperatorId | None = Field(
        default=None, description="An active operator of the tenant; `null` unassigns the ticket"
    )

    @field_validator("status", "priority", mode="before")
    @classmethod
    def _given_means_a_value(cls, value: Any) -> Any:
        # Only `assignee_id` has a meaning for null (unassign); a null status changes nothing.
        if value is None:
            raise ValueError("may be left out, but not null")
        return value

    @model_validator(mode="after")
    def _changes_something(self) -> UpdateTicketRequest:
        if not self.model_fields_set & {"status", "priority", "assignee_id"}:
            raise ValueError("give at least one of status, priority, assignee_id")
        return self


class TicketNoteAccepted(Accepted):
    note_id: uuid.UUID


class TicketReplyRequest(BaseModel):
    text: MessageText
    client_reply_id: ClientMessageId | None = Field(
        default=None, description="Chosen by the dashboard; a retry with the same id is the same reply"
    )


class TicketReplyAccepted(Accepted):
    reply_id: uuid.UUID


class LinkReplyRequest(BaseModel):
    """The customer answers on the status page opened from the signed link of an email."""

    t: Annotated[str, StringConstraints(min_length=1, max_length=1000)] = Field(description="The link's token")
    text: MessageText
    reply_id: uuid.UUID = Field(description="Chosen by the page; the same reply sent twice is stored once")
