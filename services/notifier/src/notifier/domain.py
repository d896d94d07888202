"""The notifier's rules, free of I/O: which channel reaches a customer, in which language, the
delivery's idempotency key, what a recipient looks like masked, the back-off between tries, how
times are written, what the acknowledgment quotes, how a ticket's emails thread and what a webhook
carries."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, get_args
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from contracts.common import ContactChannel, ContactDetails, DeliveryChannel, Sender, TranscriptExcerpt, shortened
from contracts.envelope import Payload
from contracts.events import AccountEmailKind

TEMPLATE_LANGUAGES = ("it", "en")
# The platform's account emails (their template is their kind): sent under the platform's sender.
ACCOUNT_TEMPLATES = frozenset(get_args(AccountEmailKind))


def delivery_id(source_event_id: uuid.UUID, channel: DeliveryChannel, template: str, recipient: str) -> uuid.UUID:
    """One delivery per (event, channel, template, recipient): the same on every redelivery of the
    event, stored under a unique constraint, and the Message-ID / `webhook-id` a receiver sees."""
    return uuid.uuid5(source_event_id, f"{channel.value}:{template}:{recipient}")


@dataclass(frozen=True)
class Reach:
    channel: DeliveryChannel
    recipient: str  # an email address, or a phone number in E.164


@dataclass(frozen=True)
class PhoneSenders:
    """The phone channels the notifier can send on for a tenant: the one rule that both the
    customer's reach and the channels the widget offers follow."""

    sms: bool = False
    whatsapp: bool = False

    @classmethod
    def of(cls, *, twilio_enabled: bool, sms_from: str | None, whatsapp_from: str | None) -> PhoneSenders:
        """Twilio configured and the tenant's own sender number: either alone sends nothing."""
        return cls(sms=twilio_enabled and sms_from is not None, whatsapp=twilio_enabled and whatsapp_from is not None)

    def written_channels(self) -> list[ContactChannel]:
        """Where a customer can be written to, in the widget's order: email always (a tenant with
        no file sends from the platform's address), then WhatsApp and SMS when they can be sent."""
        phone = [(ContactChannel.WHATSAPP, self.whatsapp), (ContactChannel.SMS, self.sms)]
        return [ContactChannel.EMAIL, *(channel for channel, available in phone if available)]


def customer_reach(contact: ContactDetails, senders: PhoneSenders, country_code: str) -> Reach | None:
    """The channel the customer asked for when the tenant can send on it, else the next best:
    `phone` means a person will call, so the written notice goes by email, else by SMS."""
    email = Reach(DeliveryChannel.EMAIL, contact.email) if contact.email else None
    phone = e164(contact.phone, country_code) if contact.phone else None
    sms = Reach(DeliveryChannel.SMS, phone) if phone and senders.sms else None
    whatsapp = Reach(DeliveryChannel.WHATSAPP, phone) if phone and senders.whatsapp else None
    preference: tuple[Reach | None, ...] = {
        ContactChannel.EMAIL: (email, sms, whatsapp),
        ContactChannel.WHATSAPP: (whatsapp, sms, email),
        ContactChannel.SMS: (sms, whatsapp, email),
        ContactChannel.PHONE: (email, sms, whatsapp),
    }[contact.preferred_contact]
    return next((reach for reach in preference if reach is not None), None)


def e164(phone: str, country_code: str) -> str:
    """`+39 333 123-4567` → `+393331234567`; a number without a country code gets the tenant's."""
    digits = re.sub(r"[^0-9+]", "", phone)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if not digits.startswith("+"):
        # A national number: the trunk 0 goes, except in Italy, where it is part of the number.
        digits = country_code + (digits if country_code == "+39" else digits.lstrip("0"))
    return "+" + digits.replace("+", "")


def language(ticket_language: str | None, tenant_languages: list[str]) -> str:
    """The ticket's language when there are templates for it, else the tenant's first that has."""
    for candidate in (ticket_language, *tenant_languages):
        if candidate in TEMPLATE_LANGUAGES:
            return candidate
    return TEMPLATE_LANGUAGES[0]


def mask(channel: DeliveryChannel, recipient: str) -> str:
    """What the delivery log and `DeliveryCompleted` show of a recipient."""
    if channel == DeliveryChannel.EMAIL:
        local, _, domain = recipient.partition("@")
        return f"{local[:1]}***@{domain}"
    if channel == DeliveryChannel.WEBHOOK:
        return urlsplit(recipient).hostname or "webhook"
    return f"{recipient[:3]} *** **{recipient[-2:]}"


