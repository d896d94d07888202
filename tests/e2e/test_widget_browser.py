"""The widget on the demo page, in a real Chromium, against the whole running system."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from devkit.stack import Stack

from .conftest import DEMO_TENANT

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-gpu"]


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is required: `make test` installs it (infra/localinfra.py browser)"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def open_demo(browser: Browser, stack: Stack, viewport: dict[str, int]) -> Page:
    page = await browser.new_page(viewport=viewport)  # type: ignore[arg-type]
    await page.goto(f"{stack.url('gateway')}/demo/{DEMO_TENANT}")
    await page.get_by_test_id("launcher").click()
    await expect(page.get_by_test_id("panel")).to_be_visible()
    return page


async def ask(page: Page, question: str) -> None:
    await page.get_by_test_id("input").fill(question)
    await page.get_by_test_id("send").click()


async def test_asking_the_price_on_the_demo_page_shows_prices_and_a_buy_button(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    page = await open_demo(browser, stack, {"width": 1280, "height": 800})
    await ask(page, "Quanto costano i biglietti?")

    answer = page.locator('[data-testid="message"][data-sender="ai"]').first
    await expect(answer).to_contain_text("9", timeout=20_000)
    await expect(answer).to_contain_text("13")
    await expect(answer.locator("strong").first).to_be_visible()  # **bold** in the KB renders as bold
    assert "**" not in await answer.inner_text()
    buy = page.locator('[data-testid="action-button"][href*="lucinedinatale.it/products"]')
    await expect(buy).to_be_visible()
    await expect(page.locator('[data-testid="message"][data-sender="customer"]')).to_have_count(1)
    await page.screenshot(path=str(tmp_path / "widget-desktop.png"))
    await page.close()


async def test_text_is_rendered_as_text_and_the_widget_works_on_a_phone(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    page = await open_demo(browser, stack, {"width": 390, "height": 844})
    injected = "A che ora aprite? <img src=x onerror=\"document.body.dataset.pwned='yes'\">"
    await ask(page, injected)

    customer = page.locator('[data-testid="message"][data-sender="customer"]').first
    await expect(customer).to_contain_text("<img src=x")
    # The reply arrives and is rendered; the markup the customer typed never became elements.
    await expect(page.locator('[data-testid="message"][data-sender="ai"]')).to_have_count(1, timeout=20_000)
    assert await page.evaluate("document.body.dataset.pwned") is None
    panel = await page.get_by_test_id("panel").bounding_box()
    assert panel is not None
    assert panel["width"] >= 380, "the panel fills a phone-sized screen"
    await page.screenshot(path=str(tmp_path / "widget-phone.png"))
    await page.close()


async def test_a_person_can_be_asked_for_from_the_header_at_any_time(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    page = await open_demo(browser, stack, {"width": 1280, "height": 800})
    ask_person = page.get_by_test_id("ask-person")
    await expect(ask_person).to_be_hidden()  # no conversation yet
    await ask(page, "Quanto costano i biglietti?")
    await expect(page.locator('[data-testid="message"][data-sender="ai"]').first).to_be_visible(timeout=20_000)
    await expect(ask_person).to_be_visible()
    await page.screenshot(path=str(tmp_path / "widget-ask-person.png"))

    await ask_person.click()
    # Queued when someone is online, else invited to leave contact details: either way the
    # customer is told, and the button goes away while a person is being found.
    status = page.get_by_test_id("status")
    await expect(status).to_have_attribute(
        "data-conversation-status", re.compile("QUEUED|TICKET_PENDING"), timeout=20_000
    )
    await expect(status).to_be_visible()
    await expect(ask_person).to_be_hidden()
    await page.screenshot(path=str(tmp_path / "widget-after-asking.png"))
    await page.close()
