"""Subscribers of the tickets service, and the moves they share.

Every handler runs inside the idempotent consumer's transaction (servicekit.consumer), so the
rows it writes, the SLA timers it schedules or cancels and the events it stages commit together,
exactly once. A command about a ticket first locks the ticket's row. A refused command is logged
and answered with `TicketCommandRejected`, never raised.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope, Payload, new_envelope, utc_now
from contracts.common import Sender, SlaClock, TicketStatus
from contracts.events import (
    AddTicketNote,
    CheckSla,
    OpenTicket,
    PostTicketReply,
    SlaBreached,
    SlaWarning,
    TenantProfileChanged,
    TicketCommandRejected,
    TicketNoteAdded,
    TicketOpened,
    TicketReplyPosted,
    TicketUpdated,
    UpdateTicket,
)
from servicekit import timers
from servicekit.consumer import EventConsumer
from servicekit.logs import get_logger
from servicekit.outgoing import Outgoing
from tickets import domain, metrics, store
from tickets.config import Settings
from tickets.profiles import TenantProfiles, store_profile
from tickets.store import Note, Reply, SlaClockRow, StatusChange, Ticket
from tickets.tenants import TenantPolicies, TenantPolicy, load_policies

log = get_logger(__name__)
S = TicketStatus
Threshold = Literal["warning", "breach"]
THRESHOLDS: tuple[Threshold, ...] = ("warning", "breach")


def sla_timer(ticket_id: uuid.UUID, clock: SlaClock, threshold: Threshold) -> str:
    return f"sla:{ticket_id}:{clock.value}:{threshold}"


@dataclass
class Work:
    """One command's view: the events it causes, its tenant's policy, and the time."""

    out: Outgoing
    policy: TenantPolicy
    now: datetime

    @property
    def session(self) -> AsyncSession:
        return self.out.session

    def envelope_about(self, ticket: Ticket, payload: Payload) -> Envelope[Any]:
        # About the ticket's conversation whatever the cause carried, so that every envelope of a
        # ticket has one partition key (its conversation, else the ticket id).
        return new_envelope(
            payload, tenant_id=ticket.tenant_id, conversation_id=ticket.conversation_id, causation=self.out.cause
        )

    def emit(self, ticket: Ticket, payload: Payload) -> None:
        self.out.events.append(self.envelope_about(ticket, payload))

    def reject(self, ticket: Ticket | None, ticket_id: uuid.UUID | None, code: str, message: str) -> None:
        log.info("ticket command rejected", code=code, reason=message, ticket_id=str(ticket_id))
        metrics.COMMANDS_REJECTED.labels(code).inc()
        rejection = TicketCommandRejected(
            ticket_id=ticket_id, command_type=self.out.cause.type, code=code, message=message
        )
        if ticket is not None:
            self.emit(ticket, rejection)
        else:
            self.out.emit(rejection)


# ------------------------------------------------------------------------------------ SLA clocks


def run_clock(work: Work, ticket: Ticket, row: SlaClockRow) -> None:
    """(Re)starts a clock from now with the business time it has used: the deadlines of this run
    and a durable timer for each mark it has yet to pass."""
    hours = work.policy.business_hours
    if row.running_since is not None:
        row.used_seconds = row.reading.used_at(hours, work.now)
    row.running_since = work.now
    reading = row.reading
    row.warning_at = reading.deadline(hours, domain.WARNING_FRACTION)
    row.due_at = reading.deadline(hours)
    marks: tuple[tuple[Threshold, datetime | None, datetime | None], ...] = (
        ("warning", row.warning_at, row.warned_at),
        ("breach", row.due_at, row.breached_at),
    )
    for threshold, at, passed in marks:
        name = sla_timer(ticket.ticket_id, row.kind, threshold)
        if at is None or passed is not None:
            timers.cancel(work.session, name)
            continue
        check = CheckSla(ticket_id=ticket.ticket_id, clock=row.kind, threshold=threshold, due_at=at)
        timers.schedule(work.session, name, at, work.envelope_about(ticket, check))


def stop_clock(work: Work, ticket: Ticket, row: SlaClockRow, *, met: bool) -> None:
    """Pauses the clock (its used time frozen) or, `met`, stops it for good; no timer is left."""
    if row.running_since is not None:
        row.used_seconds = row.reading.used_at(work.policy.business_hours, work.now)
    row.running_since = row.warning_at = row.due_at = None
    if met:
        row.met_at = work.now
    for threshold in THRESHOLDS:
        timers.cancel(work.session, sla_timer(ticket.ticket_id, row.kind, threshold))


def retarget(work: Work, ticket: Ticket, clocks: dict[SlaClock, SlaClockRow]) -> None:
    """New targets after a priority change; running clocks get new deadlines (a mark already
    passed is not announced again)."""
    targets = work.policy.targets[ticket.current_priority]
    for kind, row in clocks.items():
        row.target_seconds = (
            targets.first_response_seconds if kind == SlaClock.FIRST_RESPONSE else targets.resolution_seconds
        )
        if row.running_since is not None:
            run_clock(work, ticket, row)


def follow_status(work: Work, ticket: Ticket, clocks: dict[SlaClock, SlaClockRow], previous: S) -> None:
    """The clocks after a status change: RESOLVED meets every clock still counting (the
    resolution, and a first response nobody gave); WAITING_CUSTOMER pauses them; OPEN and
    IN_PROGRESS run them, a reopened ticket's resolution clock again from the time it had used."""
    status = ticket.current_status
    for row in clocks.values():
        if status in (S.RESOLVED, S.CLOSED):
            if row.met_at is None:
                stop_clock(work, ticket, row, met=True)
        elif status == S.WAITING_CUSTOMER:
            if row.met_at is None:
                stop_clock(work, ticket, row, met=False)
        else:
            if previous == S.RESOLVED and row.kind == SlaClock.RESOLUTION:
                row.met_at = None
            if row.met_at is None and row.running_since is None:
                run_clock(work, ticket, row)


