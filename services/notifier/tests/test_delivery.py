"""The delivery worker against real servers on loopback: the mail sink (aiosmtpd), a server that
answers like Twilio's Messages API and a webhook receiver that verifies signatures with the
standardwebhooks library. Events are applied by the notifier's handlers on its real consumer
(`ConsumerHarness`), and the worker sends what they recorded; what it emits is read from the outbox."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook

from contracts import Envelope, new_envelope, parse_envelope, ticketlinks
from contracts.common import ContactChannel, ContactDetails, Sender, TicketStatus, TranscriptExcerpt, TranscriptLine
from contracts.events import DeliveryCompleted, TicketOpened, TicketReplyPosted, TicketUpdated
from contracts.readapi import DeliveryLogView, DeliveryView
from devkit.mailsink import MailSink
from devkit.testing import ConsumerHarness, eventually
from notifier import handlers, store
from notifier.api import router
from notifier.config import Settings
from notifier.messages import Templates
from notifier.senders import Senders
from notifier.store import Delivery
from notifier.tenants import load_tenants
from notifier.worker import DLQ_DELIVERY_ID, DeliveryWorker
from servicekit.consumer import DLQ_CONSUMER_GROUP, DLQ_ERROR
from servicekit.db import OutboxRecord
from servicekit.http import create_app

from .conftest import (
    LINK_SECRET,
    TENANT,
    TWILIO_SID,
    TWILIO_TOKEN,
    WEBHOOK_SECRET,
    TwilioLike,
    WebhookReceiver,
    write_tenant,
)

C = ContactChannel
MAX_ATTEMPTS = 4
BACKOFF_BASE = 0.4


class Notifier(ConsumerHarness):
    """The notifier in this process: its handlers on its real consumer, and its delivery worker."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        super().__init__(sessions)
        self.settings = settings
        tenants = load_tenants(settings.tenants_dir)
        handlers.register(self.consumer, settings, tenants, Templates())
        self.senders = Senders(settings, tenants)
        self.worker = DeliveryWorker(sessions, settings, self.senders)

    async def deliveries(self, **where: Any) -> list[Delivery]:
        async with self.sessions() as session:
            return list(await session.scalars(select(Delivery).filter_by(**where).order_by(Delivery.created_at)))

    async def results(self) -> list[DeliveryCompleted]:
        """The `DeliveryCompleted` events in the outbox (dead letters left out), in commit order."""
        async with self.sessions() as session:
            query = select(OutboxRecord.value).where(OutboxRecord.topic == DeliveryCompleted.topic)
            return [parse_envelope(value).payload for value in await session.scalars(query.order_by(OutboxRecord.id))]

    async def dead_letters(self) -> list[OutboxRecord]:
        async with self.sessions() as session:
            query = select(OutboxRecord).where(OutboxRecord.topic == "notifications.events.v1.dlq")
            return list(await session.scalars(query.order_by(OutboxRecord.id)))


@pytest.fixture
async def notifier(
    sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    mail_sink: MailSink,
    twilio: TwilioLike,
    receiver: WebhookReceiver,
) -> AsyncIterator[Notifier]:
    write_tenant(
        tmp_path / "tenants",
        webhooks=[{"url": f"{receiver.url}/hooks", "secret": WEBHOOK_SECRET, "events": ["tickets.ticket_opened"]}],
    )
    settings = Settings(
        tenants_dir=tmp_path / "tenants",
        public_base_url="https://support.lucine.test",
        ticket_link_secret=LINK_SECRET,
        smtp_port=mail_sink.port,
        twilio_base_url=twilio.url,
        twilio_account_sid=TWILIO_SID,
        twilio_auth_token=TWILIO_TOKEN,
        smtp_timeout_seconds=5,
        twilio_timeout_seconds=5,
        webhook_timeout_seconds=5,
        delivery_lease_seconds=6,
        delivery_max_attempts=MAX_ATTEMPTS,
        delivery_backoff_base_seconds=BACKOFF_BASE,
        delivery_poll_seconds=0.05,
    )
    notifier = Notifier(sessions, settings)
    yield notifier
    await notifier.worker.stop()
    await notifier.senders.aclose()


