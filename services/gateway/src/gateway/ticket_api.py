"""Tickets in the public API: the operators' ticket desk, and the customers' status page.

**Operators** (access token) read their tenant's tickets through the tickets service's read API
and change them with commands on `tickets.commands.v1`. Every route about one ticket first reads
it for the operator's tenant: another tenant's ticket answers 404 exactly like an unknown one.

**Customers** (no account) see a ticket's status and public replies by its number plus the email
or phone it was opened with (the widget key names the tenant), or by the signed link of an email,
through which they also answer. Whatever was wrong (unknown number, another contact, another
tenant's ticket, a forged or expired link) the answer is one and the same 404, and lookups by
number are rate limited per client IP and per ticket number, so contacts cannot be guessed.

Paths: a ticket of the operator API is named by its id (a UUID), the status by its number under
`/v1/tickets/by-number/`. `GET /v1/tickets/{ticket_number}` (the first published path) still
answers the lookup: a number never parses as a UUID, so the two never meet, but OpenAPI cannot
state two templates in one place, so that path is left out of the document.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy.exc import DBAPIError
from starlette.convertors import StringConvertor, register_url_convertor

from contracts.common import TicketPriority, TicketStatus
from contracts.events import AddTicketNote, OpenTicket, PostTicketReply, UpdateTicket
from contracts.readapi import PublicTicketView, SlaState, TicketListView, TicketLookupRequest, TicketView
from contracts.ticketlinks import TicketLink
from gateway.api import RuntimeDep, check_origin, client_ip, limit_per_ip, ticket_details, widget_tenant
from gateway.commands import send_command
from gateway.internal import QueryValue
from gateway.operator_api import OperatorDep
from gateway.ratelimit import Limit
from gateway.runtime import GatewayRuntime
from gateway.schemas import Accepted, NoteRequest, errors, operator_errors
from gateway.store import operator_by_id
from gateway.tenants import Tenant
from gateway.ticket_schemas import (
    TICKET_NUMBER_PATTERN,
    LinkReplyRequest,
    OpenTicketAccepted,
    OpenTicketRequest,
    TicketNoteAccepted,
    TicketReplyAccepted,
    TicketReplyRequest,
    UpdateTicketRequest,
)
from gateway.tickets import verified_link_claims
from gateway.tokens import OperatorClaims
from servicekit.http import ApiError

# Namespace of the idempotency keys of tickets opened by operators.
OPERATOR_TICKETS = uuid.UUID("6f0d54a4-3c0e-4b8e-9a51-2f5c7d8e9b10")
OPERATOR_ID_PATTERN = r"^[A-Za-z0-9_.@-]{1,100}$"

TICKET_WORDING = {
    "s404": "No such ticket in the operator's tenant",
    "s502": "The tickets service answered badly",
    "s503": "Kafka or the tickets service is unreachable",
}
COMMAND_ERRORS = operator_errors(401, 404, 413, 422, 429, 502, 503, **TICKET_WORDING)
PUBLIC_WORDING = {
    "s404": "No ticket matches: the same answer whatever was wrong (number, contact, tenant, link)",
    "s502": "The tickets service answered badly",
    "s503": "Kafka or the tickets service is unreachable",
}

router = APIRouter(prefix="/v1", tags=["tickets"], dependencies=[Depends(limit_per_ip)])
public_router = APIRouter(prefix="/v1", tags=["ticket status"], dependencies=[Depends(limit_per_ip)])


# ------------------------------------------------------------------------------ operators


async def tenant_ticket(runtime: GatewayRuntime, operator: OperatorClaims, ticket_id: uuid.UUID) -> TicketView:
    """The ticket, if it is of the operator's tenant (else 404, as for an unknown one)."""
    view = await runtime.tickets.ticket(operator.tenant_id, ticket_id)
    if view is None:
        raise ApiError(404, "not_found", "no such ticket")
    return view


async def check_assignee(runtime: GatewayRuntime, operator: OperatorClaims, assignee_id: str) -> None:
    """A ticket is assigned only to an active operator of its own tenant (the gateway owns the accounts)."""
    assert runtime.sessions is not None
    try:
        async with runtime.sessions() as session:
            row = await operator_by_id(session, assignee_id)
    except (OSError, DBAPIError) as error:
        raise ApiError(503, "unavailable", "operator accounts are unavailable now; retry") from error
    if row is None or not row.active or row.tenant_id != operator.tenant_id:
        raise ApiError(422, "unknown_operator", "no active operator of this tenant has that id")


