"""Flow C end to end: a customer's contact details become a ticket (gateway, conversation and
tickets as real processes over Kafka); the customer is told its number and the ticket can be
looked up by it."""

from __future__ import annotations

import re

import httpx
import pytest

from contracts.readapi import PublicTicketView, TicketListView
from devkit.stack import Stack
from devkit.widget_client import Stream, start_conversation

from .conftest import DEMO_TENANT, DEMO_WIDGET_KEY

pytestmark = pytest.mark.e2e


async def test_contact_details_open_one_ticket_and_the_customer_is_told_its_number(
    gateway: httpx.AsyncClient, stack: Stack
) -> None:
    conversation = await start_conversation(gateway, stack.url("gateway"), DEMO_WIDGET_KEY, "it")
    details = {"name": "Anna", "email": "Anna@Example.com", "preferred_contact": "email", "message": "Rimborso urgente"}
    async with Stream(conversation.stream_url()) as stream:
        await conversation.post("Vorrei un rimborso del biglietto")
        await stream.message_from("ai")
        assert (await conversation.action("request_operator")).status_code == 202
        await stream.receive_until(lambda f: f.get("type") == "status" and f["status"] in ("QUEUED", "TICKET_PENDING"))
        url = f"/v1/conversations/{conversation.conversation_id}/ticket"
        for _ in range(2):  # a double submit opens one ticket
            assert (await gateway.post(url, json=details, headers=conversation.auth)).status_code == 202
        await stream.receive_until(lambda f: f.get("type") == "status" and f["status"] == "TICKET_CREATED", 60)
        frame = await stream.receive_until(
            lambda f: (
                f.get("type") == "message" and f["message"]["sender"] == "system" and "TCK-" in f["message"]["text"]
            )
        )
    match = re.search(r"TCK-\d{4}-\d{6,}", frame["message"]["text"])
    assert match, frame
    number = match.group(0)

    async with httpx.AsyncClient(base_url=stack.url("tickets"), timeout=15) as tickets:
        listed = await tickets.get("/internal/tickets", params={"tenant_id": DEMO_TENANT, "q": "anna@example.com"})
        mine = [t for t in TicketListView.model_validate(listed.json()).tickets if t.conversation_id is not None]
        ours = [t for t in mine if str(t.conversation_id) == conversation.conversation_id]
        assert [t.ticket_number for t in ours] == [number], "one ticket for the double submit"
        assert ours[0].priority == "urgent"
        lookup = await tickets.post(
            "/internal/tickets/lookup",
            json={"tenant_id": DEMO_TENANT, "ticket_number": number, "email": "anna@example.com"},
        )
    assert lookup.status_code == 200, lookup.text
    assert PublicTicketView.model_validate(lookup.json()).status == "OPEN"