def opened(
    *,
    preferred: ContactChannel = C.EMAIL,
    email: str | None = "giulia@example.com",
    phone: str | None = None,
    **fields: Any,
) -> Envelope[Any]:
    payload = TicketOpened(
        ticket_id=uuid.uuid4(),
        ticket_number="TCK-2025-000042",
        contact=ContactDetails(name="Giulia", email=email, phone=phone, preferred_contact=preferred),
        language="it",
        first_response_due=datetime(2025, 12, 12, 13, 30, tzinfo=UTC),
        **fields,
    )
    return new_envelope(payload, tenant_id=TENANT, conversation_id=uuid.uuid4())


def status_link(text: str) -> ticketlinks.TicketLink:
    url = next(word for word in text.split() if "/tickets/status?t=" in word)
    assert url.startswith("https://support.lucine.test/tickets/status?t=")
    return ticketlinks.verify(LINK_SECRET, url.split("?t=", 1)[1])


async def test_an_email_arrives_with_the_status_link_and_its_message_id_from_the_ticket(
    notifier: Notifier, mail_sink: MailSink
) -> None:
    ticket = opened()
    await notifier.apply(ticket)
    assert await notifier.worker.deliver_due() == 2  # the email and the webhook

    (mail,) = mail_sink.mails()
    (email,) = await notifier.deliveries(channel="email")
    # The acknowledgment starts the ticket's thread: its id is the ticket's, in the sender's domain.
    assert mail["Message-ID"] == f"<ticket-{ticket.payload.ticket_id}@lucinedinatale.it>"
    assert mail["In-Reply-To"] is None
    assert mail["From"] == "Lucine di Natale <assistenza@lucinedinatale.it>"
    assert mail["To"] == "giulia@example.com"
    assert mail["Subject"] == "[TCK-2025-000042] La tua richiesta"
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None
    assert html is not None
    assert "Ti risponderemo entro il 12/12/2025 alle 14:30 CET." in text.get_content()
    assert status_link(text.get_content()) == ticketlinks.TicketLink(TENANT, ticket.payload.ticket_id)
    assert "/tickets/status?t=" in html.get_content()

    assert (email.status, email.attempts, email.provider_message_id) == ("sent", 1, mail["Message-ID"])
    (result,) = [r for r in await notifier.results() if r.channel == "email"]
    assert result == DeliveryCompleted(
        delivery_id=email.delivery_id,
        source_event_id=ticket.event_id,
        ticket_id=ticket.payload.ticket_id,
        channel="email",
        template="ticket_created",
        recipient="g***@example.com",
        succeeded=True,
        attempts=1,
    )
    assert await notifier.worker.deliver_due() == 0  # nothing is sent twice
    assert len(mail_sink.mails()) == 1


async def test_the_acknowledgment_quotes_the_request_and_the_conversations_end_names_the_zone(
    notifier: Notifier, mail_sink: MailSink
) -> None:
    conversation = TranscriptExcerpt(
        lines=[
            TranscriptLine(seq=1, sender=Sender.CUSTOMER, text="Il mio ordine <4471> non è arrivato"),
            TranscriptLine(seq=2, sender=Sender.AI, text="Mi dispiace! Lascia i tuoi contatti & ti scriviamo."),
        ],
        total_messages=2,
        transcript_url="/internal/conversations/x/messages",
    )
    ticket = opened(message="Ordine <4471>: arriva & in tempo per Natale?\nGrazie", transcript=conversation)
    await notifier.apply(ticket)
    await notifier.worker.deliver_due()
    (mail,) = mail_sink.mails()
    text, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert text is not None
    assert html is not None
    plain, rich = (part.get_content().replace("\r\n", "\n") for part in (text, html))  # SMTP's line ends
    assert "Ti risponderemo entro il 12/12/2025 alle 14:30 CET." in plain
    assert "La tua richiesta:\n> Ordine <4471>: arriva & in tempo per Natale?\n> Grazie\n" in plain
    assert "Tu: Il mio ordine <4471> non è arrivato\nAssistente: Mi dispiace!" in plain
    assert "Ordine &lt;4471&gt;: arriva &amp; in tempo per Natale?\nGrazie</blockquote>" in rich
    assert "<strong>Tu:</strong> Il mio ordine &lt;4471&gt; non è arrivato</p>" in rich
    assert "<4471>" not in rich