@router.get(
    "/tickets",
    response_model=TicketListView,
    summary="The tenant's tickets, most urgent first, filtered by status, priority, SLA state, assignee or text",
    responses=operator_errors(401, 422, 429, 502, 503, **TICKET_WORDING),
)
async def list_tickets(
    runtime: RuntimeDep,
    operator: OperatorDep,
    status: TicketStatus | None = None,
    priority: TicketPriority | None = None,
    sla: Annotated[SlaState | None, Query(description="The worst state of the ticket's SLA clocks")] = None,
    assignee_id: Annotated[str | None, Query(pattern=OPERATOR_ID_PATTERN, max_length=100)] = None,
    q: Annotated[str | None, Query(max_length=200, description="Words of the number, name, subject")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> TicketListView:
    filters: dict[str, QueryValue | None] = {
        "status": status,
        "priority": priority,
        "sla": sla,
        "assignee_id": assignee_id,
        "q": (q or "").strip() or None,
        "limit": limit,
    }
    return await runtime.tickets.tickets(
        operator.tenant_id, {name: value for name, value in filters.items() if value is not None}
    )


@router.get(
    "/tickets/{ticket_id:uuid}",
    response_model=TicketView,
    summary="A ticket with its contact, message, transcript excerpt, replies, internal notes and history",
    responses=operator_errors(401, 404, 422, 429, 502, 503, **TICKET_WORDING),
)
async def get_ticket(runtime: RuntimeDep, operator: OperatorDep, ticket_id: uuid.UUID) -> TicketView:
    return await tenant_ticket(runtime, operator, ticket_id)


@router.post(
    "/tickets",
    status_code=202,
    response_model=OpenTicketAccepted,
    summary="Open a ticket for a customer (idempotent on client_request_id); it appears in the list once opened",
    responses=operator_errors(401, 413, 422, 429, 503, s503="Kafka is unreachable"),
)
async def open_ticket(runtime: RuntimeDep, operator: OperatorDep, body: OpenTicketRequest) -> OpenTicketAccepted:
    details = ticket_details(body)  # the widget's rules: a way to reach the customer
    # Derived, not random: a retried request is the same ticket-to-be, which the tickets service opens once.
    key = uuid.uuid5(OPERATOR_TICKETS, f"{operator.tenant_id}:{operator.operator_id}:{body.client_request_id}")
    payload = OpenTicket(
        idempotency_key=key,
        contact=details.contact,
        message=details.message,
        language=body.language,
        subject=body.subject,
        priority=body.priority,
        created_by=operator.operator_id,
    )
    envelope = await send_command(runtime, payload, tenant_id=operator.tenant_id, conversation_id=None)
    return OpenTicketAccepted(command_id=envelope.event_id, idempotency_key=key)


async def send_about_ticket(
    runtime: GatewayRuntime,
    tenant_id: str,
    payload: UpdateTicket | AddTicketNote | PostTicketReply,
) -> uuid.UUID:
    # Keyed by the ticket (no conversation id): one ticket's commands, the operators' and the
    # customer's alike, keep their order on one partition.
    envelope = await send_command(runtime, payload, tenant_id=tenant_id, conversation_id=None)
    return envelope.event_id


@router.patch(
    "/tickets/{ticket_id:uuid}",
    status_code=202,
    response_model=Accepted,
    summary="Change a ticket's status, priority or assignee (the tickets service refuses an illegal status move)",
    responses=COMMAND_ERRORS,
)
async def update_ticket(
    runtime: RuntimeDep, operator: OperatorDep, ticket_id: uuid.UUID, body: UpdateTicketRequest
) -> Accepted:
    await tenant_ticket(runtime, operator, ticket_id)
    unassign = "assignee_id" in body.model_fields_set and body.assignee_id is None
    if body.assignee_id is not None:
        await check_assignee(runtime, operator, body.assignee_id)
    payload = UpdateTicket(
        ticket_id=ticket_id,
        operator_id=operator.operator_id,
        status=body.status,
        priority=body.priority,
        assignee_id=body.assignee_id,
        unassign=unassign,
    )
    return Accepted(command_id=await send_about_ticket(runtime, operator.tenant_id, payload))


@router.post(
    "/tickets/{ticket_id:uuid}/notes",
    status_code=202,
    response_model=TicketNoteAccepted,
    summary="Add an internal note to a ticket (operators only, never shown to the customer)",
    responses=COMMAND_ERRORS,
)
async def add_ticket_note(
    runtime: RuntimeDep, operator: OperatorDep, ticket_id: uuid.UUID, body: NoteRequest
) -> TicketNoteAccepted:
    await tenant_ticket(runtime, operator, ticket_id)
    note_id = uuid.uuid4()
    payload = AddTicketNote(ticket_id=ticket_id, note_id=note_id, operator_id=operator.operator_id, text=body.text)
    command_id = await send_about_ticket(runtime, operator.tenant_id, payload)
    return TicketNoteAccepted(command_id=command_id, note_id=note_id)


@router.post(
    "/tickets/{ticket_id:uuid}/replies",
    status_code=202,
    response_model=TicketReplyAccepted,
    summary="Answer the customer on a ticket (public: on the status page, and sent by the notifier)",
    responses=COMMAND_ERRORS,
)
async def post_ticket_reply(
    runtime: RuntimeDep, operator: OperatorDep, ticket_id: uuid.UUID, body: TicketReplyRequest
) -> TicketReplyAccepted:
    await tenant_ticket(runtime, operator, ticket_id)
    # Derived when the dashboard names the reply: a retry is the same reply.
    reply_id = (
        uuid.uuid5(ticket_id, f"operator:{operator.operator_id}:{body.client_reply_id}")
        if body.client_reply_id
        else uuid.uuid4()
    )
    payload = PostTicketReply(
        ticket_id=ticket_id, reply_id=reply_id, author="operator", operator_id=operator.operator_id, text=body.text
    )
    command_id = await send_about_ticket(runtime, operator.tenant_id, payload)
    return TicketReplyAccepted(command_id=command_id, reply_id=reply_id)


# ------------------------------------------------------------------------------ customers


def no_such_ticket() -> ApiError:
    return ApiError(404, "not_found", "no ticket matches")


def for_customer(view: PublicTicketView, tenant: Tenant) -> PublicTicketView:
    """The view with what the gateway knows of the ticket's tenant: the name the page's header
    shows, and the zone the promised answer is written in (it owns the tenants' profiles)."""
    return view.model_copy(update={"tenant_name": tenant.name, "time_zone": tenant.time_zone})


async def linked_ticket(runtime: GatewayRuntime, token: str, origin: str | None) -> tuple[PublicTicketView, TicketLink]:
    """The ticket of a status link, once the tickets service (which holds the link secret) has
    accepted the token; then the Origin must be one of the ticket's tenant, as for its widget."""
    view = await runtime.tickets.by_link(token)
    link = verified_link_claims(token) if view is not None else None
    tenant = await runtime.tenants.by_id(link.tenant_id) if link is not None else None
    if view is None or link is None or tenant is None:
        raise no_such_ticket()
    check_origin(tenant, origin)
    return for_customer(view, tenant), link


@public_router.get(
    "/tickets/by-link",
    response_model=PublicTicketView,
    summary="A ticket's status and public replies, by the signed link of an email",
    responses=errors(403, 404, 422, 429, 502, 503, s403="Origin not allowed for the ticket's tenant", **PUBLIC_WORDING),
)
async def ticket_by_link(
    request: Request,
    runtime: RuntimeDep,
    t: Annotated[str, Query(min_length=1, max_length=1000, description="The token of the link (`?t=`)")],
) -> PublicTicketView:
    view, _ = await linked_ticket(runtime, t, request.headers.get("origin"))
    return view


@public_router.post(
    "/tickets/by-link/replies",
    status_code=202,
    response_model=TicketReplyAccepted,
    summary="The customer answers on a ticket, through the signed link of an email (reopens a waiting ticket)",
    responses=errors(
        403,
        404,
        409,
        413,
        422,
        429,
        502,
        503,
        s403="Origin not allowed for the ticket's tenant",
        s409="The ticket is closed (`ticket_closed`): a new question is a new conversation",
        **PUBLIC_WORDING,
    ),
)
async def reply_by_link(request: Request, runtime: RuntimeDep, body: LinkReplyRequest) -> TicketReplyAccepted:
    view, link = await linked_ticket(runtime, body.t, request.headers.get("origin"))
    if view.status == TicketStatus.CLOSED:
        raise ApiError(409, "ticket_closed", "this ticket is closed; for a new question, write to us again")
    limit = Limit("ticket-replies", str(link.ticket_id), runtime.config.rate_limit_conversation_messages)
    await runtime.limiter.hit(limit)
    # Scoped to the ticket and the customer: the page's id cannot collide with an operator's reply.
    reply_id = uuid.uuid5(link.ticket_id, f"customer:{body.reply_id}")
    payload = PostTicketReply(ticket_id=link.ticket_id, reply_id=reply_id, author="customer", text=body.text)
    command_id = await send_about_ticket(runtime, link.tenant_id, payload)
    return TicketReplyAccepted(command_id=command_id, reply_id=reply_id)


TicketNumberPath = Annotated[
    str, Path(pattern=TICKET_NUMBER_PATTERN, max_length=21, description="e.g. TCK-2026-000123 (any case)")
]


async def _lookup(
    request: Request,
    runtime: GatewayRuntime,
    tenant: Tenant,
    ticket_number: str,
    email: str | None,
    phone: str | None,
) -> PublicTicketView:
    number = ticket_number.upper()
    settings = runtime.config
    # Counted before anything is asked, whatever the outcome: guessing costs the same.
    await runtime.lookup_limiter.hit(
        Limit("ticket-lookup-ip", client_ip(request), settings.ticket_lookups_per_ip),
        Limit("ticket-lookup-number", f"{tenant.tenant_id}:{number}", settings.ticket_lookups_per_number),
    )
    email, phone = (email or "").strip() or None, (phone or "").strip() or None
    if email is None and phone is None:
        raise no_such_ticket()  # nothing to match: the same answer as a wrong contact
    view = await runtime.tickets.lookup(
        TicketLookupRequest(tenant_id=tenant.tenant_id, ticket_number=number, email=email, phone=phone)
    )
    if view is None:
        raise no_such_ticket()
    return for_customer(view, tenant)


EmailQuery = Annotated[str | None, Query(max_length=254, description="The email the ticket was opened with")]
PhoneQuery = Annotated[str | None, Query(max_length=24, description="Or the phone number it was opened with")]


@public_router.get(
    "/tickets/by-number/{ticket_number}",
    response_model=PublicTicketView,
    summary="A ticket's status and public replies, by its number and the email or phone it was opened with",
    responses=errors(401, 403, 404, 422, 429, 502, 503, **PUBLIC_WORDING),
)
async def ticket_by_number(
    request: Request,
    runtime: RuntimeDep,
    tenant: Annotated[Tenant, Depends(widget_tenant)],
    ticket_number: TicketNumberPath,
    email: EmailQuery = None,
    phone: PhoneQuery = None,
) -> PublicTicketView:
    return await _lookup(request, runtime, tenant, ticket_number, email, phone)


class TicketNumberConvertor(StringConvertor):
    """Matches a ticket number only, so that the first published path takes nothing else: any
    other segment under /v1/tickets/ falls through to a documented route, or to 404 (not 405)."""

    regex = TICKET_NUMBER_PATTERN.removeprefix("^").removesuffix("$")


register_url_convertor("ticket_number", TicketNumberConvertor())


# The first published path, kept working (see the module's docstring).
@public_router.get("/tickets/{ticket_number:ticket_number}", include_in_schema=False)
async def ticket_by_number_first_path(
    request: Request,
    runtime: RuntimeDep,
    tenant: Annotated[Tenant, Depends(widget_tenant)],
    ticket_number: TicketNumberPath,
    email: EmailQuery = None,
    phone: PhoneQuery = None,
) -> PublicTicketView:
    return await _lookup(request, runtime, tenant, ticket_number, email, phone)
