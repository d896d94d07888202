"""The ticket status page in a real Chromium, served by the real gateway, with the tickets service's
internal API answered by its stand-in (so a ticket can be given any deadline and any reply times):
what the page says of the promised answer once it is late or given, and that every time on it is
written one way, in the tenant's zone, wherever the reader is."""

from __future__ import annotations

import re
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
    now = datetime.now(UTC)
    ticket = gateway.tickets_api.put(LUCINE, created_at=now - timedelta(hours=2), answer_due=now + timedelta(minutes=5))
    page, errors = await open_by_link(browser, gateway, ticket, "it", DESKTOP, at=now)
    due = page.get_by_test_id("ticket-due")
    await expect(due).to_have_text(re.compile(r"^Ti risponderemo entro il \d\d/\d\d/\d{4} alle \d\d:\d\d CES?T\.$"))
    await page.clock.fast_forward("06:00")
    await expect(due).to_have_text(AS_SOON_AS_POSSIBLE["it"])
    assert errors == []
    await page.context.close()


@pytest.mark.parametrize("device_off_by", [timedelta(hours=2), -timedelta(hours=2)], ids=["ahead", "behind"])
async def test_late_or_not_is_the_servers_word_not_the_readers_device_clock(
    browser: Browser, gateway: Any, device_off_by: timedelta
) -> None:
    now = datetime.now(UTC)
    # Due an hour from now, or an hour ago: a device two hours off would say the opposite.
    answer_due = now + (timedelta(hours=1) if device_off_by > timedelta(0) else -timedelta(hours=1))
    ticket = gateway.tickets_api.put(LUCINE, created_at=now - timedelta(hours=3), answer_due=answer_due)
    page, errors = await open_by_link(browser, gateway, ticket, "en", DESKTOP, at=now + device_off_by)
    due = page.get_by_test_id("ticket-due")
    if answer_due > now:
        await expect(due).to_have_text(re.compile(r"^We will answer by "))
    else:
        await expect(due).to_have_text(AS_SOON_AS_POSSIBLE["en"])
    assert errors == []
    await page.context.close()


def next_spring_change(after: datetime) -> datetime:
    """When Rome next moves its clocks forward: the last Sunday of March, 01:00 UTC."""
    year = after.year
    while True:
        last_day = datetime(year, 3, 31, 1, 0, tzinfo=UTC)
        change = last_day - timedelta(days=(last_day.weekday() + 1) % 7)
        if change > after:
            return change
        year += 1


# Around Rome's next spring change of clocks (the promise must still be ahead by the server's
# clock): the opening in winter time, the replies and the deadline in summer time, each named as
# the acknowledgment names it.
CHANGE = next_spring_change(datetime.now(UTC) + timedelta(days=3))
OPENED = CHANGE - timedelta(hours=15)
REPLIED = [CHANGE - timedelta(hours=14, minutes=40), CHANGE + timedelta(hours=8, minutes=30)]
DUE = CHANGE + timedelta(hours=30)
DAY_BEFORE, CHANGE_DAY, DUE_DAY = (CHANGE + timedelta(days=days) for days in (-1, 0, 1))
WRITTEN = {
    "it": {
        "opened": f"Aperta il {DAY_BEFORE:%d/%m/%Y} alle 11:00 CET",
        "replies": [f"{DAY_BEFORE:%d/%m/%Y} alle 11:20 CET", f"{CHANGE_DAY:%d/%m/%Y} alle 11:30 CEST"],
        "due": f"Ti risponderemo entro il {DUE_DAY:%d/%m/%Y} alle 09:00 CEST.",
    },
    "en": {
        "opened": f"Opened on {DAY_BEFORE:%d %b %Y} at 11:00 CET",
        "replies": [f"{DAY_BEFORE:%d %b %Y} at 11:20 CET", f"{CHANGE_DAY:%d %b %Y} at 11:30 CEST"],
        "due": f"We will answer by {DUE_DAY:%d %b %Y} at 09:00 CEST.",
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
