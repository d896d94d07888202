"""The dashboard's settings area in a real Chromium, against the whole running system: an admin
(made with `python -m gateway.operators create`) opens every settings page, changes the widget's
colour and greeting and saves, and the API confirms the change (the settings and the widget's own
configuration); a supervisor sees the pages read-only; a plain operator has no Settings. The public
pages: a business signs up, its link verifies it, its admin's invitation is accepted. Every page is
photographed."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from devkit.stack import REPO, SERVICES, Stack

from .conftest import DEMO_TENANT, DEMO_WIDGET_KEY
from .test_dashboard_browser import SUPERVISOR, log_in, operator_context, shots

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ADMIN = ("livia", "lucine-e2e-admin-livia")
COLOUR = "#1f5fbf"
GREETING = "Benvenuti alle Lucine! Chiedete pure."


def create_admin(stack: Stack) -> None:
    spec = next(s for s in SERVICES if s.name == "gateway")
    command = [sys.executable, "-m", "gateway.operators", "create", "--tenant", DEMO_TENANT, "--username", ADMIN[0]]
    command += ["--display-name", "Livia (admin)", "--role", "admin", "--password-stdin"]
    done = subprocess.run(
        command, input=ADMIN[1] + "\n", env=stack.env_for(spec), cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


async def admin_headers(gateway: httpx.AsyncClient) -> dict[str, str]:
    login = await gateway.post("/v1/operators/login", json={"username": ADMIN[0], "password": ADMIN[1]})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def test_an_admin_changes_the_widget_and_a_supervisor_only_reads(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    folder = shots(tmp_path)
    create_admin(stack)
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=15) as gateway:
        headers = await admin_headers(gateway)
        before = (await gateway.get("/v1/settings/widget", headers=headers)).json()

        context = await operator_context(browser, stack)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await log_in(page, stack, ADMIN)
        await page.keyboard.press("Alt+8")
        await expect(page.get_by_test_id("view-settings")).to_have_attribute("aria-current", "page")
        await expect(page.get_by_test_id("profile-name")).not_to_have_value("")
        await expect(page.get_by_test_id("settings-readonly")).to_have_count(0)
        await page.screenshot(path=str(folder / "e2e-settings-profile.png"))

        # The widget: colour and greeting, the preview follows, the save is confirmed by the API.
        await page.get_by_test_id("settings-tab-widget").click()
        await page.get_by_test_id("widget-texts-it").click()
        await page.get_by_test_id("widget-primary-color").fill(COLOUR)
        await page.get_by_test_id("widget-greeting").fill(GREETING)
        await expect(page.get_by_test_id("widget-preview")).to_have_attribute("data-primary", COLOUR)
        await expect(page.get_by_test_id("widget-preview-greeting")).to_have_text(GREETING)
        await page.get_by_test_id("settings-save").click()
        await expect(page.get_by_test_id("settings-saved")).to_be_visible()
        await expect(page.get_by_test_id("widget-snippet")).to_have_value(
            re.compile(f'data-widget-key="{DEMO_WIDGET_KEY}"')
        )
        await page.screenshot(path=str(folder / "e2e-settings-widget.png"))
        saved = (await gateway.get("/v1/settings/widget", headers=headers)).json()
        assert saved["appearance"]["primary_color"] == COLOUR
        assert saved["appearance"]["texts"]["it"]["greeting"] == GREETING
        config = (await gateway.get("/v1/widget/config", headers={"X-Widget-Key": DEMO_WIDGET_KEY})).json()
        assert config["appearance"]["primary_color"] == COLOUR
        assert config["appearance"]["texts"]["it"]["greeting"] == GREETING

        testid = '[data-testid="{}"]'.format
        for name, ready in [
            ("assistant", testid("assistant-form")),
            ("team", testid("team-table")),
            ("canned", testid("canned-list") + ", " + testid("canned-empty")),  # the demo tenant may have none
            ("audit", testid("audit-entry")),
        ]:
            await page.get_by_test_id(f"settings-tab-{name}").click()
            await expect(page.locator(ready).first).to_be_visible(timeout=10_000)
            await expect(page.get_by_test_id("settings-load-error")).to_have_count(0)
            await page.screenshot(path=str(folder / f"e2e-settings-{name}.png"))
        # The widget change is in the audit log, by this admin.
        await expect(page.get_by_test_id("audit-entry").first).to_contain_text(ADMIN[0])
        assert not errors, errors
        await context.close()

        # A supervisor reads every page but the audit log, and can change nothing.
        context = await operator_context(browser, stack)
        page = await context.new_page()
        await log_in(page, stack, SUPERVISOR)
        await page.get_by_test_id("view-settings").click()
        await expect(page.get_by_test_id("settings-readonly")).to_be_visible()
        await expect(page.get_by_test_id("settings-tab-audit")).to_have_count(0)
        await expect(page.get_by_test_id("profile-name")).to_be_disabled()
        await expect(page.get_by_test_id("settings-save")).to_have_count(0)
        await page.get_by_test_id("settings-tab-widget").click()
        await expect(page.get_by_test_id("widget-greeting")).to_be_disabled()
        await expect(page.get_by_test_id("widget-preview")).to_have_attribute("data-primary", COLOUR)
        await expect(page.get_by_test_id("widget-rotate")).to_have_count(0)
        await page.screenshot(path=str(folder / "e2e-settings-supervisor-widget.png"))
        await page.get_by_test_id("settings-tab-team").click()
        await expect(page.get_by_test_id("team-member").first).to_be_visible()
        await expect(page.get_by_test_id("team-toggle")).to_have_count(0)
        await expect(page.get_by_test_id("team-invite-form")).to_have_count(0)
        await context.close()

        # The demo tenant's widget as it was, for the other tests of the session.
        restored = await gateway.put(
            "/v1/settings/widget",
            headers=headers,
            json={"allowed_origins": before["allowed_origins"], "appearance": before["appearance"]},
        )
        assert restored.status_code == 200, restored.text


async def test_a_plain_operator_has_no_settings(browser: Browser, stack: Stack) -> None:
    context = await operator_context(browser, stack)
    page = await context.new_page()
    await log_in(page, stack)
    await expect(page.get_by_test_id("view-tickets")).to_be_visible()
    await expect(page.get_by_test_id("view-settings")).to_have_count(0)
    await page.keyboard.press("Alt+8")
    await expect(page.get_by_test_id("settings-page")).to_have_count(0)
    await context.close()


def gateway_secret(stack: Stack, name: str) -> str:
    """A link secret of the stack's gateway: its environment's, or the setting's default."""
    from gateway.config import Settings

    spec = next(s for s in SERVICES if s.name == "gateway")
    return stack.env_for(spec).get(name.upper()) or str(Settings.model_fields[name].default)