async def test_the_later_emails_of_a_ticket_thread_under_its_acknowledgment(
    notifier: Notifier, mail_sink: MailSink, tmp_path: Path
) -> None:
    # Another sender in the tenant's file: the thread's domain is the configured sender's.
    write_tenant(tmp_path / "tenants", email={"sender": "Assistenza <help@mail.lucine.example>"})
    notifier = Notifier(notifier.sessions, notifier.settings)
    ticket, other = opened(subject="Biglietti per il 24 dicembre"), opened(email="marco@example.com")
    ticket_id = ticket.payload.ticket_id
    reply = TicketReplyPosted(
        ticket_id=ticket_id,
        ticket_number="TCK-2025-000042",
        reply_id=uuid.uuid4(),
        author="operator",
        operator_id="anna",
        text="I biglietti sono alla cassa.",
    )
    resolved = TicketUpdated(
        ticket_id=ticket_id,
        ticket_number="TCK-2025-000042",
        status=TicketStatus.RESOLVED,
        previous_status=TicketStatus.IN_PROGRESS,
        priority="normal",
        changed_by="anna",
    )
    await notifier.apply(ticket, other)
    await notifier.apply(
        *(new_envelope(p, tenant_id=TENANT, conversation_id=ticket.conversation_id) for p in (reply, resolved))
    )
    await notifier.worker.deliver_due()

    thread = f"<ticket-{ticket_id}@mail.lucine.example>"
    to_giulia = [mail for mail in mail_sink.mails() if mail["To"] == "giulia@example.com"]
    (acknowledgment,) = [mail for mail in to_giulia if mail["Message-ID"] == thread]
    later_mails = [mail for mail in to_giulia if mail is not acknowledgment]
    assert len(later_mails) == 2
    # One subject for the whole thread, "Re: " before it after the first: some mail clients
    # thread by subject too.
    assert acknowledgment["Subject"] == "[TCK-2025-000042] Biglietti per il 24 dicembre"
    assert acknowledgment["Message-ID"] == thread
    assert acknowledgment["In-Reply-To"] is None
    assert acknowledgment["References"] is None
    for later in later_mails:
        assert later["Subject"] == "Re: [TCK-2025-000042] Biglietti per il 24 dicembre"
        assert (later["In-Reply-To"], later["References"]) == (thread, thread)
        assert later["Message-ID"].endswith("@mail.lucine.example>")
        assert later["Message-ID"] != thread
    (to_marco,) = [mail for mail in mail_sink.mails() if mail["To"] == "marco@example.com"]
    assert to_marco["Message-ID"] == f"<ticket-{other.payload.ticket_id}@mail.lucine.example>", "a thread per ticket"