# ---------------------------------------------------------------------------------------- moves


def move(work: Work, ticket: Ticket, clocks: dict[SlaClock, SlaClockRow], target: S, changed_by: str) -> None:
    """A legal status change, recorded in the ticket's history, with its clocks following."""
    previous = ticket.current_status
    ticket.status = domain.transition(previous, target).value
    work.session.add(
        StatusChange(
            ticket_id=ticket.ticket_id,
            status=target.value,
            previous_status=previous.value,
            changed_by=changed_by,
            changed_at=work.now,
        )
    )
    follow_status(work, ticket, clocks, previous)


def announce_update(
    work: Work, ticket: Ticket, clocks: dict[SlaClock, SlaClockRow], previous: S, changed_by: str
) -> None:
    ticket.updated_at = work.now
    work.emit(
        ticket,
        TicketUpdated(
            ticket_id=ticket.ticket_id,
            ticket_number=ticket.number,
            status=ticket.current_status,
            previous_status=previous,
            priority=ticket.current_priority,
            assignee_id=ticket.assignee_id,
            changed_by=changed_by,
            first_response_due=clocks[SlaClock.FIRST_RESPONSE].due_at,
            resolution_due=clocks[SlaClock.RESOLUTION].due_at,
        ),
    )


async def ticket_for(work: Work, ticket_id: uuid.UUID) -> Ticket | None:
    """The command's ticket, locked; an unknown one (or another tenant's) is refused."""
    ticket = await store.get_ticket(work.session, work.out.cause.tenant_id, ticket_id, lock=True)
    if ticket is None:
        work.reject(None, ticket_id, "not_found", f"no ticket {ticket_id}")
    return ticket


async def clocks_for(work: Work, ticket: Ticket) -> dict[SlaClock, SlaClockRow]:
    rows = (await store.clocks_of(work.session, [ticket.ticket_id]))[ticket.ticket_id]
    return {row.kind: row for row in rows}


