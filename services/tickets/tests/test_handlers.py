"""The tickets service's handlers on its real consumer and the real PostgreSQL (see conftest.py):
opening (idempotent, numbered), the lifecycle, replies and notes, and the SLA clocks on their
durable timers."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from sqlalchemy import select

from contracts import utc_now
from contracts.common import HandoffReason, SlaClock, TicketPriority, TicketStatus
from contracts.events import (
    AddTicketNote,
    CheckSla,
    PostTicketReply,
    SlaBreached,
    SlaWarning,
    TicketCommandRejected,
    TicketNoteAdded,
    TicketOpened,
    TicketReplyPosted,
    TicketUpdated,
    UpdateTicket,
)
from servicekit.timers import TimerFirer
from tickets.handlers import sla_timer
from tickets.store import StatusChange

from .conftest import OTHER_TENANT, TicketsHarness, command, open_ticket

S = TicketStatus
FIRST, RESOLUTION = SlaClock.FIRST_RESPONSE, SlaClock.RESOLUTION


async def opened(tickets: TicketsHarness, conversation_id: uuid.UUID | None = None, **fields: object) -> TicketOpened:
    await tickets.apply(open_ticket(conversation_id, **fields))  # type: ignore[arg-type]
    (event,) = await tickets.new_events(TicketOpened)
    payload: TicketOpened = event.payload
    return payload


def update(ticket_id: uuid.UUID, **fields: object) -> UpdateTicket:
    return UpdateTicket(ticket_id=ticket_id, operator_id="marco", **fields)


def reply(ticket_id: uuid.UUID, author: str = "customer", text: str = "Grazie", **fields: object) -> PostTicketReply:
    fields.setdefault("reply_id", uuid.uuid4())
    if author == "operator":
        fields.setdefault("operator_id", "marco")
    return PostTicketReply(ticket_id=ticket_id, author=author, text=text, **fields)


# --------------------------------------------------------------------------------------- opening


async def test_the_same_request_twice_opens_one_ticket_and_announces_it_once(tickets: TicketsHarness) -> None:
    conversation_id = uuid.uuid4()
    first, double_submit, redelivery = (open_ticket(conversation_id) for _ in range(3))
    await tickets.apply(first)
    await tickets.apply(double_submit, redelivery)  # same idempotency key, new event ids
    await tickets.apply(first)  # the same event again

    (ticket,) = await tickets.tickets()
    events = await tickets.new_events()
    assert [type(e.payload) for e in events] == [TicketOpened]
    (event,) = events
    assert event.conversation_id == conversation_id, "the conversation service matches TicketOpened by it"
    assert event.causation_id == first.event_id
    assert event.payload.ticket_id == ticket.ticket_id
    assert event.payload.ticket_number == ticket.number == f"TCK-{utc_now().year}-000001"
    assert event.payload.source == "conversation"
    assert event.payload.contact.email == "anna@example.com"
    # What the customer asked, for the acknowledgment the notifier sends.
    assert event.payload.message == "Il biglietto non arriva"
    assert event.payload.transcript is not None
    assert event.payload.transcript.lines[0].text == "Ciao, ho un problema con il biglietto"
    assert ticket.transcript is not None
    assert ticket.transcript["transcript_url"] == f"/internal/conversations/{conversation_id}/messages"
    assert ticket.transcript_excerpt is not None
    assert len(ticket.transcript_excerpt.lines) == 2
    assert ticket.subject == "Il biglietto non arriva"


async def test_numbers_count_per_tenant_with_its_prefix_and_are_never_reused(tickets: TicketsHarness) -> None:
    year = utc_now().year
    await tickets.apply(*(open_ticket(uuid.uuid4()) for _ in range(3)))
    await tickets.apply(open_ticket(uuid.uuid4(), tenant_id=OTHER_TENANT))
    await tickets.apply(open_ticket(uuid.uuid4()))
    assert [t.number for t in await tickets.tickets()] == [f"TCK-{year}-{n:06d}" for n in (1, 2, 3, 4)]
    assert [t.number for t in await tickets.tickets(OTHER_TENANT)] == [f"GLX-{year}-000001"]


async def test_an_operator_opens_a_ticket_with_its_priority_and_no_conversation(tickets: TicketsHarness) -> None:
    await tickets.apply(open_ticket(created_by="marco", priority=TicketPriority.LOW, message="urgente!"))
    (event,) = await tickets.new_events(TicketOpened)
    assert event.conversation_id is None
    assert event.key == str(event.payload.ticket_id).encode(), "keyed by the ticket"
    assert (event.payload.source, event.payload.priority) == ("operator", TicketPriority.LOW), "the operator's choice"
    ticket = await tickets.ticket(event.payload.ticket_id)
    assert (ticket.created_by, ticket.transcript) == ("marco", None)


async def test_the_priority_is_proposed_from_the_content_and_sets_the_sla(tickets: TicketsHarness) -> None:
    urgent = await opened(tickets, uuid.uuid4(), message="È URGENTE: il concerto è stasera")
    upset = await opened(tickets, uuid.uuid4(), message="Orari?", upset=True)
    sensitive = await opened(tickets, uuid.uuid4(), message="Orari?", handoff_reason=HandoffReason.SENSITIVE_TOPIC)
    plain = await opened(tickets, uuid.uuid4(), message="Orari?")
    assert [t.priority for t in (urgent, upset, sensitive, plain)] == ["urgent", "high", "high", "normal"]
    for ticket, first_response in ((urgent, 2), (upset, 3), (plain, 5)):
        clock = await tickets.clock(ticket.ticket_id, FIRST.value)
        assert clock.target_seconds == first_response
        assert ticket.first_response_due == clock.due_at
        assert clock.running_since is not None
        assert clock.due_at == clock.running_since + timedelta(seconds=first_response)


# ------------------------------------------------------------------------------------- lifecycle


async def test_an_illegal_move_is_rejected_and_changes_nothing(tickets: TicketsHarness) -> None:
    conversation_id = uuid.uuid4()
    ticket = await opened(tickets, conversation_id)
    # Closing an open ticket, and a command assigning it in the same breath: refused as a whole.
    await tickets.apply(command(update(ticket.ticket_id, status=S.CLOSED, assignee_id="marco")))
    (rejection,) = await tickets.new_events()
    assert isinstance(rejection.payload, TicketCommandRejected)
    assert rejection.payload.code == "illegal_transition"
    assert "OPEN cannot move to CLOSED" in rejection.payload.message
    assert rejection.payload.command_type == "tickets.update_ticket"
    assert rejection.conversation_id == conversation_id
    stored = await tickets.ticket(ticket.ticket_id)
    assert (stored.status, stored.assignee_id) == ("OPEN", None)

    await tickets.apply(command(update(uuid.uuid4(), status=S.IN_PROGRESS)))
    await tickets.apply(command(update(ticket.ticket_id, status=S.IN_PROGRESS), tenant_id=OTHER_TENANT))
    codes = [e.payload.code for e in await tickets.new_events(TicketCommandRejected)]
    assert codes == ["not_found", "not_found"], "another tenant's ticket is unknown to it"


async def test_assigning_an_open_ticket_starts_it_and_unassigning_puts_it_back(tickets: TicketsHarness) -> None:
    conversation_id = uuid.uuid4()
    ticket = await opened(tickets, conversation_id)
    await tickets.apply(command(update(ticket.ticket_id, assignee_id="marco")))
    await tickets.apply(command(update(ticket.ticket_id, assignee_id="marco")))  # no change: nothing said
    await tickets.apply(command(update(ticket.ticket_id, unassign=True)))
    updates = [e for e in await tickets.new_events() if isinstance(e.payload, TicketUpdated)]
    assert [(u.payload.status, u.payload.previous_status, u.payload.assignee_id) for u in updates] == [
        (S.IN_PROGRESS, S.OPEN, "marco"),
        (S.OPEN, S.IN_PROGRESS, None),
    ]
    assert all(u.conversation_id == conversation_id for u in updates), "a command keyed by the ticket still"
    assert updates[0].payload.changed_by == "marco"


async def test_a_customer_reply_reopens_a_waiting_or_resolved_ticket_and_a_closed_one_refuses_it(
    tickets: TicketsHarness,
) -> None:
    ticket = await opened(tickets, uuid.uuid4())
    tid = ticket.ticket_id
    await tickets.apply(command(update(tid, assignee_id="marco")), command(update(tid, status=S.WAITING_CUSTOMER)))
    await tickets.new_events()
    first_answer = reply(tid)
    await tickets.apply(command(first_answer))
    await tickets.apply(command(first_answer.model_copy()))  # the same reply again (its id): stored once
    events = await tickets.new_events()
    assert [type(e.payload) for e in events] == [TicketReplyPosted, TicketUpdated]
    reopened = events[1].payload
    assert (reopened.status, reopened.previous_status, reopened.changed_by) == (
        S.IN_PROGRESS,
        S.WAITING_CUSTOMER,
        "customer",
    )

    await tickets.apply(command(update(tid, status=S.RESOLVED)))
    await tickets.apply(command(reply(tid, text="Non funziona ancora")))
    assert (await tickets.ticket(tid)).status == "IN_PROGRESS", "resolved, then reopened to its operator"

    await tickets.apply(command(update(tid, status=S.RESOLVED)), command(update(tid, status=S.CLOSED)))
    await tickets.new_events()
    await tickets.apply(command(reply(tid, text="Ancora io")), command(update(tid, status=S.IN_PROGRESS)))
    rejections = [e.payload.code for e in await tickets.new_events(TicketCommandRejected)]
    assert rejections == ["ticket_closed", "ticket_closed"]
    assert (await tickets.ticket(tid)).status == "CLOSED"
    async with tickets.sessions() as session:
        history = await session.scalars(
            select(StatusChange.status).where(StatusChange.ticket_id == tid).order_by(StatusChange.id)
        )
        assert list(history) == [
            "OPEN",
            "IN_PROGRESS",
            "WAITING_CUSTOMER",
            "IN_PROGRESS",
            "RESOLVED",
            "IN_PROGRESS",
            "RESOLVED",
            "CLOSED",
        ]


async def test_an_unassigned_ticket_reopens_to_the_open_pile(tickets: TicketsHarness) -> None:
    ticket = await opened(tickets, uuid.uuid4())
    await tickets.apply(command(update(ticket.ticket_id, status=S.WAITING_CUSTOMER)))
    await tickets.apply(command(reply(ticket.ticket_id)))
    assert (await tickets.ticket(ticket.ticket_id)).status == "OPEN"


async def test_notes_are_announced_once_and_replies_by_operators_meet_the_first_response(
    tickets: TicketsHarness,
) -> None:
    ticket = await opened(tickets, uuid.uuid4())
    note = AddTicketNote(ticket_id=ticket.ticket_id, note_id=uuid.uuid4(), operator_id="marco", text="Chiamare")
    await tickets.apply(command(note))
    await tickets.apply(command(note.model_copy()))
    (added,) = await tickets.new_events(TicketNoteAdded)
    assert (added.payload.text, added.payload.ticket_number) == ("Chiamare", ticket.ticket_number)

    await tickets.apply(command(reply(ticket.ticket_id, "operator", "Ecco il biglietto")))
    (posted,) = await tickets.new_events(TicketReplyPosted)
    assert (posted.payload.author, posted.payload.operator_id) == ("operator", "marco")
    first = await tickets.clock(ticket.ticket_id, FIRST.value)
    assert first.met_at is not None
    assert (first.due_at, first.warning_at) == (None, None)
    names = set(await tickets.timers())
    assert sla_timer(ticket.ticket_id, FIRST, "breach") not in names, "its timers are cancelled"
    assert sla_timer(ticket.ticket_id, RESOLUTION, "breach") in names, "the resolution clock still runs"


async def test_an_operators_reply_starts_an_open_ticket_and_makes_an_unassigned_one_theirs(
    tickets: TicketsHarness,
) -> None:
    conversation_id = uuid.uuid4()
    ticket = await opened(tickets, conversation_id)
    tid = ticket.ticket_id
    answer = reply(tid, "operator", "Ecco il biglietto")
    await tickets.apply(command(answer))
    await tickets.apply(command(answer.model_copy()))  # the same reply again: nothing more
    events = await tickets.new_events()
    assert [type(e.payload) for e in events] == [TicketReplyPosted, TicketUpdated]
    started = events[1]
    assert started.conversation_id == conversation_id
    assert (
        started.payload.status,
        started.payload.previous_status,
        started.payload.assignee_id,
        started.payload.changed_by,
    ) == (S.IN_PROGRESS, S.OPEN, "marco", "marco")
    resolution = await tickets.clock(tid, RESOLUTION.value)
    assert started.payload.first_response_due is None, "answered"
    assert started.payload.resolution_due == resolution.due_at is not None, "the resolution clock still runs"
    stored = await tickets.ticket(tid)
    assert (stored.status, stored.assignee_id) == ("IN_PROGRESS", "marco")
    async with tickets.sessions() as session:
        history = await session.execute(
            select(StatusChange.status, StatusChange.changed_by)
            .where(StatusChange.ticket_id == tid)
            .order_by(StatusChange.id)
        )
        assert [tuple(row) for row in history] == [("OPEN", "customer"), ("IN_PROGRESS", "marco")]

    # A colleague answering too takes nothing away: already in progress and assigned.
    await tickets.apply(command(reply(tid, "operator", "Aggiungo una cosa", operator_id="giulia")))
    assert [type(e.payload) for e in await tickets.new_events()] == [TicketReplyPosted]
    assert (await tickets.ticket(tid)).assignee_id == "marco"

    # A reply does not mean waiting for the customer: that stays the operator's choice, and a
    # waiting ticket keeps waiting, its clocks paused, when the operator writes again.
    unassigned = await opened(tickets, uuid.uuid4())
    await tickets.apply(command(update(unassigned.ticket_id, status=S.WAITING_CUSTOMER)))
    await tickets.new_events()
    await tickets.apply(command(reply(unassigned.ticket_id, "operator", "Ci manda il codice?", operator_id="giulia")))
    (taken,) = await tickets.new_events(TicketUpdated)
    assert (taken.payload.status, taken.payload.previous_status, taken.payload.assignee_id) == (
        S.WAITING_CUSTOMER,
        S.WAITING_CUSTOMER,
        "giulia",
    )
    assert (await tickets.clock(unassigned.ticket_id, RESOLUTION.value)).running_since is None, "still paused"
    await tickets.apply(command(reply(unassigned.ticket_id)))  # the customer answers: back to its operator
    assert (await tickets.ticket(unassigned.ticket_id)).status == "IN_PROGRESS"


# ---------------------------------------------------------------------------------- SLA clocks


async def test_a_clock_warns_once_and_breaches_once_on_its_durable_timers(tickets: TicketsHarness) -> None:
    conversation_id = uuid.uuid4()
    ticket = await opened(tickets, conversation_id, message="urgente")  # 2 s to the first response
    warning_timer = sla_timer(ticket.ticket_id, FIRST, "warning")
    breach_timer = sla_timer(ticket.ticket_id, FIRST, "breach")
    pending = await tickets.timers()
    assert pending[warning_timer].conversation_id == conversation_id
    check = pending[warning_timer].payload
    assert isinstance(check, CheckSla)
    clock = await tickets.clock(ticket.ticket_id, FIRST.value)
    assert check.due_at == clock.warning_at
    assert clock.warning_at is not None
    assert clock.running_since is not None
    assert clock.warning_at - clock.running_since == timedelta(seconds=1.6)

    fired = await tickets.fire_and_apply(warning_timer)
    assert [type(e.payload) for e in fired] == [CheckSla]
    # The same check delivered again as a new command (a second firing): nothing more.
    await tickets.apply(command(check.model_copy(), conversation_id=conversation_id))
    (warning,) = await tickets.new_events(SlaWarning)
    assert (warning.payload.clock, warning.payload.due_at) == (FIRST, clock.due_at)
    assert warning.conversation_id == conversation_id

    await tickets.fire_and_apply(breach_timer)
    breach_check = next(e.payload for e in await tickets.emitted(CheckSla) if e.payload.threshold == "breach")
    await tickets.apply(command(breach_check, conversation_id=conversation_id))
    events = await tickets.new_events()
    assert [type(e.payload) for e in events if not isinstance(e.payload, CheckSla)] == [SlaBreached]
    stored = await tickets.clock(ticket.ticket_id, FIRST.value)
    assert stored.warned_at is not None
    assert stored.breached_at is not None

    # Late, the operator answers: the clock is met, and stays breached.
    await tickets.apply(command(reply(ticket.ticket_id, "operator")))
    assert (await tickets.clock(ticket.ticket_id, FIRST.value)).met_at is not None
    assert not await tickets.new_events(SlaBreached)


async def test_the_timers_fire_at_the_clock_deadlines_in_real_time(tickets: TicketsHarness) -> None:
    ticket = await opened(tickets, uuid.uuid4(), message="urgente")  # 2 s first response, 4 s resolution
    firer = TimerFirer(tickets.sessions)
    await asyncio.sleep(1.0)
    assert await firer.fire_due() == 0, "nothing before 80%"
    seen: list[object] = []
    for _ in range(60):
        await firer.fire_due()
        await tickets.apply(*[e for e in await tickets.new_events(CheckSla)])
        seen += [e.payload for e in await tickets.new_events() if isinstance(e.payload, SlaWarning | SlaBreached)]
        if len(seen) == 4:
            break
        await asyncio.sleep(0.2)
    marks = [(type(p).__name__, p.clock) for p in seen]  # type: ignore[attr-defined]
    assert marks == [
        ("SlaWarning", FIRST),
        ("SlaBreached", FIRST),
        ("SlaWarning", RESOLUTION),
        ("SlaBreached", RESOLUTION),
    ]
    assert ticket.resolution_due is not None
    assert utc_now() >= ticket.resolution_due


async def test_a_paused_clock_does_not_breach_and_resumes_with_the_time_it_had_left(tickets: TicketsHarness) -> None:
    conversation_id = uuid.uuid4()
    ticket = await opened(tickets, conversation_id)  # normal: 5 s first response, 10 s resolution
    before = await tickets.timers()
    stale_breach = before[sla_timer(ticket.ticket_id, RESOLUTION, "breach")]

    await tickets.apply(command(update(ticket.ticket_id, status=S.WAITING_CUSTOMER)))
    (paused,) = await tickets.new_events(TicketUpdated)
    assert (paused.payload.first_response_due, paused.payload.resolution_due) == (None, None)
    assert not [name for name in await tickets.timers() if name.startswith(f"sla:{ticket.ticket_id}")]
    resolution = await tickets.clock(ticket.ticket_id, RESOLUTION.value)
    assert (resolution.running_since, resolution.due_at) == (None, None)
    assert 0 < resolution.used_seconds < 10

    # A timer that fired just before the pause committed: its check no longer applies.
    await tickets.apply(stale_breach)
    await asyncio.sleep(1.5)
    assert not await tickets.new_events(SlaBreached)

    await tickets.apply(command(reply(ticket.ticket_id)))  # the customer answers: it runs again
    (resumed,) = await tickets.new_events(TicketUpdated)
    assert resumed.payload.resolution_due is not None
    stale_payload = stale_breach.payload
    assert isinstance(stale_payload, CheckSla)
    assert resumed.payload.resolution_due - stale_payload.due_at >= timedelta(seconds=1.5), "the pause does not count"
    running = await tickets.clock(ticket.ticket_id, RESOLUTION.value)
    assert running.running_since is not None
    assert running.due_at == running.running_since + timedelta(seconds=10 - running.used_seconds)
    assert sla_timer(ticket.ticket_id, RESOLUTION, "breach") in await tickets.timers()


async def test_a_new_priority_moves_the_deadlines_and_old_checks_are_ignored(tickets: TicketsHarness) -> None:
    ticket = await opened(tickets, uuid.uuid4())  # normal
    old = (await tickets.timers())[sla_timer(ticket.ticket_id, FIRST, "warning")]
    await tickets.apply(command(update(ticket.ticket_id, priority=TicketPriority.LOW)))
    (updated,) = await tickets.new_events(TicketUpdated)
    assert updated.payload.priority == TicketPriority.LOW
    assert updated.payload.first_response_due is not None
    assert updated.payload.first_response_due > utc_now() + timedelta(minutes=50), "low: 1 h"
    await tickets.apply(old)
    assert not await tickets.new_events(SlaWarning), "a check of the old deadline"


async def test_resolving_meets_the_clocks_and_reopening_runs_the_resolution_clock_again(
    tickets: TicketsHarness,
) -> None:
    ticket = await opened(tickets, uuid.uuid4())
    await tickets.apply(command(update(ticket.ticket_id, status=S.RESOLVED)))
    for clock in (FIRST, RESOLUTION):
        assert (await tickets.clock(ticket.ticket_id, clock.value)).met_at is not None
    assert not [name for name in await tickets.timers() if name.startswith(f"sla:{ticket.ticket_id}")]

    await tickets.apply(command(reply(ticket.ticket_id)))
    resolution = await tickets.clock(ticket.ticket_id, RESOLUTION.value)
    assert resolution.met_at is None
    assert resolution.due_at is not None
    assert (await tickets.clock(ticket.ticket_id, FIRST.value)).met_at is not None, "answered once is answered"
