"""The signed link to a ticket's public status page, carried by every email about the ticket.

The notifier signs it and the tickets service checks it, with one shared secret
(`TICKET_LINK_SECRET`), so its format is a contract between the two. The token names the tenant
and the ticket, expires (`max_age_seconds`), and cannot be forged or altered without the secret;
it grants what the ticket number plus the customer's email grants: the status, the public
replies, and answering.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

_SALT = "ticket-status-link"
DEFAULT_MAX_AGE_SECONDS = 60 * 60 * 24 * 90  # a customer may answer a mail months later


class InvalidTicketLinkError(Exception):
    """The token is malformed, forged, altered or expired."""


@dataclass(frozen=True)
class TicketLink:
    tenant_id: str
    ticket_id: uuid.UUID


def _serializer(secret: str) -> URLSafeTimedSerializer:
    if len(secret) < 16:
        raise ValueError("the ticket-link secret must be at least 16 characters")
    return URLSafeTimedSerializer(secret, salt=_SALT)


def sign(secret: str, link: TicketLink) -> str:
    """A URL-safe token for `link`."""
    return _serializer(secret).dumps([link.tenant_id, str(link.ticket_id)])


def verify(secret: str, token: str, max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS) -> TicketLink:
    """The ticket `token` names; `InvalidTicketLinkError` when it is not one this secret signed
    within `max_age_seconds`."""
    try:
        tenant_id, ticket_id = _serializer(secret).loads(token, max_age=max_age_seconds)
        return TicketLink(tenant_id=str(tenant_id), ticket_id=uuid.UUID(str(ticket_id)))
    except (BadSignature, ValueError, TypeError) as error:
        raise InvalidTicketLinkError(str(error)) from error


def status_page_url(public_base_url: str, token: str) -> str:
    """The gateway's public status page opened on the ticket of `token`."""
    return f"{public_base_url.rstrip('/')}/tickets/status?t={token}"
