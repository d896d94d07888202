"""The dashboard's settings area and its public pages (sign-up, verify, invitation): their routes,
static guards, and a browser run against a stand-in of the settings API.

The files come from the real `gateway.web` router; the API is answered in the test (`page.route`),
with the shapes of settings_api, team_api, canned_api, signup_api and the admin API, so the UI's
logic (read-only for supervisors, a 422 shown next to its form with the input kept, the widget's
preview following the form) is checked without a backend. The whole system drives the same pages
in tests/e2e/test_settings_dashboard_browser.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from .test_dashboard_static import DASHBOARD, ORIGIN, SINKS, TENANT, _get, _json, _shots, _token

PUBLIC_PAGES = ["/dashboard/signup", "/dashboard/verify?t=abc", "/dashboard/invite?t=abc"]


# --------------------------------------------------------------------------------------------
# Routes and static guards
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PUBLIC_PAGES)
async def test_the_public_pages_are_served_without_login(path: str) -> None:
    page = await _get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/dashboard/public.js">' in page.text
    # The address carries a link's token: no Referer, no cache.
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert '<meta name="referrer" content="no-referrer">' in page.text


async def test_the_settings_modules_are_served() -> None:
    for path, kind in [
        ("/dashboard/settings.js", "text/javascript"),
        ("/dashboard/settings.css", "text/css"),
        ("/dashboard/public.js", "text/javascript"),
        ("/dashboard/public.css", "text/css"),
    ]:
        response = await _get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(kind), path
    app = (DASHBOARD / "app.js").read_text(encoding="utf-8")
    assert 'import { SettingsView } from "/dashboard/settings.js";' in app


def test_the_new_modules_parse_and_build_no_html_from_strings() -> None:
    node = shutil.which("node")
    assert node, "node is required to syntax-check the dashboard"
    for name in ["settings.js", "public.js"]:
        source = (DASHBOARD / name).read_text(encoding="utf-8")
        result = subprocess.run(
            [node, "--input-type=module", "--check"], input=source, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, (name, result.stderr)
        for sink in SINKS:
            assert sink not in source, (name, sink)


def test_both_languages_have_every_settings_and_public_word() -> None:
    node = shutil.which("node")
    assert node
    script = (
        "import(process.argv[1]).then(m => { const it = m.words('it'), en = m.words('en');"
        " const paths = (o, p = '') => Object.entries(o).flatMap(([k, v]) =>"
        "   v && typeof v === 'object' ? paths(v, p + k + '.') : [p + k]).sort().join(',');"
        " console.log(JSON.stringify({settings: paths(it.settings) === paths(en.settings),"
        " pub: paths(it.pub) === paths(en.pub), view: !!it.viewSettings && !!en.viewSettings})); })"
    )
    result = subprocess.run(
        [node, "--input-type=module", "-e", script, (DASHBOARD / "i18n.js").as_uri()],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"settings": True, "pub": True, "view": True}


# --------------------------------------------------------------------------------------------
# Browser run against a stand-in of the settings API
# --------------------------------------------------------------------------------------------

INVITATION_TOKEN = "invitation-token-1"
SIGNUP_TOKEN = "signup-token-1"


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": code, "message": message}}


class FakeSettingsApi:
    """The settings, team, canned-response, audit and public routes, with the real ones' shapes."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.requests: list[tuple[str, str, Any]] = []
        self.profile: dict[str, Any] = {
            "tenant_id": TENANT,
            "name": "Lucine di Natale",
            "languages": ["it", "en"],
            "default_language": "it",
            "time_zone": "Europe/Rome",
            "business_hours": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "18:00"}],
            "profile_revision": 3,
        }
        self.widget: dict[str, Any] = {
            "allowed_origins": ["https://lucine.test"],
            "appearance": {
                "primary_color": "#0e3b2c",
                "accent_color": "#e0b54a",
                "position": "bottom-right",
                "texts": {"it": {"launcher_label": "Chatta con noi", "greeting": "Ciao! Come posso aiutarti?"}},
            },
            "widget_key": "wk_lucine_demo_2025",
            "previous_key_expires_at": None,
            "embed_snippet": '<script src="/widget.js" data-widget-key="wk_lucine_demo_2025" defer></script>',
        }
        self.assistant: dict[str, Any] = {
            "tenant_id": TENANT,
            "version": 1,
            "updated_at": "2025-12-01T10:00:00Z",
            "answer_threshold": 0.55,
            "unknown_threshold": 0.3,
            "handoff_phrases": ["parlare con qualcuno", "reclamo"],
            "sensitive_topics": {"refund": ["rimborso", "soldi indietro"]},
            "smart_actions": [
                {"id": "tickets", "url": "https://lucine.test/biglietti", "label": {"it": "Biglietti"}, "triggers": []}
            ],
            "llm_enabled": True,
        }
        self.operators: list[dict[str, Any]] = [
            {
                "operator_id": "lucine-giulia",
                "username": "giulia",
                "display_name": "Giulia",
                "email": "giulia@lucine.test",
                "role": role,
                "skills": ["tickets"],
                "capacity": 3,
                "active": True,
            },
            {
                "operator_id": "lucine-marco",
                "username": "marco",
                "display_name": "Marco",
                "email": None,
                "role": "operator",
                "skills": [],
                "capacity": 2,
                "active": True,
            },
        ]
        self.invitations: list[dict[str, Any]] = [
            {
                "invitation_id": str(uuid.uuid4()),
                "email": "luca@lucine.test",
                "role": "operator",
                "skills": [],
                "capacity": 3,
                "language": "it",
                "invited_by": "lucine-giulia",
                "created_at": "2025-12-01T10:00:00Z",
                "expires_at": "2025-12-08T10:00:00Z",
            }
        ]
        self.canned: list[dict[str, Any]] = [
            {
                "response_id": str(uuid.uuid4()),
                "language": "it",
                "shortcut": "ciao",
                "title": "Saluto",
                "text": "Ciao, sono {operator}. Come posso aiutarti?",
                "created_at": "2025-12-01T10:00:00Z",
                "updated_at": "2025-12-01T10:00:00Z",
            }
        ]
        self.audit = [
            {
                "entry_id": 100 - i,
                "actor": "lucine-giulia",
                "action": "settings.widget" if i % 2 else "operator.deactivate",
                "target": f"tenant:{TENANT}" if i % 2 else "operator:lucine-marco",
                "before": {"active": True, "capacity": 2},
                "after": {"active": False, "capacity": 2},
                "occurred_at": f"2025-12-01T10:{i:02d}:00Z",
            }
            for i in range(40)
        ]

    def answer(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        admin = self.role == "admin"
        if path == "/v1/settings/profile":
            if method == "PUT":
                if not admin:
                    return _error(403, "forbidden", "admins only")
                if body["default_language"] not in body["languages"]:
                    return _error(422, "invalid_request", "default_language: is not one of languages")
                self.profile.update(body)
            return 200, self.profile
        if path == "/v1/settings/widget":
            if method == "PUT":
                if not admin:
                    return _error(403, "forbidden", "admins only")
                origins = body["allowed_origins"]
                if any(not o.startswith("https://") for o in origins):
                    return _error(422, "invalid_request", "allowed_origins.0: an origin is https://host[:port]")
                self.widget.update(allowed_origins=origins, appearance=body["appearance"])
            return 200, self.widget
        if path == "/v1/settings/widget/rotate-key" and method == "POST":
            self.widget.update(widget_key="wk_new_key", previous_key_expires_at="2025-12-02T10:00:00Z")
            self.widget["embed_snippet"] = self.widget["embed_snippet"].replace("wk_lucine_demo_2025", "wk_new_key")
            return 200, {"widget_key": "wk_new_key", "previous_key_expires_at": "2025-12-02T10:00:00Z"}
        if path == "/v1/settings/assistant":
            if method == "PUT":
                self.assistant.update(body)
            return 200, self.assistant
        if path == "/v1/team":
            return 200, {"tenant_id": TENANT, "operators": self.operators, "invitations": self.invitations}
        match = re.fullmatch(r"/v1/team/operators/([^/]+)", path)
        if match and method == "PATCH":
            member = next(o for o in self.operators if o["operator_id"] == match.group(1))
            member.update(body)
            return 200, member
        match = re.fullmatch(r"/v1/admin/operators/([^/]+)/(deactivate|activate)", path)
        if match:
            member = next(o for o in self.operators if o["operator_id"] == match.group(1))
            member["active"] = match.group(2) == "activate"
            return 200, {
                "operator_id": member["operator_id"],
                "active": member["active"],
                "changed": True,
                "requeued": [],
            }
        if path == "/v1/team/invitations" and method == "POST":
            invitation = {
                **body,
                "invitation_id": str(uuid.uuid4()),
                "invited_by": "lucine-giulia",
                "created_at": "2025-12-01T10:00:00Z",
                "expires_at": "2025-12-08T10:00:00Z",
            }
            self.invitations.append(invitation)
            return 201, invitation
        match = re.fullmatch(r"/v1/team/invitations/([^/]+)", path)
        if match and method == "DELETE":
            self.invitations = [i for i in self.invitations if i["invitation_id"] != match.group(1)]
            return 204, None
        if path == "/v1/canned-responses":
            if method == "POST":
                if not body["shortcut"]:
                    return _error(422, "invalid_request", "shortcut: String should have at least 1 character")
                created = {**body, "response_id": str(uuid.uuid4()), "created_at": "x", "updated_at": "x"}
                self.canned.append(created)
                return 201, created
            language = query.get("language", [None])[0]
            return 200, {"responses": [r for r in self.canned if language in (None, r["language"])]}
        match = re.fullmatch(r"/v1/canned-responses/([^/]+)", path)
        if match:
            if method == "DELETE":
                self.canned = [r for r in self.canned if r["response_id"] != match.group(1)]
                return 204, None
            found = next(r for r in self.canned if r["response_id"] == match.group(1))
            found.update(body)
            return 200, found
        if path == "/v1/admin/audit":
            limit = int(query["limit"][0])
            before = int(query.get("before", ["1000"])[0])
            entries = [e for e in self.audit if e["entry_id"] < before][:limit]
            more = len([e for e in self.audit if e["entry_id"] < before]) > limit
            return 200, {
                "tenant_id": TENANT,
                "entries": entries,
                "next_before": entries[-1]["entry_id"] if more else None,
            }
        if path == "/v1/signup" and method == "POST":
            if body["tenant_id"] == "lucine-di-natale":
                return _error(409, "tenant_taken", "the tenant id lucine-di-natale is taken")
            return 202, {"tenant_id": body["tenant_id"], "status": "pending_verification"}
        if path == "/v1/signup/verify":
            if body["token"] != SIGNUP_TOKEN:
                return _error(410, "link_gone", "this link is invalid or has expired: sign up again")
            return 200, {"tenant_id": "pasticceria-rossi", "dashboard_url": "/dashboard"}
        if path == f"/v1/invitations/{INVITATION_TOKEN}":
            return 200, {
                "tenant_name": "Lucine di Natale",
                "email": "luca@lucine.test",
                "role": "operator",
                "expires_at": "2025-12-08T10:00:00Z",
            }
        if path.startswith("/v1/invitations/") and method == "GET":
            return _error(410, "invitation_gone", "this invitation was used, revoked or has expired")
        if path == "/v1/invitations/accept":
            return 201, {"operator_id": "lucine-luca", "username": body["username"]}
        if path == "/v1/queue":
            return 200, {"tenant_id": TENANT, "entries": []}
        if path in ("/v1/operators", "/v1/conversations"):
            return 200, {"operators": [], "conversations": []}
        if path == "/v1/operators/login":
            return 200, {"access_token": _token(self.role), "refresh_token": "r", "expires_in": 900}
        return _error(404, "not_found", "no route")

    async def handle(self, route: Any) -> None:
        request = route.request
        url = urlparse(request.url)
        body = json.loads(request.post_data) if request.post_data else None
        self.requests.append((request.method, url.path, body))
        if url.path.startswith("/dashboard"):
            response = await _get(url.path)
            await route.fulfill(
                status=response.status_code, body=response.content, content_type=response.headers["content-type"]
            )
            return
        status, answer = self.answer(request.method, url.path, parse_qs(url.query), body)
        if answer is None:
            await route.fulfill(status=status)
        else:
            await _json(route, status, answer)


async def _open(browser: Any, api: FakeSettingsApi, path: str = "/dashboard") -> tuple[Any, Any, list[str]]:
    context = await browser.new_context(viewport={"width": 1366, "height": 768}, locale="it-IT")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.route(f"{ORIGIN}/**", api.handle)
    await page.route_web_socket(re.compile(r"^ws://gateway\.test/.*"), lambda ws: None)
    await page.goto(ORIGIN + path)
    return context, page, errors


async def _log_in(page: Any) -> None:
    await page.get_by_test_id("login-username").fill("giulia")
    await page.get_by_test_id("login-password").fill("right")
    await page.keyboard.press("Enter")
    await page.get_by_test_id("me").wait_for()


@pytest.mark.browser
async def test_an_admin_changes_the_settings(browser: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    api = FakeSettingsApi("admin")
    shots = _shots(tmp_path)
    context, page, errors = await _open(browser, api)
    await _log_in(page)
    await page.keyboard.press("Alt+8")
    await expect(page.get_by_test_id("settings-page")).to_be_visible()
    await expect(page.get_by_test_id("settings-readonly")).to_have_count(0)

    # Profile: a bad default language is refused with the reason, and the input stays.
    await expect(page.get_by_test_id("profile-name")).to_have_value("Lucine di Natale")
    await page.get_by_test_id("profile-name").fill("Lucine di Natale (Torino)")
    await page.get_by_test_id("profile-languages-en").uncheck()
    await page.get_by_test_id("profile-default-language").select_option("it")
    await page.get_by_test_id("profile-add-window").click()
    await expect(page.get_by_test_id("profile-window")).to_have_count(2)
    await page.get_by_test_id("settings-save").click()
    await expect(page.get_by_test_id("settings-saved")).to_be_visible()
    assert api.profile["name"] == "Lucine di Natale (Torino)"
    assert api.profile["languages"] == ["it"]
    assert len(api.profile["business_hours"]) == 2
    await page.get_by_test_id("profile-languages-en").check()
    await page.get_by_test_id("profile-default-language").select_option("en")
    await page.get_by_test_id("profile-languages-en").uncheck()  # the default is no longer offered
    await page.get_by_test_id("profile-name").press("Control+Enter")
    await expect(page.get_by_test_id("settings-error")).to_contain_text("default_language")
    await expect(page.get_by_test_id("profile-name")).to_have_value("Lucine di Natale (Torino)")
    await page.screenshot(path=str(shots / "settings-profile.png"))

    # Widget: the preview follows the form; a bad origin is refused, then fixed and saved.
    await page.get_by_test_id("settings-tab-widget").click()
    preview = page.get_by_test_id("widget-preview")
    await expect(page.get_by_test_id("widget-preview-greeting")).to_have_text("Ciao! Come posso aiutarti?")
    await page.get_by_test_id("widget-primary-color").fill("#1f5fbf")
    await expect(preview).to_have_attribute("data-primary", "#1f5fbf")
    await page.get_by_test_id("widget-greeting").fill("Benvenuti alle Lucine!")
    await expect(page.get_by_test_id("widget-preview-greeting")).to_have_text("Benvenuti alle Lucine!")
    await page.get_by_test_id("widget-position-bottom-left").check()
    await expect(preview).to_have_attribute("data-position", "bottom-left")
    await page.get_by_test_id("widget-origins").fill("https://lucine.test\nlucine.test/shop")
    await page.get_by_test_id("settings-save").click()
    await expect(page.get_by_test_id("settings-error")).to_contain_text("allowed_origins")
    await expect(page.get_by_test_id("widget-greeting")).to_have_value("Benvenuti alle Lucine!")
    await page.get_by_test_id("widget-origins").fill("https://lucine.test\nhttps://shop.lucine.test")
    await page.get_by_test_id("settings-save").click()
    await expect(page.get_by_test_id("settings-saved")).to_be_visible()
    assert api.widget["appearance"]["primary_color"] == "#1f5fbf"
    assert api.widget["appearance"]["texts"]["it"]["greeting"] == "Benvenuti alle Lucine!"
    assert api.widget["allowed_origins"] == ["https://lucine.test", "https://shop.lucine.test"]
    # Copy (the clipboard is refused here: the text is selected instead), then a key rotation.
    await page.get_by_test_id("widget-copy").click()
    await expect(page.get_by_test_id("widget-copied")).to_be_visible()
    await page.get_by_test_id("widget-grace").select_option("86400")
    await page.get_by_test_id("widget-rotate").click()
    await page.get_by_test_id("widget-rotate").click()
    await expect(page.get_by_test_id("widget-key")).to_have_text("wk_new_key")
    await expect(page.get_by_test_id("widget-previous-key")).to_be_visible()
    assert ("POST", "/v1/settings/widget/rotate-key", {"grace_seconds": 86400}) in api.requests
    await page.screenshot(path=str(shots / "settings-widget.png"))

    # Assistant.
    await page.get_by_test_id("settings-tab-assistant").click()
    await expect(page.get_by_test_id("assistant-topic")).to_have_count(1)
    await page.get_by_test_id("assistant-answer_threshold").fill("0.6")
    await page.get_by_test_id("assistant-llm").uncheck()
    await page.get_by_test_id("settings-save").click()
    await expect(page.get_by_test_id("settings-saved")).to_be_visible()
    assert api.assistant["answer_threshold"] == 0.6
    assert api.assistant["llm_enabled"] is False
    assert api.assistant["sensitive_topics"] == {"refund": ["rimborso", "soldi indietro"]}
    await page.screenshot(path=str(shots / "settings-assistant.png"), full_page=True)

    # Team: a capacity changed, an account deactivated, an invitation sent and another revoked.
    await page.get_by_test_id("settings-tab-team").click()
    marco = page.locator('[data-testid="team-member"][data-operator="lucine-marco"]')
    await marco.get_by_test_id("team-capacity").fill("4")
    await marco.get_by_test_id("team-save").click()
    await expect(marco.get_by_test_id("team-save")).to_have_count(0)
    assert api.operators[1]["capacity"] == 4
    await marco.get_by_test_id("team-toggle").click()
    await expect(marco.get_by_test_id("team-toggle")).to_have_text(re.compile("Riattiva"))
    own = page.locator('[data-testid="team-member"][data-operator="lucine-giulia"]')
    await expect(own.get_by_test_id("team-toggle")).to_have_count(0)
    await page.get_by_test_id("team-invite-email").fill("anna@lucine.test")
    await page.get_by_test_id("team-invite-send").click()
    await expect(page.get_by_test_id("team-invitation")).to_have_count(2)
    await page.get_by_test_id("team-revoke").first.click()
    await page.get_by_test_id("team-revoke").first.click()
    await expect(page.get_by_test_id("team-invitation")).to_have_count(1)
    await page.screenshot(path=str(shots / "settings-team.png"))

    # Canned responses: a 422 keeps the text; then created, edited, deleted.
    await page.get_by_test_id("settings-tab-canned").click()
    await expect(page.get_by_test_id("canned-item")).to_have_count(1)
    await page.get_by_test_id("canned-new").click()
    await page.get_by_test_id("canned-title").fill("Orari")
    await page.get_by_test_id("canned-text").fill("Siamo aperti dalle 17 alle 23.")
    await page.get_by_test_id("canned-save").click()
    await expect(page.get_by_test_id("canned-error")).to_contain_text("shortcut")
    await expect(page.get_by_test_id("canned-text")).to_have_value("Siamo aperti dalle 17 alle 23.")
    await page.get_by_test_id("canned-shortcut").fill("orari")
    await page.get_by_test_id("canned-text").press("Control+Enter")
    await expect(page.get_by_test_id("canned-item")).to_have_count(2)
    await page.get_by_test_id("canned-item").filter(has_text="/orari").get_by_test_id("canned-edit").click()
    await page.get_by_test_id("canned-title").fill("Orari di apertura")
    await page.get_by_test_id("canned-save").click()
    await expect(page.get_by_test_id("canned-item").filter(has_text="Orari di apertura")).to_have_count(1)
    await page.screenshot(path=str(shots / "settings-canned.png"))
    delete = page.get_by_test_id("canned-item").filter(has_text="/orari").get_by_test_id("canned-delete")
    await delete.click()
    await delete.click()
    await expect(page.get_by_test_id("canned-item")).to_have_count(1)

    # Audit log, paged.
    await page.get_by_test_id("settings-tab-audit").click()
    await expect(page.get_by_test_id("audit-entry")).to_have_count(25)
    await page.screenshot(path=str(shots / "settings-audit.png"))
    await page.get_by_test_id("audit-older").click()
    await expect(page.get_by_test_id("audit-entry")).to_have_count(15)
    await expect(page.get_by_test_id("audit-older")).to_be_disabled()
    await page.get_by_test_id("audit-newer").click()
    await expect(page.get_by_test_id("audit-entry")).to_have_count(25)

    # In English.
    await page.get_by_test_id("lang-en").click()
    await expect(page.get_by_test_id("settings-tab-canned")).to_have_text("Canned responses")
    assert errors == []
    await context.close()


@pytest.mark.browser
async def test_a_supervisor_reads_the_settings_and_an_operator_has_none(browser: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    api = FakeSettingsApi("supervisor")
    shots = _shots(tmp_path)
    context, page, errors = await _open(browser, api)
    await _log_in(page)
    await page.get_by_test_id("view-settings").click()
    await expect(page.get_by_test_id("settings-readonly")).to_be_visible()
    await expect(page.get_by_test_id("settings-tab-audit")).to_have_count(0)  # admins only
    for tab, field in [("profile", "profile-name"), ("widget", "widget-greeting"), ("assistant", "assistant-llm")]:
        await page.get_by_test_id(f"settings-tab-{tab}").click()
        await expect(page.get_by_test_id(field)).to_be_disabled()
        await expect(page.get_by_test_id("settings-save")).to_have_count(0)
    await expect(page.get_by_test_id("widget-rotate")).to_have_count(0)
    await page.get_by_test_id("settings-tab-team").click()
    await expect(page.get_by_test_id("team-member").first.get_by_test_id("team-role")).to_be_disabled()
    await expect(page.get_by_test_id("team-toggle")).to_have_count(0)
    await expect(page.get_by_test_id("team-invite-form")).to_have_count(0)
    await page.get_by_test_id("settings-tab-canned").click()
    await expect(page.get_by_test_id("canned-item")).to_have_count(1)
    await expect(page.get_by_test_id("canned-new")).to_have_count(0)
    await page.screenshot(path=str(shots / "settings-supervisor.png"))
    writes = [r for r in api.requests if r[0] != "GET" and r[1].startswith(("/v1/settings", "/v1/team", "/v1/canned"))]
    assert writes == []
    assert errors == []
    await context.close()

    api = FakeSettingsApi("operator")
    context, page, errors = await _open(browser, api)
    await _log_in(page)
    await expect(page.get_by_test_id("view-tickets")).to_be_visible()
    await expect(page.get_by_test_id("view-settings")).to_have_count(0)
    await page.keyboard.press("Alt+8")
    await expect(page.get_by_test_id("settings-page")).to_have_count(0)
    assert errors == []
    await context.close()


@pytest.mark.browser
async def test_sign_up_verify_and_invitation_pages(browser: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    api = FakeSettingsApi("admin")
    shots = _shots(tmp_path)
    context, page, errors = await _open(browser, api, "/dashboard/signup")
    await page.get_by_test_id("signup-business-name").fill("Pasticceria Rossi")
    await expect(page.get_by_test_id("signup-tenant-id")).to_have_value("pasticceria-rossi")
    await page.get_by_test_id("signup-username").fill("anna")
    await page.get_by_test_id("signup-display-name").fill("Anna Rossi")
    await page.get_by_test_id("signup-email").fill("anna@rossi.test")
    await page.get_by_test_id("signup-password").fill("una-password-lunga")
    await page.get_by_test_id("signup-password-again").fill("una-password-lunga")
    await page.screenshot(path=str(shots / "public-signup.png"), full_page=True)
    await page.get_by_test_id("signup-tenant-id").fill("lucine-di-natale")
    await page.get_by_test_id("signup-submit").click()
    await expect(page.get_by_test_id("public-error")).to_contain_text("taken")
    await expect(page.get_by_test_id("signup-email")).to_have_value("anna@rossi.test")
    await page.get_by_test_id("signup-tenant-id").fill("pasticceria-rossi")
    await page.get_by_test_id("signup-submit").click()
    await expect(page.get_by_test_id("signup-done")).to_contain_text("anna@rossi.test")
    sent = next(body for method, path, body in api.requests if path == "/v1/signup" and body["tenant_id"] != TENANT)
    assert sent["admin"] == {
        "username": "anna",
        "display_name": "Anna Rossi",
        "email": "anna@rossi.test",
        "password": "una-password-lunga",
    }
    assert sent["languages"] == ["it"]
    await page.screenshot(path=str(shots / "public-signup-done.png"))

    await page.goto(f"{ORIGIN}/dashboard/verify?t={SIGNUP_TOKEN}")
    await expect(page.get_by_test_id("verify-done")).to_be_visible()
    await expect(page.get_by_test_id("public-sign-in")).to_have_attribute("href", "/dashboard")
    await page.screenshot(path=str(shots / "public-verify.png"))
    await page.goto(f"{ORIGIN}/dashboard/verify?t=old")
    await expect(page.get_by_test_id("public-error")).to_contain_text("scaduto")

    await page.goto(f"{ORIGIN}/dashboard/invite?t={INVITATION_TOKEN}")
    await expect(page.get_by_test_id("invite-who")).to_contain_text("Lucine di Natale")
    await expect(page.get_by_test_id("invite-who")).to_contain_text("luca@lucine.test")
    await page.get_by_test_id("invite-username").fill("luca")
    await page.get_by_test_id("invite-display-name").fill("Luca")
    await page.get_by_test_id("invite-password").fill("password-di-luca")
    await page.get_by_test_id("invite-password-again").fill("password-di-luca")
    await page.screenshot(path=str(shots / "public-invite.png"))
    await page.get_by_test_id("invite-submit").click()
    await expect(page.get_by_test_id("invite-done")).to_be_visible()
    accepted = next(body for method, path, body in api.requests if path == "/v1/invitations/accept")
    assert accepted == {
        "token": INVITATION_TOKEN,
        "username": "luca",
        "display_name": "Luca",
        "password": "password-di-luca",
    }
    await page.goto(f"{ORIGIN}/dashboard/invite?t=used")
    await expect(page.get_by_test_id("public-error")).to_contain_text("scaduto")
    await page.get_by_test_id("lang-en").click()
    await expect(page.get_by_test_id("public-error")).to_contain_text("expired")
    assert errors == []
    await context.close()
