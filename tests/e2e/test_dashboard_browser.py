"""The operator dashboard in a real Chromium, against the whole running system: a demo operator
of the demo tenant logs in and goes online; a customer in the widget asks for a person; the
dashboard gets the offer, accepts it, messages flow both ways, and the operator closes."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from devkit.stack import Stack

from .conftest import DEMO_TENANT

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-gpu"]
VIEWPORT = {"width": 1366, "height": 768}
# Seeded by the gateway outside production from services/gateway/operators/lucine-di-natale.yaml.
OPERATOR = ("giulia", "lucine-demo-giulia")


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is required: `make test` installs it (infra/localinfra.py browser)"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


def shots(tmp_path: Path) -> Path:
    # In the test's temporary folder, unless DASHBOARD_SCREENSHOTS names another.
    folder = Path(os.environ.get("DASHBOARD_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def operator_context(browser: Browser, stack: Stack) -> BrowserContext:
    context = await browser.new_context(viewport=VIEWPORT, locale="it-IT")  # type: ignore[arg-type]
    await context.grant_permissions(["notifications"], origin=stack.url("gateway"))
    return context


async def log_in_and_go_online(page: Page, stack: Stack) -> None:
    await page.goto(f"{stack.url('gateway')}/dashboard")
    await page.get_by_test_id("login-username").fill(OPERATOR[0])
    await page.get_by_test_id("login-password").fill(OPERATOR[1])
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("connection")).to_have_text("In linea", timeout=15_000)
    await expect(page.get_by_test_id("me")).to_contain_text("Giulia")
    await page.get_by_test_id("presence-online").click()
    await expect(page.get_by_test_id("presence-online")).to_have_attribute("aria-checked", "true")
    await expect(page.get_by_test_id("toast")).to_have_count(0)  # no error


async def test_a_demo_operator_logs_in_goes_online_and_sees_the_queue(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    context = await operator_context(browser, stack)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{stack.url('gateway')}/dashboard")
    await expect(page.get_by_test_id("login-form")).to_be_visible()
    await page.screenshot(path=str(shots(tmp_path) / "e2e-dashboard-login.png"))
    await log_in_and_go_online(page, stack)

    await page.keyboard.press("Alt+2")
    await expect(page.get_by_test_id("tab-queue")).to_have_attribute("aria-selected", "true")
    await expect(page.get_by_test_id("list-queue")).to_be_visible()
    await page.screenshot(path=str(shots(tmp_path) / "e2e-dashboard-queue.png"))
    # Offline again, so that routing offers the next tests' conversations to nobody by mistake.
    await page.get_by_test_id("presence-offline").click()
    await expect(page.get_by_test_id("presence-offline")).to_have_attribute("aria-checked", "true")
    assert errors == []
    await context.close()


async def test_a_customer_asks_for_a_person_and_the_operator_takes_answers_and_closes(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    operator_ctx = await operator_context(browser, stack)
    dashboard = await operator_ctx.new_page()
    errors: list[str] = []
    dashboard.on("pageerror", lambda error: errors.append(str(error)))
    await log_in_and_go_online(dashboard, stack)

    customer = await browser.new_page(viewport={"width": 1280, "height": 800})
    await customer.goto(f"{stack.url('gateway')}/demo/{DEMO_TENANT}")
    await customer.get_by_test_id("launcher").click()
    await customer.get_by_test_id("input").fill("Voglio parlare con un operatore")
    await customer.get_by_test_id("send").click()
    yes = customer.locator('[data-testid="action-button"][data-action="request_operator"]')
    await expect(yes).to_be_visible(timeout=30_000)
    await yes.click()

    # The offer reaches the dashboard live; Alt+T accepts it.
    offer = dashboard.get_by_test_id("offer")
    await expect(offer).to_be_visible(timeout=30_000)
    await dashboard.screenshot(path=str(shots(tmp_path) / "e2e-dashboard-offer.png"))
    await dashboard.keyboard.press("Alt+t")
    await expect(dashboard.get_by_test_id("chat-status")).to_have_text("Con operatore", timeout=15_000)
    transcript = dashboard.get_by_test_id("transcript")
    await expect(transcript.locator('[data-sender="customer"]').first).to_contain_text("Voglio parlare")

    # A canned response, sent with Enter, reaches the customer.
    composer = dashboard.get_by_test_id("composer")
    await composer.click()
    await composer.type("/ciao")
    await expect(dashboard.get_by_test_id("canned")).to_be_visible()
    await composer.press("Enter")
    await composer.press("Enter")
    from_operator = customer.locator('[data-testid="message"][data-sender="operator"]')
    await expect(from_operator.first).to_contain_text("Giulia", timeout=15_000)

    # The copilot: the customer asks about prices, the operator asks for a suggestion, inserts it
    # into the composer and sends it; nothing reaches the customer before the operator sends.
    await customer.get_by_test_id("input").fill("Quanto costano i biglietti?")
    await customer.get_by_test_id("send").click()
    await expect(transcript).to_contain_text("Quanto costano i biglietti?", timeout=15_000)
    await dashboard.get_by_test_id("suggest").click()
    await expect(dashboard.get_by_test_id("suggestion-text")).to_contain_text("€", timeout=15_000)
    await expect(dashboard.get_by_test_id("suggestion-sources")).to_contain_text("Prezzi")
    await dashboard.screenshot(path=str(shots(tmp_path) / "e2e-dashboard-suggestion.png"))
    assert await from_operator.count() == 1, "a suggestion is not sent on its own"
    await dashboard.get_by_test_id("use-suggestion").click()
    await expect(composer).to_have_value(re.compile("€"))
    await expect(dashboard.get_by_test_id("suggestion")).to_have_count(0)
    await composer.press("Enter")
    await expect(from_operator.nth(1)).to_contain_text("€", timeout=15_000)

    # The customer answers; the dashboard shows it live.
    await customer.get_by_test_id("input").fill("Ho pagato due volte il biglietto")
    await customer.get_by_test_id("send").click()
    await expect(transcript).to_contain_text("Ho pagato due volte il biglietto", timeout=15_000)

    # An internal note, seen on the dashboard and never in the widget.
    await dashboard.get_by_test_id("note-input").fill("Doppio addebito da verificare")
    await dashboard.get_by_test_id("add-note").click()
    await expect(dashboard.get_by_test_id("note")).to_contain_text("Doppio addebito", timeout=15_000)
    await dashboard.screenshot(path=str(shots(tmp_path) / "e2e-dashboard-chat.png"))
    await customer.screenshot(path=str(shots(tmp_path) / "e2e-widget-with-operator.png"))
    assert "Doppio addebito" not in await customer.get_by_test_id("messages").inner_text()

    # Alt+C: closed as resolved.
    await dashboard.keyboard.press("Alt+c")
    await dashboard.get_by_test_id("resolution-resolved").check()
    await dashboard.get_by_test_id("confirm-close").click()
    await expect(dashboard.get_by_test_id("chat-status")).to_have_text("Risolta", timeout=15_000)
    await expect(dashboard.get_by_test_id("composer")).to_be_disabled()
    await expect(customer.get_by_test_id("messages")).to_contain_text(re.compile("chius|closed", re.I))

    await dashboard.get_by_test_id("presence-offline").click()
    assert errors == []
    await operator_ctx.close()
    await customer.close()
