"""The operator dashboard: its route and static guards, plus a browser test against a fake gateway.

The route is exercised through the real `gateway.web` router (no runtime needed). The browser test
(marker `browser`) drives Debian's Chromium through Playwright: the dashboard's files come from the
real route, and the operator API and stream are answered by an in-test fake (`page.route` /
`page.route_web_socket`), so the UI's logic is checked without any backend. The whole system is
driven by tests/e2e/test_dashboard_browser.py.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from gateway import web
from gateway.seed import DEMO_DIR, read_seed
from servicekit.http import ApiError, error_response

STATIC = Path(__file__).resolve().parents[1] / "src" / "gateway" / "static"
DASHBOARD = STATIC / "dashboard"
VENDOR = STATIC / "vendor"
ORIGIN = "http://gateway.test"
TENANT = "lucine-di-natale"


def _app() -> FastAPI:
    app = FastAPI()
    app.include_router(web.router)

    @app.exception_handler(ApiError)
    async def on_api_error(_: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.code, error.message)

    return app


async def _get(path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url=ORIGIN) as client:
        return await client.get(path)


# --------------------------------------------------------------------------------------------
# The route and static guards
# --------------------------------------------------------------------------------------------


async def test_the_route_serves_the_page_and_its_modules() -> None:
    page = await _get("/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/dashboard/app.js">' in page.text
    assert (await _get("/dashboard/")).text == page.text
    for path, kind in [
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/store.js", "text/javascript"),
        ("/dashboard/i18n.js", "text/javascript"),
        ("/dashboard/dashboard.css", "text/css"),
        ("/dashboard/favicon.svg", "image/svg+xml"),
    ]:
        response = await _get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(kind), path


def test_every_page_names_its_icon() -> None:
    # Without one the browser asks for /favicon.ico, which is not served: an error on every load.
    pages = [*STATIC.glob("*.html"), *DASHBOARD.glob("*.html")]
    assert len(pages) == 5
    for page in pages:
        assert '<link rel="icon" href="/dashboard/favicon.svg" type="image/svg+xml">' in page.read_text(), page.name


async def test_the_vendored_library_is_served_locally() -> None:
    response = await _get("/dashboard/vendor/preact-htm.module.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.content == (VENDOR / "preact-htm.module.js").read_bytes()
    assert "export{" in response.text
    license_text = (VENDOR / "preact-htm.LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in license_text
    assert "MIT License" in license_text
    app = (DASHBOARD / "app.js").read_text(encoding="utf-8")
    assert 'from "/dashboard/vendor/preact-htm.module.js"' in app


async def test_the_charting_library_is_vendored_with_its_license() -> None:
    """uPlot for the analytics page, served from the gateway like Preact (no CDN)."""
    for name, media in (("uplot.esm.js", "text/javascript"), ("uplot.min.css", "text/css")):
        response = await _get(f"/dashboard/vendor/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(media)
        assert response.content == (VENDOR / name).read_bytes()
    assert "export { uPlot as default }" in (VENDOR / "uplot.esm.js").read_text(encoding="utf-8")
    assert "MIT License" in (VENDOR / "uplot.LICENSE").read_text(encoding="utf-8")
    analytics = (DASHBOARD / "analytics.js").read_text(encoding="utf-8")
    assert 'from "/dashboard/vendor/uplot.esm.js"' in analytics
    assert "/dashboard/vendor/uplot.min.css" in analytics
    # The library's own text names outside addresses only in comments: it fetches nothing.
    code = re.sub(r"//[^\n]*|/\*.*?\*/", "", (VENDOR / "uplot.esm.js").read_text(encoding="utf-8"), flags=re.S)
    assert not re.search(r"https?://", code)


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/../web.py",
        "/dashboard/%2e%2e/web.py",
        "/dashboard/vendor/../../web.py",
        "/dashboard/vendor/preact-htm.LICENSE",
        "/dashboard/nothing.js",
        "/dashboard/canned",
        f"/dashboard/canned/{TENANT}.json",  # canned responses come from GET /v1/canned-responses
    ],
)
async def test_nothing_else_is_served(path: str) -> None:
    assert (await _get(path)).status_code == 404


def test_no_dashboard_file_names_an_outside_url() -> None:
    files = [p for p in DASHBOARD.rglob("*") if p.is_file()]
    assert len(files) >= 5
    for file in files:
        # The SVG namespace (favicon.svg) is an identifier, never fetched.
        text = file.read_text(encoding="utf-8").replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), file.name
        assert "cdn" not in text.lower(), file.name
    # The library itself names only the SVG namespace (an identifier, never fetched).
    library = (VENDOR / "preact-htm.module.js").read_text(encoding="utf-8")
    assert set(re.findall(r"https?://[^\s\"']+", library)) <= {"http://www.w3.org/2000/svg"}


SINKS = ["innerHTML", "outerHTML", "insertAdjacentHTML", "dangerouslySetInnerHTML", "eval(", "new Function"]


def test_dashboard_never_builds_html_from_strings() -> None:
    for name in ["app.js", "store.js", "i18n.js", "analytics.js"]:
        src = (DASHBOARD / name).read_text(encoding="utf-8")
        for sink in SINKS:
            assert sink not in src, (name, sink)


def test_both_languages_have_every_word() -> None:
    node = shutil.which("node")
    assert node, "node is required to read the dashboard's modules"
    script = (
        "import(process.argv[1]).then(m => { const it = m.words('it'), en = m.words('en');"
        " const keys = o => Object.keys(o).sort().join(',');"
        " console.log(JSON.stringify({same: keys(it) === keys(en),"
        " nested: ['reasons','statuses','senders','ticketStatuses','ticketPriorities','slaStates','slaClocks',"
        " 'channels'].every(k => keys(it[k]) === keys(en[k]))})); })"
    )
    # i18n.js reads localStorage and navigator only when asked for the initial language.
    result = subprocess.run(
        [node, "--input-type=module", "-e", script, (DASHBOARD / "i18n.js").as_uri()],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"same": True, "nested": True}


def test_modules_parse() -> None:
    node = shutil.which("node")
    assert node, "node is required to syntax-check the dashboard"
    for name in ["app.js", "store.js", "i18n.js"]:
        # --check needs the file to be read as a module: copy it under an .mjs name.
        source = (DASHBOARD / name).read_text(encoding="utf-8")
        result = subprocess.run(
            [node, "--input-type=module", "--check"], input=source, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, (name, result.stderr)


# --------------------------------------------------------------------------------------------
# Browser test against a fake operator API
# --------------------------------------------------------------------------------------------

ME = "lucine-giulia"
WAITING = "11111111-1111-4111-8111-111111111111"
OFFERED = "22222222-2222-4222-8222-222222222222"
RACED = "33333333-3333-4333-8333-333333333333"
KEPT = "44444444-4444-4444-8444-444444444444"
MARCO = "lucine-marco"
SOFIA = "lucine-sofia"


def _token(role: str = "operator") -> str:
    def part(body: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")

    claims = {"sub": ME, "tenant_id": TENANT, "role": role, "name": "Giulia", "aud": "operator"}
    return f"{part({'alg': 'HS256'})}.{part(claims)}.sig"


def _ago(seconds: int) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


def _message(seq: int, sender: str, text: str, message_id: str | None = None) -> dict[str, Any]:
    return {
        "seq": seq,
        "message_id": message_id or f"00000000-0000-4000-8000-{seq:012d}",
        "sender": sender,
        "text": text,
        "smart_actions": [],
        "sources": [],
        "created_at": "2025-12-10T18:30:00Z",
    }


def _note(name: str, operator_id: str, text: str) -> dict[str, Any]:
    note_id = str(uuid.uuid5(uuid.NAMESPACE_URL, name))
    return {"note_id": note_id, "operator_id": operator_id, "text": text, "created_at": datetime.now(UTC).isoformat()}


def _operator(operator_id: str, name: str, role: str, presence: str) -> dict[str, Any]:
    return {
        "operator_id": operator_id,
        "display_name": name,
        "role": role,
        "presence": presence,
        "active_conversations": 0,
        "capacity": 3,
        "pending_offers": 0,
        "skills": [],
    }


def _list_item(conversation_id: str, status: str, operator_id: str | None) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "tenant_id": TENANT,
        "status": status,
        "last_seq": 4,
        "created_at": _ago(600),
        "operator_id": operator_id,
        "handoff_reason": "customer_request",
        "updated_at": _ago(60),
    }


class FakeOperatorApi:
    """Just enough of the operator API and stream, recording what the dashboard asks."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.sockets: list[Any] = []
        self.subscriptions: list[dict[str, Any]] = []
        self.transcripts: dict[str, list[dict[str, Any]]] = {
            OFFERED: [
                _message(1, "customer", "Ciao, i biglietti di sabato sono finiti?"),
                _message(
                    2,
                    "ai",
                    "I biglietti si comprano **online**: https://lucinedinatale.it/biglietti. Per sabato controlla.",
                ),
                _message(3, "customer", "Voglio parlare con una persona, ho pagato due volte!"),
                _message(4, "system", "Ti sto mettendo in contatto con un operatore."),
            ]
        }
        self.status: dict[str, str] = {OFFERED: "QUEUED"}
        self.presence = "offline"  # routing's word on this operator's presence
        self.owner: dict[str, str] = {}  # conversation -> the operator who has it (or had it last)
        self.not_yet_applied: set[str] = set()  # conversations whose next notes read is refused once
        self.operators = [
            _operator(ME, "Giulia", "operator", "online"),
            _operator(MARCO, "Marco", "operator", "online"),
            _operator(SOFIA, "Sofia", "supervisor", "away"),
        ]
        # Written before this operator had the conversation: only the notes read shows them.
        self.notes: dict[str, list[dict[str, Any]]] = {
            OFFERED: [_note("sofia-note", "lucine-sofia", "Ha già scritto ieri per lo stesso addebito")]
        }
        self.queue = [
            {
                "conversation_id": OFFERED,
                "tenant_id": TENANT,
                "position": 1,
                "priority": "high",
                "reason": "negative_sentiment",
                "intent": "tickets",
                "waiting_since": _ago(185),
                "offered_to": ME,
            },
            {
                "conversation_id": WAITING,
                "tenant_id": TENANT,
                "position": 2,
                "priority": "normal",
                "reason": "customer_request",
                "intent": "opening-hours",
                "waiting_since": _ago(95),
                "offered_to": None,
            },
            {
                "conversation_id": RACED,
                "tenant_id": TENANT,
                "position": 3,
                "priority": "normal",
                "reason": "low_confidence",
                "intent": None,
                "waiting_since": _ago(40),
                "offered_to": None,
            },
        ]

    def push(self, frame: dict[str, Any]) -> None:
        for ws in list(self.sockets):
            with contextlib.suppress(Exception):
                ws.send(json.dumps(frame))

    def set_presence(self, presence: str) -> None:
        self.presence = presence
        self.push(_presence(ME, presence))

    def assign_to_me(self, conversation_id: str, via: str) -> None:
        """Routing's assignment reaches the stream; the gateway then follows the operator's new
        conversation: its history, then its status."""
        self.push({**_assigned(conversation_id, ME, "Giulia", via), "occurred_at": "2025-12-10T18:31:00Z"})
        for message in self.transcripts.get(conversation_id, []):
            self.push({"conversation_id": conversation_id, "type": "message", "message": message})
        self.status[conversation_id] = "WITH_OPERATOR"
        self.push({"conversation_id": conversation_id, "type": "status", "status": "WITH_OPERATOR"})

    def push_message(self, conversation_id: str, sender: str, text: str, message_id: str | None = None) -> None:
        transcript = self.transcripts.setdefault(conversation_id, [])
        message = _message(len(transcript) + 1, sender, text, message_id)
        transcript.append(message)
        self.push({"conversation_id": conversation_id, "type": "message", "message": message})

    async def handle(self, route: Any) -> None:
        request = route.request
        path = urlparse(request.url).path
        body = json.loads(request.post_data) if request.post_data else {}
        self.requests.append((request.method, path, body))
        if path.startswith("/dashboard"):
            response = await _get(path)
            await route.fulfill(
                status=response.status_code, body=response.content, content_type=response.headers["content-type"]
            )
            return
        if path == "/v1/operators/login":
            if body.get("password") != "right":
                await _json(route, 401, {"error": {"code": "invalid_credentials", "message": "wrong"}})
                return
            await _json(route, 200, {"access_token": _token(), "refresh_token": "r", "expires_in": 900})
            return
        if path == "/v1/operators/me/status":
            await _json(route, 200, {"operator_id": ME, "status": body["status"], "command_id": WAITING})
            # Routing tells a change of presence; a PUT is the operator's choice, which applies
            # even over an away routing decided.
            if body["status"] != self.presence:
                self.set_presence(body["status"])
            return
        if path == "/v1/operators" and request.method == "GET":
            await _json(route, 200, {"tenant_id": TENANT, "operators": self.operators})
            return
        if path == "/v1/conversations" and request.method == "GET":
            # An operator's read: their own (now or last) in the status asked for.
            status = parse_qs(urlparse(request.url).query).get("status", [None])[0]
            items = [
                _list_item(conversation_id, self.status[conversation_id], operator_id)
                for conversation_id, operator_id in self.owner.items()
                if operator_id == ME and status in (None, self.status[conversation_id])
            ]
            await _json(route, 200, {"tenant_id": TENANT, "conversations": items})
            return
        if path == "/v1/queue":
            await _json(route, 200, {"tenant_id": TENANT, "entries": self.queue})
            return
        if path == "/v1/canned-responses":
            # The demo's canned responses, as its seed file gives them to the API.
            canned = read_seed(DEMO_DIR / f"{TENANT}.yaml").canned_responses
            await _json(route, 200, {"responses": canned})
            return
        match = re.fullmatch(r"/v1/conversations/([0-9a-f-]+)/([a-z-]+)", path)
        if match and request.method == "GET" and match.group(2) == "notes":
            conversation_id = match.group(1)
            if conversation_id in self.not_yet_applied:
                # The conversation service has not applied routing's assignment yet.
                self.not_yet_applied.discard(conversation_id)
                await _json(route, 403, {"error": {"code": "forbidden", "message": "this conversation is not yours"}})
                return
            notes = self.notes.get(conversation_id, [])
            await _json(route, 200, {"conversation_id": conversation_id, "tenant_id": TENANT, "notes": notes})
            return
        if match and request.method == "POST":
            conversation_id, action = match.groups()
            await self.conversation(route, conversation_id, action, body)
            return
        await _json(route, 404, {"error": {"code": "not_found", "message": "no route"}})

    async def conversation(self, route: Any, conversation_id: str, action: str, body: dict[str, Any]) -> None:
        if action == "take":
            if conversation_id == RACED:
                await _json(route, 409, {"error": {"code": "already_taken", "message": "already taken"}})
                return
            self.queue = [e for e in self.queue if e["conversation_id"] != conversation_id]
            self.owner[conversation_id] = ME
            await _json(route, 200, {"conversation_id": conversation_id, "operator_id": ME, "via": "offer"})
            self.assign_to_me(conversation_id, "offer")
        elif action == "operator-messages":
            message_id = f"00000000-0000-4000-9000-{len(self.requests):012d}"
            await _json(route, 202, {"accepted": True, "command_id": WAITING, "message_id": message_id})
            self.push_message(conversation_id, "operator", body["text"], message_id)
        elif action == "notes":
            await _json(route, 202, {"accepted": True, "command_id": WAITING})
            note = _note(f"note-{len(self.requests)}", ME, body["text"])
            self.notes.setdefault(conversation_id, []).append(note)
            self.push({"conversation_id": conversation_id, "type": "note", "note": note})
        elif action in ("transfer", "release"):
            await _json(route, 202, {"accepted": True, "command_id": WAITING})
        elif action == "close":
            await _json(route, 202, {"accepted": True, "command_id": WAITING})
            status = {"resolved": "RESOLVED", "not_resolved": "NOT_RESOLVED", "cancelled": "CANCELLED"}
            self.status[conversation_id] = status[body["resolution"]]
            self.push({"conversation_id": conversation_id, "type": "status", "status": status[body["resolution"]]})
        else:
            await _json(route, 404, {"error": {"code": "not_found", "message": "no route"}})

    def on_socket(self, ws: Any) -> None:
        def on_message(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "auth":
                assert frame["access_token"] == _token()
                self.sockets.append(ws)
                ws.send(json.dumps({"type": "ready", "operator_id": ME, "role": "operator"}))
            elif frame.get("type") == "subscribe":
                self.subscriptions.append(frame)
                conversation_id = frame["conversation_id"]
                for message in self.transcripts.get(conversation_id, []):
                    if message["seq"] > frame["after"]:
                        ws.send(json.dumps({"conversation_id": conversation_id, "type": "message", "message": message}))
                status = self.status.get(conversation_id, "QUEUED")
                ws.send(json.dumps({"conversation_id": conversation_id, "type": "status", "status": status}))
            elif frame.get("type") == "ping":
                ws.send(json.dumps({"type": "pong"}))

        ws.on_message(on_message)
        ws.on_close(lambda *_: self.sockets.remove(ws) if ws in self.sockets else None)


async def _json(route: Any, status: int, body: dict[str, Any]) -> None:
    await route.fulfill(status=status, content_type="application/json", body=json.dumps(body))


def _shots(tmp_path: Path) -> Path:
    # Screenshots go to the test's temporary folder unless DASHBOARD_SCREENSHOTS names one.
    folder = Path(os.environ.get("DASHBOARD_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.browser
async def test_operator_works_a_conversation_with_the_keyboard(browser: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    api = FakeOperatorApi()
    shots = _shots(tmp_path)
    context = await browser.new_context(viewport={"width": 1366, "height": 768}, locale="it-IT")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.route(f"{ORIGIN}/**", api.handle)
    await page.route_web_socket(re.compile(r"^ws://gateway\.test/.*"), api.on_socket)
    await page.goto(f"{ORIGIN}/dashboard")

    # Italian from the browser's language; a wrong password says so.
    await expect(page.get_by_test_id("login-submit")).to_have_text("Accedi")
    await page.screenshot(path=str(shots / "dashboard-login.png"))
    await page.get_by_test_id("login-username").fill("giulia")
    await page.get_by_test_id("login-password").fill("wrong")
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("login-error")).to_have_text("Nome utente o password errati.")
    await page.get_by_test_id("login-password").fill("right")
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("connection")).to_have_text("In linea")
    await expect(page.get_by_test_id("me")).to_contain_text("Giulia")

    await page.get_by_test_id("presence-online").click()
    await expect(page.get_by_test_id("presence-online")).to_have_attribute("aria-checked", "true")
    assert ("PUT", "/v1/operators/me/status", {"status": "online"}) in api.requests

    # The queue: priority first, the AI's reason, the waiting time.
    await page.keyboard.press("Alt+2")
    entries = page.get_by_test_id("queue-entry")
    await expect(entries).to_have_count(3)
    await expect(entries.first).to_contain_text("Urgente")
    await expect(entries.first.get_by_test_id("queue-reason")).to_have_text("Cliente contrariato")
    await expect(entries.nth(1).get_by_test_id("queue-reason")).to_have_text("Il cliente ha chiesto una persona")
    await expect(entries.first.get_by_test_id("queue-wait")).to_contain_text("attesa")

    # A new offer: a banner (with sound and a notification); Alt+T accepts it.
    api.push(
        {
            "type": "offer",
            "event": "offer_made",
            "conversation_id": OFFERED,
            "occurred_at": "2025-12-10T18:30:00Z",
            "data": {
                "offer_id": WAITING,
                "operator_id": ME,
                "expires_at": _ago(-30),
                "reason": "negative_sentiment",
                "priority": "high",
            },
        }
    )
    await expect(page.get_by_test_id("offer")).to_contain_text("Nuova conversazione per te")
    await page.screenshot(path=str(shots / "dashboard-queue.png"))
    await page.keyboard.press("Alt+t")
    await expect(page.get_by_test_id("offer")).to_have_count(0)
    await expect(page.get_by_test_id("chat-status")).to_have_text("Con operatore")
    transcript = page.get_by_test_id("transcript")
    await expect(transcript.get_by_test_id("message")).to_have_count(4)
    await expect(transcript).to_contain_text("Conversazione con l'assistente AI")
    # The AI's answer as the customer saw it: bold, and its address a link (the full stop left out).
    answer = transcript.locator('[data-sender="ai"] .bubble')
    await expect(answer.locator("strong")).to_have_text("online")
    await expect(answer.locator("a")).to_have_attribute("href", "https://lucinedinatale.it/biglietti")
    await expect(answer).not_to_contain_text("**")
    await expect(page.get_by_test_id("summary")).to_contain_text("i biglietti di sabato")
    notes = page.get_by_test_id("note")
    await expect(notes).to_contain_text(["Ha già scritto ieri per lo stesso addebito"])  # read on assignment

    # A canned response with /ciao, then Enter sends it; the customer answers live.
    composer = page.get_by_test_id("composer")
    await composer.click()
    await composer.type("/ci")
    await expect(page.get_by_test_id("canned")).to_contain_text("/ciao")
    await composer.press("Enter")
    await expect(composer).to_have_value("Ciao, sono Giulia dello staff di Lucine di Natale. Come posso aiutarti?")
    await composer.press("Enter")
    await expect(transcript.locator('[data-sender="operator"]')).to_have_count(1)
    await expect(composer).to_have_value("")
    api.push_message(OFFERED, "customer", "Ho pagato due volte il biglietto")
    await expect(transcript.locator('[data-sender="customer"]')).to_have_count(3)

    # An internal note.
    await page.get_by_test_id("note-input").fill("Doppio addebito: verificare con l'amministrazione")
    await page.get_by_test_id("add-note").click()
    await expect(notes.last).to_have_text(re.compile("Doppio addebito"))

    # A draft survives a dropped stream: the dashboard reconnects and follows the chat again, and
    # reads the notes again (one was added by a supervisor while the stream was down).
    await composer.fill("Sto controllando il tuo ordine")
    subscriptions = len(api.subscriptions)
    for ws in list(api.sockets):
        await ws.close(code=1011)
    api.notes[OFFERED].append(_note("while-away", "lucine-sofia", "Rimborso approvato"))
    await expect(page.get_by_test_id("connection")).to_have_text("In linea", timeout=10_000)
    await expect(notes).to_have_count(3)
    await expect(notes.last).to_contain_text("Rimborso approvato")
    assert len(api.subscriptions) > subscriptions
    assert api.subscriptions[-1]["after"] == 6  # only what came after the last message seen
    await expect(composer).to_have_value("Sto controllando il tuo ordine")
    await expect(transcript.get_by_test_id("message")).to_have_count(6)
    await page.screenshot(path=str(shots / "dashboard-main.png"))

    # Someone else took the next one: a clear message.
    await page.keyboard.press("Alt+2")
    raced = page.get_by_test_id("queue-entry").filter(has_text="#33333333")
    await raced.get_by_test_id("take").click()
    await expect(page.get_by_test_id("toast")).to_have_text("Presa da un altro operatore.")

    # Back to the chat; Alt+C opens the close form, the resolution is chosen and confirmed.
    await page.keyboard.press("Alt+1")
    await page.get_by_test_id("conversation-item").first.click()
    await page.keyboard.press("Alt+c")
    await expect(page.get_by_test_id("close-form")).to_be_visible()
    await page.locator(".details-pane").screenshot(path=str(shots / "dashboard-details.png"))
    await page.get_by_test_id("resolution-resolved").check()
    await page.get_by_test_id("confirm-close").click()
    await expect(page.get_by_test_id("chat-status")).to_have_text("Risolta")
    assert ("POST", f"/v1/conversations/{OFFERED}/close", {"resolution": "resolved"}) in api.requests

    # English with the switch.
    await page.get_by_test_id("lang-en").first.click()
    await expect(page.get_by_test_id("chat-status")).to_have_text("Resolved")
    await expect(page.get_by_test_id("logout")).to_have_text("Log out")
    await page.get_by_test_id("logout").click()
    await expect(page.get_by_test_id("login-submit")).to_have_text("Sign in")
    assert errors == []
    await context.close()


# --------------------------------------------------------------------------------------------
# The dashboard follows what the server says: ownership, presence, assignments
# --------------------------------------------------------------------------------------------


def _assigned(conversation_id: str, operator_id: str, name: str, via: str = "offer") -> dict[str, Any]:
    data = {"operator_id": operator_id, "display_name": name, "via": via, "previous_operator_id": None}
    return {"type": "assignment", "event": "operator_assigned", "conversation_id": conversation_id, "data": data}


def _released(conversation_id: str, operator_id: str, reason: str) -> dict[str, Any]:
    data = {"operator_id": operator_id, "reason": reason}
    return {"type": "assignment", "event": "operator_released", "conversation_id": conversation_id, "data": data}


def _presence(operator_id: str, presence: str) -> dict[str, Any]:
    data = {"operator_id": operator_id, "presence": presence, "active_conversations": 0, "capacity": 3}
    return {"type": "presence", "event": "operator_presence_changed", "conversation_id": None, "data": data}


def _offer(event: str, conversation_id: str, offer_id: str, **data: Any) -> dict[str, Any]:
    return {
        "type": "offer",
        "event": event,
        "conversation_id": conversation_id,
        "data": {"offer_id": offer_id, "operator_id": ME, **data},
    }


def _hold(api: FakeOperatorApi, conversation_id: str, text: str) -> None:
    """The conversation is the operator's on the server, whatever the browser remembers."""
    api.owner[conversation_id] = ME
    api.status[conversation_id] = "WITH_OPERATOR"
    api.transcripts[conversation_id] = [
        _message(1, "customer", text),
        _message(2, "system", "Ora sei in contatto con Giulia."),
    ]


async def _signed_in(browser: Any, api: FakeOperatorApi, locale: str = "it-IT") -> tuple[Any, Any, list[str]]:
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": 1366, "height": 768}, locale=locale, timezone_id="UTC")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.route(f"{ORIGIN}/**", api.handle)
    await page.route_web_socket(re.compile(r"^ws://gateway\.test/.*"), api.on_socket)
    await page.goto(f"{ORIGIN}/dashboard")
    await page.get_by_test_id("login-username").fill("giulia")
    await page.get_by_test_id("login-password").fill("right")
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("connection")).to_have_class(re.compile(r"\bopen\b"))
    return context, page, errors


async def _until(page: Any, condition: Any) -> None:
    for _ in range(50):
        if condition():
            return
        await page.wait_for_timeout(100)
    raise AssertionError("the dashboard never asked")


def _asked(api: FakeOperatorApi, method: str, path: str, since: int = 0) -> list[tuple[str, str, dict[str, Any]]]:
    return [r for r in api.requests[since:] if r[0] == method and r[1] == path]


@pytest.mark.browser
async def test_mine_comes_from_the_server_at_login_and_every_reconnect(browser: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    api = FakeOperatorApi()
    _hold(api, KEPT, "Sono ancora qui, mi aiutate?")
    # A new browser: nothing in its storage, the conversation is still this operator's.
    context, page, errors = await _signed_in(browser, api)
    await expect(page.get_by_test_id("tab-mine")).to_contain_text("1")
    await expect(page.get_by_test_id("conversation-item")).to_contain_text("#44444444")
    await expect(page.get_by_test_id("conversation-item")).to_contain_text("Con operatore")
    assert any(s["conversation_id"] == KEPT for s in api.subscriptions)  # its messages come live
    await page.get_by_test_id("conversation-item").click()
    await expect(page.get_by_test_id("transcript")).to_contain_text("Sono ancora qui")
    await expect(page.get_by_test_id("composer")).to_be_enabled()
    await page.screenshot(path=str(_shots(tmp_path) / "dashboard-mine-after-login.png"))

    # While the stream was down, that one was closed and another assigned: the read says so.
    api.status[KEPT] = "RESOLVED"
    _hold(api, OFFERED, "Il pagamento è stato addebitato due volte")
    for ws in list(api.sockets):
        await ws.close(code=1011)
    await expect(page.get_by_test_id("conversation-item")).to_have_count(1, timeout=10_000)
    await expect(page.get_by_test_id("conversation-item")).to_contain_text("#22222222")
    await expect(page.get_by_test_id("tab-mine")).to_contain_text("1")
    assert any(s["conversation_id"] == OFFERED for s in api.subscriptions)
    assert ("GET", "/v1/conversations", {}) in api.requests
    assert errors == []
    await context.close()


@pytest.mark.browser
async def test_presence_follows_what_routing_decides(browser: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    api = FakeOperatorApi()
    context, page, errors = await _signed_in(browser, api)
    await page.get_by_test_id("presence-online").click()
    await expect(page.get_by_test_id("presence-online")).to_have_attribute("aria-checked", "true")

    # Two offers expire unanswered: routing sets the operator away and says so on the stream.
    for conversation_id, offer_id in [(OFFERED, WAITING), (WAITING, RACED)]:
        api.push(_offer("offer_made", conversation_id, offer_id, expires_at=_ago(-5), priority="normal"))
        api.push(_offer("offer_closed", conversation_id, offer_id, outcome="expired"))
    api.set_presence("away")
    await expect(page.get_by_test_id("presence-away")).to_have_attribute("aria-checked", "true")
    await expect(page.get_by_test_id("presence-online")).to_have_attribute("aria-checked", "false")
    await expect(page.get_by_test_id("toast")).to_contain_text(
        "Sei stato messo in Assente: le ultime offerte sono scadute senza risposta."
    )
    await page.screenshot(path=str(_shots(tmp_path) / "dashboard-set-away.png"))

    # Online again: a click is a choice, which routing applies over its own away.
    before = len(api.requests)
    await page.get_by_test_id("presence-online").click()
    await expect(page.get_by_test_id("presence-online")).to_have_attribute("aria-checked", "true")
    await _until(page, lambda: len(_asked(api, "PUT", "/v1/operators/me/status", before)) == 1)
    puts = [r[2]["status"] for r in _asked(api, "PUT", "/v1/operators/me/status", before)]
    assert puts == ["online"]
    assert api.presence == "online"

    # Another reason, in English: said plainly.
    await page.get_by_test_id("lang-en").first.click()
    api.set_presence("away")
    await expect(page.get_by_test_id("presence-away")).to_have_attribute("aria-checked", "true")
    await expect(page.get_by_test_id("toast")).to_have_text("Your status is now Away.")
    await page.screenshot(path=str(_shots(tmp_path) / "dashboard-set-away-en.png"))
    # A colleague's presence is theirs only.
    api.push(_presence(MARCO, "offline"))
    await page.wait_for_timeout(200)
    await expect(page.get_by_test_id("presence-away")).to_have_attribute("aria-checked", "true")
    assert errors == []
    await context.close()


@pytest.mark.browser
async def test_the_previous_owner_sees_who_has_the_conversation_now(browser: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    api = FakeOperatorApi()
    _hold(api, OFFERED, "Siamo un gruppo di 30 persone")
    _hold(api, KEPT, "Posso cambiare la data del biglietto?")
    context, page, errors = await _signed_in(browser, api)
    await expect(page.get_by_test_id("conversation-item")).to_have_count(2)
    await page.get_by_test_id("conversation-item").filter(has_text="#22222222").click()
    await expect(page.get_by_test_id("composer")).to_be_enabled()
    await expect(page.get_by_test_id("note")).to_have_count(1)

    # She transfers it to Marco: routing releases it from her and the gateway stops its feed.
    await page.get_by_test_id("transfer-to").select_option(MARCO)
    await page.get_by_test_id("transfer").click()
    await expect(page.get_by_test_id("toast")).to_have_text("Trasferimento richiesto.")
    assert ("POST", f"/v1/conversations/{OFFERED}/transfer", {"operator_id": MARCO}) in api.requests
    before, subscriptions = len(api.requests), len(api.subscriptions)
    api.owner[OFFERED] = MARCO
    api.push(_released(OFFERED, ME, "transferred"))
    await expect(page.get_by_test_id("now-with")).to_contain_text("Ora è di Marco")
    await expect(page.get_by_test_id("detail-owner")).to_have_text("Marco")
    await expect(page.get_by_test_id("take-selected")).to_have_count(0)
    await expect(page.get_by_test_id("composer")).to_be_disabled()
    await expect(page.get_by_test_id("add-note")).to_have_count(0)
    await expect(page.get_by_test_id("tab-mine")).to_contain_text("1")
    await page.screenshot(path=str(_shots(tmp_path) / "dashboard-after-transfer.png"))

    # A supervisor reassigns her other one: she is told, and it is no longer hers to read.
    await page.get_by_test_id("conversation-item").filter(has_text="#44444444").click()
    await expect(page.get_by_test_id("composer")).to_be_enabled()
    api.owner[KEPT] = MARCO
    api.push(_released(KEPT, ME, "transferred"))
    await expect(page.get_by_test_id("toast")).to_have_text("Conversazione riassegnata #44444444 · Ora è di un collega")
    await expect(page.get_by_test_id("now-with")).to_contain_text("Ora è di un collega")
    await expect(page.get_by_test_id("take-selected")).to_have_count(0)
    await expect(page.get_by_test_id("tab-mine")).to_contain_text("0")
    await page.screenshot(path=str(_shots(tmp_path) / "dashboard-after-reassign.png"))

    # What she may no longer read is not asked for, not even after a reconnect.
    reads = len(_asked(api, "GET", "/v1/conversations"))
    for ws in list(api.sockets):
        await ws.close(code=1011)
    await _until(page, lambda: len(_asked(api, "GET", "/v1/conversations")) > reads)
    await expect(page.get_by_test_id("tab-mine")).to_contain_text("0")
    await page.get_by_test_id("lang-en").first.click()
    await expect(page.get_by_test_id("now-with")).to_contain_text("Now with a colleague")
    await page.screenshot(path=str(_shots(tmp_path) / "dashboard-after-reassign-en.png"))
    unread = {OFFERED, KEPT}
    assert not [r for r in api.requests[before:] if r[0] == "GET" and r[1].endswith("/notes")]
    assert not [s for s in api.subscriptions[subscriptions:] if s["conversation_id"] in unread]
    assert errors == []
    await context.close()


@pytest.mark.browser
async def test_a_conversation_transferred_to_the_operator_is_read_once_the_conversation_service_has_it(
    browser: Any, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    api = FakeOperatorApi()
    context, page, errors = await _signed_in(browser, api)
    api.notes[KEPT] = [_note("n-1", MARCO, "Vuole cambiare la data")]
    _hold(api, KEPT, "Posso cambiare la data del biglietto?")
    api.not_yet_applied.add(KEPT)  # routing told the gateway first: the first read is refused
    api.assign_to_me(KEPT, "transfer")

    await page.get_by_test_id("conversation-item").filter(has_text="#44444444").click()
    await expect(page.get_by_test_id("note")).to_contain_text("Vuole cambiare la data")
    await expect(page.get_by_test_id("composer")).to_be_enabled()
    assert len(_asked(api, "GET", f"/v1/conversations/{KEPT}/notes")) >= 2, "refused once, asked again"
    assert errors == []
    await context.close()


@pytest.mark.browser
async def test_take_is_offered_only_for_a_waiting_conversation(browser: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    api = FakeOperatorApi()
    _hold(api, KEPT, "Grazie, ora ho capito")
    context, page, errors = await _signed_in(browser, api)
    await page.get_by_test_id("conversation-item").click()
    await expect(page.get_by_test_id("composer")).to_be_enabled()

    # Handed back to the AI: no longer hers, and nobody can take it (it is not waiting).
    await page.get_by_test_id("hand-back").click()
    api.status[KEPT] = "AI"
    api.push(_released(KEPT, ME, "handed_back"))
    await expect(page.get_by_test_id("chat-status")).to_have_text("Con l'AI")
    await expect(page.get_by_test_id("take-selected")).to_have_count(0)
    await expect(page.get_by_test_id("composer")).to_have_attribute(
        "placeholder", "Non è una tua conversazione: puoi solo leggerla."
    )
    await page.screenshot(path=str(_shots(tmp_path) / "dashboard-after-hand-back.png"))
    # Alt+T does not try it either (it takes the next waiting one instead).
    await page.keyboard.press("Alt+t")
    await page.wait_for_timeout(300)
    assert ("POST", f"/v1/conversations/{KEPT}/take", {}) not in api.requests

    # A waiting one can be taken.
    await page.keyboard.press("Alt+2")
    await page.get_by_test_id("queue-entry").filter(has_text="#11111111").locator(".item-main").click()
    await expect(page.get_by_test_id("take-selected")).to_contain_text("Prendi")
    assert errors == []
    await context.close()


@pytest.mark.browser
async def test_operators_are_named_not_numbered(browser: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    api = FakeOperatorApi()
    api.queue[1]["offered_to"] = MARCO
    context, page, errors = await _signed_in(browser, api)
    await page.keyboard.press("Alt+2")
    entry = page.get_by_test_id("queue-entry").filter(has_text="#11111111")
    await expect(entry).to_contain_text("offerta a Marco")
    await expect(page.get_by_test_id("queue-entry").first).to_contain_text("offerta a te")
    await page.get_by_test_id("queue-entry").first.locator(".item-main").click()
    await expect(page.get_by_test_id("note-author")).to_contain_text("Sofia")
    await page.screenshot(path=str(_shots(tmp_path) / "dashboard-names.png"))
    await page.get_by_test_id("lang-en").first.click()
    await expect(entry).to_contain_text("offered to Marco")
    page_text = await page.locator("#app").inner_text()
    assert MARCO not in page_text
    assert SOFIA not in page_text
    await page.screenshot(path=str(_shots(tmp_path) / "dashboard-names-en.png"))
    assert errors == []
    await context.close()


@pytest.mark.browser
async def test_times_are_written_in_the_dashboards_language_not_the_browsers(browser: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    api = FakeOperatorApi()
    _hold(api, KEPT, "Sono ancora qui, mi aiutate?")  # its messages were written at 18:30 UTC
    context, page, errors = await _signed_in(browser, api, locale="en-US")
    await page.get_by_test_id("conversation-item").click()
    first_message = page.get_by_test_id("transcript").locator(".meta").first
    await expect(first_message).to_contain_text("18:30")  # British English: the browser's US English says 06:30 PM
    await page.get_by_test_id("lang-it").first.click()
    await expect(first_message).to_contain_text("Cliente")
    await expect(first_message).to_contain_text("18:30")
    assert "PM" not in await page.get_by_test_id("transcript").inner_text()
    await page.screenshot(path=str(_shots(tmp_path) / "dashboard-times.png"))
    assert errors == []
    await context.close()
