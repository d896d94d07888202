"""The notifier's handlers against the real PostgreSQL (migrated schema), applied as the idempotent
consumer applies them (`ConsumerHarness`): each ticket event becomes its rendered, pending
deliveries; nothing is sent here (see test_delivery.py)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts import Envelope, Payload, new_envelope, ticketlinks
from contracts.common import (
    ContactChannel,
    ContactDetails,
    Sender,
    SlaClock,
    TicketStatus,
    TranscriptExcerpt,
    TranscriptLine,
)
from contracts.events import (
    SlaBreached,
    SlaWarning,
    TicketNoteAdded,
    TicketOpened,
    TicketReplyPosted,
    TicketUpdated,
)
from devkit.testing import ConsumerHarness
from notifier import handlers
from notifier.config import Settings
from notifier.messages import Templates
from notifier.store import Delivery
from notifier.tenants import load_tenants
from servicekit.db import ProcessedEvent

from .conftest import LINK_SECRET, TENANT, TWILIO_SID, TWILIO_TOKEN, WEBHOOK_SECRET, write_tenant

C = ContactChannel
DUE = datetime(2025, 12, 12, 13, 30, tzinfo=UTC)  # 14:30 in Rome
HOOK = "https://crm.lucine.test/hooks/support"


class Notifier(ConsumerHarness):
    """The notifier's handlers on its real consumer, applied batch by batch."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        super().__init__(sessions)
        handlers.register(self.consumer, settings, load_tenants(settings.tenants_dir), Templates())

    async def deliveries(self, **where: Any) -> list[Delivery]:
        async with self.sessions() as session:
            query = select(Delivery).filter_by(**where).order_by(Delivery.channel, Delivery.recipient)
            return list(await session.scalars(query))


def settings_for(tenants_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "tenants_dir": tenants_dir,
        "public_base_url": "https://support.lucine.test",
        "ticket_link_secret": LINK_SECRET,
        "twilio_account_sid": TWILIO_SID,
        "twilio_auth_token": TWILIO_TOKEN,
    }
    return Settings(**(values | overrides))


