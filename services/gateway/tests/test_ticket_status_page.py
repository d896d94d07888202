"""The ticket status page in a real Chromium, served by the real gateway, with the tickets service's
internal API answered by its stand-in (so a ticket can be given any deadline and any reply times):
what the page says of the promised answer once it is late or given, and that every time on it is
written one way, in the tenant's zone, wherever the reader is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

LUCINE = "lucine-di-natale"
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 800}
AS_SOON_AS_POSSIBLE = {"it": "Ti risponderemo il prima possibile.", "en": "We will answer as soon as possible."}

pytestmark = pytest.mark.browser


async def open_by_link(
    browser: Browser, gateway: Any, ticket: Any, lang: str, viewport: dict[str, int], *, at: datetime | None = None
) -> tuple[Page, list[str]]:
    """The page opened from the ticket's email link, by a reader in New York (the tenant is in
    Rome), its clock at `at` when given."""
    context = await browser.new_context(viewport=viewport, locale="en-US", timezone_id="America/New_York")  # type: ignore[arg-type]
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    if at is not None:
        await page.clock.install(time=at)
    token = gateway.tickets_api.link_of(ticket)
    await page.goto(f"{gateway.url}/tickets/status?t={token}&lang={lang}")
    await expect(page.get_by_test_id("ticket-number")).to_have_text(ticket.ticket_number)
    return page, errors


LANG_VIEWPORTS = pytest.mark.parametrize(
    ("lang", "viewport"), [("it", DESKTOP), ("en", PHONE)], ids=["desktop-it", "phone-en"]
)


@LANG_VIEWPORTS
async def test_a_late_first_answer_is_promised_as_soon_as_possible_never_at_a_time_gone_by(
    browser: Browser, gateway: Any, tmp_path: Path, lang: str, viewport: dict[str, int]
) -> None:
    tickets = gateway.tickets_api
    late = tickets.put(LUCINE, answer_due=datetime.now(UTC) - timedelta(hours=3))
    page, errors = await open_by_link(browser, gateway, late, lang, viewport)
    due = page.get_by_test_id("ticket-due")
    await expect(due).to_have_text(AS_SOON_AS_POSSIBLE[lang])
    assert await page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    await page.screenshot(path=str(tmp_path / f"status-late-{lang}.png"), full_page=True)

    # Answered: nothing is owed any more, late or not.
    tickets.reply(late.ticket_id, "operator", "Buongiorno Anna, sì: ci sono ancora biglietti.")
    await page.reload()
    await expect(page.get_by_test_id("reply-item")).to_have_count(1)
    await expect(due).to_be_hidden()
    await page.screenshot(path=str(tmp_path / f"status-late-answered-{lang}.png"), full_page=True)
    assert errors == []
    await page.context.close()


async def test_a_promise_that_runs_out_while_the_page_is_open_is_said_again(
    browser: Browser, gateway: Any, tmp_path: Path
) -> None:
    now = datetime(2026, 12, 10, 17, 0, tzinfo=UTC)
    ticket = gateway.tickets_api.put(LUCINE, created_at=now - timedelta(hours=2), answer_due=now + timedelta(minutes=5))
    page, errors = await open_by_link(browser, gateway, ticket, "it", DESKTOP, at=now)
    due = page.get_by_test_id("ticket-due")
    await expect(due).to_have_text("Ti risponderemo entro il 10/12/2026 alle 18:05 CET.")
    await page.clock.fast_forward("06:00")
    await expect(due).to_have_text(AS_SOON_AS_POSSIBLE["it"])
    assert errors == []
    await page.context.close()


# Around the spring change of clocks in Rome (29 March 2026, 01:00 UTC): the opening in winter
# time, the replies and the deadline in summer time, each named as the acknowledgment names it.
OPENED = datetime(2026, 3, 28, 10, 0, tzinfo=UTC)
REPLIED = [datetime(2026, 3, 28, 10, 20, tzinfo=UTC), datetime(2026, 3, 29, 9, 30, tzinfo=UTC)]
DUE = datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
WRITTEN = {
    "it": {
        "opened": "Aperta il 28/03/2026 alle 11:00 CET",
        "replies": ["28/03/2026 alle 11:20 CET", "29/03/2026 alle 11:30 CEST"],
        "due": "Ti risponderemo entro il 30/03/2026 alle 09:00 CEST.",
    },
    "en": {
        "opened": "Opened on 28 Mar 2026 at 11:00 CET",
        "replies": ["28 Mar 2026 at 11:20 CET", "29 Mar 2026 at 11:30 CEST"],
        "due": "We will answer by 30 Mar 2026 at 09:00 CEST.",
    },
}


@LANG_VIEWPORTS
async def test_every_time_on_the_page_is_the_tenants_written_one_way(
    browser: Browser, gateway: Any, tmp_path: Path, lang: str, viewport: dict[str, int]
) -> None:
    tickets = gateway.tickets_api
    ticket = tickets.put(LUCINE, created_at=OPENED, answer_due=DUE)
    tickets.reply(ticket.ticket_id, "customer", "Dimenticavo: siamo in quattro.", created_at=REPLIED[0])
    tickets.reply(ticket.ticket_id, "customer", "E il parcheggio?", created_at=REPLIED[1])
    # Read in New York (five or six hours behind Rome that weekend), after the last reply.
    page, errors = await open_by_link(browser, gateway, ticket, lang, viewport, at=REPLIED[1] + timedelta(hours=3))
    written = WRITTEN[lang]
    await expect(page.get_by_test_id("ticket-due")).to_have_text(written["due"])
    await expect(page.get_by_test_id("reply-item").locator(".when")).to_have_text(written["replies"])
    await expect(page.get_by_test_id("ticket-opened")).to_have_text(written["opened"])
    assert await page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    await page.screenshot(path=str(tmp_path / f"status-times-{lang}.png"), full_page=True)
    assert errors == []
    await page.context.close()