async def test_sign_up_verify_and_accept_an_invitation(browser: Browser, stack: Stack, tmp_path: Path) -> None:
    """The public pages on the real gateway. The links' tokens are signed as the gateway signs
    the ones it asks the notifier to email (this stack sends no mail)."""
    from gateway.signuplinks import SignupLink, sign
    from gateway.team_api import InvitationLink, sign_invitation

    folder = shots(tmp_path)
    suffix = uuid.uuid4().hex[:6]
    tenant_id, username = f"pasticceria-{suffix}", f"anna{suffix}"
    context = await operator_context(browser, stack)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    base = stack.url("gateway")
    await page.goto(f"{base}/dashboard/signup")
    await page.get_by_test_id("signup-business-name").fill(f"Pasticceria {suffix}")
    await expect(page.get_by_test_id("signup-tenant-id")).to_have_value(tenant_id)
    await page.get_by_test_id("signup-username").fill(username)
    await page.get_by_test_id("signup-display-name").fill("Anna Rossi")
    await page.get_by_test_id("signup-email").fill("anna@pasticceriarossi.it")
    await page.get_by_test_id("signup-password").fill("una-password-lunga")
    await page.get_by_test_id("signup-password-again").fill("una-password-lunga")
    await page.screenshot(path=str(folder / "e2e-public-signup.png"), full_page=True)
    await page.get_by_test_id("signup-submit").click()
    await expect(page.get_by_test_id("signup-done")).to_contain_text("anna@pasticceriarossi.it")
    await page.screenshot(path=str(folder / "e2e-public-signup-done.png"))

    # Refused until verified; the link verifies it and the admin logs in.
    async with httpx.AsyncClient(base_url=base, timeout=15) as gateway:
        login = {"username": username, "password": "una-password-lunga"}
        refused = await gateway.post("/v1/operators/login", json=login)
        assert refused.status_code == 403, refused.text
        token = sign(gateway_secret(stack, "signup_link_secret"), SignupLink(tenant_id, f"{tenant_id}-{username}"))
        await page.goto(f"{base}/dashboard/verify?t={token}")
        await expect(page.get_by_test_id("verify-done")).to_be_visible()
        await page.screenshot(path=str(folder / "e2e-public-verify.png"))
        assert (await gateway.post("/v1/operators/login", json=login)).status_code == 200
        await page.goto(f"{base}/dashboard/verify?t=not-a-token")
        await expect(page.get_by_test_id("public-error")).to_have_text("Questo link è scaduto o è già stato usato.")

        # An invitation of the new tenant's admin, accepted on the page; then the account logs in.
        headers = {
            "Authorization": f"Bearer {(await gateway.post('/v1/operators/login', json=login)).json()['access_token']}"
        }
        invited = await gateway.post(
            "/v1/team/invitations",
            headers=headers,
            json={
                "email": "luca@pasticceriarossi.it",
                "role": "operator",
                "skills": [],
                "capacity": 3,
                "language": "it",
            },
        )
        assert invited.status_code == 201, invited.text
        link = InvitationLink(tenant_id=tenant_id, invitation_id=uuid.UUID(invited.json()["invitation_id"]))
        token = sign_invitation(gateway_secret(stack, "invitation_link_secret"), link)
        await page.goto(f"{base}/dashboard/invite?t={token}")
        await expect(page.get_by_test_id("invite-who")).to_contain_text(f"Pasticceria {suffix}")
        await page.get_by_test_id("invite-username").fill(f"luca{suffix}")
        await page.get_by_test_id("invite-display-name").fill("Luca")
        await page.get_by_test_id("invite-password").fill("password-di-luca")
        await page.get_by_test_id("invite-password-again").fill("password-di-luca")
        await page.screenshot(path=str(folder / "e2e-public-invite.png"))
        await page.get_by_test_id("invite-submit").click()
        await expect(page.get_by_test_id("invite-done")).to_be_visible()
        luca = {"username": f"luca{suffix}", "password": "password-di-luca"}
        assert (await gateway.post("/v1/operators/login", json=luca)).status_code == 200
        await page.reload()  # used once: the link is gone
        await expect(page.get_by_test_id("public-error")).to_have_text("Questo link è scaduto o è già stato usato.")
    assert not errors, errors
    await context.close()
