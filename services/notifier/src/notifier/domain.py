"""The notifier's rules, free of I/O: which channel reaches a customer, in which language, the
delivery's idempotency key, what a recipient looks like masked, the back-off between tries and what
a webhook carries."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from contracts.common import ContactChannel, ContactDetails, DeliveryChannel
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


def customer_reach(contact: ContactDetails, *, sms_from: bool, whatsapp_from: bool, country_code: str) -> Reach | None:
    """The channel the customer asked for when the tenant can send on it, else the next best:
    `phone` means a person will call, so the written notice goes by email, else by SMS."""
    email = Reach(DeliveryChannel.EMAIL, contact.email) if contact.email else None
    phone = e164(contact.phone, country_code) if contact.phone else None
    sms = Reach(DeliveryChannel.SMS, phone) if phone and sms_from else None
    whatsapp = Reach(DeliveryChannel.WHATSAPP, phone) if phone and whatsapp_from else None
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
    """A promised time as the customer reads it, in the tenant's time zone."""
    local = moment.astimezone(ZoneInfo(timezone))
    if language_code == "it":
        return local.strftime("%d/%m/%Y alle %H:%M")
    return local.strftime("%d %b %Y at %H:%M")


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