async def open_ticket(work: Work, command: OpenTicket) -> None:
    session, tenant_id = work.session, work.out.cause.tenant_id
    if await store.ticket_by_idempotency_key(session, tenant_id, command.idempotency_key) is not None:
        log.info("ticket already opened for this request", idempotency_key=str(command.idempotency_key))
        return
    # A concurrent twin (another replica) waits on the counter's lock, then fails on the unique
    # idempotency key; the consumer retries it and finds the ticket above.
    number = domain.ticket_number(
        work.policy.ticket_prefix, work.policy.year_of(work.now), await store.next_number(session, tenant_id)
    )
    excerpt = command.transcript.lines if command.transcript else []
    customer_lines = [line.text for line in excerpt if line.sender == Sender.CUSTOMER]
    priority = command.priority or domain.propose_priority(
        [command.subject, command.message, *customer_lines],
        upset=command.upset,
        handoff_reason=command.handoff_reason,
        words=work.policy.words,
    )
    contact = command.contact
    source: Literal["conversation", "operator"] = "operator" if command.created_by else "conversation"
    ticket = Ticket(
        ticket_id=uuid.uuid5(command.idempotency_key, f"ticket:{tenant_id}"),
        tenant_id=tenant_id,
        number=number,
        idempotency_key=command.idempotency_key,
        conversation_id=work.out.cause.conversation_id,
        source=source,
        created_by=command.created_by,
        status=S.OPEN.value,
        priority=priority.value,
        assignee_id=None,
        contact=contact.model_dump(mode="json"),
        contact_name=contact.name,
        email_key=domain.email_key(contact.email),
        phone_key=domain.phone_key(contact.phone),
        language=command.language,
        subject=command.subject or domain.subject_from(command.message, customer_lines),
        message=command.message,
        transcript=command.transcript.model_dump(mode="json") if command.transcript else None,
        created_at=work.now,
        updated_at=work.now,
    )
    session.add(ticket)
    await session.flush()  # before the rows that refer to it (no ORM relationships order them)
    session.add(
        StatusChange(
            ticket_id=ticket.ticket_id,
            status=S.OPEN.value,
            previous_status=None,
            changed_by=command.created_by or "customer",
            changed_at=work.now,
        )
    )
    targets = work.policy.targets[priority]
    clocks = {
        kind: SlaClockRow(ticket_id=ticket.ticket_id, clock=kind.value, target_seconds=target, used_seconds=0.0)
        for kind, target in (
            (SlaClock.FIRST_RESPONSE, targets.first_response_seconds),
            (SlaClock.RESOLUTION, targets.resolution_seconds),
        )
    }
    for row in clocks.values():
        session.add(row)
        run_clock(work, ticket, row)
    work.emit(
        ticket,
        TicketOpened(
            ticket_id=ticket.ticket_id,
            ticket_number=number,
            contact=contact,
            language=command.language,
            priority=priority,
            subject=ticket.subject,
            source=source,
            first_response_due=clocks[SlaClock.FIRST_RESPONSE].due_at,
            resolution_due=clocks[SlaClock.RESOLUTION].due_at,
            # For the acknowledgment: the notifier quotes the request back to the customer.
            message=command.message,
            transcript=command.transcript,
        ),
    )
    metrics.TICKETS_OPENED.labels(source, priority.value).inc()
    log.info("ticket opened", ticket_id=str(ticket.ticket_id), ticket_number=number, priority=priority.value)


async def update_ticket(work: Work, command: UpdateTicket) -> None:
    ticket = await ticket_for(work, command.ticket_id)
    if ticket is None:
        return
    if ticket.current_status == S.CLOSED:
        work.reject(ticket, ticket.ticket_id, "ticket_closed", f"ticket {ticket.number} is closed")
        return
    if command.unassign and command.assignee_id:
        work.reject(ticket, ticket.ticket_id, "invalid_command", "assignee_id and unassign together")
        return
    previous = ticket.current_status
    assignee = None if command.unassign else (command.assignee_id or ticket.assignee_id)
    assignee_changed = assignee != ticket.assignee_id
    target = command.status or (
        domain.status_after_assignment(previous, assignee is not None) if assignee_changed else previous
    )
    if target != previous and target not in domain.TRANSITIONS[previous]:
        # Refused as a whole: nothing of the command applies.
        error = domain.IllegalTransitionError(previous, target)
        work.reject(ticket, ticket.ticket_id, "illegal_transition", str(error))
        return
    clocks = await clocks_for(work, ticket)
    priority_changed = command.priority is not None and command.priority != ticket.current_priority
    ticket.assignee_id = assignee
    if priority_changed:
        assert command.priority is not None
        ticket.priority = command.priority.value
        retarget(work, ticket, clocks)
    if target != previous:
        move(work, ticket, clocks, target, command.operator_id)
    if assignee_changed or priority_changed or target != previous:
        announce_update(work, ticket, clocks, previous, command.operator_id)


