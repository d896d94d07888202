"""The signed status link: what the notifier signs, the tickets service accepts, and nothing else."""

from __future__ import annotations

import uuid

import pytest
from itsdangerous import URLSafeTimedSerializer

from contracts import ticketlinks
from contracts.ticketlinks import InvalidTicketLinkError, TicketLink

SECRET = "a-secret-of-at-least-sixteen"


def test_a_signed_link_names_its_tenant_and_ticket() -> None:
    link = TicketLink(tenant_id="lucine-di-natale", ticket_id=uuid.uuid4())
    assert ticketlinks.verify(SECRET, ticketlinks.sign(SECRET, link)) == link


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),  # altered signature
        lambda token: "x" + token,  # altered payload
        lambda token: "",
        lambda token: "not-a-token",
    ],
)
def test_an_altered_token_is_refused(tamper: object) -> None:
    token = ticketlinks.sign(SECRET, TicketLink(tenant_id="t", ticket_id=uuid.uuid4()))
    with pytest.raises(InvalidTicketLinkError):
        ticketlinks.verify(SECRET, tamper(token))  # type: ignore[operator]


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = ticketlinks.sign("another-secret-of-sixteen", TicketLink(tenant_id="t", ticket_id=uuid.uuid4()))
    with pytest.raises(InvalidTicketLinkError):
        ticketlinks.verify(SECRET, token)


def test_an_expired_token_is_refused() -> None:
    token = ticketlinks.sign(SECRET, TicketLink(tenant_id="t", ticket_id=uuid.uuid4()))
    with pytest.raises(InvalidTicketLinkError):
        ticketlinks.verify(SECRET, token, max_age_seconds=-1)


def test_a_well_signed_token_of_another_shape_is_refused() -> None:
    # Signed with the right secret and salt, but not a [tenant, ticket id] pair.
    token = URLSafeTimedSerializer(SECRET, salt="ticket-status-link").dumps({"ticket": "TCK-2026-000001"})
    with pytest.raises(InvalidTicketLinkError):
        ticketlinks.verify(SECRET, token)


def test_status_page_url() -> None:
    assert ticketlinks.status_page_url("http://localhost:8080/", "abc") == "http://localhost:8080/tickets/status?t=abc"