def backoff_seconds(
    attempts: int, base: float, cap: float, uniform: Callable[[float, float], float] = random.uniform
) -> float:
    """Seconds before the next try after `attempts` failed ones: doubling from `base`, at most
    `cap`, and between half and all of that at random, so that deliveries that failed together
    (an endpoint down) do not all come back at the same moment."""
    ceiling = min(cap, base * 2 ** max(attempts - 1, 0))
    return uniform(ceiling / 2, ceiling)


def local_time(moment: datetime, timezone: str, language_code: str) -> str:
    """A promised time as the customer reads it, in the tenant's time zone and naming it
    (`12/12/2025 alle 14:30 CET`): the customer may live in another zone."""
    local = moment.astimezone(ZoneInfo(timezone))
    if language_code == "it":
        return f"{local.strftime('%d/%m/%Y alle %H:%M')} {zone_label(local)}"
    return f"{local.strftime('%d %b %Y at %H:%M')} {zone_label(local)}"


def zone_label(local: datetime) -> str:
    """The zone of a local time as written next to it: its abbreviation that day (`CET`, `CEST`,
    `GMT`), or its offset (`UTC+05:30`) where the zone database has only digits (`+0530`)."""
    abbreviation = local.tzname() or ""
    if abbreviation.isalpha():
        return abbreviation
    offset = local.utcoffset() or timedelta(0)
    minutes = abs(int(offset.total_seconds())) // 60
    sign = "-" if offset < timedelta(0) else "+"
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


# ------------------------------------------------------------------------------- the acknowledgment

ACK_TRANSCRIPT_LINES = 6  # the end of the conversation in the acknowledgment: enough to recognise it


@dataclass(frozen=True)
class QuotedLine:
    sender: str  # `customer`, `ai` or `operator`: the templates name them in their language
    text: str


def transcript_tail(excerpt: TranscriptExcerpt | None, limit: int = ACK_TRANSCRIPT_LINES) -> list[QuotedLine]:
    """The last messages of the ticket's conversation, oldest first, for the acknowledgment; the
    platform's own notices (`system`) left out, they are not what anybody said."""
    if excerpt is None:
        return []
    said = [line for line in excerpt.lines if line.sender != Sender.SYSTEM and line.text.strip()]
    return [QuotedLine(line.sender.value, line.text.strip()) for line in said[-limit:]]


# ------------------------------------------------------------------------------------- threading

# A ticket's customer emails form one thread: the acknowledgment starts it under a Message-ID of
# the ticket, and the later ones answer it (`In-Reply-To`, `References`) under the same subject,
# "Re: " before it (`_thread_subject.txt`): some mail clients thread by subject as well.
THREAD_START = "ticket_created"
THREAD_FOLLOW_UPS = frozenset({"operator_replied", "ticket_resolved"})
SUBJECT_LINE_CHARS = 80  # of the ticket's subject in an email's: the rest of a long one is cut


def subject_line(subject: str) -> str:
    """The ticket's subject as an email subject shows it: one line, cut to a list line's length."""
    return shortened(" ".join(subject.split()), SUBJECT_LINE_CHARS)


def ticket_thread_id(ticket_id: uuid.UUID, mail_domain: str) -> str:
    """The acknowledgment's Message-ID: the same for every try and known to the later emails
    without looking anything up. `mail_domain` is the configured sender's, which keeps it unique
    to the tenant's mail (a machine's host name would leak and change between replicas)."""
    return f"<ticket-{ticket_id}@{mail_domain}>"


# What a webhook carries of each event: ids, statuses, times. No names, addresses, numbers,
# subjects or texts (a receiver that needs them reads the ticket through the API it is allowed).
WEBHOOK_FIELDS = (
    "ticket_id",
    "ticket_number",
    "status",
    "previous_status",
    "priority",
    "assignee_id",
    "source",
    "reply_id",
    "author",
    "note_id",
    "clock",
    "due_at",
    "first_response_due",
    "resolution_due",
)


def webhook_body(
    event_type: str,
    *,
    event_id: uuid.UUID,
    tenant_id: str,
    conversation_id: uuid.UUID | None,
    occurred_at: datetime,
    payload: Payload,
) -> dict[str, Any]:
    """The Standard Webhooks payload shape: `type`, `timestamp`, `data`."""
    fields = payload.model_dump(mode="json")
    data: dict[str, Any] = {"event_id": str(event_id), "tenant_id": tenant_id}
    if conversation_id is not None:
        data["conversation_id"] = str(conversation_id)
    data |= {name: fields[name] for name in WEBHOOK_FIELDS if fields.get(name) is not None}
    return {"type": event_type, "timestamp": occurred_at.isoformat(), "data": data}
