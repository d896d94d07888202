"""The tenant's widget settings, set through the API by an admin, drawn by the widget on the demo
page in a real Chromium against the whole running system."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, expect

from devkit.stack import REPO, SERVICES, Stack

from .conftest import DEMO_TENANT, DEMO_WIDGET_KEY

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
ADMIN = ("widget-admin", "lucine-e2e-widget-admin")
APPEARANCE = {
    "primary_color": "#1d4ed8",
    "accent_color": "#f59e0b",
    "position": "bottom-left",
    "texts": {
        "it": {
            "launcher_label": "Scrivici",
            "greeting": "Benvenuti alle Lucine! Chiedeteci orari e biglietti.",
            "operator_button": "Voglio un operatore",
        }
    },
}


def create_admin(stack: Stack) -> None:
    """An admin of the demo tenant, made as a deployment makes one: the gateway's command."""
    spec = next(s for s in SERVICES if s.name == "gateway")
    command = [sys.executable, "-m", "gateway.operators", "create", "--tenant", DEMO_TENANT, "--username", ADMIN[0]]
    command += ["--display-name", "Widget admin", "--role", "admin", "--password-stdin"]
    done = subprocess.run(
        command, input=ADMIN[1] + "\n", env=stack.env_for(spec), cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


async def put_widget(http: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.put("/v1/settings/widget", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_colours_position_and_texts_set_by_an_admin_are_drawn_by_the_widget(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    create_admin(stack)
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=15) as http:
        login = await http.post("/v1/operators/login", json={"username": ADMIN[0], "password": ADMIN[1]})
        assert login.status_code == 200, login.text
        http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        original = await http.get("/v1/settings/widget")
        assert original.status_code == 200, original.text
        assert original.json()["widget_key"] == DEMO_WIDGET_KEY
        await put_widget(http, {"allowed_origins": original.json()["allowed_origins"], "appearance": APPEARANCE})
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800}, locale="it-IT")
            await page.goto(f"{stack.url('gateway')}/demo/{DEMO_TENANT}")
            root = page.locator(".lw-root")
            await expect(root).to_have_attribute("data-config", "applied", timeout=15_000)
            launcher = page.get_by_test_id("launcher")
            await expect(launcher).to_have_attribute("title", "Scrivici")
            await expect(launcher).to_have_css("border-top-color", "rgb(245, 158, 11)")  # the accent
            box = await launcher.bounding_box()
            assert box is not None
            assert box["x"] < 100, "the launcher is on the left"

            await launcher.click()
            await expect(page.get_by_test_id("panel")).to_be_visible()
            await expect(page.get_by_test_id("welcome")).to_have_text(APPEARANCE["texts"]["it"]["greeting"])
            await expect(page.get_by_test_id("send")).to_have_css("background-color", "rgb(29, 78, 216)")
            panel = await page.get_by_test_id("panel").bounding_box()
            assert panel is not None
            assert panel["x"] < 100, "the panel opens on the left"
            await page.screenshot(path=str(tmp_path / "widget-settings.png"))
            await page.close()

            # A configuration that cannot be fetched leaves the built-in look and a working chat.
            page = await browser.new_page(viewport={"width": 1280, "height": 800}, locale="it-IT")
            await page.route("**/v1/widget/config", lambda route: route.abort())
            await page.goto(f"{stack.url('gateway')}/demo/{DEMO_TENANT}")
            await expect(page.locator(".lw-root")).to_have_attribute("data-config", "default", timeout=15_000)
            await page.get_by_test_id("launcher").click()
            await expect(page.get_by_test_id("welcome")).to_have_text("Ciao! Come possiamo aiutarti?")
            await expect(page.get_by_test_id("send")).to_have_css("background-color", "rgb(14, 59, 44)")
            await page.get_by_test_id("input").fill("Quanto costano i biglietti?")
            await page.get_by_test_id("send").click()
            answer = page.locator('[data-testid="message"][data-sender="ai"]').first
            await expect(answer).to_be_visible(timeout=20_000)
            await page.screenshot(path=str(tmp_path / "widget-settings-fallback.png"))
            await page.close()
        finally:  # the other browser tests draw the demo tenant's own look
            restored = {"allowed_origins": original.json()["allowed_origins"], "appearance": {}}
            await put_widget(http, restored)