@pytest.fixture
def notifier(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> Notifier:
    write_tenant(
        tmp_path / "tenants",
        webhooks=[
            {"url": HOOK, "secret": WEBHOOK_SECRET, "events": ["tickets.ticket_opened", "tickets.note_added"]},
        ],
    )
    return Notifier(sessions, settings_for(tmp_path / "tenants"))


def event(payload: Payload, conversation_id: uuid.UUID | None = None, tenant_id: str = TENANT) -> Envelope[Any]:
    return new_envelope(payload, tenant_id=tenant_id, conversation_id=conversation_id)


def opened(
    ticket_id: uuid.UUID | None = None,
    *,
    language: str | None = "it",
    preferred: ContactChannel = C.EMAIL,
    email: str | None = "giulia@example.com",
    phone: str | None = None,
    name: str = "Giulia",
    tenant_id: str = TENANT,
    **fields: Any,
) -> Envelope[Any]:
    return event(
        TicketOpened(
            ticket_id=ticket_id or uuid.uuid4(),
            ticket_number="TCK-2025-000042",
            contact=ContactDetails(name=name, email=email, phone=phone, preferred_contact=preferred),
            language=language,
            **({"first_response_due": DUE} | fields),
        ),
        uuid.uuid4(),
        tenant_id,
    )


def ticket_of(envelope: Envelope[Any]) -> uuid.UUID:
    ticket_id: uuid.UUID = envelope.payload.ticket_id
    return ticket_id


def customer(deliveries: list[Delivery]) -> list[Delivery]:
    return [d for d in deliveries if d.channel != "webhook"]


def link_in(text: str) -> ticketlinks.TicketLink:
    """The status link of a text, verified as the tickets service verifies it."""
    url = next(word for word in text.split() if word.startswith("https://support.lucine.test/tickets/status?t="))
    return ticketlinks.verify(LINK_SECRET, url.split("?t=", 1)[1])


async def test_the_same_event_twice_records_each_notification_once(notifier: Notifier) -> None:
    ticket = opened()
    await notifier.apply(ticket, ticket)  # twice in one batch
    await notifier.apply(ticket)  # and redelivered later
    first = await notifier.deliveries()
    assert [(d.channel, d.template) for d in first] == [
        ("email", "ticket_created"),
        ("webhook", "tickets.ticket_opened"),
    ]

    # Even past the consumer's memory of event ids, the delivery's key keeps it one row.
    async with notifier.sessions() as session, session.begin():
        await session.execute(delete(ProcessedEvent))
    await notifier.apply(ticket)
    assert [d.delivery_id for d in await notifier.deliveries()] == [d.delivery_id for d in first]
    email = first[0]
    assert email.delivery_id == uuid.uuid5(ticket.event_id, "email:ticket_created:giulia@example.com")
    assert (email.status, email.attempts, email.recipient_masked) == ("pending", 0, "g***@example.com")


async def test_ticket_created_in_italian_with_the_promised_time_and_the_status_link(notifier: Notifier) -> None:
    ticket = opened(language="it", name="Giulia <Rossi>", subject="Biglietti per il 24 dicembre")
    await notifier.apply(ticket)
    (email,) = customer(await notifier.deliveries())
    assert email.subject == "[TCK-2025-000042] Biglietti per il 24 dicembre"
    assert "Ciao Giulia <Rossi>" in email.body
    assert "numero TCK-2025-000042" in email.body
    assert "Ti risponderemo entro il 12/12/2025 alle 14:30 CET." in email.body
    assert link_in(email.body) == ticketlinks.TicketLink(TENANT, ticket_of(ticket))
    assert email.html is not None
    assert "Giulia &lt;Rossi&gt;" in email.html  # escaped in the HTML alternative
    assert 'href="https://support.lucine.test/tickets/status?t=' in email.html


async def test_ticket_created_in_english_and_in_the_tenants_first_language_by_default(notifier: Notifier) -> None:
    english, unspecified = opened(language="en", email="john@example.com"), opened(language=None, email="x@example.com")
    await notifier.apply(english, unspecified)
    (to_john,) = await notifier.deliveries(recipient="john@example.com")
    assert to_john.subject == "[TCK-2025-000042] Your request"  # a ticket without a subject
    assert "Hello Giulia" in to_john.body
    assert "We will answer by 12 Dec 2025 at 14:30 CET." in to_john.body
    assert link_in(to_john.body).ticket_id == ticket_of(english)
    (to_x,) = await notifier.deliveries(recipient="x@example.com")
    assert to_x.subject == "[TCK-2025-000042] La tua richiesta"


async def test_promised_times_name_the_tenants_time_zone_for_a_customer_who_may_live_in_another(
    notifier: Notifier,
) -> None:
    # An English-speaking customer of a tenant in Rome, in summer: Rome's summer time, named.
    summer = opened(language="en", email="john@example.com", first_response_due=datetime(2026, 7, 1, 17, 9, tzinfo=UTC))
    await notifier.apply(summer)
    (email,) = customer(await notifier.deliveries())
    assert "We will answer by 01 Jul 2026 at 19:09 CEST." in email.body
    assert email.html is not None
    assert "We will answer by 01 Jul 2026 at 19:09 CEST." in email.html


async def test_the_acknowledgment_quotes_the_customers_request_and_the_end_of_the_conversation(
    notifier: Notifier,
) -> None:
    excerpt = TranscriptExcerpt(
        lines=[
            TranscriptLine(seq=1, sender=Sender.CUSTOMER, text="Posso portare il cane <Fido>?"),
            TranscriptLine(seq=2, sender=Sender.AI, text="Sì, al guinzaglio & con museruola."),
            TranscriptLine(seq=3, sender=Sender.SYSTEM, text="Nessun operatore disponibile"),
        ],
        total_messages=3,
        transcript_url="/internal/conversations/x/messages",
    )
    request = "Il biglietto <b>non</b> arriva & il concerto è stasera.\nOrdine 4471"
    await notifier.apply(opened(language="it", message=request, transcript=excerpt))
    (email,) = customer(await notifier.deliveries())
    assert "La tua richiesta:\n> Il biglietto <b>non</b> arriva & il concerto è stasera.\n> Ordine 4471\n" in email.body
    assert "Tu: Posso portare il cane <Fido>?\nAssistente: Sì, al guinzaglio & con museruola.\n" in email.body
    assert "Nessun operatore disponibile" not in email.body, "the platform's notices are not quoted"
    assert email.html is not None
    assert (
        "Il biglietto &lt;b&gt;non&lt;/b&gt; arriva &amp; il concerto è stasera.\nOrdine 4471</blockquote>"
        in email.html
    )
    assert "<strong>Assistente:</strong> Sì, al guinzaglio &amp; con museruola.</p>" in email.html
    assert "<b>" not in email.html
    assert "<Fido>" not in email.html

    # An operator's ticket has no conversation; one without a message quotes its subject.
    await notifier.apply(opened(language="en", email="john@example.com", subject="Refund for order 4471"))
    (to_john,) = await notifier.deliveries(recipient="john@example.com")
    assert "Your request:\n> Refund for order 4471\n" in to_john.body
    assert "The last messages" not in to_john.body
    # Nothing written at all: no empty quote.
    await notifier.apply(opened(language="en", email="kim@example.com"))
    (to_kim,) = await notifier.deliveries(recipient="kim@example.com")
    assert "Your request" not in to_kim.body


@pytest.mark.parametrize(
    ("preferred", "email", "phone", "channel", "recipient"),
    [
        (C.EMAIL, "giulia@example.com", "333 1234567", "email", "giulia@example.com"),
        (C.WHATSAPP, "giulia@example.com", "333 1234567", "whatsapp", "+393331234567"),
        (C.SMS, "giulia@example.com", "+39 333 1234567", "sms", "+393331234567"),
        (C.PHONE, "giulia@example.com", "333 1234567", "email", "giulia@example.com"),
        (C.PHONE, None, "333 1234567", "sms", "+393331234567"),
    ],
)
async def test_the_customers_preferred_contact_picks_the_channel(
    notifier: Notifier, preferred: ContactChannel, email: str | None, phone: str | None, channel: str, recipient: str
) -> None:
    ticket = opened(preferred=preferred, email=email, phone=phone)
    await notifier.apply(ticket)
    (notice,) = customer(await notifier.deliveries())
    assert (notice.channel, notice.recipient, notice.template) == (channel, recipient, "ticket_created")
    if channel != "email":
        assert notice.subject == ""
        assert notice.html is None
        assert notice.body.startswith("Lucine di Natale: richiesta TCK-2025-000042 ricevuta.")
        assert link_in(notice.body).ticket_id == ticket_of(ticket)
        assert notice.recipient_masked == "+39 *** **67"


async def test_without_a_twilio_account_whatsapp_customers_get_the_email(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    write_tenant(tmp_path / "tenants")
    notifier = Notifier(sessions, settings_for(tmp_path / "tenants", twilio_account_sid="", twilio_auth_token=""))
    await notifier.apply(opened(preferred=C.WHATSAPP, phone="333 1234567"))
    assert [(d.channel, d.recipient) for d in await notifier.deliveries()] == [("email", "giulia@example.com")]


async def test_an_operators_reply_reaches_the_customer_with_its_text(notifier: Notifier) -> None:
    ticket = opened(language="en", preferred=C.SMS, phone="333 1234567")
    ticket_id = ticket_of(ticket)
    reply = TicketReplyPosted(
        ticket_id=ticket_id,
        ticket_number="TCK-2025-000042",
        reply_id=uuid.uuid4(),
        author="operator",
        operator_id="anna",
        text="The tickets for the 24th are at the gate.",
    )
    own_answer = reply.model_copy(update={"reply_id": uuid.uuid4(), "author": "customer", "operator_id": None})
    await notifier.apply(ticket)
    await notifier.apply(event(reply, ticket.conversation_id), event(own_answer, ticket.conversation_id))
    replies = await notifier.deliveries(template="operator_replied")
    assert [(d.channel, d.recipient) for d in replies] == [("sms", "+393331234567")]
    assert "The tickets for the 24th are at the gate." in replies[0].body
    assert link_in(replies[0].body).ticket_id == ticket_id


async def test_an_operators_reply_by_email_quotes_it(notifier: Notifier) -> None:
    ticket = opened(language="it")
    await notifier.apply(ticket)
    reply = TicketReplyPosted(
        ticket_id=ticket_of(ticket),
        ticket_number="TCK-2025-000042",
        reply_id=uuid.uuid4(),
        author="operator",
        text="I biglietti sono alla cassa.",
    )
    await notifier.apply(event(reply, ticket.conversation_id))
    (email,) = await notifier.deliveries(template="operator_replied")
    assert email.subject == "Re: [TCK-2025-000042] La tua richiesta"
    assert "I biglietti sono alla cassa." in email.body
    assert link_in(email.body).ticket_id == ticket_of(ticket)


async def test_resolving_a_ticket_tells_the_customer_once(notifier: Notifier) -> None:
    ticket = opened(language="en")
    ticket_id = ticket_of(ticket)

    def updated(status: TicketStatus, previous: TicketStatus) -> Envelope[Any]:
        return event(
            TicketUpdated(
                ticket_id=ticket_id,
                ticket_number="TCK-2025-000042",
                status=status,
                previous_status=previous,
                priority="normal",
                changed_by="anna",
            ),
            ticket.conversation_id,
        )

    await notifier.apply(ticket)
    await notifier.apply(updated(TicketStatus.IN_PROGRESS, TicketStatus.OPEN))
    assert await notifier.deliveries(template="ticket_resolved") == []
    await notifier.apply(updated(TicketStatus.RESOLVED, TicketStatus.IN_PROGRESS))
    (resolved,) = await notifier.deliveries(template="ticket_resolved")
    assert resolved.subject == "Re: [TCK-2025-000042] Your request"
    assert link_in(resolved.body).ticket_id == ticket_id


async def test_an_sla_breach_alerts_the_tenants_supervisors_in_its_language(notifier: Notifier) -> None:
    ticket = opened(language="en")
    breach = SlaBreached(
        ticket_id=ticket_of(ticket), ticket_number="TCK-2025-000042", clock=SlaClock.FIRST_RESPONSE, due_at=DUE
    )
    warning = SlaWarning(
        ticket_id=ticket_of(ticket), ticket_number="TCK-2025-000042", clock=SlaClock.RESOLUTION, due_at=DUE
    )
    await notifier.apply(ticket)
    await notifier.apply(event(breach, ticket.conversation_id), event(warning, ticket.conversation_id))
    alerts = await notifier.deliveries(template="sla_breach")
    assert [d.recipient for d in alerts] == ["capo@lucinedinatale.it", "vice@lucinedinatale.it"]
    for alert in alerts:
        assert alert.subject == "[SLA] TCK-2025-000042: scadenza superata (prima risposta)"
        assert "(prima risposta: 12/12/2025 alle 14:30 CET)" in alert.body
        assert "https://support.lucine.test/dashboard" in alert.body
    assert len(await notifier.deliveries()) == 2 + 2  # the customer's ticket_created and its webhook


async def test_webhooks_go_out_for_the_subscribed_event_types_only_with_ids_and_statuses(notifier: Notifier) -> None:
    ticket = opened()
    note = TicketNoteAdded(
        ticket_id=ticket_of(ticket),
        ticket_number="TCK-2025-000042",
        note_id=uuid.uuid4(),
        operator_id="anna",
        text="Customer called, very upset",
    )
    update = TicketUpdated(
        ticket_id=ticket_of(ticket),
        ticket_number="TCK-2025-000042",
        status=TicketStatus.IN_PROGRESS,
        previous_status=TicketStatus.OPEN,
        priority="high",
        changed_by="anna",
    )
    await notifier.apply(ticket, event(note, ticket.conversation_id), event(update, ticket.conversation_id))
    hooks = await notifier.deliveries(channel="webhook")
    assert sorted(d.template for d in hooks) == ["tickets.note_added", "tickets.ticket_opened"]
    assert {d.recipient for d in hooks} == {HOOK}
    assert {d.recipient_masked for d in hooks} == {"crm.lucine.test"}
    bodies = {d.template: json.loads(d.body) for d in hooks}
    assert bodies["tickets.note_added"]["data"] == {
        "event_id": str(next(d.source_event_id for d in hooks if d.template == "tickets.note_added")),
        "tenant_id": TENANT,
        "conversation_id": str(ticket.conversation_id),
        "ticket_id": str(ticket_of(ticket)),
        "ticket_number": "TCK-2025-000042",
        "note_id": str(note.note_id),
    }
    assert "upset" not in hooks[0].body + hooks[1].body
    assert "giulia" not in hooks[0].body + hooks[1].body


async def test_events_of_an_unconfigured_tenant_or_an_unknown_ticket_tell_no_customer(notifier: Notifier) -> None:
    await notifier.apply(opened(tenant_id="another-tenant"))
    assert await notifier.deliveries() == []
    reply = TicketReplyPosted(
        ticket_id=uuid.uuid4(), ticket_number="TCK-2025-000001", reply_id=uuid.uuid4(), author="operator", text="Hi"
    )
    await notifier.apply(event(reply))
    assert await notifier.deliveries() == []
