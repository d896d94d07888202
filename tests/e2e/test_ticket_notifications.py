"""Flow C with its notifications, end to end on real processes: with nobody online, a customer who
asks for a person leaves contact details in the widget; the ticket opens with the transcript, the
confirmation reaches the customer (email, or WhatsApp through a Twilio-like API) in their language
with the signed status link, a copy of their request and the promised time in the tenant's named
zone; an operator's reply reaches them the same way, threaded under the confirmation, and makes
the ticket theirs and in progress; the tenant's webhook receiver verifies every request and
refuses replayed and tampered ones; the customer answers through the link and the ticket reopens
to that operator. Operators see it all on their stream as `ticket` frames.

The notifier sends to real servers on loopback (`ticket_stack` in conftest.py). A double submit of
the contact details opens one ticket (test_ticket_flow.py); here it also sends one confirmation.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from email.message import EmailMessage

import httpx
import pytest

from contracts.readapi import TicketView
from devkit.receivers import Received
from devkit.stack import Stack
from devkit.testing import eventually
from devkit.widget_client import Stream, WidgetConversation, start_conversation

from .conftest import DEMO_TENANT, DEMO_WIDGET_KEY, WEBHOOK_MAX_AGE_SECONDS, Outside

pytestmark = pytest.mark.e2e

GIULIA = ("giulia", "lucine-demo-giulia")
GIULIA_ID = "lucine-giulia"
STATUS_LINK = re.compile(r"(http://127\.0\.0\.1:\d+/tickets/status\?t=)([A-Za-z0-9_.\-]+)")


async def access_token(gateway: httpx.AsyncClient, account: tuple[str, str]) -> dict[str, str]:
    response = await gateway.post("/v1/operators/login", json={"username": account[0], "password": account[1]})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def nobody_online(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url("routing"), timeout=10) as routing:

        async def all_offline() -> bool:
            operators = (await routing.get("/internal/operators", params={"tenant_id": DEMO_TENANT})).json()
            return all(o["presence"] == "offline" for o in operators)

        await eventually(all_offline, 30, "no operator online")


async def leave_a_ticket(
    gateway: httpx.AsyncClient, stack: Stack, locale: str, question: str, details: dict[str, str]
) -> tuple[WidgetConversation, str]:
    """The customer asks the assistant, then for a person; nobody is online, so the widget offers
    the ticket form (TICKET_PENDING); the details are submitted twice (a double click). The
    conversation and the number the customer is told."""
    conversation = await start_conversation(gateway, stack.url("gateway"), DEMO_WIDGET_KEY, locale)
    async with Stream(conversation.stream_url()) as stream:
        assert (await conversation.post(question)).status_code == 202
        await stream.message_from("ai", timeout=30)
        assert (await conversation.action("request_operator")).status_code == 202
        await stream.receive_until(lambda f: f.get("type") == "status" and f["status"] == "TICKET_PENDING", 30)
        url = f"/v1/conversations/{conversation.conversation_id}/ticket"
        submits = await asyncio.gather(*(gateway.post(url, json=details, headers=conversation.auth) for _ in range(2)))
        assert [r.status_code for r in submits] == [202, 202], [r.text for r in submits]
        await stream.receive_until(lambda f: f.get("type") == "status" and f["status"] == "TICKET_CREATED", 60)
        told = await stream.receive_until(
            lambda f: f.get("type") == "message" and re.search(r"TCK-\d{4}-\d{6,}", f["message"]["text"]), 30
        )
    number = re.search(r"TCK-\d{4}-\d{6,}", told["message"]["text"])
    assert number is not None
    return conversation, number.group(0)


async def ticket_of(gateway: httpx.AsyncClient, operator: dict[str, str], number: str) -> TicketView:
    listed = await gateway.get("/v1/tickets", params={"q": number}, headers=operator)
    assert listed.status_code == 200, listed.text
    (summary,) = [t for t in listed.json()["tickets"] if t["ticket_number"] == number]
    detail = await gateway.get(f"/v1/tickets/{summary['ticket_id']}", headers=operator)
    assert detail.status_code == 200, detail.text
    return TicketView.model_validate(detail.json())


async def mails_to(outside: Outside, address: str, count: int) -> list[EmailMessage]:
    found: list[EmailMessage] = []

    def arrived() -> bool:
        found[:] = [mail for mail in outside.mail.mails() if mail["To"] == address]
        return len(found) >= count

    await eventually(arrived, 30, f"{count} mail(s) to {address}")
    return found


def plain(mail: EmailMessage) -> str:
    body = mail.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


async def status_of(gateway: httpx.AsyncClient, operator: dict[str, str], ticket_id: uuid.UUID, wanted: str) -> None:
    async def reached() -> bool:
        response = await gateway.get(f"/v1/tickets/{ticket_id}", headers=operator)
        return bool(response.json()["status"] == wanted)

    await eventually(reached, 30, f"ticket {ticket_id} {wanted}")


def webhooks_about(outside: Outside, ticket_id: uuid.UUID, event_type: str) -> list[Received]:
    requests = []
    for request in outside.webhooks.requests:
        body = json.loads(request.body)
        if body["type"] == event_type and body["data"]["ticket_id"] == str(ticket_id):
            requests.append(request)
    return requests


async def test_a_ticket_left_in_the_widget_is_confirmed_answered_verified_by_webhook_and_reopened_by_its_link(
    ticket_stack: Stack, outside: Outside
) -> None:
    stack = ticket_stack
    await nobody_online(stack)
    email = f"emma.clark.{uuid.uuid4().hex[:6]}@example.com"
    phone = "+39 333 " + str(uuid.uuid4().int % 10**7).zfill(7)
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=15) as gateway:
        operator = await access_token(gateway, GIULIA)
        token = operator["Authorization"].removeprefix("Bearer ")
        feed_url = stack.url("gateway").replace("http://", "ws://") + f"/v1/operators/stream?access_token={token}"
        async with Stream(feed_url) as feed:
            await feed.receive_until(lambda f: f.get("type") == "ready")

            # ---- a customer who writes in English and prefers email
            details = {"name": "Emma Clark", "email": email, "preferred_contact": "email", "message": "Booking 4471"}
            by_email, number = await leave_a_ticket(
                gateway, stack, "en", "Can I move my booking to another evening?", details
            )
            ticket = await ticket_of(gateway, operator, number)
            assert str(ticket.conversation_id) == by_email.conversation_id
            assert ticket.transcript is not None
            lines = [(line.sender, line.text) for line in ticket.transcript.lines]
            assert ("customer", "Can I move my booking to another evening?") in lines, lines
            assert ticket.transcript.total_messages >= len(lines) > 1
            assert (ticket.contact.email, ticket.language, ticket.status) == (email, "en", "OPEN")

            # The operators' feed tells of it: ids, number, status and priority, no contact.
            opened = await feed.receive_until(
                lambda f: f.get("type") == "ticket" and f["event"] == "ticket_opened" and f["ticket_number"] == number
            )
            assert opened["ticket_id"] == str(ticket.ticket_id)
            assert opened["data"]["status"] == "OPEN"
            assert "emma" not in json.dumps(opened).lower()

            (confirmation,) = await mails_to(outside, email, 1)
            assert confirmation["Subject"] == f"[{number}] Booking 4471", "the request's first line names it"
            assert confirmation["Message-ID"] == f"<ticket-{ticket.ticket_id}@lucinedinatale.it>"
            text = plain(confirmation)
            assert "Hello Emma Clark," in text
            assert number in text
            assert "Your request:\n> Booking 4471\n" in text.replace("\r\n", "\n"), "a copy of what they wrote"
            assert "You: Can I move my booking to another evening?" in text, "the end of the conversation"
            assert re.search(r"We will answer by \d\d \w{3} \d{4} at \d\d:\d\d CES?T\.", text), "Rome time, named"
            link = STATUS_LINK.search(text)
            assert link is not None, text
            assert link.group(1) == stack.url("gateway") + "/tickets/status?t="
            status = await gateway.get("/v1/tickets/by-link", params={"t": link.group(2)})
            assert status.status_code == 200, status.text
            assert (status.json()["ticket_number"], status.json()["status"]) == (number, "OPEN")

            # ---- an operator's reply reaches the customer by email
            reply_text = f"Of course: the 23rd is free. Ref {uuid.uuid4().hex[:6]}"
            answered = await gateway.post(
                f"/v1/tickets/{ticket.ticket_id}/replies", json={"text": reply_text}, headers=operator
            )
            assert answered.status_code == 202, answered.text
            _, reply_mail = await mails_to(outside, email, 2)
            assert reply_mail["Subject"] == "Re: " + confirmation["Subject"], "one subject for the thread"
            # In the confirmation's thread in the customer's mail client.
            assert reply_mail["In-Reply-To"] == reply_mail["References"] == confirmation["Message-ID"]
            assert reply_text in plain(reply_mail)
            assert STATUS_LINK.search(plain(reply_mail)) is not None
            await asyncio.sleep(1)
            assert len(await mails_to(outside, email, 2)) == 2, "one confirmation for the double submit, one reply"
            # Answering is working on it: the open, unassigned ticket is now in progress and hers.
            await status_of(gateway, operator, ticket.ticket_id, "IN_PROGRESS")
            started = await feed.receive_until(
                lambda f: (
                    f.get("type") == "ticket"
                    and f["ticket_id"] == str(ticket.ticket_id)
                    and f["event"] == "ticket_updated"
                    and f["data"]["status"] == "IN_PROGRESS"
                )
            )
            assert (started["data"]["previous_status"], started["data"]["changed_by"]) == ("OPEN", GIULIA_ID)
            assert started["data"]["assignee_id"] == GIULIA_ID

            # ---- the customer answers through the link of the email: a waiting ticket reopens to her
            waiting = await gateway.patch(
                f"/v1/tickets/{ticket.ticket_id}", json={"status": "WAITING_CUSTOMER"}, headers=operator
            )
            assert waiting.status_code == 202, waiting.text
            await status_of(gateway, operator, ticket.ticket_id, "WAITING_CUSTOMER")
            answer = {"t": link.group(2), "text": "Thank you, the 23rd is perfect.", "reply_id": str(uuid.uuid4())}
            posted = await gateway.post("/v1/tickets/by-link/replies", json=answer)
            assert posted.status_code == 202, posted.text
            await status_of(gateway, operator, ticket.ticket_id, "IN_PROGRESS")
            reopened = await feed.receive_until(
                lambda f: (
                    f.get("type") == "ticket"
                    and f["ticket_id"] == str(ticket.ticket_id)
                    and f["event"] == "ticket_updated"
                    and f["data"]["previous_status"] == "WAITING_CUSTOMER"
                )
            )
            assert (reopened["data"]["status"], reopened["data"]["assignee_id"]) == ("IN_PROGRESS", GIULIA_ID)
            assert (reopened["data"]["previous_status"], reopened["data"]["changed_by"]) == (
                "WAITING_CUSTOMER",
                "customer",
            )
            assert any(
                f.get("type") == "ticket" and f["event"] == "reply_posted" and f["ticket_id"] == str(ticket.ticket_id)
                for f in feed.frames
            ), "the customer's answer is on the feed (without its text)"
            assert "the 23rd is perfect" not in json.dumps(feed.frames)
            stored = TicketView.model_validate(
                (await gateway.get(f"/v1/tickets/{ticket.ticket_id}", headers=operator)).json()
            )
            assert [(r.author, r.text) for r in stored.replies] == [
                ("operator", reply_text),
                ("customer", "Thank you, the 23rd is perfect."),
            ]

            # ---- a customer who writes in Italian and prefers WhatsApp
            details = {"name": "Luca Neri", "phone": phone, "preferred_contact": "whatsapp"}
            by_whatsapp, second = await leave_a_ticket(
                gateway, stack, "it", "Posso cambiare la data della visita?", details
            )
            whatsapp_ticket = await ticket_of(gateway, operator, second)
            to = "whatsapp:+39" + phone.removeprefix("+39 ").replace(" ", "")

            def whatsapps() -> list[dict[str, str]]:
                return [m for m in outside.twilio.messages() if m["To"] == to]

            await eventually(lambda: len(whatsapps()) >= 1, 30, "the confirmation on WhatsApp")
            (created,) = whatsapps()
            assert created["From"] == "whatsapp:+14155238886"
            assert created["Body"].startswith(f"Lucine di Natale: richiesta {second} ricevuta.")
            whatsapp_link = STATUS_LINK.search(created["Body"])
            assert whatsapp_link is not None, created

            reply_text = f"Certo, le spostiamo la visita al 22. Rif. {uuid.uuid4().hex[:6]}"
            answered = await gateway.post(
                f"/v1/tickets/{whatsapp_ticket.ticket_id}/replies", json={"text": reply_text}, headers=operator
            )
            assert answered.status_code == 202, answered.text
            await eventually(lambda: len(whatsapps()) >= 2, 30, "the operator's reply on WhatsApp")
            replied = whatsapps()[1]
            assert replied["Body"].startswith(f"Lucine di Natale, richiesta {second}: {reply_text}")
            assert STATUS_LINK.search(replied["Body"]) is not None

            # Resolved, then the customer answers through the link: it reopens.
            resolved = await gateway.patch(
                f"/v1/tickets/{whatsapp_ticket.ticket_id}", json={"status": "RESOLVED"}, headers=operator
            )
            assert resolved.status_code == 202, resolved.text
            await status_of(gateway, operator, whatsapp_ticket.ticket_id, "RESOLVED")
            await eventually(lambda: len(whatsapps()) >= 3, 30, "the resolution on WhatsApp")
            assert "è risolta" in whatsapps()[2]["Body"]
            answer = {"t": whatsapp_link.group(2), "text": "In realtà no, il 22 non va.", "reply_id": str(uuid.uuid4())}
            assert (await gateway.post("/v1/tickets/by-link/replies", json=answer)).status_code == 202
            await status_of(gateway, operator, whatsapp_ticket.ticket_id, "IN_PROGRESS")  # to who answered it
            assert str(whatsapp_ticket.conversation_id) == by_whatsapp.conversation_id

    # ---- the tenant's webhook receiver: every request verified, replays and tampering refused
    receiver = outside.webhooks

    def opened_hooks() -> list[Received]:
        return webhooks_about(outside, ticket.ticket_id, "tickets.ticket_opened")

    await eventually(opened_hooks, 30, "the ticket_opened webhook")
    captured = opened_hooks()[0]
    webhook_id = captured.headers["webhook-id"]
    assert webhook_id in receiver.processed, receiver.refused
    data = receiver.processed[webhook_id]["data"]
    assert (data["ticket_id"], data["ticket_number"]) == (str(ticket.ticket_id), number)
    assert email not in captured.body.decode(), "webhooks carry ids and statuses, never the contact"
    assert receiver.refused == [], "every request of the notifier verifies"
    for event_type in ("tickets.ticket_updated", "tickets.reply_posted"):
        hooks = webhooks_about(outside, ticket.ticket_id, event_type)
        assert hooks, event_type
        assert all(hook.headers["webhook-id"] in receiver.processed for hook in hooks)

    refused_before = len(receiver.refused)
    # The same request again, at once: acknowledged (so a sender's retry stops), not processed again.
    assert receiver.replay(captured) == 200
    assert receiver.repeats == [webhook_id]
    # Tampered: another body, a fresh timestamp (to pass for new), another id (to dodge the
    # dedup): the signature covers all three.
    tampered_body = captured.body.replace(number.encode(), b"TCK-2020-000001")
    assert tampered_body != captured.body
    assert receiver.replay(captured, body=tampered_body) == 401
    assert receiver.replay(captured, headers={"webhook-timestamp": str(int(time.time()))}) == 401
    assert receiver.replay(captured, headers={"webhook-id": f"msg_{uuid.uuid4().hex}"}) == 401
    assert receiver.replay(captured, headers={"webhook-signature": "v1,"}) == 401
    # Replayed later, as it was: too old.
    await asyncio.sleep(max(0.0, captured.at + WEBHOOK_MAX_AGE_SECONDS + 1 - time.time()))
    assert receiver.replay(captured) == 401
    assert receiver.repeats == [webhook_id], "none of those was processed"
    assert receiver.refused[refused_before:] == ["No matching signature found"] * 4 + ["Message timestamp too old"]


async def test_the_widget_offers_the_channels_the_stacks_notifier_can_send_on(
    ticket_stack: Stack, stack: Stack
) -> None:
    """The gateway asks the real notifier: this stack's has Twilio and the demo tenant's senders
    (WhatsApp and SMS besides email); the plain stack's has no Twilio account (email only)."""
    for running, expected in ((ticket_stack, ["email", "whatsapp", "sms"]), (stack, ["email"])):
        async with httpx.AsyncClient(base_url=running.url("gateway"), timeout=15) as gateway:
            response = await gateway.get("/v1/widget/config", headers={"X-Widget-Key": DEMO_WIDGET_KEY})
            assert response.status_code == 200, response.text
            assert response.json()["channels"] == expected