async def post_reply(work: Work, command: PostTicketReply) -> None:
    ticket = await ticket_for(work, command.ticket_id)
    if ticket is None:
        return
    if await work.session.get(Reply, command.reply_id) is not None:
        log.info("reply already posted", reply_id=str(command.reply_id))
        return
    if ticket.current_status == S.CLOSED:
        work.reject(ticket, ticket.ticket_id, "ticket_closed", f"ticket {ticket.number} is closed; write a new request")
        return
    operator_id = command.operator_id if command.author == "operator" else None
    work.session.add(
        Reply(
            reply_id=command.reply_id,
            ticket_id=ticket.ticket_id,
            author=command.author,
            operator_id=operator_id,
            text=command.text,
            created_at=work.now,
        )
    )
    ticket.updated_at = work.now
    work.emit(
        ticket,
        TicketReplyPosted(
            ticket_id=ticket.ticket_id,
            ticket_number=ticket.number,
            reply_id=command.reply_id,
            author=command.author,
            operator_id=operator_id,
            text=command.text,
        ),
    )
    clocks = await clocks_for(work, ticket)
    if command.author == "operator":
        first_response = clocks[SlaClock.FIRST_RESPONSE]
        if first_response.met_at is None:
            stop_clock(work, ticket, first_response, met=True)
        took_over(work, ticket, clocks, operator_id)
        return
    previous = ticket.current_status
    target = domain.status_after_customer_reply(previous, ticket.assignee_id is not None)
    if target != previous:
        move(work, ticket, clocks, target, "customer")
        announce_update(work, ticket, clocks, previous, "customer")


def took_over(work: Work, ticket: Ticket, clocks: dict[SlaClock, SlaClockRow], operator_id: str | None) -> None:
    """An operator's public reply is work on the ticket: an unassigned ticket becomes theirs and
    an OPEN one IN_PROGRESS, recorded and announced as the same change made by hand would be
    (history row, `TicketUpdated` by them), so the dashboard and analytics see who took it."""
    previous = ticket.current_status
    target = domain.status_after_operator_reply(previous)
    assignee = ticket.assignee_id or operator_id
    if target == previous and assignee == ticket.assignee_id:
        return
    changed_by = operator_id or "system"  # a reply without its author's id is the platform's
    ticket.assignee_id = assignee
    if target != previous:
        move(work, ticket, clocks, target, changed_by)
    announce_update(work, ticket, clocks, previous, changed_by)


async def add_note(work: Work, command: AddTicketNote) -> None:
    ticket = await ticket_for(work, command.ticket_id)
    if ticket is None:
        return
    if await work.session.get(Note, command.note_id) is not None:
        return  # the same note again
    work.session.add(
        Note(
            note_id=command.note_id,
            ticket_id=ticket.ticket_id,
            operator_id=command.operator_id,
            text=command.text,
            created_at=work.now,
        )
    )
    work.emit(
        ticket,
        TicketNoteAdded(
            ticket_id=ticket.ticket_id,
            ticket_number=ticket.number,
            note_id=command.note_id,
            operator_id=command.operator_id,
            text=command.text,
        ),
    )


