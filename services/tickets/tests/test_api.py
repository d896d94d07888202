"""The tickets service's internal API on the real PostgreSQL, over tickets its real handlers
opened and changed: the operators' list and detail, and the status page's lookup and signed link,
which must tell a stranger nothing."""

from __future__ import annotations

import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts.common import SlaClock, TicketPriority, TicketStatus
from contracts.events import AddTicketNote, PostTicketReply, TicketOpened, UpdateTicket
from contracts.readapi import PublicTicketView, TicketListView, TicketView
from contracts.ticketlinks import TicketLink, sign
from tickets.config import Settings
from tickets.handlers import sla_timer

from .conftest import LINK_SECRET, OTHER_TENANT, TENANT, TicketsHarness, api_client, command, contact, open_ticket

S = TicketStatus
NOT_FOUND = {"error": {"code": "not_found", "message": "no ticket matches these details"}}


async def open_and_get(
    tickets: TicketsHarness, conversation_id: uuid.UUID | None = None, **fields: Any
) -> TicketOpened:
    await tickets.apply(open_ticket(conversation_id, **fields))
    (event,) = await tickets.new_events(TicketOpened)
    payload: TicketOpened = event.payload
    return payload


async def listed(api: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await api.get("/internal/tickets", params={"tenant_id": TENANT, **params})
    assert response.status_code == 200, response.text
    return [t.ticket_number for t in TicketListView.model_validate(response.json()).tickets]


async def test_the_list_filters_by_status_priority_assignee_sla_and_text(
    tickets: TicketsHarness, api: httpx.AsyncClient
) -> None:
    anna = await open_and_get(tickets, uuid.uuid4(), message="URGENTE: biglietti non arrivati")
    bruno = await open_and_get(
        tickets, uuid.uuid4(), message="Orari del mercatino?", contact=contact("Bruno Bianchi", "bruno@example.org")
    )
    carla = await open_and_get(
        tickets, created_by="marco", priority=TicketPriority.LOW, contact=contact("Carla", None, "+39 333 1234567")
    )
    await open_and_get(tickets, uuid.uuid4(), tenant_id=OTHER_TENANT, message="URGENTE")
    await tickets.apply(
        command(UpdateTicket(ticket_id=carla.ticket_id, operator_id="marco", assignee_id="marco")),
        command(UpdateTicket(ticket_id=bruno.ticket_id, operator_id="marco", status=S.WAITING_CUSTOMER)),
    )
    await tickets.fire_and_apply(sla_timer(anna.ticket_id, SlaClock.FIRST_RESPONSE, "warning"))
    a, b, c = anna.ticket_number, bruno.ticket_number, carla.ticket_number

    assert await listed(api) == [c, b, a], "newest first, the tenant's only"
    assert await listed(api, status="IN_PROGRESS") == [c]
    assert await listed(api, priority="urgent") == [a]
    assert await listed(api, assignee_id="marco") == [c]
    assert await listed(api, q="bianchi") == [b]
    assert await listed(api, q=a.lower()) == [a]
    assert await listed(api, q="BRUNO@example") == [b]
    assert await listed(api, q="mercatino") == [b]
    assert await listed(api, q="%") == [], "a wildcard is searched as text"
    assert await listed(api, sla="at_risk") == [a]
    assert await listed(api, sla="paused") == [b]
    assert await listed(api, sla="on_time") == [c]
    assert await listed(api, sla="breached") == []
    assert await listed(api, limit=2) == [c, b]

    await tickets.fire_and_apply(sla_timer(anna.ticket_id, SlaClock.FIRST_RESPONSE, "breach"))
    assert await listed(api, sla="breached") == [a]
    body = (await api.get("/internal/tickets", params={"tenant_id": TENANT, "sla": "breached"})).json()
    (summary,) = TicketListView.model_validate(body).tickets
    assert summary.sla_state == "breached"
    clocks = {view.clock: view for view in summary.sla}
    assert clocks[SlaClock.FIRST_RESPONSE].state == "breached"
    assert clocks[SlaClock.RESOLUTION].remaining_seconds is not None
    assert (summary.priority, summary.contact_name, summary.status) == ("urgent", "Anna Rossi", S.OPEN)

    bad = await api.get("/internal/tickets", params={"tenant_id": TENANT, "status": "LOST"})
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_request"


async def test_the_detail_has_everything_an_operator_sees_and_another_tenant_gets_404(
    tickets: TicketsHarness, api: httpx.AsyncClient
) -> None:
    conversation_id = uuid.uuid4()
    ticket = await open_and_get(tickets, conversation_id)
    tid = ticket.ticket_id
    await tickets.apply(
        command(UpdateTicket(ticket_id=tid, operator_id="marco", assignee_id="marco")),
        command(
            PostTicketReply(ticket_id=tid, reply_id=uuid.uuid4(), author="operator", operator_id="marco", text="Ciao")
        ),
        command(AddTicketNote(ticket_id=tid, note_id=uuid.uuid4(), operator_id="marco", text="Cliente VIP")),
    )
    response = await api.get(f"/internal/tickets/{tid}", params={"tenant_id": TENANT})
    assert response.status_code == 200, response.text
    view = TicketView.model_validate(response.json())
    assert (view.ticket_number, view.status, view.assignee_id) == (ticket.ticket_number, S.IN_PROGRESS, "marco")
    assert view.conversation_id == conversation_id
    assert view.contact.email == "anna@example.com"
    assert view.transcript is not None
    assert view.transcript.transcript_url == f"/internal/conversations/{conversation_id}/messages"
    assert [(r.author, r.operator_id, r.text) for r in view.replies] == [("operator", "marco", "Ciao")]
    assert [n.text for n in view.notes] == ["Cliente VIP"]
    assert [(h.status, h.changed_by) for h in view.history] == [(S.OPEN, "customer"), (S.IN_PROGRESS, "marco")]
    assert {c.clock: c.state for c in view.sla} == {SlaClock.FIRST_RESPONSE: "met", SlaClock.RESOLUTION: "on_time"}

    for tenant_id, ticket_id in ((OTHER_TENANT, tid), (TENANT, uuid.uuid4())):
        missing = await api.get(f"/internal/tickets/{ticket_id}", params={"tenant_id": tenant_id})
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"


async def test_a_lookup_needs_the_number_and_its_email_or_phone_and_shows_only_public_things(
    tickets: TicketsHarness, api: httpx.AsyncClient
) -> None:
    ticket = await open_and_get(
        tickets, uuid.uuid4(), contact=contact("Anna", "Anna.Rossi@Example.com", "+39 333 1234567")
    )
    await tickets.apply(
        command(
            PostTicketReply(
                ticket_id=ticket.ticket_id, reply_id=uuid.uuid4(), author="operator", operator_id="marco", text="Ciao"
            )
        ),
        command(AddTicketNote(ticket_id=ticket.ticket_id, note_id=uuid.uuid4(), operator_id="marco", text="Segreto")),
    )

    async def lookup(**body: Any) -> httpx.Response:
        return await api.post("/internal/tickets/lookup", json={"tenant_id": TENANT, **body})

    number = ticket.ticket_number
    for found in (
        await lookup(ticket_number=number, email="anna.rossi@example.COM"),
        await lookup(ticket_number=f" {number.lower()} ", phone="+39 (333) 123-4567"),
    ):
        assert found.status_code == 200, found.text
        view = PublicTicketView.model_validate(found.json())
        assert (view.ticket_number, view.status) == (number, S.IN_PROGRESS)  # answered: being worked on
        assert [r.text for r in view.replies] == ["Ciao"]
        assert "Segreto" not in found.text, "notes are for operators only"
        assert "marco" not in found.text, "nor who answered"

    strangers = [
        await lookup(ticket_number=number, email="someone@example.com"),
        await lookup(ticket_number=number, phone="3331234567"),
        await lookup(ticket_number="TCK-2020-999999", email="anna.rossi@example.com"),
        await api.post(
            "/internal/tickets/lookup",
            json={"tenant_id": OTHER_TENANT, "ticket_number": number, "email": "anna.rossi@example.com"},
        ),
    ]
    assert [(r.status_code, r.json()) for r in strangers] == [(404, NOT_FOUND)] * 4
    assert (await lookup(ticket_number=number)).status_code == 422, "an email or a phone is required"


async def test_the_public_view_shows_the_request_and_the_promised_answer_until_it_is_given(
    tickets: TicketsHarness, api: httpx.AsyncClient
) -> None:
    # The acknowledgment promises the first response by its deadline: the page promises the same,
    # only while that clock runs.
    ticket = await open_and_get(tickets, uuid.uuid4(), message="Il biglietto non arriva.\nOrdine 42")
    conversational = await open_and_get(tickets, uuid.uuid4(), message="", subject="Orari del mercatino?")
    tid = ticket.ticket_id

    async def public(opened: TicketOpened) -> PublicTicketView:
        token = sign(LINK_SECRET, TicketLink(tenant_id=TENANT, ticket_id=opened.ticket_id))
        response = await api.post("/internal/tickets/link", json={"token": token})
        assert response.status_code == 200, response.text
        return PublicTicketView.model_validate(response.json())

    view = await public(ticket)
    assert view.request == "Il biglietto non arriva.\nOrdine 42"
    assert ticket.first_response_due is not None
    assert view.answer_due == ticket.first_response_due
    assert (view.tenant_name, view.time_zone) == (None, None), "the gateway's to add"
    assert (await public(conversational)).request == "Orari del mercatino?", "the subject without a message"

    # Waiting on the customer pauses the clock: no promise; the customer's answer restarts it.
    await tickets.apply(command(UpdateTicket(ticket_id=tid, operator_id="marco", status=S.WAITING_CUSTOMER)))
    assert (await public(ticket)).answer_due is None
    await tickets.apply(command(UpdateTicket(ticket_id=tid, operator_id="marco", status=S.OPEN)))
    assert (await public(ticket)).answer_due is not None
    # An operator's answer meets the promise; the page promises nothing more.
    await tickets.apply(
        command(
            PostTicketReply(ticket_id=tid, reply_id=uuid.uuid4(), author="operator", operator_id="marco", text="Ok")
        )
    )
    shown = await public(ticket)
    assert shown.answer_due is None
    assert "marco" not in shown.model_dump_json(), "nor who answered"


async def test_a_wrong_email_and_an_unknown_number_take_the_same_time(
    tickets: TicketsHarness, api: httpx.AsyncClient
) -> None:
    ticket = await open_and_get(tickets, uuid.uuid4())
    wrong_email = {"tenant_id": TENANT, "ticket_number": ticket.ticket_number, "email": "mallory@example.com"}
    unknown = {"tenant_id": TENANT, "ticket_number": "TCK-2020-424242", "email": "mallory@example.com"}
    durations: dict[str, list[float]] = {"wrong_email": [], "unknown": []}
    for _ in range(5):  # warm up the connection pool and the prepared statements
        for body in (wrong_email, unknown):
            await api.post("/internal/tickets/lookup", json=body)
    for _ in range(150):
        for name, body in (("wrong_email", wrong_email), ("unknown", unknown)):  # interleaved: same conditions
            started = time.perf_counter()
            response = await api.post("/internal/tickets/lookup", json=body)
            durations[name].append(time.perf_counter() - started)
            assert (response.status_code, response.json()) == (404, NOT_FOUND)
    wrong, missing = statistics.median(durations["wrong_email"]), statistics.median(durations["unknown"])
    # Both do one indexed read and two constant-time comparisons; what differs is only whether
    # the read found a row. A path with more work (e.g. loading the ticket or its replies before
    # comparing) shows up as a gap of a round trip or more.
    assert abs(wrong - missing) < 0.0005 + 0.15 * min(wrong, missing), (wrong, missing)


async def test_a_signed_link_opens_its_ticket_and_a_tampered_or_expired_one_gets_the_same_404(
    tickets: TicketsHarness,
    api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    tenants_dir: Path,
) -> None:
    ticket = await open_and_get(tickets, uuid.uuid4())
    token = sign(LINK_SECRET, TicketLink(tenant_id=TENANT, ticket_id=ticket.ticket_id))

    async def open_link(client: httpx.AsyncClient, token: str) -> httpx.Response:
        return await client.post("/internal/tickets/link", json={"token": token})

    valid = await open_link(api, token)
    assert valid.status_code == 200, valid.text
    assert PublicTicketView.model_validate(valid.json()).ticket_number == ticket.ticket_number

    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    other_tenant = sign(LINK_SECRET, TicketLink(tenant_id=OTHER_TENANT, ticket_id=ticket.ticket_id))
    forged = sign("another-secret-of-enough-length", TicketLink(tenant_id=TENANT, ticket_id=ticket.ticket_id))
    unknown = sign(LINK_SECRET, TicketLink(tenant_id=TENANT, ticket_id=uuid.uuid4()))
    refused = [await open_link(api, t) for t in (tampered, other_tenant, forged, unknown, "not-a-token")]
    assert [(r.status_code, r.json()) for r in refused] == [(404, NOT_FOUND)] * 5

    short_lived = Settings(tenants_dir=tenants_dir, ticket_link_secret=LINK_SECRET, ticket_link_max_age_seconds=1)
    async with api_client(sessions, short_lived) as client:
        assert (await open_link(client, token)).status_code == 200
        time.sleep(2.2)  # the token's timestamp has a one-second resolution
        expired = await open_link(client, token)
    assert (expired.status_code, expired.json()) == (404, NOT_FOUND)
