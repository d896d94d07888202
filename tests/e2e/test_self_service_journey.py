"""A new business goes from sign-up to a live chat without anyone editing a file, in a real
Chromium against the whole running system (every service, Kafka, PostgreSQL, Redis, and a real
SMTP server that receives the notifier's emails):

sign up → verify the email (the link of the mail at the SMTP sink) → upload a knowledge-base
document → change the widget's colour and greeting → copy the embed snippet into a page of another
origin, added to the allowed origins → a customer chats there and is answered from the document →
invite an operator by email, who accepts the link, goes online and takes the customer's handoff.
Every settings page is photographed on the way."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from devkit.stack import Stack, free_port

from .conftest import Outside
from .test_dashboard_browser import log_in, log_in_and_go_online, operator_context, shots
from .test_ticket_notifications import mails_to, plain

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

COLOUR, COLOUR_RGB = "#7a1f5c", "rgb(122, 31, 92)"
GREETING = "Benvenuti in gelateria! Chiedeteci dei gusti."
DOCUMENT = """# Gusti

Ogni giorno prepariamo 24 gusti di gelato artigianale, tra cui pistacchio di Bronte, nocciola
delle Langhe e fiordilatte. Il gusto del mese è il panettone.

# Orari

La gelateria è aperta dal martedì alla domenica, dalle 12 alle 23. Il lunedì è chiusa.
"""
SETTINGS_PAGES = ["profile", "widget", "assistant", "team", "canned", "audit"]


@contextmanager
def site_of_another_origin(folder: Path) -> Iterator[str]:
    """A plain static web server (the business's own site) on a port of its own: another origin."""
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), partial(SimpleHTTPRequestHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


async def link_in_mail(outside: Outside, address: str, path: str) -> str:
    (mail,) = await mails_to(outside, address, 1)
    found = re.search(rf"https?://\S+{re.escape(path)}\?t=[^\s<>\"]+", plain(mail))
    assert found, plain(mail)
    return found.group(0)


async def settings_page(page: Page, name: str, folder: Path) -> None:
    await page.get_by_test_id(f"settings-tab-{name}").click()
    await expect(page.get_by_test_id("settings-loading")).to_have_count(0, timeout=15_000)
    await expect(page.get_by_test_id("settings-load-error")).to_have_count(0)
    await page.screenshot(path=str(folder / f"journey-settings-{name}.png"), full_page=True)


async def test_a_new_business_signs_up_sets_up_and_chats_live(
    browser: Browser, ticket_stack: Stack, outside: Outside, tmp_path: Path
) -> None:
    stack, base, folder = ticket_stack, ticket_stack.url("gateway"), shots(tmp_path)
    suffix = uuid.uuid4().hex[:6]
    tenant_id, business = f"gelateria-{suffix}", f"Gelateria {suffix}"
    admin, admin_email = (f"gino{suffix}", "password-di-gino"), f"gino-{suffix}@gelateria.example"
    invitee, invitee_email = (f"luca{suffix}", "password-di-luca"), f"luca-{suffix}@gelateria.example"
    errors: list[str] = []

    # 1. Sign up.
    context = await operator_context(browser, stack)
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = await context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{base}/dashboard/signup")
    await page.get_by_test_id("signup-business-name").fill(business)
    await expect(page.get_by_test_id("signup-tenant-id")).to_have_value(tenant_id)
    await page.get_by_test_id("signup-username").fill(admin[0])
    await page.get_by_test_id("signup-display-name").fill(admin[0].capitalize())
    await page.get_by_test_id("signup-email").fill(admin_email)
    await page.get_by_test_id("signup-password").fill(admin[1])
    await page.get_by_test_id("signup-password-again").fill(admin[1])
    await page.get_by_test_id("signup-submit").click()
    await expect(page.get_by_test_id("signup-done")).to_contain_text(admin_email)

    # 2. The verification email reaches the SMTP server; its link verifies the business.
    await page.goto(await link_in_mail(outside, admin_email, "/dashboard/verify"))
    await expect(page.get_by_test_id("verify-done")).to_be_visible(timeout=15_000)
    await log_in(page, stack, admin)

    # 3. A knowledge-base document.
    await page.keyboard.press("Alt+7")
    await expect(page.get_by_test_id("view-kb")).to_have_attribute("aria-current", "page")
    await page.get_by_test_id("kb-file").set_input_files(
        files=[{"name": "gelateria.it.md", "mimeType": "text/markdown", "buffer": DOCUMENT.encode()}]
    )
    await page.get_by_test_id("kb-upload-submit").click()
    await expect(page.get_by_test_id("kb-upload-done")).to_contain_text("gelateria.it.md", timeout=15_000)
    await page.screenshot(path=str(folder / "journey-kb.png"))

    # 4. Settings: every page photographed; the widget's colour, greeting and a new origin saved.
    await page.keyboard.press("Alt+8")
    await expect(page.get_by_test_id("view-settings")).to_have_attribute("aria-current", "page")
    for name in SETTINGS_PAGES:
        await settings_page(page, name, folder)
    (tmp_path / "site").mkdir()
    with site_of_another_origin(tmp_path / "site") as site:
        await settings_page(page, "widget", folder)
        await page.get_by_test_id("widget-texts-it").click()
        await page.get_by_test_id("widget-primary-color").fill(COLOUR)
        await page.get_by_test_id("widget-greeting").fill(GREETING)
        await page.get_by_test_id("widget-origins").fill(site)
        await page.get_by_test_id("settings-save").click()
        await expect(page.get_by_test_id("settings-saved")).to_be_visible(timeout=15_000)
        await expect(page.get_by_test_id("widget-preview-greeting")).to_have_text(GREETING)
        await page.screenshot(path=str(folder / "journey-settings-widget-saved.png"), full_page=True)

        # 5. The embed snippet, copied to the clipboard, goes into the business's own page.
        await page.get_by_test_id("widget-copy").click()
        await expect(page.get_by_test_id("widget-copied")).to_be_visible()
        snippet = await page.evaluate("navigator.clipboard.readText()")
        assert "data-widget-key=" in snippet, snippet
        (tmp_path / "site" / "index.html").write_text(
            f"<!doctype html><html lang='it'><head><meta charset='utf-8'><title>{business}</title></head>"
            f"<body><h1>{business}</h1><p>Il nostro sito.</p>{snippet}</body></html>",
            encoding="utf-8",
        )

        # 6. A customer chats on that page and is answered from the document.
        customer = await browser.new_page(viewport={"width": 1280, "height": 800}, locale="it-IT")
        customer.on("pageerror", lambda error: errors.append(str(error)))
        await customer.goto(site)
        await customer.get_by_test_id("launcher").click()
        await expect(customer.get_by_test_id("welcome")).to_have_text(GREETING, timeout=15_000)
        await expect(customer.get_by_test_id("send")).to_have_css("background-color", COLOUR_RGB)
        await customer.get_by_test_id("input").fill("Quali gusti di gelato avete?")
        await customer.get_by_test_id("send").click()
        answer = customer.locator('[data-testid="message"][data-sender="ai"]').first
        await expect(answer).to_contain_text("pistacchio", timeout=30_000)
        await customer.screenshot(path=str(folder / "journey-customer-answer.png"))

        # 7. An operator is invited by email, accepts the link and goes online.
        await settings_page(page, "team", folder)
        await page.get_by_test_id("team-invite-email").fill(invitee_email)
        await page.get_by_test_id("team-invite-send").click()
        await expect(page.get_by_test_id("team-invitation")).to_contain_text(invitee_email, timeout=15_000)
        invitation = await link_in_mail(outside, invitee_email, "/dashboard/invite")
        operator_ctx = await operator_context(browser, stack)
        dashboard = await operator_ctx.new_page()
        dashboard.on("pageerror", lambda error: errors.append(str(error)))
        await dashboard.goto(invitation)
        await expect(dashboard.get_by_test_id("invite-who")).to_contain_text(business, timeout=15_000)
        await dashboard.get_by_test_id("invite-username").fill(invitee[0])
        await dashboard.get_by_test_id("invite-display-name").fill(invitee[0].capitalize())
        await dashboard.get_by_test_id("invite-password").fill(invitee[1])
        await dashboard.get_by_test_id("invite-password-again").fill(invitee[1])
        await dashboard.get_by_test_id("invite-submit").click()
        await expect(dashboard.get_by_test_id("invite-done")).to_be_visible()
        await log_in_and_go_online(dashboard, stack, invitee)

        # 8. The customer asks for a person; the new operator takes the chat and answers.
        await customer.get_by_test_id("input").fill("Voglio parlare con un operatore")
        await customer.get_by_test_id("send").click()
        yes = customer.locator('[data-testid="action-button"][data-action="request_operator"]')
        await expect(yes).to_be_visible(timeout=30_000)
        await yes.click()
        await expect(dashboard.get_by_test_id("offer")).to_be_visible(timeout=30_000)
        await dashboard.keyboard.press("Alt+t")
        await expect(dashboard.get_by_test_id("chat-status")).to_have_text("Con operatore", timeout=15_000)
        composer = dashboard.get_by_test_id("composer")
        await composer.fill("Ciao! Oggi c'è anche il gusto panettone.")
        await composer.press("Enter")
        from_operator = customer.locator('[data-testid="message"][data-sender="operator"]')
        await expect(from_operator.first).to_contain_text("gusto panettone", timeout=15_000)
        await customer.screenshot(path=str(folder / "journey-customer-with-operator.png"))
        await dashboard.screenshot(path=str(folder / "journey-operator-chat.png"))

        await dashboard.get_by_test_id("presence-offline").click()
        await operator_ctx.close()
        await customer.close()
    await context.close()
    assert not errors, errors