async def test_whatsapp_and_sms_reach_the_twilio_api_with_the_form_and_the_basic_auth(
    notifier: Notifier, twilio: TwilioLike
) -> None:
    whatsapp = opened(preferred=C.WHATSAPP, phone="333 1234567")
    sms = opened(preferred=C.SMS, email=None, phone="+39 347 7654321")
    await notifier.apply(whatsapp, sms)
    await notifier.worker.deliver_due()

    assert [r.headers["authorization"] for r in twilio.requests] == [twilio.requests[0].headers["authorization"]] * 2
    by_to = {m["To"]: m for m in twilio.messages()}
    assert set(by_to) == {"whatsapp:+393331234567", "+393477654321"}
    assert by_to["whatsapp:+393331234567"]["From"] == "whatsapp:+14155238886"
    assert by_to["+393477654321"]["From"] == "+15005550006"
    for message, ticket in ((by_to["whatsapp:+393331234567"], whatsapp), (by_to["+393477654321"], sms)):
        assert message["Body"].startswith("Lucine di Natale: richiesta TCK-2025-000042 ricevuta.")
        assert status_link(message["Body"]).ticket_id == ticket.payload.ticket_id
    sent = await notifier.deliveries(status="sent")
    assert {d.channel for d in sent} == {"whatsapp", "sms", "webhook"}
    assert all(d.provider_message_id and d.provider_message_id.startswith("SM") for d in sent if d.channel != "webhook")


async def test_wrong_twilio_credentials_fail_for_good_at_once(notifier: Notifier, twilio: TwilioLike) -> None:
    notifier.settings.twilio_auth_token = "wrong"
    await notifier.apply(opened(preferred=C.SMS, email=None, phone="333 1234567"))
    await notifier.worker.deliver_due()
    (sms,) = await notifier.deliveries(channel="sms")
    assert (sms.status, sms.attempts) == ("failed", 1)
    assert "Twilio 401: Authenticate" in sms.last_error
    assert [r.succeeded for r in await notifier.results() if r.channel == "sms"] == [False]


async def test_the_receiver_verifies_the_signature_and_refuses_tampered_and_old_requests_and_replays(
    notifier: Notifier, receiver: WebhookReceiver
) -> None:
    ticket = opened()
    await notifier.apply(ticket)
    await notifier.worker.deliver_due()
    (hook,) = await notifier.deliveries(channel="webhook")
    (request,) = receiver.requests
    assert request.headers["webhook-id"] == str(hook.delivery_id)
    assert receiver.processed == {str(hook.delivery_id): json.loads(hook.body)}
    assert receiver.processed[str(hook.delivery_id)]["data"]["ticket_id"] == str(ticket.payload.ticket_id)

    url = f"{receiver.url}/hooks"
    signed = {k: v for k, v in request.headers.items() if k.startswith("webhook-")} | {
        "content-type": "application/json"
    }
    async with httpx.AsyncClient() as client:
        # The same request again (a replay, or the notifier's resend): acknowledged, not processed again.
        assert (await client.post(url, content=request.body, headers=signed)).status_code == 200
        assert receiver.repeats == [str(hook.delivery_id)]
        # The body changed on the way.
        tampered = request.body.replace(b"TCK-2025-000042", b"TCK-2025-000043")
        assert (await client.post(url, content=tampered, headers=signed)).status_code == 401
        # Correctly signed, but outside the five minutes a receiver accepts.
        old = datetime.now(UTC) - timedelta(minutes=10)
        old_id = str(uuid.uuid4())
        old_headers = {
            "webhook-id": old_id,
            "webhook-timestamp": str(int(old.timestamp())),
            "webhook-signature": Webhook(WEBHOOK_SECRET).sign(old_id, old, request.body.decode()),
        }
        assert (await client.post(url, content=request.body, headers=old_headers)).status_code == 401
    assert receiver.refused == ["No matching signature found", "Message timestamp too old"]
    assert list(receiver.processed) == [str(hook.delivery_id)]


