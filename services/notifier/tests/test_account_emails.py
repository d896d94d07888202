"""`tenant.events.v1` in the notifier: the platform's account emails (a sign-up's verification, an
operator's invitation) through the delivery rows and the worker to a real SMTP server (the mail
sink, aiosmtpd), and the tenant profiles that replace the tenant file's name, languages and time
zone. Events are applied by the notifier's handlers on its real consumer (`ConsumerHarness`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts import Envelope, new_envelope
from contracts.common import ContactChannel, ContactDetails
from contracts.events import AccountEmailRequested, TenantProfileChanged, TicketOpened
from devkit.mailsink import MailSink
from devkit.testing import ConsumerHarness
from notifier import handlers, store
from notifier.config import Settings
from notifier.messages import Templates
from notifier.senders import Senders
from notifier.store import Delivery
from notifier.tenants import load_tenants
from notifier.worker import DeliveryWorker

from .conftest import LINK_SECRET, TENANT, write_tenant

PLATFORM_SENDER = "Piattaforma di assistenza <accounts@platform.example>"
SIGNED_UP = "pizzeria-marta"  # a tenant that signed up itself: no tenant file


class Notifier(ConsumerHarness):
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        super().__init__(sessions)
        tenants = load_tenants(settings.tenants_dir)
        handlers.register(self.consumer, settings, tenants, Templates())
        self.senders = Senders(settings, tenants)
        self.worker = DeliveryWorker(sessions, settings, self.senders)

    async def deliveries(self) -> list[Delivery]:
        async with self.sessions() as session:
            return list(await session.scalars(select(Delivery).order_by(Delivery.created_at)))


@pytest.fixture
async def notifier(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path, mail_sink: MailSink
) -> AsyncIterator[Notifier]:
    write_tenant(tmp_path / "tenants")
    settings = Settings(
        tenants_dir=tmp_path / "tenants",
        public_base_url="https://support.lucine.test",
        ticket_link_secret=LINK_SECRET,
        platform_email_sender=PLATFORM_SENDER,
        smtp_port=mail_sink.port,
        smtp_timeout_seconds=5,
    )
    notifier = Notifier(sessions, settings)
    yield notifier
    await notifier.worker.stop()
    await notifier.senders.aclose()


def account_email(kind: str, language: str, **overrides: Any) -> Envelope[AccountEmailRequested]:
    tenant_id = overrides.pop("tenant_id", SIGNED_UP)
    fields: dict[str, Any] = {
        "request_id": uuid.uuid4(),
        "kind": kind,
        "email": "marta@example.com",
        "recipient_name": "Marta",
        "language": language,
        "tenant_name": "Pizzeria Da Marta",
        "link": f"https://support.lucine.test/dashboard/verify?t=tok-{uuid.uuid4().hex}",
        "expires_at": datetime(2026, 12, 4, 21, 15, tzinfo=UTC),
    } | overrides
    return new_envelope(AccountEmailRequested(**fields), tenant_id=tenant_id)


def profile(
    revision: int, name: str, languages: list[str], time_zone: str = "Europe/Rome", tenant_id: str = TENANT
) -> Envelope[Any]:
    payload = TenantProfileChanged(
        tenant_id=tenant_id, revision=revision, name=name, languages=languages, time_zone=time_zone
    )
    return new_envelope(payload, tenant_id=tenant_id)


def ticket_opened(language: str | None = None, tenant_id: str = TENANT) -> Envelope[Any]:
    payload = TicketOpened(
        ticket_id=uuid.uuid4(),
        ticket_number="TCK-2026-000007",
        contact=ContactDetails(name="Giulia", email="giulia@example.com", preferred_contact=ContactChannel.EMAIL),
        language=language,
    )
    return new_envelope(payload, tenant_id=tenant_id, conversation_id=uuid.uuid4())


def text_of(mail: EmailMessage) -> str:
    body = mail.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def html_of(mail: EmailMessage) -> str:
    body = mail.get_body(("html",))
    assert body is not None
    return str(body.get_content())


async def test_a_signup_verification_arrives_once_in_italian_with_the_link_and_the_expiry(
    notifier: Notifier, mail_sink: MailSink
) -> None:
    request = account_email("verify_signup", "it")
    await notifier.apply(request)
    assert await notifier.worker.deliver_due() == 1

    (mail,) = mail_sink.mails()
    assert mail["From"] == PLATFORM_SENDER  # the platform's, though the tenant has no file
    assert mail["To"] == "marta@example.com"
    assert mail["Subject"] == "Conferma il tuo indirizzo email per Pizzeria Da Marta"
    text = text_of(mail)
    assert text.startswith("Ciao Marta,")
    assert request.payload.link in text
    assert "Il link scade il 04/12/2026 alle 21:15 UTC." in text  # no profile nor file: UTC, said so
    assert f'href="{request.payload.link}"' in html_of(mail)
    (delivery,) = await notifier.deliveries()
    assert (delivery.status, delivery.template, delivery.ticket_id) == ("sent", "verify_signup", None)
    assert mail["Message-ID"] == f"<{delivery.delivery_id}@platform.example>"


async def test_an_invitation_arrives_in_english_with_who_invites_and_the_expiry_in_the_tenants_zone(
    notifier: Notifier, mail_sink: MailSink
) -> None:
    await notifier.apply(profile(3, "Lucine di Natale", ["it", "en"], "Europe/Rome"))
    request = account_email(
        "operator_invite",
        "en",
        tenant_id=TENANT,
        tenant_name="Lucine di Natale",
        invited_by="Ada Rossi",
        recipient_name=None,
        email="luca@example.com",
        link="https://support.lucine.test/dashboard/invite?t=tok-invite",
    )
    await notifier.apply(request)
    await notifier.worker.deliver_due()

    (mail,) = mail_sink.mails()
    assert mail["From"] == PLATFORM_SENDER  # not the tenant file's sender: the email is the platform's
    assert mail["Subject"] == "Ada Rossi invites you to Lucine di Natale's support team"
    text = text_of(mail)
    assert text.startswith("Hello,")
    assert "https://support.lucine.test/dashboard/invite?t=tok-invite" in text
    assert "The invitation expires on 04 Dec 2026 at 22:15 CET" in text


async def test_a_redelivered_or_resent_request_sends_nothing_new(notifier: Notifier, mail_sink: MailSink) -> None:
    request = account_email("verify_signup", "en")
    await notifier.apply(request)
    await notifier.worker.deliver_due()
    assert len(mail_sink.mails()) == 1

    await notifier.apply(request)  # the same event again: its id was processed
    # The same request in a new envelope (the producer's retry): one email per request_id.
    await notifier.apply(new_envelope(request.payload, tenant_id=request.tenant_id))
    assert await notifier.worker.deliver_due() == 0
    assert len(mail_sink.mails()) == 1
    assert len(await notifier.deliveries()) == 1


async def test_the_newest_profile_names_the_tenant_and_an_older_revision_changes_nothing(
    notifier: Notifier, mail_sink: MailSink
) -> None:
    await notifier.apply(ticket_opened())
    await notifier.worker.deliver_due()
    first = mail_sink.mails()[-1]
    assert text_of(first).rstrip().endswith("Lucine di Natale")  # the tenant file's name
    assert "Ciao Giulia" in text_of(first)  # its first language: Italian

    # A newer profile: a new name, and English first.
    await notifier.apply(profile(5, "Lucine di Natale Torino", ["en", "it"]))
    await notifier.apply(ticket_opened())
    await notifier.worker.deliver_due()
    second = mail_sink.mails()[-1]
    assert text_of(second).rstrip().endswith("Lucine di Natale Torino")
    assert "Hello Giulia" in text_of(second)

    # An older (or equal) revision arriving late is ignored.
    await notifier.apply(profile(4, "Vecchio nome", ["it"]), profile(5, "Stessa revisione", ["it"]))
    await notifier.apply(ticket_opened())
    await notifier.worker.deliver_due()
    third = mail_sink.mails()[-1]
    assert text_of(third).rstrip().endswith("Lucine di Natale Torino")
    assert "Hello Giulia" in text_of(third)
    assert third["From"] == "Lucine di Natale <assistenza@lucinedinatale.it>"  # the file keeps the sender
    async with notifier.sessions() as session:
        stored = await store.get_profile(session, TENANT)
    assert stored is not None
    assert (stored.revision, stored.name, stored.languages) == (5, "Lucine di Natale Torino", ["en", "it"])


async def test_a_tenant_that_signed_up_gets_its_customers_emails_from_the_platforms_address(
    notifier: Notifier, mail_sink: MailSink
) -> None:
    # No tenant file and no profile yet: nothing can be said in its name.
    await notifier.apply(ticket_opened(tenant_id=SIGNED_UP))
    assert await notifier.worker.deliver_due() == 0

    await notifier.apply(profile(2, "Pizzeria Da Marta", ["en", "it"], tenant_id=SIGNED_UP))
    opened = ticket_opened(tenant_id=SIGNED_UP)
    await notifier.apply(opened)
    assert await notifier.worker.deliver_due() == 1
    (mail,) = mail_sink.mails()
    assert mail["From"] == PLATFORM_SENDER
    # The ticket's thread is named in the domain of the address it comes from.
    assert mail["Message-ID"] == f"<ticket-{opened.payload.ticket_id}@platform.example>"
    assert mail["To"] == "giulia@example.com"
    assert "Hello Giulia" in text_of(mail)  # the profile's first language
    assert text_of(mail).rstrip().endswith("Pizzeria Da Marta")
