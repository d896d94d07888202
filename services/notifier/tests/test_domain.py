"""The notifier's rules, without I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from contracts.common import ContactChannel, ContactDetails, DeliveryChannel, Sender, TranscriptExcerpt, TranscriptLine
from contracts.events import TicketOpened
from notifier import domain

C = ContactChannel
D = DeliveryChannel


def contact(preferred: ContactChannel, email: str | None = "giulia@example.com", phone: str | None = "333 123 4567"):
    return ContactDetails(name="Giulia", email=email, phone=phone, preferred_contact=preferred)


@pytest.mark.parametrize(
    ("preferred", "email", "phone", "expected"),
    [
        (C.EMAIL, "giulia@example.com", None, (D.EMAIL, "giulia@example.com")),
        (C.WHATSAPP, "giulia@example.com", "333 123 4567", (D.WHATSAPP, "+393331234567")),
        (C.SMS, None, "+39 333 123 4567", (D.SMS, "+393331234567")),
        # `phone`: a person will call; the written notice goes by email, else by SMS.
        (C.PHONE, "giulia@example.com", "333 123 4567", (D.EMAIL, "giulia@example.com")),
        (C.PHONE, None, "333 123 4567", (D.SMS, "+393331234567")),
        # Asked for a channel the customer gave no number for: the email.
        (C.WHATSAPP, "giulia@example.com", None, (D.EMAIL, "giulia@example.com")),
    ],
)
def test_the_customer_is_reached_on_the_channel_they_chose_or_the_next_best(
    preferred: ContactChannel, email: str | None, phone: str | None, expected: tuple[DeliveryChannel, str]
) -> None:
    reach = domain.customer_reach(contact(preferred, email, phone), domain.PhoneSenders(sms=True, whatsapp=True), "+39")
    assert reach is not None
    assert (reach.channel, reach.recipient) == expected


def test_a_channel_the_tenant_cannot_send_on_falls_back() -> None:
    whatsapp_only_number = contact(C.WHATSAPP, email=None)
    reach = domain.customer_reach(whatsapp_only_number, domain.PhoneSenders(sms=True, whatsapp=False), "+39")
    assert reach == domain.Reach(D.SMS, "+393331234567")
    assert domain.customer_reach(whatsapp_only_number, domain.PhoneSenders(), "+39") is None


def test_phone_numbers_become_e164() -> None:
    assert domain.e164("+39 333 123-4567", "+39") == "+393331234567"
    assert domain.e164("0039 02 1234 5678", "+39") == "+390212345678"
    assert domain.e164("02 1234 5678", "+39") == "+390212345678"  # Italy keeps the leading 0
    assert domain.e164("07700 900123", "+44") == "+447700900123"  # elsewhere the trunk 0 goes


def test_the_delivery_id_is_the_same_for_the_same_notification_and_differs_otherwise() -> None:
    event_id = uuid.uuid4()
    first = domain.delivery_id(event_id, D.EMAIL, "ticket_created", "a@example.com")
    assert first == domain.delivery_id(event_id, D.EMAIL, "ticket_created", "a@example.com")
    assert first == uuid.uuid5(event_id, "email:ticket_created:a@example.com")
    others = {
        domain.delivery_id(uuid.uuid4(), D.EMAIL, "ticket_created", "a@example.com"),
        domain.delivery_id(event_id, D.SMS, "ticket_created", "a@example.com"),
        domain.delivery_id(event_id, D.EMAIL, "ticket_resolved", "a@example.com"),
        domain.delivery_id(event_id, D.EMAIL, "ticket_created", "b@example.com"),
    }
    assert first not in others
    assert len(others) == 4


def test_language_is_the_tickets_when_templated_else_the_tenants_first() -> None:
    assert domain.language("en", ["it", "en"]) == "en"
    assert domain.language(None, ["en", "it"]) == "en"
    assert domain.language("de", ["it", "en"]) == "it"


def test_recipients_are_masked() -> None:
    assert domain.mask(D.EMAIL, "giulia@example.com") == "g***@example.com"
    assert domain.mask(D.SMS, "+393331234512") == "+39 *** **12"
    assert domain.mask(D.WEBHOOK, "https://crm.example.com/hooks?token=x") == "crm.example.com"


def test_backoff_doubles_up_to_the_cap_with_jitter_between_half_and_all() -> None:
    def lowest(low: float, high: float) -> float:
        return low

    def highest(low: float, high: float) -> float:
        return high

    assert [domain.backoff_seconds(n, 5, 60, highest) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]
    assert [domain.backoff_seconds(n, 5, 60, lowest) for n in range(1, 4)] == [2.5, 5, 10]
    assert all(5 <= domain.backoff_seconds(2, 5, 60) <= 10 for _ in range(100))


def test_promised_times_are_written_in_the_tenants_zone_and_language_naming_the_zone() -> None:
    moment = datetime(2025, 12, 12, 13, 30, tzinfo=UTC)
    assert domain.local_time(moment, "Europe/Rome", "it") == "12/12/2025 alle 14:30 CET"
    assert domain.local_time(moment, "Europe/Rome", "en") == "12 Dec 2025 at 14:30 CET"
    summer = datetime(2026, 7, 1, 16, 0, tzinfo=UTC)
    assert domain.local_time(summer, "Europe/Rome", "en") == "01 Jul 2026 at 18:00 CEST"
    assert domain.local_time(summer, "Europe/London", "en") == "01 Jul 2026 at 17:00 BST"
    assert domain.local_time(moment, "UTC", "it") == "12/12/2025 alle 13:30 UTC"
    # Zones the database abbreviates with digits only get their offset.
    assert domain.local_time(moment, "America/Sao_Paulo", "en") == "12 Dec 2025 at 10:30 UTC-03:00"
    assert domain.local_time(moment, "Asia/Kathmandu", "en") == "12 Dec 2025 at 19:15 UTC+05:45"


def test_the_acknowledgment_quotes_the_end_of_the_conversation_without_the_platforms_notices() -> None:
    said = [
        TranscriptLine(seq=n, sender=Sender.CUSTOMER if n % 2 else Sender.AI, text=f"messaggio {n}")
        for n in range(1, 9)
    ]
    notice = TranscriptLine(seq=9, sender=Sender.SYSTEM, text="Nessun operatore disponibile")
    excerpt = TranscriptExcerpt(lines=[*said, notice], total_messages=30, transcript_url="/internal/x")
    tail = domain.transcript_tail(excerpt)
    assert [(q.sender, q.text) for q in tail] == [
        ("ai" if n % 2 == 0 else "customer", f"messaggio {n}") for n in range(3, 9)
    ]
    assert domain.transcript_tail(None) == []


def test_a_tickets_thread_is_named_by_the_ticket_in_the_senders_domain() -> None:
    ticket_id = uuid.uuid4()
    assert domain.ticket_thread_id(ticket_id, "lucinedinatale.it") == f"<ticket-{ticket_id}@lucinedinatale.it>"


def test_a_webhook_carries_ids_and_statuses_and_no_contact_details() -> None:
    opened = TicketOpened(
        ticket_id=uuid.uuid4(),
        ticket_number="TCK-2025-000001",
        contact=ContactDetails(name="Giulia Rossi", email="giulia@example.com", phone="+39 333 1234567"),
        subject="Biglietti per il 24 dicembre",
    )
    event_id, conversation_id = uuid.uuid4(), uuid.uuid4()
    body = domain.webhook_body(
        opened.event_type,
        event_id=event_id,
        tenant_id="lucine-di-natale",
        conversation_id=conversation_id,
        occurred_at=datetime(2025, 12, 1, tzinfo=UTC),
        payload=opened,
    )
    assert body["type"] == "tickets.ticket_opened"
    assert body["data"] == {
        "event_id": str(event_id),
        "tenant_id": "lucine-di-natale",
        "conversation_id": str(conversation_id),
        "ticket_id": str(opened.ticket_id),
        "ticket_number": "TCK-2025-000001",
        "priority": "normal",
        "source": "conversation",
    }
    text = str(body)
    assert "Giulia" not in text
    assert "example.com" not in text
    # The phone's digits, not "333" alone: a random UUID can contain that.
    assert "+39" not in text
    assert "1234567" not in text
    assert "dicembre" not in text


def test_a_tickets_subject_in_an_email_subject_is_one_line_cut_to_a_list_lines_length() -> None:
    assert domain.subject_line("  Biglietti per\nil 24 dicembre ") == "Biglietti per il 24 dicembre"
    long = domain.subject_line("parola " * 40)
    assert len(long) == domain.SUBJECT_LINE_CHARS
    assert long.startswith("parola parola")
    assert long.endswith("…")
    assert domain.subject_line("") == ""