async def check_sla(work: Work, command: CheckSla) -> None:
    """A clock's timer fired. The stored clock decides: a timer of an earlier run (paused, met,
    new targets since) no longer matches its deadline and changes nothing, and each mark is
    announced once (its flag commits with the event)."""
    ticket = await store.get_ticket(work.session, work.out.cause.tenant_id, command.ticket_id, lock=True)
    row = await store.get_clock(work.session, command.ticket_id, command.clock) if ticket else None
    if ticket is None or row is None or row.met_at is not None or row.running_since is None or row.due_at is None:
        log.info("stale SLA check ignored", ticket_id=str(command.ticket_id), clock=command.clock.value)
        return
    if command.threshold == "warning":
        if row.warned_at is not None or row.warning_at != command.due_at:
            return
        row.warned_at = work.now
        work.emit(
            ticket,
            SlaWarning(ticket_id=ticket.ticket_id, ticket_number=ticket.number, clock=row.kind, due_at=row.due_at),
        )
        metrics.SLA_WARNINGS.labels(row.clock).inc()
        log.info("SLA at risk", ticket_number=ticket.number, clock=row.clock)
        return
    if row.breached_at is not None or row.due_at != command.due_at:
        return
    row.breached_at = work.now
    work.emit(
        ticket, SlaBreached(ticket_id=ticket.ticket_id, ticket_number=ticket.number, clock=row.kind, due_at=row.due_at)
    )
    metrics.SLA_BREACHES.labels(row.clock).inc()
    log.warning("SLA breached", ticket_number=ticket.number, clock=row.clock)


# ------------------------------------------------------------------------------------- handlers


async def profile_changed(session: AsyncSession, envelope: Envelope[TenantProfileChanged]) -> None:
    """Keeps the tenant's newest profile; new SLA clocks count in its time zone and business hours
    (clocks already running keep their deadlines)."""
    profile = envelope.payload
    if profile.tenant_id != envelope.tenant_id:
        log.warning("tenant profile of another tenant ignored", tenant_id=envelope.tenant_id, of=profile.tenant_id)
        return
    if not await store_profile(session, profile):
        log.info("tenant profile not newer than the stored one", tenant_id=profile.tenant_id, revision=profile.revision)


def register(
    consumer: EventConsumer,
    settings: Settings,
    policies: TenantPolicies | None = None,
    profiles: TenantProfiles | None = None,
) -> None:
    """`profiles`: the replica's cache of stored tenant profiles (started by the app); without
    one, the YAML policies alone."""
    policies = policies or load_policies(settings.tenants_dir)
    profiles = profiles or TenantProfiles()

    def work_for(envelope: Envelope[Any], session: AsyncSession) -> Work:
        return Work(Outgoing(session, envelope), profiles.policy(policies.of(envelope.tenant_id)), utc_now())

    @consumer.on(TenantProfileChanged)
    async def on_tenant_profile_changed(envelope: Envelope[TenantProfileChanged], session: AsyncSession) -> None:
        await profile_changed(session, envelope)

    @consumer.on(OpenTicket)
    async def on_open_ticket(envelope: Envelope[OpenTicket], session: AsyncSession) -> None:
        work = work_for(envelope, session)
        await open_ticket(work, envelope.payload)
        work.out.flush()

    @consumer.on(UpdateTicket)
    async def on_update_ticket(envelope: Envelope[UpdateTicket], session: AsyncSession) -> None:
        work = work_for(envelope, session)
        await update_ticket(work, envelope.payload)
        work.out.flush()

    @consumer.on(PostTicketReply)
    async def on_post_reply(envelope: Envelope[PostTicketReply], session: AsyncSession) -> None:
        work = work_for(envelope, session)
        await post_reply(work, envelope.payload)
        work.out.flush()

    @consumer.on(AddTicketNote)
    async def on_add_note(envelope: Envelope[AddTicketNote], session: AsyncSession) -> None:
        work = work_for(envelope, session)
        await add_note(work, envelope.payload)
        work.out.flush()

    @consumer.on(CheckSla)
    async def on_check_sla(envelope: Envelope[CheckSla], session: AsyncSession) -> None:
        work = work_for(envelope, session)
        await check_sla(work, envelope.payload)
        work.out.flush()
