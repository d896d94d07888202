"""The public ticket status page in a real Chromium, against the whole running system: a ticket an
operator opened (gateway → tickets service over Kafka), looked up by its number and email on a
desktop, then opened from the signed link of an email on a phone, where the customer answers; a
new ticket shows what was asked and when an answer is due, and once that time has gone by, that
the answer comes as soon as possible; the replies are timed in the tenant's zone as the deadline
is; a bad link still offers the form."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from contracts.ticketlinks import TicketLink, sign
from devkit.stack import Stack

from .conftest import DEMO_TENANT

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
# The tickets service's link secret in the stack: its default unless the environment sets one.
LINK_SECRET = os.environ.get("TICKET_LINK_SECRET", "dev-secret-change-me")


async def operator(stack: Stack) -> httpx.AsyncClient:
    """A client of the gateway logged in as a demo operator (to be used in `async with`)."""
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=15) as http:
        login = await http.post("/v1/operators/login", json={"username": "giulia", "password": "lucine-demo-giulia"})
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    return httpx.AsyncClient(base_url=stack.url("gateway"), timeout=15, headers=headers)


async def until(probe: Any, timeout: float = 30) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if found := await probe():
            return found
        await asyncio.sleep(0.3)
    raise AssertionError("not in time")


async def open_ticket(http: httpx.AsyncClient, message: str) -> dict[str, Any]:
    """A ticket of the demo tenant an operator opened, once the tickets service lists it."""
    email = f"anna.{uuid.uuid4().hex[:6]}@example.com"
    opened = await http.post(
        "/v1/tickets",
        json={
            "client_request_id": uuid.uuid4().hex,
            "name": "Anna Rossi",
            "email": email,
            "preferred_contact": "email",
            "message": message,
            "language": "it",
        },
    )
    assert opened.status_code == 202, opened.text

    async def listed() -> dict[str, Any] | None:
        tickets = (await http.get("/v1/tickets", params={"q": email})).json()["tickets"]
        return tickets[0] if tickets else None

    return {**(await until(listed)), "email": email}


@pytest.fixture(scope="module")
async def ticket(stack: Stack) -> dict[str, Any]:
    """A ticket of the demo tenant opened by an operator, with one public reply already (which made
    it in progress)."""
    async with await operator(stack) as http:
        summary = await open_ticket(http, "Ha chiamato: vuole sapere se il parco è accessibile in carrozzina.")
        replied = await http.post(
            f"/v1/tickets/{summary['ticket_id']}/replies",
            json={"text": "Buongiorno Anna, sì: tutti i sentieri sono accessibili."},
        )
        assert replied.status_code == 202, replied.text

        async def answered() -> bool:
            return bool((await http.get(f"/v1/tickets/{summary['ticket_id']}")).json()["replies"])

        await until(answered)
    return summary


def part(page: Page, testid: str) -> Any:
    return page.get_by_test_id(testid)


async def test_a_customer_finds_the_ticket_by_number_and_email(
    browser: Browser, stack: Stack, ticket: dict[str, Any], tmp_path: Path
) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="it-IT")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{stack.url('gateway')}/tickets/status?tenant={DEMO_TENANT}")
    await expect(part(page, "tenant-name")).to_have_text("Lucine di Natale")
    await page.screenshot(path=str(tmp_path / "status-form-desktop.png"))

    # A wrong email: the one answer for anything wrong.
    await part(page, "lookup-number").fill(ticket["ticket_number"].lower())
    await part(page, "lookup-contact").fill("someone.else@example.com")
    await part(page, "lookup-submit").click()
    await expect(part(page, "lookup-error")).to_contain_text("Nessuna richiesta corrisponde")
    await expect(part(page, "ticket")).to_be_hidden()

    await part(page, "lookup-contact").fill(ticket["email"].upper())
    await part(page, "lookup-submit").click()
    await expect(part(page, "ticket")).to_be_visible()
    await expect(part(page, "ticket-number")).to_have_text(ticket["ticket_number"])
    await expect(part(page, "ticket-status")).to_have_text("In lavorazione")  # answered: being worked on
    replies = part(page, "reply-item")
    await expect(replies).to_have_count(1)
    await expect(replies.first).to_contain_text("tutti i sentieri sono accessibili")
    await expect(replies.first).to_have_attribute("data-author", "operator")
    await expect(part(page, "reply")).to_be_hidden()  # answering takes the link of an email
    await expect(part(page, "ticket-request")).to_have_text(
        "Ha chiamato: vuole sapere se il parco è accessibile in carrozzina."
    )
    await expect(part(page, "ticket-due")).to_be_hidden()  # answered: no promise left to keep
    await page.screenshot(path=str(tmp_path / "status-found-desktop.png"))
    assert errors == []
    await context.close()


async def test_from_the_emails_link_on_a_phone_the_customer_reads_and_answers(
    browser: Browser, stack: Stack, ticket: dict[str, Any], tmp_path: Path
) -> None:
    token = sign(LINK_SECRET, TicketLink(tenant_id=DEMO_TENANT, ticket_id=uuid.UUID(ticket["ticket_id"])))
    context = await browser.new_context(viewport={"width": 390, "height": 844}, locale="it-IT")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{stack.url('gateway')}/tickets/status?t={token}&lang=en")
    await expect(part(page, "ticket-number")).to_have_text(ticket["ticket_number"])
    await expect(part(page, "ticket-status")).to_have_text("In progress")  # English, as ?lang= asks
    await expect(part(page, "lookup")).to_be_hidden()
    await expect(part(page, "tenant-name")).to_have_text("Lucine di Natale")  # no ?tenant= in an email's link

    await part(page, "reply-submit").click()
    await expect(part(page, "reply-error")).to_have_text("Write a message.")
    await part(page, "reply-text").fill("Thank you! Is there parking for a disabled badge?")
    await page.screenshot(path=str(tmp_path / "status-link-phone.png"))
    await part(page, "reply-submit").click()
    await expect(part(page, "reply-sent")).to_be_visible()
    # Stored by the tickets service a moment later: the page reloads it and shows it as sent.
    mine = part(page, "reply-item").filter(has_text="parking for a disabled badge")
    await expect(mine).to_have_count(1)
    await expect(mine).not_to_have_attribute("data-pending", "true", timeout=20_000)
    await expect(mine).to_have_attribute("data-author", "customer")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "nothing sticks out of a phone's screen"
    await page.screenshot(path=str(tmp_path / "status-replied-phone.png"), full_page=True)

    # A forged link is the same "not found" as a wrong number.
    await page.goto(f"{stack.url('gateway')}/tickets/status?t={token[:-4]}AAAA&lang=en")
    await expect(part(page, "link-error")).to_contain_text("not valid or has expired")
    await expect(part(page, "ticket")).to_be_hidden()
    assert errors == []
    await context.close()


async def test_a_new_request_shows_what_was_asked_and_when_an_answer_is_due(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    message = "Buongiorno,\nvorrei sapere se il 24 dicembre il parco è aperto.\n<b>Grazie</b>"
    async with await operator(stack) as http:
        fresh = await open_ticket(http, message)
        detail = (await http.get(f"/v1/tickets/{fresh['ticket_id']}")).json()
    [due_iso] = [clock["due_at"] for clock in detail["sla"] if clock["clock"] == "first_response"]
    # As the acknowledgment email writes it: in the tenant's zone (Rome), naming it.
    due = datetime.fromisoformat(due_iso).astimezone(ZoneInfo("Europe/Rome"))
    zone = due.tzname()
    assert zone in {"CET", "CEST"}

    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="it-IT")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{stack.url('gateway')}/tickets/status?tenant={DEMO_TENANT}")
    await part(page, "lookup-number").fill(fresh["ticket_number"])
    await part(page, "lookup-contact").fill(fresh["email"])
    await part(page, "lookup-submit").click()
    await expect(part(page, "ticket-status")).to_have_text("Aperta")
    await expect(part(page, "ticket-due")).to_have_text(f"Ti risponderemo entro il {due:%d/%m/%Y alle %H:%M} {zone}.")
    await expect(part(page, "ticket-request")).to_have_text(message)  # as plain text, lines kept
    assert await part(page, "ticket-request").locator("b").count() == 0
    await page.screenshot(path=str(tmp_path / "status-new-desktop-it.png"), full_page=True)
    await context.close()

    # From the email's link, in English, on a 375 px phone: the tenant's name in the header.
    token = sign(LINK_SECRET, TicketLink(tenant_id=DEMO_TENANT, ticket_id=uuid.UUID(fresh["ticket_id"])))
    context = await browser.new_context(viewport={"width": 375, "height": 740}, locale="en-GB")
    page = await context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{stack.url('gateway')}/tickets/status?t={token}")
    await expect(part(page, "tenant-name")).to_have_text("Lucine di Natale")
    await expect(part(page, "ticket-due")).to_have_text(f"We will answer by {due:%d %b %Y at %H:%M} {zone}.")
    await expect(part(page, "ticket-request")).to_have_text(message)
    await expect(part(page, "reply")).to_be_visible()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 375
    await page.screenshot(path=str(tmp_path / "status-new-phone-en.png"), full_page=True)
    await context.close()

    # The deadline passes, still unanswered, while the page is open: no time gone by, no time made up.
    promised = {"it": "Ti risponderemo entro il ", "en": "We will answer by "}
    for lang, promise in (("it", "Ti risponderemo il prima possibile."), ("en", "We will answer as soon as possible.")):
        context = await browser.new_context(viewport={"width": 375, "height": 740})
        page = await context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.clock.install(time=datetime.now(UTC))
        await page.goto(f"{stack.url('gateway')}/tickets/status?t={token}&lang={lang}")
        # The ticket shown with its promise (the clock moves only once the page has read the server's).
        await expect(part(page, "ticket-due")).to_contain_text(promised[lang])
        await page.clock.fast_forward(round((due - datetime.now(UTC) + timedelta(minutes=1)).total_seconds() * 1000))
        await expect(part(page, "ticket-due")).to_have_text(promise)
        assert await page.evaluate("document.documentElement.scrollWidth") <= 375
        await page.screenshot(path=str(tmp_path / f"status-late-phone-{lang}.png"), full_page=True)
        await context.close()
    assert errors == []


async def test_a_reply_is_timed_in_the_tenants_zone_wherever_the_customer_reads_it(
    browser: Browser, stack: Stack, ticket: dict[str, Any], tmp_path: Path
) -> None:
    async with await operator(stack) as http:
        replies = (await http.get(f"/v1/tickets/{ticket['ticket_id']}")).json()["replies"]
    [reply] = [r for r in replies if r["author"] == "operator"]
    # As the deadline is written: in Rome's time, naming it; the reader is in New York.
    replied = datetime.fromisoformat(reply["created_at"]).astimezone(ZoneInfo("Europe/Rome"))
    token = sign(LINK_SECRET, TicketLink(tenant_id=DEMO_TENANT, ticket_id=uuid.UUID(ticket["ticket_id"])))
    context = await browser.new_context(
        viewport={"width": 375, "height": 740}, locale="en-US", timezone_id="America/New_York"
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{stack.url('gateway')}/tickets/status?t={token}&lang=it")
    operator_reply = part(page, "reply-item").filter(has_text="tutti i sentieri sono accessibili")
    await expect(operator_reply.locator(".when")).to_have_text(f"{replied:%d/%m/%Y alle %H:%M} {replied.tzname()}")
    await expect(part(page, "ticket-due")).to_be_hidden()  # answered
    await page.screenshot(path=str(tmp_path / "status-reply-time-phone-it.png"), full_page=True)
    assert errors == []
    await context.close()


async def test_a_bad_expired_or_cut_link_still_offers_the_lookup_form(
    browser: Browser, stack: Stack, ticket: dict[str, Any], tmp_path: Path
) -> None:
    token = sign(LINK_SECRET, TicketLink(tenant_id=DEMO_TENANT, ticket_id=uuid.UUID(ticket["ticket_id"])))
    context = await browser.new_context(viewport={"width": 375, "height": 740}, locale="it-IT")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    gateway = stack.url("gateway")

    # Cut by a mail client: the link's tenant is still readable, so its form is offered.
    await page.goto(f"{gateway}/tickets/status?t={token[: len(token) * 2 // 3]}")
    await expect(part(page, "link-error")).to_contain_text("non è valido o è scaduto")
    await expect(part(page, "lookup")).to_be_visible()
    await expect(part(page, "tenant-name")).to_have_text("Lucine di Natale")
    await page.screenshot(path=str(tmp_path / "status-bad-link-phone-it.png"), full_page=True)
    await part(page, "lookup-number").fill(ticket["ticket_number"])
    await part(page, "lookup-contact").fill(ticket["email"])
    await part(page, "lookup-submit").click()
    await expect(part(page, "ticket-number")).to_have_text(ticket["ticket_number"])
    await expect(part(page, "link-error")).to_be_hidden()
    await expect(part(page, "reply")).to_be_hidden()  # a bad link cannot answer; the number cannot either

    # Nothing readable in the link: the page's tenant gives the form; with none, the page says how.
    await page.goto(f"{gateway}/tickets/status?t=xyz&tenant={DEMO_TENANT}")
    await expect(part(page, "lookup")).to_be_visible()
    await page.goto(f"{gateway}/tickets/status?t=xyz&lang=en")
    await expect(part(page, "lookup")).to_be_hidden()
    await expect(part(page, "link-error")).to_contain_text(re.compile(r"request number .*email or phone"))
    await page.screenshot(path=str(tmp_path / "status-no-tenant-phone-en.png"), full_page=True)
    assert errors == []
    await context.close()
