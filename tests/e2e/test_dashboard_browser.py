"""The operator dashboard in a real Chromium, against the whole running system: a demo operator
of the demo tenant logs in and goes online; a customer in the widget asks for a person; the
dashboard gets the offer, accepts it, messages flow both ways, and the operator closes."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from devkit.stack import Stack
from devkit.testing import eventually

from .conftest import DEMO_TENANT

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
VIEWPORT = {"width": 1366, "height": 768}
# Seeded by the gateway outside production from services/gateway/operators/lucine-di-natale.yaml.
OPERATOR = ("giulia", "lucine-demo-giulia")
RIVALS = {"Giulia": OPERATOR, "Marco": ("marco", "lucine-demo-marco")}
SUPERVISOR = ("sofia", "lucine-demo-sofia")


def shots(tmp_path: Path) -> Path:
    # In the test's temporary folder, unless DASHBOARD_SCREENSHOTS names another.
    folder = Path(os.environ.get("DASHBOARD_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def operator_context(browser: Browser, stack: Stack) -> BrowserContext:
    context = await browser.new_context(viewport=VIEWPORT, locale="it-IT")  # type: ignore[arg-type]
    await context.grant_permissions(["notifications"], origin=stack.url("gateway"))
    return context


async def log_in(page: Page, stack: Stack, account: tuple[str, str] = OPERATOR) -> None:
    await page.goto(f"{stack.url('gateway')}/dashboard")
    await page.get_by_test_id("login-username").fill(account[0])
    await page.get_by_test_id("login-password").fill(account[1])
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("connection")).to_have_text("In linea", timeout=15_000)
    await expect(page.get_by_test_id("me")).to_contain_text(account[0].capitalize())


async def log_in_and_go_online(page: Page, stack: Stack, account: tuple[str, str] = OPERATOR) -> None:
    await log_in(page, stack, account)
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

    # The customer asked for a person and nothing else: the copilot has no reply to suggest, and
    # says so instead of offering the assistant's own "shall I call an operator?".
    await dashboard.get_by_test_id("suggest").click()
    await expect(dashboard.get_by_test_id("suggestion-none")).to_contain_text("ha chiesto una persona", timeout=15_000)
    await expect(dashboard.get_by_test_id("use-suggestion")).to_have_count(0)
    await dashboard.screenshot(path=str(shots(tmp_path) / "e2e-dashboard-no-suggestion.png"))
    await dashboard.get_by_test_id("suggestion").get_by_role("button").click()
    await expect(dashboard.get_by_test_id("suggestion")).to_have_count(0)

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
    # The knowledge base does not answer it: no suggestion (never the assistant's "shall I call a
    # person?" for the person already there), and the dashboard says why.
    await dashboard.get_by_test_id("suggest").click()
    await expect(dashboard.get_by_test_id("suggestion-none")).to_contain_text(
        "non risponde a questa domanda", timeout=15_000
    )
    await expect(dashboard.get_by_test_id("use-suggestion")).to_have_count(0)
    await dashboard.screenshot(path=str(shots(tmp_path) / "e2e-dashboard-unanswered-suggestion.png"))
    await dashboard.get_by_test_id("suggestion").get_by_role("button").click()
    await expect(dashboard.get_by_test_id("suggestion")).to_have_count(0)

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


async def routing_has_them_online(stack: Stack, names: list[str]) -> None:
    """Both operators online in routing (GET /v1/operators) before the customer asks."""
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=15) as gateway:
        login = await gateway.post(
            "/v1/operators/login", json=dict(zip(("username", "password"), OPERATOR, strict=True))
        )
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

        async def all_online() -> bool:
            operators = (await gateway.get("/v1/operators", headers=headers)).json()["operators"]
            return {o["display_name"] for o in operators if o["presence"] == "online"} >= set(names)

        await eventually(all_online, 60, f"{names} online in routing")


async def test_two_operators_race_for_a_customer_and_the_winner_answers_with_a_canned_response(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    folder = shots(tmp_path)
    errors: list[str] = []
    contexts: list[BrowserContext] = []
    dashboards: dict[str, Page] = {}
    for name, account in RIVALS.items():
        context = await operator_context(browser, stack)
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        await log_in_and_go_online(page, stack, account)
        dashboards[name] = page
    await routing_has_them_online(stack, list(RIVALS))

    customer = await browser.new_page(viewport={"width": 1280, "height": 800}, locale="it-IT")
    await customer.goto(f"{stack.url('gateway')}/demo/{DEMO_TENANT}")
    await customer.get_by_test_id("launcher").click()
    await customer.get_by_test_id("input").fill("Vorrei parlare con una persona, per favore")
    await customer.get_by_test_id("send").click()
    yes = customer.locator('[data-testid="action-button"][data-action="request_operator"]')
    await expect(yes).to_be_visible(timeout=30_000)
    await yes.click()

    # Both see it in their queue (one of them also has it offered).
    for page in dashboards.values():
        await page.keyboard.press("Alt+2")
        await expect(page.get_by_test_id("queue-entry")).to_have_count(1, timeout=30_000)
    for name, page in dashboards.items():
        await page.screenshot(path=str(folder / f"e2e-race-queue-{name.lower()}.png"))

    # Both press take at the same time: one gets it, the other is told it is already taken.
    await asyncio.gather(
        *(page.get_by_test_id("queue-entry").get_by_test_id("take").click() for page in dashboards.values())
    )
    taken: dict[str, int] = {}

    async def one_has_it() -> bool:
        for name, page in dashboards.items():
            taken[name] = await page.get_by_test_id("chat-status").filter(has_text="Con operatore").count()
        return sum(taken.values()) == 1

    await eventually(one_has_it, 15, "exactly one dashboard with the conversation")
    winner_name = next(name for name, count in taken.items() if count)
    loser_name = next(name for name in dashboards if name != winner_name)
    winner, loser = dashboards[winner_name], dashboards[loser_name]
    await expect(loser.get_by_test_id("toast")).to_have_text("Presa da un altro operatore.")
    await loser.screenshot(path=str(folder / "e2e-race-loser.png"))

    # The winner inserts a canned response with /biglietti, sends it, and the customer sees it.
    composer = winner.get_by_test_id("composer")
    await composer.click()
    await composer.type("/bigl")
    await expect(winner.get_by_test_id("canned")).to_contain_text("/biglietti")
    await composer.press("Enter")
    await expect(composer).to_have_value(re.compile("^I biglietti si acquistano online"))
    await composer.press("Enter")
    from_operator = customer.locator('[data-testid="message"][data-sender="operator"]')
    await expect(from_operator.first).to_contain_text("I biglietti si acquistano online", timeout=15_000)
    # The transfer picker offers the colleague, online, with their load.
    picker = winner.get_by_test_id("transfer-to")
    await expect(picker.locator("option", has_text=loser_name)).to_contain_text("Online")
    await expect(customer.get_by_test_id("messages")).to_contain_text("Un operatore sta per risponderti")
    await winner.screenshot(path=str(folder / "e2e-race-winner.png"))
    await picker.scroll_into_view_if_needed()
    await winner.locator(".details-pane").screenshot(path=str(folder / "e2e-race-winner-details.png"))
    await customer.screenshot(path=str(folder / "e2e-race-widget.png"))

    # A supervisor's "all" tab lists it with the winner as its operator.
    supervisor_context = await operator_context(browser, stack)
    contexts.append(supervisor_context)
    supervisor = await supervisor_context.new_page()
    supervisor.on("pageerror", lambda error: errors.append(str(error)))
    await log_in(supervisor, stack, SUPERVISOR)
    await supervisor.keyboard.press("Alt+3")
    listed = supervisor.get_by_test_id("list-all").get_by_test_id("conversation-item").first
    await expect(listed).to_contain_text(winner_name, timeout=15_000)
    await expect(listed).to_contain_text("Con operatore")
    await supervisor.screenshot(path=str(folder / "e2e-race-supervisor-all.png"))

    await winner.keyboard.press("Alt+c")
    await winner.get_by_test_id("resolution-resolved").check()
    await winner.get_by_test_id("confirm-close").click()
    await expect(winner.get_by_test_id("chat-status")).to_have_text("Risolta", timeout=15_000)
    for page in dashboards.values():
        await page.get_by_test_id("presence-offline").click()
        await expect(page.get_by_test_id("presence-offline")).to_have_attribute("aria-checked", "true")
    assert errors == []
    for context in contexts:
        await context.close()
    await customer.close()
