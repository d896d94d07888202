"""The dashboard's tickets in a real Chromium at desktop size, against the whole running system
(`ticket_stack`: urgent and high tickets have SLA targets of seconds). An operator opens the
tickets view with the keyboard, filters and searches the list, sees an urgent ticket's SLA turn
breached live (a `ticket` frame), reads a ticket left in the widget with its transcript and the
whole conversation, replies, adds a note, makes it wait for the customer (its clocks met and
paused) and takes another; a supervisor's "SLA at risk" view lists the breached ticket before
the one at risk, in Italian and in English."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from devkit.stack import Stack

from .test_dashboard_browser import SUPERVISOR, log_in, operator_context, shots
from .test_ticket_notifications import GIULIA, access_token, leave_a_ticket, nobody_online, ticket_of

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


async def open_ticket(gateway: httpx.AsyncClient, operator: dict[str, str], **fields: Any) -> str:
    """An operator opens a ticket for a customer who phoned: its number."""
    body = {"preferred_contact": "email", "client_request_id": uuid.uuid4().hex, **fields}
    opened = await gateway.post("/v1/tickets", json=body, headers=operator)
    assert opened.status_code == 202, opened.text

    async def listed() -> str | None:
        found = await gateway.get("/v1/tickets", params={"q": fields["email"]}, headers=operator)
        tickets = found.json()["tickets"]
        return str(tickets[0]["ticket_number"]) if tickets else None

    for _ in range(100):
        if number := await listed():
            return number
        await asyncio.sleep(0.2)
    raise AssertionError(f"ticket for {fields['email']} never listed")


def row(page: Page, number: str) -> Any:
    return page.get_by_test_id("ticket-item").filter(has_text=number)


async def test_an_operator_works_tickets_and_a_supervisor_sees_the_slas_at_risk(
    browser: Browser, ticket_stack: Stack, tmp_path: Path
) -> None:
    stack = ticket_stack
    folder = shots(tmp_path)
    tag = uuid.uuid4().hex[:6]
    errors: list[str] = []
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=15) as gateway:
        operator = await access_token(gateway, GIULIA)
        await nobody_online(stack)
        # Breached 20 s after it opens (urgent), so while the operator looks at the list.
        urgent = await open_ticket(
            gateway,
            operator,
            name="Paolo Bianchi",
            email=f"paolo.{tag}@example.com",
            subject="Pagamento addebitato due volte",
            message="Mi avete addebitato due volte i biglietti del 20 dicembre.",
            priority="urgent",
        )
        quiet = await open_ticket(
            gateway,
            operator,
            name="Carla Verdi",
            email=f"carla.{tag}@example.com",
            subject="Parcheggio per camper",
            message="C'è un parcheggio per camper vicino all'ingresso?",
            priority="low",
        )
        details = {"name": "Anna Rossi", "email": f"anna.{tag}@example.com", "preferred_contact": "email"}
        _, from_widget = await leave_a_ticket(
            gateway, stack, "it", "Posso portare il mio cane al villaggio di Natale?", details
        )
        widget_ticket = await ticket_of(gateway, operator, from_widget)

        context = await operator_context(browser, stack)
        page = await context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        await log_in(page, stack, GIULIA)

        # Alt+4: the tickets view, newest first, with status, priority and SLA badges.
        await page.keyboard.press("Alt+4")
        await expect(page.get_by_test_id("view-tickets")).to_have_attribute("aria-current", "page")
        for number in (urgent, quiet, from_widget):
            await expect(row(page, number)).to_have_count(1, timeout=15_000)
        await expect(row(page, quiet).get_by_test_id("ticket-priority-badge")).to_have_text("Bassa")
        await expect(row(page, quiet).get_by_test_id("sla-badge")).to_have_text("In tempo")

        # Filters and search.
        await page.get_by_test_id("ticket-filter-priority").select_option("urgent")
        await expect(row(page, quiet)).to_have_count(0)
        await expect(row(page, urgent)).to_have_count(1)
        await page.get_by_test_id("ticket-filter-priority").select_option("")
        await page.keyboard.press("/")
        await expect(page.get_by_test_id("ticket-search")).to_be_focused()
        await page.keyboard.type(from_widget)
        await expect(page.get_by_test_id("ticket-item")).to_have_count(1)
        await expect(row(page, from_widget)).to_contain_text("Anna Rossi")
        await page.keyboard.press("Escape")
        await expect(row(page, quiet)).to_have_count(1)

        # The urgent ticket's first response is late: the row turns breached live, unreloaded.
        breached = row(page, urgent).get_by_test_id("sla-badge")
        await expect(breached).to_have_attribute("data-state", "breached", timeout=40_000)
        await expect(breached).to_have_text("Scaduto")
        await page.get_by_test_id("ticket-filter-sla").select_option("breached")
        await expect(row(page, urgent)).to_have_count(1)
        await expect(row(page, quiet)).to_have_count(0)
        await page.get_by_test_id("ticket-filter-sla").select_option("")
        await expect(row(page, quiet)).to_have_count(1)
        await page.screenshot(path=str(folder / "e2e-tickets-list.png"))

        # The ticket left in the widget: transcript excerpt, then the whole conversation.
        await row(page, from_widget).locator(".item-main").click()
        await expect(page.get_by_test_id("ticket-number")).to_have_text(from_widget)
        thread = page.get_by_test_id("ticket-thread")
        await expect(thread.get_by_test_id("transcript-line").first).to_be_visible()
        await expect(thread).to_contain_text("Posso portare il mio cane al villaggio di Natale?")
        await page.get_by_test_id("show-conversation").click()
        await expect(thread.get_by_test_id("message").first).to_be_visible(timeout=15_000)
        await expect(thread.locator('[data-testid="message"][data-sender="ai"]').first).to_be_visible()

        # A public reply (Ctrl+Enter), then an internal note.
        reply = f"Certo, i cani al guinzaglio sono i benvenuti. ({tag})"
        await page.get_by_test_id("ticket-reply-input").fill(reply)
        await page.get_by_test_id("ticket-reply-input").press("Control+Enter")
        await expect(thread.get_by_test_id("ticket-reply")).to_contain_text(reply, timeout=15_000)
        await page.get_by_test_id("ticket-note-input").fill("Cliente abituale, già venuta nel 2024")
        await page.get_by_test_id("ticket-add-note").click()
        await expect(page.get_by_test_id("ticket-note")).to_contain_text("Cliente abituale", timeout=15_000)
        sla = page.get_by_test_id("ticket-sla")
        await expect(sla.locator('[data-state="met"]')).to_have_count(1, timeout=15_000)  # first response given

        # Waiting for the customer: the status changes and the clock still counting pauses.
        await page.get_by_test_id("ticket-status").select_option("WAITING_CUSTOMER")
        await expect(page.locator(".head-badges").get_by_test_id("ticket-status-pill")).to_have_text(
            "In attesa del cliente", timeout=15_000
        )
        await expect(sla.locator('[data-state="paused"]')).to_have_count(2, timeout=15_000)  # the card's and its clock
        await expect(row(page, from_widget).get_by_test_id("ticket-status-pill")).to_have_text("In attesa del cliente")
        await page.screenshot(path=str(folder / "e2e-ticket-detail.png"))
        await page.locator(".details-pane").screenshot(path=str(folder / "e2e-ticket-detail-side.png"))
        stored = await ticket_of(gateway, operator, from_widget)
        assert [(r.author, r.text) for r in stored.replies] == [("operator", reply)]
        assert stored.status == "WAITING_CUSTOMER"
        assert widget_ticket.ticket_id == stored.ticket_id

        # Another ticket taken with the keyboard: "assign to me" makes it in progress.
        await row(page, quiet).locator(".item-main").focus()
        await page.keyboard.press("Enter")
        await expect(page.get_by_test_id("ticket-number")).to_have_text(quiet)
        await page.get_by_test_id("ticket-assign-me").click()
        await expect(page.get_by_test_id("ticket-assignee")).to_have_value("lucine-giulia", timeout=15_000)
        await expect(row(page, quiet).get_by_test_id("ticket-status-pill")).to_have_text("In lavorazione")
        await page.get_by_test_id("ticket-tab-mine").click()
        await expect(row(page, quiet)).to_have_count(1)
        await expect(row(page, urgent)).to_have_count(0)

        # "Send and wait": the reply, then the ticket waits for the customer, in one step.
        answer = f"Le ho scritto gli orari, mi faccia sapere se vanno bene. ({tag})"
        await page.get_by_test_id("ticket-reply-input").fill(answer)
        await page.locator(".composer-bar").screenshot(path=str(folder / "e2e-ticket-send-and-wait.png"))
        await page.get_by_test_id("ticket-send-and-wait").click()
        await expect(row(page, quiet).get_by_test_id("ticket-status-pill")).to_have_text(
            "In attesa del cliente", timeout=15_000
        )
        await expect(thread.get_by_test_id("ticket-reply")).to_contain_text(answer, timeout=15_000)
        answered = await ticket_of(gateway, operator, quiet)
        assert [(r.author, r.text) for r in answered.replies] == [("operator", answer)]
        assert answered.status == "WAITING_CUSTOMER"

        # A high ticket now: at risk 24 s from now (80% of 30 s), breached at 30 s.
        at_risk = await open_ticket(
            gateway,
            operator,
            name="Marta Gallo",
            email=f"marta.{tag}@example.com",
            subject="Biglietto non ricevuto",
            message="Non ho ricevuto l'email con il biglietto.",
            priority="high",
        )
        supervisor_context = await operator_context(browser, stack)
        supervisor = await supervisor_context.new_page()
        supervisor.on("pageerror", lambda error: errors.append(str(error)))
        await log_in(supervisor, stack, SUPERVISOR)
        await supervisor.keyboard.press("Alt+5")
        await expect(supervisor.get_by_test_id("ticket-tab-risk")).to_have_attribute("aria-selected", "true")
        await expect(row(supervisor, urgent)).to_have_count(1, timeout=15_000)
        await expect(row(supervisor, quiet)).to_have_count(0)
        risky = row(supervisor, at_risk)
        await expect(risky.get_by_test_id("sla-badge")).to_have_text("A rischio", timeout=40_000)
        numbers = await supervisor.get_by_test_id("ticket-item").locator(".item-id").all_inner_texts()
        assert numbers.index(urgent) < numbers.index(at_risk), "soonest deadline first: the breached one"
        await supervisor.screenshot(path=str(folder / "e2e-tickets-sla-risk.png"))
        await supervisor.get_by_test_id("lang-en").click()
        await expect(supervisor.get_by_test_id("ticket-tab-risk")).to_contain_text("SLA at risk")
        await expect(row(supervisor, urgent).get_by_test_id("sla-badge")).to_have_text("Breached")
        await risky.locator(".item-main").click()
        await expect(supervisor.get_by_test_id("ticket-number")).to_have_text(at_risk)
        await expect(supervisor.get_by_test_id("ticket-sla")).to_contain_text(re.compile("At risk|Breached"))
        await supervisor.screenshot(path=str(folder / "e2e-tickets-sla-risk-en.png"))
        assert errors == []
        await context.close()
        await supervisor_context.close()
