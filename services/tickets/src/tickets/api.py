"""The tickets service's internal API for the gateway: the operators' list and detail, and the
customer's status page (by number and contact, or by a signed link)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import utc_now
from contracts.common import SlaClock, TicketPriority, TicketStatus
from contracts.readapi import (
    NoteView,
    PublicTicketView,
    SlaClockView,
    SlaState,
    TicketLinkRequest,
    TicketListView,
    TicketLookupRequest,
    TicketOperatorReplyView,
    TicketReplyView,
    TicketStatusChangeView,
    TicketSummaryView,
    TicketView,
)
from contracts.ticketlinks import InvalidTicketLinkError, verify
from servicekit.http import ApiError, ReadSession
from tickets import domain, store
from tickets.config import Settings
from tickets.domain import BusinessHours
from tickets.profiles import TenantProfiles
from tickets.store import SlaClockRow, Ticket
from tickets.tenants import load_policies

router = APIRouter(prefix="/internal", tags=["tickets API"])
TenantId = Annotated[str, Query(min_length=1, max_length=64)]


# One answer for every failed status-page question (unknown number, another tenant's ticket,
# wrong contact, bad or expired link), so that the answer tells nothing about which it was.
def no_match() -> ApiError:
    return ApiError(404, "not_found", "no ticket matches these details")


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.runtime.settings
    return settings


def hours_of(request: Request, tenant_id: str) -> BusinessHours | None:
    policy = load_policies(settings_of(request).tenants_dir).of(tenant_id)
    profiles: TenantProfiles | None = getattr(request.app.state, "tenant_profiles", None)
    return (profiles.policy(policy) if profiles is not None else policy).business_hours


def clock_view(row: SlaClockRow, hours: BusinessHours | None, now: datetime) -> SlaClockView:
    reading = row.reading
    remaining = None if reading.met else reading.target_seconds - reading.used_at(hours, now)
    return SlaClockView(clock=row.kind, state=reading.state(hours, now), due_at=row.due_at, remaining_seconds=remaining)


def summary_fields(ticket: Ticket, clocks: list[SlaClockRow], hours: BusinessHours | None, now: datetime) -> Any:
    views = [clock_view(row, hours, now) for row in clocks]
    return {
        "ticket_id": ticket.ticket_id,
        "tenant_id": ticket.tenant_id,
        "ticket_number": ticket.number,
        "status": ticket.current_status,
        "priority": ticket.current_priority,
        "assignee_id": ticket.assignee_id,
        "contact_name": ticket.contact_name,
        "subject": ticket.subject,
        "conversation_id": ticket.conversation_id,
        "created_at": ticket.created_at,
        "updated_at": ticket.updated_at,
        "sla_state": domain.worst(view.state for view in views),
        "sla": views,
    }


@router.get("/tickets", response_model=TicketListView)
async def list_tickets(
    tenant_id: TenantId,
    request: Request,
    session: ReadSession,
    status: TicketStatus | None = None,
    priority: TicketPriority | None = None,
    sla: SlaState | None = None,
    assignee_id: Annotated[str | None, Query(max_length=100)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> TicketListView:
    """The tenant's tickets, newest first, matching every filter given (`q`: number, contact
    name or email, subject or message, case-insensitive)."""
    now, hours = utc_now(), hours_of(request, tenant_id)
    tickets = await store.search(
        session,
        tenant_id,
        now,
        status=status,
        priority=priority,
        sla=sla,
        assignee_id=assignee_id,
        q=q.strip() if q else None,
        limit=limit,
    )
    clocks = await store.clocks_of(session, [t.ticket_id for t in tickets])
    return TicketListView(
        tenant_id=tenant_id,
        tickets=[TicketSummaryView(**summary_fields(t, clocks[t.ticket_id], hours, now)) for t in tickets],
    )


@router.get("/tickets/{ticket_id}", response_model=TicketView)
async def get_ticket(ticket_id: uuid.UUID, tenant_id: TenantId, request: Request, session: ReadSession) -> TicketView:
    ticket = await store.get_ticket(session, tenant_id, ticket_id)
    if ticket is None:
        raise ApiError(404, "not_found", f"no ticket {ticket_id}")
    now = utc_now()
    clocks = (await store.clocks_of(session, [ticket_id]))[ticket_id]
    return TicketView(
        **summary_fields(ticket, clocks, hours_of(request, tenant_id), now),
        contact=ticket.contact_details,
        language=ticket.language,
        message=ticket.message,
        transcript=ticket.transcript_excerpt,
        replies=[
            TicketOperatorReplyView(
                reply_id=r.reply_id, author=r.author, text=r.text, created_at=r.created_at, operator_id=r.operator_id
            )
            for r in await store.replies_of(session, ticket_id)
        ],
        notes=[
            NoteView(note_id=n.note_id, operator_id=n.operator_id, text=n.text, created_at=n.created_at)
            for n in await store.notes_of(session, ticket_id)
        ],
        history=[
            TicketStatusChangeView(
                status=h.status, previous_status=h.previous_status, changed_by=h.changed_by, changed_at=h.changed_at
            )
            for h in await store.history_of(session, ticket_id)
        ],
    )


def promised_answer(clocks: list[SlaClockRow]) -> datetime | None:
    """The answer the acknowledgment promised (the notifier writes the first-response deadline):
    that deadline while its clock runs; nothing once an operator answered (met) or while the
    ticket waits on the customer (paused: no deadline), as the customer is then owed none."""
    for row in clocks:
        if row.kind == SlaClock.FIRST_RESPONSE and row.met_at is None and row.running_since is not None:
            return row.due_at
    return None


async def public_view(session: AsyncSession, ticket: Ticket) -> PublicTicketView:
    clocks = (await store.clocks_of(session, [ticket.ticket_id]))[ticket.ticket_id]
    return PublicTicketView(
        ticket_number=ticket.number,
        status=ticket.current_status,
        created_at=ticket.created_at,
        replies=[
            TicketReplyView(reply_id=r.reply_id, author=r.author, text=r.text, created_at=r.created_at)
            for r in await store.replies_of(session, ticket.ticket_id)
        ],
        # The customer's own words, as the acknowledgment quotes them (the subject without a message).
        request=ticket.message or ticket.subject,
        answer_due=promised_answer(clocks),
    )


@router.post("/tickets/lookup", response_model=PublicTicketView)
async def lookup_ticket(body: TicketLookupRequest, session: ReadSession) -> PublicTicketView:
    """The status page by number and the email or phone the ticket was opened with. A wrong
    contact, another tenant's number and an unknown one answer the same 404 after the same
    work: one indexed read of the number, then both contact values compared in constant time
    (against a dummy contact when the number is unknown)."""
    if domain.email_key(body.email) is None and domain.phone_key(body.phone) is None:
        raise ApiError(422, "invalid_request", "an email or a phone is required")
    found = await store.lookup_keys(session, body.tenant_id, body.ticket_number.strip().upper())
    stored_email, stored_phone = (
        (found.email_key, found.phone_key) if found else (domain.DUMMY_CONTACT_KEY, domain.DUMMY_CONTACT_KEY)
    )
    matches = domain.contact_matches(stored_email, stored_phone, body.email, body.phone)
    if found is None or not matches:
        raise no_match()
    ticket = await store.get_ticket(session, body.tenant_id, found.ticket_id)
    assert ticket is not None
    return await public_view(session, ticket)


@router.post("/tickets/link", response_model=PublicTicketView)
async def open_link(body: TicketLinkRequest, request: Request, session: ReadSession) -> PublicTicketView:
    """The status page from the signed link of an email (contracts.ticketlinks)."""
    settings = settings_of(request)
    try:
        link = verify(settings.ticket_link_secret, body.token, settings.ticket_link_max_age_seconds)
    except InvalidTicketLinkError:
        raise no_match() from None
    ticket = await store.get_ticket(session, link.tenant_id, link.ticket_id)
    if ticket is None:
        raise no_match()
    return await public_view(session, ticket)
