"""Client of the tickets service's internal API (the gateway never reads its tables).

Operators read a tenant's tickets (`TicketListView`, `TicketView`); the public status page reads
one ticket by its number and the customer's email or phone, or by the signed link of an email
(`PublicTicketView`). For those two the tickets service answers one and the same 404 whatever
was wrong, and so does the gateway: `None` here, never a reason.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid

from itsdangerous import URLSafeTimedSerializer

from contracts.readapi import PublicTicketView, TicketLinkRequest, TicketListView, TicketLookupRequest, TicketView
from contracts.ticketlinks import TicketLink
from gateway.internal import InternalApi, InternalResponse, QueryValue


class TicketsClient:
    def __init__(self, api: InternalApi) -> None:
        self._api = api

    async def tickets(self, tenant_id: str, filters: dict[str, QueryValue]) -> TicketListView:
        response = await self._request("GET", "/internal/tickets", params={"tenant_id": tenant_id, **filters})
        view = self._api.parse(TicketListView, response)
        # Defence in depth: whatever the service answered, nothing of another tenant goes out.
        view.tickets = [ticket for ticket in view.tickets if ticket.tenant_id == tenant_id]
        return view

    async def ticket(self, tenant_id: str, ticket_id: uuid.UUID) -> TicketView | None:
        """The ticket if it is of `tenant_id`; None for an unknown one and another tenant's alike."""
        response = await self._request("GET", f"/internal/tickets/{ticket_id}", params={"tenant_id": tenant_id})
        if response.status == 404:
            return None
        view = self._api.parse(TicketView, response)
        return view if view.tenant_id == tenant_id else None

    async def lookup(self, request: TicketLookupRequest) -> PublicTicketView | None:
        response = await self._request("POST", "/internal/tickets/lookup", json=request.model_dump(mode="json"))
        # 422: the contact given is not even an email or a phone number; nothing matches it either.
        return None if response.status in {404, 422} else self._api.parse(PublicTicketView, response)

    async def by_link(self, token: str) -> PublicTicketView | None:
        request = TicketLinkRequest(token=token)
        response = await self._request("POST", "/internal/tickets/link", json=request.model_dump(mode="json"))
        return None if response.status == 404 else self._api.parse(PublicTicketView, response)

    async def _request(
        self, method: str, path: str, *, params: dict[str, QueryValue] | None = None, json: object = None
    ) -> InternalResponse:
        return await self._api.request(method, path, params=params, json=json)


# Any key reads the payload: only the signature check needs the secret, and that is not done here.
_PAYLOAD_READER = URLSafeTimedSerializer("payload-only-no-signature-check")


def verified_link_claims(token: str) -> TicketLink | None:
    """The tenant and the ticket a status-link token names, read without the link secret (only
    the notifier and the tickets service hold it). Call it only once the tickets service accepted
    this very token: its signature covers the payload, so the payload is then authentic."""
    _, payload = _PAYLOAD_READER.loads_unsafe(token)
    try:
        tenant_id, ticket_id = payload
        return TicketLink(tenant_id=str(tenant_id), ticket_id=uuid.UUID(str(ticket_id)))
    except (ValueError, TypeError):
        return None


# The start of a link's payload (`["<tenant_id>","<ticket_id>"]`, contracts.ticketlinks): enough
# to name the tenant even when the rest of the token is lost.
_CLAIMED_TENANT = re.compile(r'^\["([a-z0-9][a-z0-9-]{1,62})",')


def claimed_link_tenant(token: str) -> str | None:
    """The tenant a status-link token says it is of, unchecked, read from as much of its payload as
    is there: a bad, expired or cut link (a mail client may break a long address) still tells the
    page which tenant's lookup form to offer (public, as `?tenant=` gives it), so the customer is
    not left at a dead end. It grants nothing: a ticket is read only by a token the tickets
    service accepted, or by its number and contact."""
    payload = token.strip().split(".", 1)[0]
    whole = payload[: len(payload) // 4 * 4]  # base64 decodes by groups of four characters
    try:
        text = base64.urlsafe_b64decode(whole).decode("utf-8", errors="ignore")
    except (ValueError, binascii.Error):
        return None
    found = _CLAIMED_TENANT.match(text)
    return found[1] if found else None