async def test_a_failing_webhook_is_retried_with_backoff_while_other_deliveries_go_through_then_dead_lettered(
    notifier: Notifier, mail_sink: MailSink, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """The tenant has two endpoints for `ticket_opened`: one answers 503 to everything. Its tries
    wait for their back-off and hold back neither the emails nor the other endpoint."""
    write_tenant(
        tmp_path / "tenants",
        webhooks=[
            {"url": f"{receiver.url}/fail", "secret": WEBHOOK_SECRET, "events": ["tickets.ticket_opened"]},
            {"url": f"{receiver.url}/hooks", "secret": WEBHOOK_SECRET, "events": ["tickets.ticket_opened"]},
        ],
    )
    notifier = Notifier(notifier.sessions, notifier.settings)  # with the tenant's new webhooks
    tickets = [opened(email=f"cliente{n}@example.com") for n in range(6)]
    notifier.worker.start()
    try:
        await notifier.apply(tickets[0])
        await eventually(lambda: len(receiver.attempts_at("/fail")) >= 1, 10, "the failing webhook's first try")
        await notifier.apply(*tickets[1:])
        await eventually(lambda: len(mail_sink.mails()) == 6, 10, "the email of every ticket")
        await eventually(lambda: len(receiver.processed) == 6, 10, "the working webhook of every ticket")
        # The failing endpoint's deliveries only: the working endpoint's last outcomes may still be
        # on their way to the table when its receiver has counted them.
        hooks = await notifier.deliveries(channel="webhook")
        unfinished = [d for d in hooks if d.recipient.endswith("/fail") and d.status in ("pending", "sending")]
        assert len(unfinished) == 6, "every failing webhook still has tries left when the rest is through"
        await eventually(lambda: _all_failed(notifier, 6), 30, "every failing webhook given up")
        await asyncio.sleep(BACKOFF_BASE * 2)
    finally:
        await notifier.worker.stop()

    failing = [d for d in await notifier.deliveries(channel="webhook") if d.recipient.endswith("/fail")]
    assert len(failing) == 6
    for hook in failing:
        assert (hook.status, hook.attempts, hook.last_error) == ("failed", MAX_ATTEMPTS, "webhook answered 503")
        tries = receiver.attempts_at("/fail", str(hook.delivery_id))
        assert len(tries) == MAX_ATTEMPTS  # none after the last
        gaps = [later - earlier for earlier, later in itertools.pairwise(tries)]
        for attempt, gap in enumerate(gaps, start=1):
            ceiling = BACKOFF_BASE * 2 ** (attempt - 1)  # jittered between half and all of it
            assert ceiling / 2 <= gap <= ceiling + 1.0, f"gap {attempt} was {gap:.2f}s"

    results = await notifier.results()
    failed = [r for r in results if not r.succeeded]
    assert sorted((r.delivery_id, r.attempts, r.error, r.recipient) for r in failed) == sorted(
        (d.delivery_id, MAX_ATTEMPTS, "webhook answered 503", "127.0.0.1") for d in failing
    )
    assert sum(r.succeeded for r in results) == 12  # 6 emails, 6 webhooks to the working endpoint
    letters = await notifier.dead_letters()
    assert sorted(letter.headers[DLQ_DELIVERY_ID] for letter in letters) == sorted(str(d.delivery_id) for d in failing)
    for letter in letters:
        assert letter.headers[DLQ_ERROR] == "webhook answered 503"
        assert letter.headers[DLQ_CONSUMER_GROUP] == "notifier"
        dead = parse_envelope(letter.value)
        assert dead.payload in failed
        assert dead.causation_id in {t.event_id for t in tickets}


async def _all_failed(notifier: Notifier, count: int) -> bool:
    return len(await notifier.deliveries(status="failed")) == count


async def test_sent_but_not_recorded_is_sent_again_after_the_lease_with_the_same_message_id(
    notifier: Notifier, mail_sink: MailSink
) -> None:
    """The crash window, made on purpose: the mail is handed to SMTP and the process dies before
    recording it. The row stays `sending`; once its lease is over it is sent again, with the same
    Message-ID, and its outcome is recorded (and emitted) once."""
    ticket = opened()
    await notifier.apply(ticket)
    async with notifier.sessions() as session, session.begin():
        claimed = await store.claim_due(session, 10, timedelta(seconds=1))
    (email,) = [d for d in claimed if d.channel == "email"]
    await notifier.senders.send(email)  # ...and no record: the process "died" here
    assert await notifier.worker.deliver_due() == 0  # leased: nobody sends it meanwhile
    await asyncio.sleep(1.2)
    started = time.monotonic()
    assert await notifier.worker.deliver_due() == 2  # the email and the webhook, both reclaimed
    assert time.monotonic() - started < 5

    first, second = mail_sink.mails()
    assert first["Message-ID"] == second["Message-ID"] == f"<ticket-{ticket.payload.ticket_id}@lucinedinatale.it>"
    (row,) = await notifier.deliveries(channel="email")
    assert (row.status, row.attempts) == ("sent", 2)
    assert [r.attempts for r in await notifier.results() if r.channel == "email"] == [2]


async def test_the_delivery_log_lists_a_tickets_deliveries_masked_and_a_failed_one_can_be_sent_again(
    notifier: Notifier, twilio: TwilioLike
) -> None:
    ticket, other = opened(preferred=C.WHATSAPP, phone="333 1234567"), opened()
    await notifier.apply(ticket, other)
    await notifier.worker.deliver_due()
    # The Twilio credentials are wrong for a while: the operator's reply fails for good.
    notifier.settings.twilio_auth_token = "wrong"
    reply = TicketReplyPosted(
        ticket_id=ticket.payload.ticket_id,
        ticket_number="TCK-2025-000042",
        reply_id=uuid.uuid4(),
        author="operator",
        text="I biglietti sono alla cassa.",
    )
    await notifier.apply(new_envelope(reply, tenant_id=TENANT, conversation_id=ticket.conversation_id))
    await notifier.worker.deliver_due()

    runtime = SimpleNamespace(sessions=notifier.sessions, settings=notifier.settings)
    app = create_app(runtime, title="notifier", routers=[router])  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notifier") as client:
        query = {"tenant_id": TENANT, "ticket_id": str(ticket.payload.ticket_id)}
        response = await client.get("/internal/deliveries", params=query)
        assert response.status_code == 200
        log = DeliveryLogView.model_validate(response.json())
        assert (log.tenant_id, log.ticket_id) == (TENANT, ticket.payload.ticket_id)
        assert sorted((d.template, d.channel, d.recipient, d.status, d.attempts) for d in log.deliveries) == [
            ("operator_replied", "whatsapp", "+39 *** **67", "failed", 1),
            ("ticket_created", "whatsapp", "+39 *** **67", "sent", 1),
            ("tickets.ticket_opened", "webhook", "127.0.0.1", "sent", 1),
        ]
        assert log.deliveries[-1].template == "operator_replied"  # oldest first
        assert "Twilio 401" in log.deliveries[-1].last_error
        assert "3331234567" not in response.text
        other_tenant = await client.get("/internal/deliveries", params=query | {"tenant_id": "another-tenant"})
        assert other_tenant.json()["deliveries"] == []
        assert (await client.get("/internal/deliveries", params={"tenant_id": TENANT})).status_code == 422

        failed, sent = log.deliveries[-1], log.deliveries[0]
        retry = "/internal/deliveries/{}/retry"
        assert (await client.post(retry.format(sent.delivery_id), params={"tenant_id": TENANT})).status_code == 409
        assert (await client.post(retry.format(uuid.uuid4()), params={"tenant_id": TENANT})).status_code == 404
        notifier.settings.twilio_auth_token = TWILIO_TOKEN
        response = await client.post(retry.format(failed.delivery_id), params={"tenant_id": TENANT})
        assert response.status_code == 200
        assert DeliveryView.model_validate(response.json()).status == "pending"
    await notifier.worker.deliver_due()
    (retried,) = await notifier.deliveries(delivery_id=failed.delivery_id)
    assert (retried.status, retried.attempts) == ("sent", 1)
    assert "I biglietti sono alla cassa." in twilio.messages()[-1]["Body"]
