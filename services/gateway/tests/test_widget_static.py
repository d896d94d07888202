"""The embeddable widget and the demo page: static guards, plus browser tests against a mocked gateway.

The static tests need nothing. The browser tests (marker `browser`) drive Debian's Chromium through
Playwright with every HTTP request and WebSocket answered by an in-test fake gateway
(`page.route` / `page.route_web_socket`), so they exercise the widget's ordering, retry and
rendering logic without any backend. They fail, never skip, when Chromium or Playwright is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from gateway import web
from gateway.api import ticket_details
from gateway.schemas import TicketRequest
from gateway.seed import read_seed
from gateway.tenants import Tenant
from servicekit.http import create_app

STATIC = Path(__file__).resolve().parents[1] / "src" / "gateway" / "static"
WIDGET = STATIC / "widget.js"
DEMO = STATIC / "demo.html"
PLAIN_DEMO = STATIC / "demo-tenant.html"
SEEDS = Path(__file__).resolve().parents[1] / "demo"


# --------------------------------------------------------------------------------------------
# Static guards
# --------------------------------------------------------------------------------------------


def _code_without_comments(src: str) -> str:
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    return re.sub(r"(?m)^\s*//.*$", "", src)


def test_static_files_exist():
    assert WIDGET.is_file()
    assert DEMO.is_file()
    assert WIDGET.stat().st_size > 1000


@pytest.mark.parametrize(
    "sink",
    ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "srcdoc"],
)
def test_widget_never_builds_html_from_strings(sink):
    # The widget has no reason to use any HTML-string sink at all, so the guard is total.
    assert sink not in _code_without_comments(WIDGET.read_text(encoding="utf-8"))


def test_widget_is_namespaced_and_links_are_safe():
    src = WIDGET.read_text(encoding="utf-8")
    assert "attachShadow" in src
    assert "window.LucineWidget" in src
    assert "noopener noreferrer" in src
    # Links are only built after a protocol check.
    assert 'u.protocol === "http:" || u.protocol === "https:"' in src
    for testid in ["launcher", "panel", "input", "send", "message", "action-button", "status"]:
        assert f'"data-testid": "{testid}"' in src, testid


def test_widget_has_no_runtime_dependencies():
    src = _code_without_comments(WIDGET.read_text(encoding="utf-8"))
    assert "import " not in src
    assert "require(" not in src


def test_widget_strings_in_both_languages():
    src = WIDGET.read_text(encoding="utf-8")
    for text in [
        "Scrivi un messaggio…",
        "Write a message…",
        "Riconnessione…",
        "Reconnecting…",
        "In attesa di un operatore…",
        "Waiting for an operator…",
        "Sei in chat con un operatore",
        "Lascia un messaggio",
        "Leave a message",
        "Richiesta registrata",
        "Request registered",
        "You are chatting with an operator",
        "Troppi messaggi, riprova tra {n} secondi",
        "{n} stelle su 5",
        "{n} stars out of 5",
        "Grazie per la tua valutazione!",
        "Thanks for your rating!",
        "Torna all'assistente",
        "Back to the assistant",
        "Questo nome non sembra valido.",
        "This name does not look valid.",
        "Questo messaggio non sembra valido.",
        "This message does not look valid.",
        "Ti chiameremo al {v}; una conferma scritta arriverà alla tua email {e}.",
        "We will call you at {v}; a written confirmation goes to your email {e}.",
        "We will call you at {v}; a written confirmation goes by SMS to the same number.",
    ]:
        assert text in src, text


def test_widget_syntax_with_node():
    node = shutil.which("node")
    if not node:
        pytest.fail("node is required to syntax-check widget.js")
    result = subprocess.run([node, "--check", str(WIDGET)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_demo_page_placeholders_and_content():
    html = DEMO.read_text(encoding="utf-8")
    for placeholder in ["__GATEWAY_URL__", "__WIDGET_KEY__", "__TENANT_NAME__"]:
        assert placeholder in html, placeholder
    assert (
        '<script src="__GATEWAY_URL__/widget.js" data-widget-key="__WIDGET_KEY__" '
        'data-title="__TENANT_NAME__" data-ticket-response-hours="24" defer></script>'
    ) in html
    assert "Lucine di Natale" in html
    assert "Leggiuno" in html
    assert "7 dicembre" in html
    assert "6 gennaio" in html
    assert "17:30" in html
    assert "22:30" in html
    assert '<html lang="it">' in html


# ---- the demo page of each tenant (gateway.web.demo_page), behind servicekit's error handlers


class _Tenants:
    def __init__(self, *tenants: Tenant) -> None:
        self._by_id = {t.tenant_id: t for t in tenants}

    async def by_id(self, tenant_id: str) -> Tenant | None:
        return self._by_id.get(tenant_id)


def _tenant(tenant_id: str, name: str, widget_key: str, default_language: str) -> Tenant:
    return Tenant(tenant_id, name, widget_key, frozenset(), default_language)


def _seeded(tenant_id: str) -> Tenant:
    seed = read_seed(SEEDS / f"{tenant_id}.yaml")
    profile = seed.profile or {}
    return _tenant(tenant_id, profile["name"], seed.tenant["widget_key"], profile["default_language"])


async def _demo_pages(*paths: str) -> list[httpx.Response]:
    runtime = SimpleNamespace(
        tenants=_Tenants(
            _seeded("lucine-di-natale"),
            _seeded("museo-del-vetro"),
            _tenant("acme", "ACME Widgets", "wk_acme", "en"),
            # A name that is markup, and reads like a placeholder; a language the page has no words in.
            _tenant("odd", 'Caffè <b>Rossi</b> & "Figli" __WIDGET_KEY__', "wk_odd", "de"),
        ),
        config=SimpleNamespace(public_base_url="https://support.example/"),
    )
    app = create_app(cast(Any, runtime), title="demo pages", routers=[web.router])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://support.example") as http:
        return [await http.get(path) for path in paths]


def _placeholders_left(page: str) -> list[str]:
    return re.findall(r"__[A-Z_]+__", page)


async def test_each_tenant_has_its_own_demo_page_and_only_lucine_gets_the_lucine_site():
    lucine, museo, acme, odd, nobody = await _demo_pages(
        "/demo/lucine-di-natale", "/demo/museo-del-vetro", "/demo/acme", "/demo/odd", "/demo/nobody"
    )
    # The Lucine demo is still the Lucine site, with its promise of an answer within 24 hours.
    assert lucine.status_code == 200
    assert "<title>Lucine di Natale — Leggiuno</title>" in lucine.text
    assert "Acquista i biglietti" in lucine.text
    assert (
        '<script src="https://support.example/widget.js" data-widget-key="wk_lucine_demo_2025" '
        'data-title="Lucine di Natale" data-ticket-response-hours="24" defer></script>'
    ) in lucine.text
    assert _placeholders_left(lucine.text) == []

    # The museum's widget is shown on a page of its own, named after it, in its language.
    assert museo.status_code == 200
    assert museo.headers["cache-control"] == "no-store"
    page = museo.text
    assert '<html lang="it">' in page
    assert "<title>Museo del Vetro — pagina di prova</title>" in page
    assert "<h1>Museo del Vetro</h1>" in page
    assert "widget di assistenza di Museo del Vetro" in page
    for foreign in ["Lucine", "Natale", "Leggiuno", "biglietti", "Acquista", "dicembre"]:
        assert foreign not in page, foreign
    assert (
        '<script src="https://support.example/widget.js" data-widget-key="wk_museo_vetro_demo_2025" '
        'data-title="Museo del Vetro" defer></script>'
    ) in page
    assert _placeholders_left(page) == []

    assert '<html lang="en">' in acme.text
    assert "<title>ACME Widgets — demo page</title>" in acme.text
    assert "<h1>ACME Widgets</h1>" in acme.text
    assert "support widget of ACME Widgets" in acme.text

    # The name is text wherever it goes, and is not read as a placeholder; no words in German: English.
    escaped = "Caffè &lt;b&gt;Rossi&lt;/b&gt; &amp; &quot;Figli&quot; __WIDGET_KEY__"
    assert f"<h1>{escaped}</h1>" in odd.text
    assert f"<title>{escaped} — demo page</title>" in odd.text
    assert f'data-widget-key="wk_odd" data-title="{escaped}"' in odd.text
    assert "<b>" not in odd.text
    assert '<html lang="en">' in odd.text

    assert nobody.status_code == 404


def test_plain_demo_page_has_every_placeholder():
    html = PLAIN_DEMO.read_text(encoding="utf-8")
    assert set(_placeholders_left(html)) == {
        "__LANG__",
        "__PAGE_TITLE__",
        "__EYEBROW__",
        "__TENANT_NAME__",
        "__INTRO__",
        "__GATEWAY_URL__",
        "__WIDGET_KEY__",
    }
    for words in web.PLAIN_PAGE_TEXTS.values():
        assert set(words) == {"__PAGE_TITLE__", "__EYEBROW__", "__INTRO__"}


# --------------------------------------------------------------------------------------------
# Browser tests against a fake gateway
# --------------------------------------------------------------------------------------------

ORIGIN = "http://gateway.test"


def _ticket_api() -> FastAPI:
    """The gateway's own checks of a ticket's details (TicketRequest, then the contract's
    cross-field rules) behind servicekit's error handlers: the fake answers a 422 as the real one does."""
    router = APIRouter()

    @router.post("/v1/conversations/{conversation_id}/ticket", status_code=202)
    async def submit_ticket(conversation_id: str, body: TicketRequest) -> dict[str, Any]:
        ticket_details(body)
        return {"accepted": True, "command_id": f"cmd-ticket-{conversation_id}"}

    return create_app(cast(Any, None), title="ticket checks", routers=[router])


TICKET_API = _ticket_api()


def _msg(
    seq: int, sender: str, text: str, *, message_id: str | None = None, actions=None, language: str | None = None
) -> dict[str, Any]:
    return {
        "seq": seq,
        "message_id": message_id or f"m{seq}",
        "sender": sender,
        "text": text,
        "smart_actions": actions or [],
        "sources": [],
        "created_at": "2025-12-10T18:30:00Z",
        "language": language,
    }


class FakeGateway:
    """Just enough of the public widget API, with knobs to inject failures."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.status = "AI"
        self.requests: list[tuple[str, str, dict[str, Any], dict[str, str]]] = []
        self.sockets: list[Any] = []
        self.socket_urls: list[str] = []
        self.message_posts: list[dict[str, Any]] = []  # POSTed or sent on the socket
        self.message_channels: list[str] = []  # "http" or "socket", for each of them
        self.tasks: set[asyncio.Future[None]] = set()  # answers to socket messages under way
        self.takes_socket_messages = True  # False: a gateway from before messages on the stream
        self.abort_next_posts = 0
        self.reply_429: int | None = None
        self.echo = True
        # Accepted while `echo` is off: not yet in the history nor on the stream, as a message the
        # conversation service has not stored yet; `echo_held()` stores and pushes them.
        self.held: list[dict[str, Any]] = []
        self.ai_reply: dict[str, Any] | None = None
        self.created = 0
        self.lang_attr: str | None = "it"  # None: no data-lang, the widget follows the conversation
        self.rating_posts: list[tuple[str, dict[str, Any], dict[str, str]]] = []  # (conversation, body, headers)
        self.rating_429_once: int | None = None  # Retry-After of a 429 answered to the next rating only
        self.ticket_posts: list[dict[str, Any]] = []
        self.ticket_override: dict[str, Any] = {}  # replaces fields of the next tickets before the checks
        self.ticket_answer: tuple[int, dict[str, Any]] | None = None  # answered instead of the checks' answer
        self.action_posts: list[dict[str, Any]] = []
        self.action_fail_once: tuple[int, dict[str, Any]] | None = None
        # The real gateway answers an action with 202 and the new status comes on the stream; the
        # older tests' fake put it in the answer too.
        self.status_in_action_answer = True
        # The public configuration (GET /v1/widget/config); None answers 404 and the widget keeps
        # its built-in look, and offers email as the only written channel.
        self.config: dict[str, Any] | None = None

    # ---- helpers -----------------------------------------------------------------------------
    def next_seq(self) -> int:
        return (self.messages[-1]["seq"] if self.messages else 0) + 1

    async def push(self, frame: dict[str, Any]) -> None:
        for ws in list(self.sockets):
            with contextlib.suppress(Exception):  # a socket that just closed
                ws.send(json.dumps(frame))

    async def add(self, sender: str, text: str, *, push: bool = True, **kw) -> dict[str, Any]:
        m = _msg(self.next_seq(), sender, text, **kw)
        self.messages.append(m)
        if push:
            await self.push({"type": "message", "message": m})
        return m

    async def echo_held(self) -> None:
        for m in self.held:
            self.messages.append({**m, "seq": self.next_seq()})
            await self.push({"type": "message", "message": self.messages[-1]})
        self.held.clear()

    # ---- HTTP ------------------------------------------------------------------------------
    def host_page(self) -> str:
        lang = f' data-lang="{self.lang_attr}"' if self.lang_attr else ""
        return f"""<!doctype html><html><head><meta charset="utf-8">
<style>
  * {{ font-family: 'Comic Sans MS' !important; color: magenta !important; }}
  button {{ display: none !important; }}
  body {{ background: #eef; }}
</style></head>
<body><h1>Host page</h1><p>Some content.</p>
<script src="{ORIGIN}/widget.js" data-widget-key="wk_test" data-title="Lucine di Natale"{lang} defer></script>
</body></html>"""

    async def handle(self, route) -> None:
        req = route.request
        url = urlparse(req.url)
        path = url.path
        body: dict[str, Any] = {}
        if req.post_data:
            body = json.loads(req.post_data)
        headers = await req.all_headers()
        self.requests.append((req.method, req.url, body, headers))

        if path in ("/", "/index.html"):
            await route.fulfill(status=200, content_type="text/html", body=self.host_page())
            return
        if path == "/widget.js":
            await route.fulfill(status=200, content_type="application/javascript", path=str(WIDGET))
            return
        if req.method == "OPTIONS":
            await route.fulfill(status=204, headers=_cors())
            return
        if path == "/v1/widget/config" and self.config is not None:
            await _json(route, 200, self.config)
            return
        if path == "/v1/conversations" and req.method == "POST":
            assert headers.get("x-widget-key") == "wk_test"
            self.created += 1
            await _json(route, 201, {"conversation_id": f"conv{self.created}", "customer_token": "tok", "status": "AI"})
            return
        m = re.fullmatch(r"/v1/conversations/([^/]+)/rating", path)
        if m and req.method == "POST":
            self.rating_posts.append((m.group(1), body, headers))
            if self.rating_429_once is not None:
                seconds, self.rating_429_once = self.rating_429_once, None
                await _json(
                    route,
                    429,
                    {"error": {"code": "rate_limited", "message": "slow down"}},
                    headers={"Retry-After": str(seconds)},
                )
                return
            await _json(route, 202, {"command_id": f"cmd-rating-{len(self.rating_posts)}"})
            return
        m = re.fullmatch(r"/v1/conversations/([^/]+)/ticket", path)
        if m and req.method == "POST":
            assert headers.get("authorization") == "Bearer tok"
            self.ticket_posts.append(body)
            if self.ticket_answer is not None:
                status, payload = self.ticket_answer
            else:
                transport = httpx.ASGITransport(app=TICKET_API)
                async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as http:
                    checked = await http.post(path, json={**body, **self.ticket_override})
                status, payload = checked.status_code, checked.json()
            await _json(route, status, payload)
            return
        m = re.fullmatch(r"/v1/conversations/([^/]+)/(messages|actions)", path)
        if m:
            assert headers.get("authorization") == "Bearer tok"
            if m.group(2) == "actions":
                self.action_posts.append(body)
                if self.action_fail_once is not None:
                    (status, payload), self.action_fail_once = self.action_fail_once, None
                    await _json(route, status, payload)
                    return
                self.status = "QUEUED" if body.get("action") == "request_operator" else "AI"
                if self.status_in_action_answer:
                    await _json(route, 202, {"status": self.status})
                else:
                    await _json(route, 202, {"accepted": True, "command_id": f"cmd-{len(self.action_posts)}"})
                    await self.push({"type": "status", "status": self.status})
                return
            if req.method == "GET":
                after = int(parse_qs(url.query).get("after", ["0"])[0])
                await _json(
                    route, 200, {"status": self.status, "messages": [x for x in self.messages if x["seq"] > after]}
                )
                return
            answer = await self.take_message(body, "http")
            if answer is None:
                await route.abort("connectionreset")
            elif answer[0] == 429:
                await _json(route, *answer, headers={"Retry-After": str(self.reply_429)})
            else:
                await _json(route, *answer)
            return
        await _json(route, 404, {"error": {"code": "not_found", "message": "no route"}})

    async def take_message(self, body: dict[str, Any], channel: str) -> tuple[int, dict[str, Any]] | None:
        """A customer message, POSTed or sent on the socket: the status and body of the answer,
        or None for a connection lost before it."""
        self.message_posts.append(body)
        self.message_channels.append(channel)
        if self.abort_next_posts:
            self.abort_next_posts -= 1
            return None
        if self.reply_429 is not None:
            return 429, {"error": {"code": "rate_limited", "message": "slow down"}}
        mid = f"srv-{body['client_message_id']}"
        known = [x for x in self.messages + self.held if x["message_id"] == mid]
        if not known:
            if self.echo:
                await self.add("customer", body["text"], message_id=mid)
            else:
                self.held.append(_msg(0, "customer", body["text"], message_id=mid))
            if self.ai_reply:
                await self.push({"type": "typing", "sender": "ai"})
                reply = self.ai_reply
                await self.add("ai", reply["text"], actions=reply.get("actions"), language=reply.get("language"))
        return 202, {"message_id": mid}

    async def take_socket_message(self, ws, frame: dict[str, Any]) -> None:
        """As the gateway answers a message sent on the stream: `accepted` or `error` frames."""
        body = {"text": frame.get("text"), "client_message_id": frame.get("client_message_id")}
        answer = await self.take_message(body, "socket")
        if answer is None:
            await ws.close(code=1011)  # the connection lost before the answer
            return
        status, payload = answer
        tag = body["client_message_id"]
        if status == 202:
            ws.send(json.dumps({"type": "accepted", "client_message_id": tag, **payload}))
        else:
            ws.send(
                json.dumps(
                    {
                        "type": "error",
                        "client_message_id": tag,
                        "status": status,
                        **payload,
                        "retry_after": self.reply_429,
                    }
                )
            )

    def on_socket(self, ws) -> None:
        self.sockets.append(ws)
        self.socket_urls.append(ws.url)
        q = parse_qs(urlparse(ws.url).query)
        after = int(q.get("after", ["0"])[0])
        assert q.get("token") == ["tok"]

        def on_message(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "ping":
                ws.send(json.dumps({"type": "pong"}))
            elif frame.get("type") == "message" and self.takes_socket_messages:
                self.tasks.add(asyncio.ensure_future(self.take_socket_message(ws, frame)))

        ws.on_message(on_message)
        ws.on_close(lambda *_: self.sockets.remove(ws) if ws in self.sockets else None)
        for m in self.messages:
            if m["seq"] > after:
                ws.send(json.dumps({"type": "message", "message": m}))
        ws.send(json.dumps({"type": "status", "status": self.status}))


def _cors() -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Headers": "*",
        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Expose-Headers": "Retry-After",
    }


async def _json(route, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    await route.fulfill(
        status=status,
        content_type="application/json",
        body=json.dumps(payload),
        headers={**_cors(), **(headers or {})},
    )


# Never skipped: `make test` installs Debian's Chromium, and a missing browser must fail loudly.
browser_test = pytest.mark.browser


async def _open_page(browser, gw: FakeGateway, *, viewport=None, context=None):
    ctx = context or await browser.new_context(viewport=viewport or {"width": 1280, "height": 800}, locale="it-IT")
    page = await ctx.new_page()
    await page.route(f"{ORIGIN}/**", gw.handle)
    await page.route_web_socket(re.compile(r"^ws://gateway\.test/.*"), gw.on_socket)
    await page.goto(f"{ORIGIN}/")
    await page.wait_for_function("window.LucineWidget !== undefined")
    return ctx, page


async def _state(page) -> dict[str, Any]:
    return await page.evaluate("window.LucineWidget.state()")


async def _wait(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if await predicate():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def _send(page, text: str) -> None:
    await page.fill("[data-testid=input]", text)
    await page.press("[data-testid=input]", "Enter")


async def _open_and_send(page: Any, text: str) -> None:
    """Opens the widget and sends `text`, which starts the conversation; returns once it is stored.
    The echo may render before the POST answers; the pending bubble then goes away."""
    from playwright.async_api import expect

    await page.evaluate("window.LucineWidget.open()")
    await _send(page, text)
    await expect(page.locator("[data-testid=message][data-pending]")).to_have_count(0)


@pytest.mark.browser
@browser_test
async def test_browser_conversation_flow_renders_text_safely(browser):
    from playwright.async_api import expect

    gw = FakeGateway()
    gw.ai_reply = {
        "text": "Ciao <img src=x onerror=alert(1)> biglietti: https://lucinedinatale.it/products/x",
        "actions": [
            {"type": "open_url", "label": "Acquista biglietti", "url": "https://lucinedinatale.it/products/x"},
            {"type": "open_url", "label": "Evil", "url": "javascript:alert(1)"},
            {"type": "request_operator", "label": "Sì, chiama un operatore"},
            {"type": "continue_ai", "label": "No, continua con l'assistente"},
        ],
    }
    ctx, page = await _open_page(browser, gw)
    try:
        # The host page hides every <button> with !important; the widget's launcher must survive it.
        await expect(page.locator("[data-testid=launcher]")).to_be_visible()
        await expect(page.locator("[data-testid=panel]")).to_be_hidden()
        await page.click("[data-testid=launcher]")
        await expect(page.locator("[data-testid=panel]")).to_be_visible()
        await expect(page.locator("[data-testid=input]")).to_be_focused()
        await expect(page.locator("[data-testid=input]")).to_have_attribute("placeholder", "Scrivi un messaggio…")
        await expect(page.locator(".lw-title")).to_have_text("Lucine di Natale")

        # Shift+Enter is a newline, Enter sends.
        await page.fill("[data-testid=input]", "Quanto costa")
        await page.press("[data-testid=input]", "Shift+Enter")
        await page.type("[data-testid=input]", "il biglietto?")
        assert await page.input_value("[data-testid=input]") == "Quanto costa\nil biglietto?"
        await page.press("[data-testid=input]", "Enter")
        assert await page.input_value("[data-testid=input]") == ""

        msgs = page.locator("[data-testid=message]")
        await expect(msgs).to_have_count(2)
        await expect(msgs.nth(0)).to_have_attribute("data-sender", "customer")
        await expect(msgs.nth(0)).to_have_attribute("data-seq", "1")
        await expect(msgs.nth(0)).not_to_have_attribute("data-pending", "true")
        await expect(msgs.nth(1)).to_have_attribute("data-sender", "ai")
        # Markup from the server is shown as text, never parsed.
        await expect(msgs.nth(1)).to_contain_text("<img src=x onerror=alert(1)>")
        assert await page.locator("[data-testid=message] img").count() == 0

        buttons = msgs.nth(1).locator("[data-testid=action-button]")
        await expect(buttons).to_have_count(3)  # the javascript: URL was dropped
        link = buttons.nth(0)
        await expect(link).to_have_attribute("href", "https://lucinedinatale.it/products/x")
        await expect(link).to_have_attribute("target", "_blank")
        await expect(link).to_have_attribute("rel", "noopener noreferrer")
        assert await page.locator("a[href^='javascript']").count() == 0
        # The URL in the text became a safe link too.
        await expect(msgs.nth(1).locator("a.lw-inline-link")).to_have_attribute("rel", "noopener noreferrer")

        state = await _state(page)
        assert state["conversationId"] == "conv1"
        assert state["lastSeq"] == 2
        assert state["connected"] is True
        assert gw.message_posts[0]["text"] == "Quanto costa\nil biglietto?"
        assert re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", gw.message_posts[0]["client_message_id"])

        # Handoff: POST /actions, both buttons disabled, queued status shown.
        await buttons.nth(1).click()
        await expect(buttons.nth(1)).to_be_disabled()
        await expect(buttons.nth(2)).to_be_disabled()
        actions = [r for r in gw.requests if r[1].endswith("/actions")]
        assert actions[0][2] == {"action": "request_operator"}
        await gw.push({"type": "status", "status": "QUEUED"})
        await expect(page.locator("[data-testid=status]")).to_have_text("In attesa di un operatore…")
        await gw.push({"type": "status", "status": "WITH_OPERATOR"})
        await expect(page.locator("[data-testid=status]")).to_have_text("Sei in chat con un operatore")
        await gw.add("operator", "Buonasera, sono Giulia.")
        await expect(msgs.nth(2)).to_have_attribute("data-sender", "operator")

        # Close returns to the launcher.
        await page.click("[data-testid=close]")
        await expect(page.locator("[data-testid=panel]")).to_be_hidden()
    finally:
        await ctx.close()


@pytest.mark.browser
@browser_test
async def test_browser_dedup_gap_fill_reconnect_and_resume(browser):
    from playwright.async_api import expect

    gw = FakeGateway()
    ctx, page = await _open_page(browser, gw)
    try:
        await page.evaluate("window.LucineWidget.open()")
        await _send(page, "ciao")
        msgs = page.locator("[data-testid=message]")
        await expect(msgs).to_have_count(1)
        await expect(msgs.nth(0)).to_have_attribute("data-seq", "1")

        # A repeated frame is shown once.
        await gw.push({"type": "message", "message": gw.messages[0]})
        # Seq 2 and 3 exist on the server but the stream skips to 4: the widget fetches the gap.
        await gw.add("ai", "due", push=False)
        await gw.add("ai", "tre", push=False)
        await gw.add("ai", "quattro")
        await expect(msgs).to_have_count(4)
        assert [await msgs.nth(i).get_attribute("data-seq") for i in range(4)] == ["1", "2", "3", "4"]
        assert any("after=1" in r[1] and r[0] == "GET" for r in gw.requests)

        # The server drops the socket: "Riconnessione…", then a new socket with after=<last seq>.
        sockets_before = len(gw.socket_urls)
        for ws in list(gw.sockets):
            await ws.close(code=1011, reason="restart")
        await expect(page.locator("[data-testid=status]")).to_have_text("Riconnessione…")
        await _wait(lambda: _async(len(gw.socket_urls) > sockets_before))
        assert "after=4" in gw.socket_urls[-1]
        await expect(page.locator("[data-testid=status]")).to_be_hidden()
        await gw.add("ai", "cinque")
        await expect(msgs).to_have_count(5)

        # Reload: the same conversation comes back from localStorage with its history.
        stored = await page.evaluate("localStorage.getItem('lucine-widget:v1:wk_test')")
        assert json.loads(stored) == {"conversation_id": "conv1", "customer_token": "tok", "last_seq": 5}
        await page.reload()
        await page.wait_for_function("window.LucineWidget && window.LucineWidget.state().connected")
        await page.evaluate("window.LucineWidget.open()")
        await expect(msgs).to_have_count(5)
        assert (await _state(page))["conversationId"] == "conv1"
        assert gw.created == 1
        assert "after=5" in gw.socket_urls[-1]
    finally:
        await ctx.close()


async def _async(value):
    return value


@pytest.mark.browser
@browser_test
async def test_browser_retries_same_client_id_and_keeps_text_on_429(browser):
    from playwright.async_api import expect

    gw = FakeGateway()
    gw.echo = False  # the server accepts but only echoes later: the bubble stays pending
    ctx, page = await _open_page(browser, gw)
    try:
        await page.evaluate("window.LucineWidget.open()")
        gw.abort_next_posts = 2
        await _send(page, "primo")
        bubble = page.locator("[data-testid=message][data-sender=customer]")
        await expect(bubble).to_have_attribute("data-pending", "true")
        await _wait(lambda: _async(len(gw.message_posts) == 3))
        ids = {p["client_message_id"] for p in gw.message_posts}
        assert len(ids) == 1, "a retry must reuse the same client_message_id"
        await page.wait_for_timeout(200)
        await expect(bubble).to_have_attribute("data-pending", "true")
        # The echo (matched by message_id) clears the pending state.
        await gw.echo_held()
        await expect(bubble).to_have_count(1)
        await expect(bubble).to_have_attribute("data-seq", "1")
        await expect(bubble).not_to_have_attribute("data-pending", "true")

        # 429: the error says when to retry, and the typed text is back in the input.
        gw.reply_429 = 7
        await _send(page, "secondo")
        await expect(page.locator("[data-testid=error]")).to_have_text("Troppi messaggi, riprova tra 7 secondi")
        assert await page.input_value("[data-testid=input]") == "secondo"
        await expect(bubble).to_have_count(1)
    finally:
        await ctx.close()


@pytest.mark.browser
@browser_test
async def test_browser_sends_on_the_open_socket_and_resends_what_it_did_not_answer(browser):
    from playwright.async_api import expect

    gw = FakeGateway()
    ctx, page = await _open_page(browser, gw)
    try:
        await _open_and_send(page, "primo")  # starts the conversation: no socket yet, so POSTed
        await _wait(lambda: page.evaluate("window.LucineWidget.state().connected"))
        bubbles = page.locator("[data-testid=message][data-sender=customer]")

        await _send(page, "secondo")
        await expect(bubbles).to_have_count(2)
        await expect(bubbles.nth(1)).to_have_attribute("data-seq", "2")
        await expect(page.locator("[data-testid=message][data-pending]")).to_have_count(0)
        assert gw.message_channels == ["http", "socket"]

        # An error frame is read as the POST's answer would be.
        gw.reply_429 = 7
        await _send(page, "terzo")
        await expect(page.locator("[data-testid=error]")).to_have_text("Troppi messaggi, riprova tra 7 secondi")
        assert await page.input_value("[data-testid=input]") == "terzo"
        assert gw.message_channels[-1] == "socket"

        # The socket closes before its answer: the message is sent again, same id, and shown once.
        gw.reply_429 = None
        gw.abort_next_posts = 1
        await _send(page, "quarto")
        await expect(bubbles).to_have_count(3)
        await expect(bubbles.nth(2)).to_have_text(re.compile("quarto"))
        await expect(page.locator("[data-testid=message][data-pending]")).to_have_count(0)
        fourth = [p["client_message_id"] for p in gw.message_posts if p["text"] == "quarto"]
        assert len(fourth) == 2
        assert len(set(fourth)) == 1
        assert gw.message_channels[-2] == "socket"
    finally:
        await ctx.close()


@pytest.mark.browser
@browser_test
async def test_browser_posts_what_a_gateway_that_does_not_answer_socket_messages_left_unanswered(browser):
    from playwright.async_api import expect

    gw = FakeGateway()
    gw.takes_socket_messages = False  # as a gateway of the version before, during an upgrade
    ctx, page = await _open_page(browser, gw)
    try:
        await _open_and_send(page, "primo")
        await _wait(lambda: page.evaluate("window.LucineWidget.state().connected"))
        bubbles = page.locator("[data-testid=message][data-sender=customer]")

        await _send(page, "secondo")  # sent on the socket, unanswered for 10 s, then POSTed
        await expect(bubbles.nth(1)).to_have_attribute("data-seq", "2", timeout=15_000)
        assert gw.message_channels == ["http", "http"]
        await _send(page, "terzo")  # no more waiting on that socket
        await expect(bubbles.nth(2)).to_have_attribute("data-seq", "3", timeout=3_000)
        assert gw.message_channels == ["http", "http", "http"]
        await expect(page.locator("[data-testid=message][data-pending]")).to_have_count(0)
    finally:
        await ctx.close()


@pytest.mark.browser
@browser_test
async def test_browser_english_and_phone_layout(browser):
    from playwright.async_api import expect

    gw = FakeGateway()
    gw.lang_attr = "en"
    ctx, page = await _open_page(browser, gw, viewport={"width": 375, "height": 700})
    try:
        await page.click("[data-testid=launcher]")
        await expect(page.locator("[data-testid=input]")).to_have_attribute("placeholder", "Write a message…")
        await expect(page.locator("[data-testid=send]")).to_have_attribute("aria-label", "Send")
        await page.wait_for_timeout(400)  # let the opening animation finish
        box = await page.locator("[data-testid=panel]").bounding_box()
        assert box == {"x": 0, "y": 0, "width": 375, "height": 700}
        await page.click("[data-testid=close]")
        await expect(page.locator("[data-testid=launcher]")).to_be_visible()
    finally:
        await ctx.close()


@pytest.mark.browser
@browser_test
async def test_browser_closed_conversation_starts_a_new_one(browser):
    from playwright.async_api import expect

    gw = FakeGateway()
    ctx, page = await _open_page(browser, gw)
    try:
        await _open_and_send(page, "ciao")
        await expect(page.locator("[data-testid=message]")).to_have_count(1)
        await expect(page.locator("[data-testid=message]")).to_have_attribute("data-seq", "1")
        await gw.push({"type": "status", "status": "RESOLVED"})
        await expect(page.locator("[data-testid=status]")).to_have_text("Conversazione chiusa")
        await expect(page.locator("[data-testid=new-conversation]")).to_be_visible()
        gw.messages.clear()
        gw.status = "AI"
        await _send(page, "di nuovo")
        await expect(page.locator("[data-testid=message][data-pending]")).to_have_count(0)
        await expect(page.locator("[data-testid=message]")).to_have_count(1)
        await expect(page.locator("[data-testid=message]")).to_have_attribute("data-seq", "1")
        await expect(page.locator("[data-testid=message]")).to_have_text(re.compile("di nuovo"))
        assert (await _state(page))["conversationId"] == "conv2"
        assert "/v1/conversations/conv2/stream" in gw.socket_urls[-1]
    finally:
        await ctx.close()


async def _close_after_one_message(page: Any, gw: FakeGateway, closed_status: str = "RESOLVED") -> None:
    """Starts a conversation with one message, then the operator closes it (as the service does:
    the status frame and its closing notice)."""
    from playwright.async_api import expect

    await _open_and_send(page, "ciao")
    await expect(page.locator("[data-testid=message]")).to_have_count(1)
    gw.status = closed_status
    await gw.push({"type": "status", "status": closed_status})
    await gw.add("system", "La conversazione è stata chiusa. Com'è andata? Lascia una valutazione da 1 a 5.")


async def _stars(page: Any) -> list[tuple[str | None, str | None]]:
    """(aria-pressed, data-lit) of the five stars, in order."""
    stars = page.locator("[data-testid=rating-star]")
    return [
        (await stars.nth(i).get_attribute("aria-pressed"), await stars.nth(i).get_attribute("data-lit"))
        for i in range(await stars.count())
    ]


@pytest.mark.browser
@browser_test
async def test_browser_rating_after_close_once_per_conversation(browser: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    gw = FakeGateway()
    ctx, page = await _open_page(browser, gw)
    try:
        await _close_after_one_message(page, gw)
        card = page.locator("[data-testid=rating]")
        await expect(card).to_be_visible()
        await expect(page.locator("[data-testid=message]")).to_have_count(2)
        # At the end of the conversation: after the closing notice, before "new conversation".
        order = await page.locator("[data-testid=messages]").evaluate(
            "(box) => Array.from(box.children).filter((n) => !n.hidden)"
            ".map((n) => n.getAttribute('data-testid') + ':' + (n.getAttribute('data-sender') || ''))"
        )
        assert order[-3:] == ["message:system", "rating:", "new-conversation:"], order
        stars = page.locator("[data-testid=rating-star]")
        await expect(stars).to_have_count(5)
        await expect(stars.nth(2)).to_have_attribute("aria-label", "3 stelle su 5")
        await expect(stars.nth(0)).to_have_attribute("aria-label", "1 stella su 5")
        submit = page.locator("[data-testid=rating-submit]")
        await expect(submit).to_be_disabled()  # no score chosen yet

        # A click, then the arrows: one tab stop for the row, the chosen star pressed, the ones before lit.
        await stars.nth(1).click()
        await page.keyboard.press("ArrowRight")
        await page.keyboard.press("ArrowRight")
        await expect(stars.nth(3)).to_be_focused()
        assert await _stars(page) == [("false", "true")] * 3 + [("true", "true"), ("false", "false")]
        await expect(submit).to_be_enabled()
        await page.keyboard.press("Tab")
        await expect(page.locator("[data-testid=rating-comment]")).to_be_focused()
        await expect(page.locator("[data-testid=rating-comment]")).to_have_attribute("maxlength", "2000")
        await page.keyboard.type("Gentilissimi, grazie")
        await page.mouse.move(0, 0)  # off the stars: hovering one previews its score instead of the choice
        await page.screenshot(path=str(tmp_path / "widget-rating.png"))

        # Two clicks before the answer (a browser's double click is not one to rely on): one POST.
        await submit.evaluate("(button) => { button.click(); button.click(); }")
        await expect(page.locator("[data-testid=rating-thanks]")).to_have_text("Grazie per la tua valutazione!")
        await expect(card).to_be_hidden()
        await expect(page.locator("[data-testid=error]")).to_be_hidden()
        assert len(gw.rating_posts) == 1
        conversation, body, headers = gw.rating_posts[0]
        assert conversation == "conv1"
        assert body == {"score": 4, "comment": "Gentilissimi, grazie"}
        assert headers.get("authorization") == "Bearer tok"
        assert (await _state(page))["rated"] is True

        # Reload: the same closed conversation, and no second card for it.
        await page.reload()
        await page.wait_for_function("window.LucineWidget && window.LucineWidget.state().connected")
        await page.evaluate("window.LucineWidget.open()")
        await expect(page.locator("[data-testid=message]")).to_have_count(2)
        await expect(page.locator("[data-testid=status]")).to_have_text("Conversazione chiusa")
        await expect(page.locator("[data-testid=new-conversation]")).to_be_visible()
        await expect(card).to_be_hidden()
        assert (await _state(page))["conversationId"] == "conv1"
        assert len(gw.rating_posts) == 1

        # A new conversation gets its own card when it closes.
        await page.click("[data-testid=new-conversation]")
        gw.messages.clear()
        gw.status = "AI"
        await _close_after_one_message(page, gw, "NOT_RESOLVED")
        await expect(card).to_be_visible()
        assert (await _state(page))["conversationId"] == "conv2"
        assert await _stars(page) == [("false", "false")] * 5
        await expect(page.locator("[data-testid=rating-comment]")).to_have_value("")
        await expect(page.locator("[data-testid=rating-submit]")).to_be_disabled()
    finally:
        await ctx.close()


@pytest.mark.browser
@browser_test
async def test_browser_rating_keeps_the_choice_after_429_and_fits_a_phone(browser: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    gw = FakeGateway()
    gw.lang_attr = "en"
    gw.rating_429_once = 7
    ctx, page = await _open_page(browser, gw, viewport={"width": 375, "height": 700})
    try:
        await page.click("[data-testid=launcher]")
        await _close_after_one_message(page, gw)
        card = page.locator("[data-testid=rating]")
        await expect(card).to_be_visible()
        stars = page.locator("[data-testid=rating-star]")
        await expect(stars.nth(2)).to_have_attribute("aria-label", "3 stars out of 5")
        await stars.nth(2).click()
        await page.fill("[data-testid=rating-comment]", "Quick answer")
        await page.locator("[data-testid=rating-submit]").click()

        await expect(page.locator("[data-testid=error]")).to_have_text("Too many messages, try again in 7 seconds")
        await expect(card).to_be_visible()
        assert await _stars(page) == [("false", "true")] * 2 + [("true", "true")] + [("false", "false")] * 2
        await expect(page.locator("[data-testid=rating-comment]")).to_have_value("Quick answer")
        await expect(page.locator("[data-testid=rating-submit]")).to_be_enabled()
        await expect(page.locator("[data-testid=rating-thanks]")).to_be_hidden()

        # On a phone the five stars stay on one row inside the card.
        await card.scroll_into_view_if_needed()
        card_box = await card.bounding_box()
        assert card_box is not None
        boxes = [box for i in range(5) if (box := await stars.nth(i).bounding_box())]
        assert len(boxes) == 5
        assert len({round(b["y"]) for b in boxes}) == 1
        left, right = card_box["x"], card_box["x"] + card_box["width"]
        assert all(left <= b["x"] and b["x"] + b["width"] <= right for b in boxes)
        assert right <= 375
        await page.mouse.move(0, 0)
        await page.screenshot(path=str(tmp_path / "widget-rating-phone.png"))

        await page.locator("[data-testid=rating-submit]").click()
        await expect(page.locator("[data-testid=rating-thanks]")).to_have_text("Thanks for your rating!")
        await expect(card).to_be_hidden()
        await expect(page.locator("[data-testid=error]")).to_be_hidden()
        assert [body for _, body, _ in gw.rating_posts] == [{"score": 3, "comment": "Quick answer"}] * 2
    finally:
        await ctx.close()


async def _children(page: Any) -> list[str]:
    """The list's children in order, hidden ones too: `testid:sender`, with `(hidden)` when hidden."""
    return await page.locator("[data-testid=messages]").evaluate(
        "(box) => Array.from(box.children).map((n) => n.getAttribute('data-testid') + ':'"
        " + (n.getAttribute('data-sender') || '') + (n.hidden ? ' (hidden)' : ''))"
    )


async def _inside_list(page: Any, selector: str) -> bool:
    """Whether the element is wholly inside the visible part of the message list."""
    return await page.locator("[data-testid=messages]").evaluate(
        "(box, sel) => { const el = box.querySelector(sel); if (!el) return false;"
        " const b = box.getBoundingClientRect(), r = el.getBoundingClientRect();"
        " return r.height > 0 && r.top >= b.top - 1 && r.bottom <= b.bottom + 1; }",
        selector,
    )


@pytest.mark.browser
@browser_test
@pytest.mark.parametrize(
    ("lang", "viewport"),
    [("it", {"width": 1280, "height": 800}), ("en", {"width": 375, "height": 700})],
    ids=["desktop-it", "phone-en"],
)
async def test_browser_new_conversation_puts_the_ticket_form_after_its_messages(
    browser: Any, tmp_path: Path, lang: str, viewport: dict[str, int]
) -> None:
    from playwright.async_api import expect

    gw = FakeGateway()
    gw.lang_attr = lang
    ctx, page = await _open_page(browser, gw, viewport=viewport)
    try:
        # A closed conversation leaves its rating card and the "new conversation" button.
        await _close_after_one_message(page, gw)
        await expect(page.locator("[data-testid=rating]")).to_be_visible()
        await page.click("[data-testid=new-conversation]")
        await expect(page.locator("[data-testid=input]")).to_be_focused()
        # A clean list: none of the old conversation's cards or button are left in it, hidden or not.
        assert await _children(page) == ["welcome:"]

        # The new conversation: the customer asks for a person, says yes, and nobody is online.
        gw.messages.clear()
        gw.status = "AI"
        gw.ai_reply = {
            "text": "Certo! Vuoi che ti metta in contatto con un operatore?",
            "actions": [
                {"type": "request_operator", "label": "Sì, chiama un operatore"},
                {"type": "continue_ai", "label": "No, continua con l'assistente"},
            ],
        }
        await _send(page, "Vorrei parlare con una persona")
        msgs = page.locator("[data-testid=message]")
        await expect(msgs).to_have_count(2)
        await expect(page.locator("[data-testid=message][data-pending]")).to_have_count(0)
        await msgs.nth(1).locator("[data-testid=action-button][data-action=request_operator]").click()
        await expect(page.locator("[data-testid=status]")).not_to_have_text("")
        # As the conversation service does it: the status first, then its notice.
        gw.status = "TICKET_PENDING"
        await gw.push({"type": "status", "status": "TICKET_PENDING"})
        await gw.add("system", "Nessun operatore è disponibile ora: lasciaci i tuoi contatti.")
        form = page.locator("[data-testid=ticket-form]")
        await expect(form).to_be_visible()
        await expect(msgs).to_have_count(3)

        # After the new question and its notice, as in a fresh widget; the composer gives way to it.
        assert await _children(page) == [
            "welcome: (hidden)",
            "message:customer",
            "message:ai",
            "message:system",
            "ticket-form:",
        ]
        await expect(page.locator("[data-testid=input]")).to_be_hidden()
        # In view, from its first field, with the keyboard there.
        await expect(page.locator("[data-testid=ticket-name]")).to_be_focused()
        await page.wait_for_timeout(100)  # a frame for any late scrolling
        assert await _inside_list(page, "[data-testid=ticket-name]")
        assert await _inside_list(page, "[data-testid=ticket-form] h3")
        await page.screenshot(path=str(tmp_path / f"widget-ticket-after-new-conversation-{lang}.png"))
    finally:
        await ctx.close()


@pytest.mark.browser
@browser_test
async def test_browser_last_message_stays_visible_when_the_banner_grows(browser: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    gw = FakeGateway()
    ctx, page = await _open_page(browser, gw)
    try:
        await _open_and_send(page, "Vorrei parlare con una persona")
        for i in range(8):  # enough to scroll
            await gw.add("ai", f"Risposta numero {i + 1}: le luci si accendono alle 17:30.")
        gw.status = "QUEUED"
        await gw.push({"type": "status", "status": "QUEUED"})
        status = page.locator("[data-testid=status]")
        await expect(status).to_have_text("In attesa di un operatore…")
        one_line = (await status.bounding_box() or {})["height"]
        await gw.add("system", "Tutti gli operatori sono occupati: sei 3° in coda, attesa stimata circa 4 min.")
        msgs = page.locator("[data-testid=message]")
        await expect(msgs).to_have_count(10)
        assert await _inside_list(page, "[data-testid=message]:last-of-type")
        assert await page.locator("[data-testid=messages]").evaluate("(b) => b.scrollTop > 0")

        # The place in the queue makes the banner two lines high: the list shrinks, the end stays in view.
        await gw.push({"type": "queue", "position": 3, "estimated_wait_seconds": 240})
        await expect(status).to_have_text("In attesa di un operatore: sei 3° in coda (circa 4 min)")
        assert (await status.bounding_box() or {})["height"] > one_line + 10
        await page.wait_for_timeout(100)
        assert await _inside_list(page, "[data-testid=message]:last-of-type")
        await page.screenshot(path=str(tmp_path / "widget-banner-two-lines.png"))

        # A customer who scrolled up to read is left where they are.
        await page.locator("[data-testid=messages]").evaluate("(b) => { b.scrollTop = 0; }")
        await gw.push({"type": "status", "status": "WITH_OPERATOR"})
        await expect(status).to_have_text("Sei in chat con un operatore")
        await page.wait_for_timeout(100)
        assert await page.locator("[data-testid=messages]").evaluate("(b) => b.scrollTop") == 0
    finally:
        await ctx.close()


@pytest.mark.browser
@browser_test
async def test_browser_queue_position_survives_a_reload(browser: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    gw = FakeGateway()
    ctx, page = await _open_page(browser, gw)
    try:
        await _open_and_send(page, "Vorrei parlare con una persona")
        gw.status = "QUEUED"
        await gw.push({"type": "status", "status": "QUEUED"})
        await gw.push({"type": "queue", "position": 2, "estimated_wait_seconds": 180})
        status = page.locator("[data-testid=status]")
        await expect(status).to_have_text("In attesa di un operatore: sei 2° in coda (circa 3 min)")

        # Neither the history nor the stream's replay carries the place (only the status)...
        await page.reload()
        await page.wait_for_function("window.LucineWidget && window.LucineWidget.state().connected")
        await page.evaluate("window.LucineWidget.open()")
        await expect(page.locator("[data-testid=message]")).to_have_count(1)
        # ...so the last one known is shown, until the next update replaces it.
        await expect(status).to_have_text("In attesa di un operatore: sei 2° in coda (circa 3 min)")
        await page.wait_for_timeout(400)  # let the opening animation finish
        await page.screenshot(path=str(tmp_path / "widget-queued-after-reload.png"))
        await gw.push({"type": "queue", "position": 1, "estimated_wait_seconds": None})
        await expect(status).to_have_text("In attesa di un operatore: sei 1° in coda")

        # Out of the queue, the place is forgotten: a later reload does not bring it back.
        gw.status = "WITH_OPERATOR"
        await gw.push({"type": "status", "status": "WITH_OPERATOR"})
        await expect(status).to_have_text("Sei in chat con un operatore")
        stored = json.loads(await page.evaluate("localStorage.getItem('lucine-widget:v1:wk_test')"))
        assert "queue_position" not in stored
        gw.status = "QUEUED"
        await page.reload()
        await page.wait_for_function("window.LucineWidget && window.LucineWidget.state().connected")
        await page.evaluate("window.LucineWidget.open()")
        await expect(status).to_have_text("In attesa di un operatore…")
    finally:
        await ctx.close()


# ---- the ticket form: the server's refusals, the way back to the assistant, the confirmation

WORDS = {
    "it": {
        "name": "Questo nome non sembra valido.",
        "email": "Questa email non sembra valida.",
        "message": "Questo messaggio non sembra valido.",
        "generic": "Si è verificato un errore. Riprova.",
        "to_ai": "Torna all'assistente",
    },
    "en": {
        "name": "This name does not look valid.",
        "email": "This email does not look valid.",
        "message": "This message does not look valid.",
        "generic": "Something went wrong. Please try again.",
        "to_ai": "Back to the assistant",
    },
}
# What the server's messages are made of, and a customer must never read.
SERVER_WORDS = ["function-after", "validator", "0x", "value is not a valid", "String should", "preferred contact"]
LANG_VIEWPORTS = pytest.mark.parametrize(
    ("lang", "viewport"),
    [("it", {"width": 1280, "height": 800}), ("en", {"width": 375, "height": 700})],
    ids=["desktop-it", "phone-en"],
)


async def _no_operator_available(page: Any, gw: FakeGateway) -> None:
    """The customer asked for a person and nobody is online: the status, then its notice, as the
    conversation service sends them."""
    from playwright.async_api import expect

    gw.status = "TICKET_PENDING"
    await gw.push({"type": "status", "status": "TICKET_PENDING"})
    await gw.add("system", "Nessun operatore è disponibile ora: lasciaci i tuoi contatti.")
    await expect(page.locator("[data-testid=ticket-form]")).to_be_visible()


async def _field_error(page: Any, testid: str) -> Any:
    """The error line beside a form field (named by the field's aria-describedby)."""
    control_id = await page.locator(f"[data-testid={testid}]").get_attribute("id")
    return page.locator(f"#{control_id}-err")


async def _panel_text(page: Any) -> str:
    return str(await page.locator("[data-testid=panel]").inner_text())


@pytest.mark.browser
@browser_test
@LANG_VIEWPORTS
async def test_browser_refused_ticket_details_are_told_beside_their_field_in_the_widgets_words(
    browser: Any, tmp_path: Path, lang: str, viewport: dict[str, int]
) -> None:
    from playwright.async_api import expect

    words = WORDS[lang]
    gw = FakeGateway()
    gw.lang_attr = lang
    ctx, page = await _open_page(browser, gw, viewport=viewport)
    try:
        await _open_and_send(page, "Vorrei prenotare una visita per un gruppo")
        await _no_operator_available(page, gw)
        await page.fill("[data-testid=ticket-name]", "Test")
        email = page.locator("[data-testid=ticket-email]")
        email_error = await _field_error(page, "ticket-email")
        form_error = page.locator("[data-testid=ticket-error]")

        # What the server obviously refuses is told before anything is sent.
        for refused in [
            "mario..rossi@example.com",
            ".mario.rossi@example.com",
            "mario.rossi.@example.com",
            "mario@example..com",
            "mario@example.test",
        ]:
            await email.fill(refused)
            await page.click("[data-testid=ticket-submit]")
            await expect(email_error).to_have_text(words["email"])
            await expect(email).to_have_attribute("aria-invalid", "true")
            await expect(email).to_be_focused()
        assert gw.ticket_posts == []

        # An address only the server's check refuses: its 422 names the field, and the widget says
        # it beside the field, as its own check does, never in the server's words.
        await email.fill("mario@exa_mple.com")
        await page.click("[data-testid=ticket-submit]")
        await _wait(lambda: _async(len(gw.ticket_posts) == 1))
        await expect(email_error).to_have_text(words["email"])
        await expect(email).to_have_attribute("aria-invalid", "true")
        await expect(email).to_be_focused()
        await expect(form_error).to_be_hidden()
        await expect(page.locator("[data-testid=ticket-submit]")).to_be_enabled()
        shown = await _panel_text(page)
        assert not [w for w in SERVER_WORDS if w in shown], shown
        await page.screenshot(path=str(tmp_path / f"widget-ticket-email-refused-{lang}.png"))

        # The name and the message, refused by the server (as sent: the fake changes them first).
        await email.fill("mario.rossi@example.com")
        await expect(email_error).to_be_hidden()
        for field, value in [("name", "x" * 201), ("message", "x" * 4001)]:
            gw.ticket_override = {field: value}
            await page.click("[data-testid=ticket-submit]")
            error = await _field_error(page, f"ticket-{field}")
            await expect(error).to_have_text(words[field])
            await expect(page.locator(f"[data-testid=ticket-{field}]")).to_be_focused()
            await expect(email_error).to_be_hidden()
            await expect(form_error).to_be_hidden()
        gw.ticket_override = {}

        # A refusal that names no field, or any other failure: a general error, in the widget's words.
        for status, message in [
            (422, "preferred contact is email but no email was given"),
            (500, "KeyError at 0x7f3a: value is not a valid thing"),
        ]:
            gw.ticket_answer = (status, {"error": {"code": "invalid_request", "message": message}})
            await page.click("[data-testid=ticket-submit]")
            await expect(form_error).to_have_text(words["generic"])
            await expect(page.locator("[data-testid=ticket-form] .lw-field-error:visible")).to_have_count(1)
            shown = await _panel_text(page)
            assert not [w for w in SERVER_WORDS if w in shown], shown
        gw.ticket_answer = None

        await page.click("[data-testid=ticket-submit]")
        await expect(page.locator("[data-testid=ticket-registering]")).to_be_visible()
        assert gw.ticket_posts[-1] == {
            "name": "Test",
            "email": "mario.rossi@example.com",
            "phone": "",
            "preferred_contact": "email",
            "message": "",
        }
        assert len(gw.ticket_posts) == 6
    finally:
        await ctx.close()


@pytest.mark.browser
@browser_test
@LANG_VIEWPORTS
async def test_browser_no_operator_form_leads_back_to_the_assistant(
    browser: Any, tmp_path: Path, lang: str, viewport: dict[str, int]
) -> None:
    from playwright.async_api import expect

    words = WORDS[lang]
    gw = FakeGateway()
    gw.lang_attr = lang
    gw.status_in_action_answer = False  # as the real gateway: the new status comes on the stream
    ctx, page = await _open_page(browser, gw, viewport=viewport)
    try:
        await _open_and_send(page, "Vorrei parlare con una persona")
        await _no_operator_available(page, gw)
        form = page.locator("[data-testid=ticket-form]")
        to_ai = page.locator("[data-testid=ticket-back-to-ai]")
        await expect(to_ai).to_be_visible()
        await expect(to_ai).to_have_text(words["to_ai"])
        await expect(page.locator("[data-testid=ticket-back]")).to_be_hidden()
        await expect(page.locator("[data-testid=input]")).to_be_hidden()
        await page.wait_for_timeout(100)
        assert await _inside_list(page, "[data-testid=ticket-back-to-ai]"), "seen without scrolling"
        await page.wait_for_timeout(300)  # let the opening animation finish
        await page.screenshot(path=str(tmp_path / f"widget-no-operator-form-{lang}.png"))

        # After a reload the form comes back, and so does the way out.
        await page.reload()
        await page.wait_for_function("window.LucineWidget && window.LucineWidget.state().connected")
        await page.evaluate("window.LucineWidget.open()")
        await expect(form).to_be_visible()
        await expect(to_ai).to_be_visible()

        # By keyboard: one step back from the form's first field. A first failure is told in the
        # widget's words and the form stays; the second try goes back to the assistant.
        await page.locator("[data-testid=ticket-name]").focus()
        await page.keyboard.press("Shift+Tab")
        await expect(to_ai).to_be_focused()
        gw.action_fail_once = (500, {"error": {"code": "internal", "message": "function-after[boom at 0x7f3a]"}})
        await page.keyboard.press("Enter")
        await expect(page.locator("[data-testid=error]")).to_have_text(words["generic"])
        await expect(form).to_be_visible()
        await expect(to_ai).to_be_focused()
        await page.keyboard.press("Enter")

        await expect(form).to_be_hidden()
        await expect(page.locator("[data-testid=input]")).to_be_visible()
        await expect(page.locator("[data-testid=input]")).to_be_focused()
        await expect(page.locator("[data-testid=error]")).to_be_hidden()
        await expect(page.locator("[data-testid=status]")).to_be_hidden()
        await expect(page.locator("[data-testid=ask-person]")).to_be_visible()
        await expect(page.locator("[data-testid=menu]")).to_be_visible()
        assert gw.action_posts == [{"action": "continue_ai"}] * 2
        assert (await _state(page))["status"] == "AI"

        # The chat goes on with the assistant.
        gw.ai_reply = {"text": "Certo, chiedimi pure."}
        await page.keyboard.type("Allora, quanto costa il biglietto?")
        await page.keyboard.press("Enter")
        await expect(page.locator("[data-testid=message][data-sender=ai]")).to_have_text(re.compile("chiedimi pure"))
        await page.screenshot(path=str(tmp_path / f"widget-back-to-assistant-{lang}.png"))

        # A reload now shows the chat, not the form.
        await page.reload()
        await page.wait_for_function("window.LucineWidget && window.LucineWidget.state().connected")
        await page.evaluate("window.LucineWidget.open()")
        await expect(page.locator("[data-testid=message][data-sender=ai]")).to_have_count(1)
        await expect(form).to_be_hidden()
        await expect(page.locator("[data-testid=input]")).to_be_visible()
    finally:
        await ctx.close()


async def _leave_contact(page: Any, gw: FakeGateway, name: str, email: str) -> None:
    """Fills in and sends the form; the conversation service then opens the ticket and says so."""
    from playwright.async_api import expect

    await page.fill("[data-testid=ticket-name]", name)
    await page.fill("[data-testid=ticket-email]", email)
    await page.click("[data-testid=ticket-submit]")
    await expect(page.locator("[data-testid=ticket-registering]")).to_be_visible()
    assert gw.ticket_posts[-1]["email"] == email
    gw.status = "TICKET_CREATED"
    await gw.push({"type": "status", "status": "TICKET_CREATED"})
    await gw.add("system", "Abbiamo registrato la tua richiesta TCK-2026-000123. Ti risponderemo entro 2 ore.")
    await expect(page.locator("[data-testid=ticket-number]")).to_have_text("TCK-2026-000123")


@pytest.mark.browser
@browser_test
async def test_browser_ticket_confirmation_names_the_contact_after_a_reload(browser: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    gw = FakeGateway()
    ctx, page = await _open_page(browser, gw)
    try:
        await _open_and_send(page, "Vorrei prenotare una visita per un gruppo")
        await _no_operator_available(page, gw)
        await _leave_contact(page, gw, "Anna Rossi", "anna.rossi@example.com")
        via = page.locator("[data-testid=ticket-via]")
        await expect(via).to_have_text("Ti scriveremo a anna.rossi@example.com.")

        await page.reload()
        await page.wait_for_function("window.LucineWidget && window.LucineWidget.state().connected")
        await page.evaluate("window.LucineWidget.open()")
        await expect(page.locator("[data-testid=ticket-confirmation]")).to_be_visible()
        await expect(page.locator("[data-testid=ticket-number]")).to_have_text("TCK-2026-000123")
        await expect(page.locator("[data-testid=ticket-promise]")).to_have_text("Ti risponderemo entro 2 ore.")
        await expect(via).to_have_text("Ti scriveremo a anna.rossi@example.com.")
        await page.wait_for_timeout(400)  # let the opening animation finish
        await page.screenshot(path=str(tmp_path / "widget-ticket-confirmation-after-reload.png"))

        # A new conversation forgets it.
        await page.click("[data-testid=new-conversation]")
        stored = await page.evaluate("localStorage.getItem('lucine-widget:v1:wk_test')")
        assert stored is None
    finally:
        await ctx.close()


@pytest.mark.browser
@browser_test
async def test_browser_long_email_wraps_inside_the_confirmation_on_a_phone(browser: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    long_email = "giovannibattista.rossibianchiverdi.marchesini@laboratoriodelvetrosoffiato.com"
    gw = FakeGateway()
    gw.lang_attr = "en"
    ctx, page = await _open_page(browser, gw, viewport={"width": 375, "height": 700})
    try:
        await _open_and_send(page, "I would like to book a visit")
        await _no_operator_available(page, gw)
        await _leave_contact(page, gw, "Giovanni", long_email)
        card = page.locator("[data-testid=ticket-confirmation]")
        via = page.locator("[data-testid=ticket-via]")
        await expect(via).to_have_text(f"We will write to {long_email}.")
        await via.scroll_into_view_if_needed()
        await page.wait_for_timeout(100)
        card_box, via_box = await card.bounding_box(), await via.bounding_box()
        assert card_box is not None
        assert via_box is not None
        assert via_box["x"] + via_box["width"] <= card_box["x"] + card_box["width"]
        assert card_box["x"] + card_box["width"] <= 375
        assert await card.evaluate("(c) => c.scrollWidth <= c.clientWidth")
        assert await page.locator("[data-testid=messages]").evaluate("(m) => m.scrollWidth <= m.clientWidth")
        assert via_box["height"] > 30, "the address wraps onto a second line"
        await page.screenshot(path=str(tmp_path / "widget-ticket-confirmation-long-email-phone.png"))
    finally:
        await ctx.close()


# ---- the widget speaks the language the customer writes in (the assistant's answers tell it)

ENGLISH_OFFER = [
    {"type": "request_operator", "label": "Yes, call an operator"},
    {"type": "continue_ai", "label": "No, continue with the assistant"},
]
# Widget words of the Italian side that must be gone once the widget speaks English.
ITALIAN_WORDS = ["Scrivi", "Lasciaci", "Parla con", "Invia", "Torna", "Assistente", "Telefono", "In attesa"]


async def _reopen(page: Any) -> None:
    await page.reload()
    await page.wait_for_function("window.LucineWidget && window.LucineWidget.state().connected")
    await page.evaluate("window.LucineWidget.open()")


@pytest.mark.browser
@browser_test
async def test_browser_the_widget_follows_the_language_the_customer_writes_in(browser: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    gw = FakeGateway()
    gw.lang_attr = None  # the site chose no language: an Italian browser starts the widget in Italian
    ctx, page = await _open_page(browser, gw)
    try:
        await _open_and_send(page, "Hello, I need to talk to a human please")
        await expect(page.locator("[data-testid=ask-person]")).to_have_text("Parla con una persona")
        # Italian words already on screen: the form the customer opened, with its errors.
        await page.click("[data-testid=menu]")
        await page.click("[data-testid=menu-leave-message]")
        form = page.locator("[data-testid=ticket-form]")
        await page.click("[data-testid=ticket-submit]")
        name_error = await _field_error(page, "ticket-name")
        email_error = await _field_error(page, "ticket-email")
        await expect(name_error).to_have_text("Scrivi il tuo nome.")
        await page.screenshot(path=str(tmp_path / "widget-language-before.png"))

        # The assistant answers in English (the language it read the customer's message in).
        await gw.add("ai", "Of course. Shall I call an operator?", actions=ENGLISH_OFFER, language="en")
        await expect(page.locator("[data-testid=message][data-sender=ai] .lw-sender")).to_have_text("Assistant")
        assert (await _state(page))["lang"] == "en"
        await expect(page.locator(".lw-root")).to_have_attribute("lang", "en")
        # Every word already drawn is said again in English...
        await expect(form.locator("h3")).to_have_text("Leave us a message")
        await expect(form).to_have_attribute("aria-label", "Leave us a message")
        await expect(page.locator("[data-testid=ticket-intro]")).to_have_text(
            "Leave us your details and your message: we will get back to you."
        )
        await expect(name_error).to_have_text("Write your name.")
        await expect(email_error).to_have_text("Leave us an email or a phone number.")
        await expect(page.locator("[data-testid=ticket-submit]")).to_have_text("Send request")
        await expect(page.locator("[data-testid=ticket-back]")).to_have_text("Back to the chat")
        await expect(page.locator("[data-testid=ticket-message]")).to_have_attribute("placeholder", "What do you need?")
        await expect(page.get_by_test_id("ticket-preferred-hint")).to_have_text("Write your email or phone first.")
        await expect(page.locator("[data-testid=ask-person]")).to_have_text("Talk to a person")
        await expect(page.locator("[data-testid=menu]")).to_have_attribute("aria-label", "More options")
        await expect(page.locator("[data-testid=close]")).to_have_attribute("aria-label", "Close chat")
        await expect(page.locator("[data-testid=launcher]")).to_have_attribute("aria-label", "Close chat")
        await expect(page.locator("[data-testid=feedback]")).to_have_attribute("aria-label", "Was this answer helpful?")
        shown = await _panel_text(page)
        assert [w for w in ITALIAN_WORDS if w in shown] == [], shown
        await page.screenshot(path=str(tmp_path / "widget-language-after.png"))

        # ...and whatever is drawn later is drawn in it: the composer, the queue banner.
        await page.click("[data-testid=ticket-back]")
        await expect(page.locator("[data-testid=input]")).to_have_attribute("placeholder", "Write a message…")
        await page.locator("[data-testid=action-button][data-action=request_operator]").click()
        status = page.locator("[data-testid=status]")
        await expect(status).to_have_text("Waiting for an operator…")
        await gw.push({"type": "queue", "position": 2, "estimated_wait_seconds": 180})
        await expect(status).to_have_text("Waiting for an operator: you are number 2 in the queue (about 3 min)")
        await page.screenshot(path=str(tmp_path / "widget-language-queued.png"))

        # Kept with the conversation: after a reload the widget speaks English before any answer
        # tells it (here the history tells no language at all).
        assert json.loads(await page.evaluate("localStorage.getItem('lucine-widget:v1:wk_test')"))["lang"] == "en"
        for message in gw.messages:
            message["language"] = None
        await _reopen(page)
        assert (await _state(page))["lang"] == "en"
        await expect(page.locator("[data-testid=input]")).to_have_attribute("placeholder", "Write a message…")
        await expect(status).to_have_text("Waiting for an operator: you are number 2 in the queue (about 3 min)")

        # The rating card of the closed conversation too.
        gw.status = "RESOLVED"
        await gw.push({"type": "status", "status": "RESOLVED"})
        rating = page.locator("[data-testid=rating]")
        await expect(rating.locator("h3")).to_have_text("How did it go?")
        await expect(page.get_by_test_id("rating-star").nth(2)).to_have_attribute("aria-label", "3 stars out of 5")
        await expect(page.locator("[data-testid=rating-submit]")).to_have_text("Send rating")
        await page.wait_for_timeout(400)  # let the opening animation finish
        await page.screenshot(path=str(tmp_path / "widget-language-rating.png"))
    finally:
        await ctx.close()


@pytest.mark.browser
@browser_test
@pytest.mark.parametrize("site_lang", [None, "it"], ids=["follows", "site-chose-italian"])
async def test_browser_the_history_read_after_a_reload_sets_the_language_unless_the_site_chose_one(
    browser: Any, site_lang: str | None
) -> None:
    from playwright.async_api import expect

    gw = FakeGateway()
    gw.lang_attr = site_lang
    ctx, page = await _open_page(browser, gw)
    try:
        # A conversation of this browser, stored before the widget knew its language.
        gw.messages = [_msg(1, "customer", "Hello, when do you open?"), _msg(2, "ai", "At 5:30 pm.", language="en")]
        stored = {"conversation_id": "conv1", "customer_token": "tok", "last_seq": 2}
        await page.evaluate(f"localStorage.setItem('lucine-widget:v1:wk_test', {json.dumps(json.dumps(stored))})")
        await _reopen(page)
        await expect(page.locator("[data-testid=message]")).to_have_count(2)
        expected = "en" if site_lang is None else "it"
        assert (await _state(page))["lang"] == expected
        words = {"en": ("Write a message…", "Assistant"), "it": ("Scrivi un messaggio…", "Assistente")}[expected]
        await expect(page.locator("[data-testid=input]")).to_have_attribute("placeholder", words[0])
        await expect(page.locator("[data-testid=message][data-sender=ai] .lw-sender")).to_have_text(words[1])
        # An answer in a language the widget has no words in changes nothing.
        await gw.add("ai", "Wir öffnen um 17:30.", language="de")
        await expect(page.locator("[data-testid=message]")).to_have_count(3)
        assert (await _state(page))["lang"] == expected
    finally:
        await ctx.close()


ITALIAN_OFFER = [
    {"type": "open_url", "label": "Acquista biglietti", "url": "https://lucinedinatale.it/products/x"},
    {"type": "request_operator", "label": "Sì, chiama un operatore"},
    {"type": "continue_ai", "label": "No, continua con l'assistente"},
]


async def _handoff_labels(page: Any) -> list[str]:
    buttons = page.locator("[data-testid=action-button][data-handoff]")
    return [str(text) for text in await buttons.all_inner_texts()]


@pytest.mark.browser
@browser_test
async def test_browser_buttons_drawn_before_a_language_change_are_said_again_in_the_new_one(
    browser: Any, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    gw = FakeGateway()
    gw.lang_attr = None  # the site chose no language: the widget follows the conversation
    ctx, page = await _open_page(browser, gw)
    try:
        await _open_and_send(page, "Vorrei parlare con una persona")
        # An Italian answer offering a person, then the conversation service's own offer (a notice,
        # which carries no language): both drawn while the widget speaks Italian.
        await gw.add("ai", "Certo. Vuoi che chiami un operatore?", actions=ITALIAN_OFFER, language="it")
        await gw.add("system", "Vuoi parlare con un operatore?", actions=ITALIAN_OFFER[1:])
        await expect(page.locator("[data-testid=action-button][data-handoff]")).to_have_count(4)
        assert await _handoff_labels(page) == ["Sì, chiama un operatore", "No, continua con l'assistente"] * 2
        await page.screenshot(path=str(tmp_path / "widget-handoff-it.png"))

        # The customer goes on in English and the assistant answers in English: so does the widget,
        # the buttons already on screen included.
        await _send(page, "Actually, what time do you open?")
        await expect(page.locator("[data-testid=message][data-pending]")).to_have_count(0)
        await gw.add("ai", "We open at 5:30 pm.", language="en")
        assert (await _state(page))["lang"] == "en"
        english = ["Yes, call an operator", "No, continue with the assistant"] * 2
        await expect(page.locator("[data-testid=action-button][data-handoff]")).to_have_text(english)
        shown = await _panel_text(page)
        assert [w for w in ("Sì, chiama", "continua con") if w in shown] == [], shown
        # A link of the answer is the answer's own words, in its language like its text above it.
        link = page.locator("[data-testid=action-button][data-action=open_url]")
        await expect(link).to_have_text("Acquista biglietti")
        await expect(link).to_have_attribute("aria-label", "Acquista biglietti (opens in a new tab)")
        # The newest offer still works once said again.
        newest = page.locator("[data-testid=action-button][data-action=request_operator]").last
        await expect(newest).to_be_enabled()
        await page.screenshot(path=str(tmp_path / "widget-handoff-en.png"))

        # Back in Italian, the server's own labels again.
        await gw.add("ai", "Apriamo alle 17:30.", language="it")
        await expect(page.locator("[data-testid=action-button][data-handoff]")).to_have_text(
            ["Sì, chiama un operatore", "No, continua con l'assistente"] * 2
        )
        await newest.click()
        await _wait(lambda: _async(gw.action_posts == [{"action": "request_operator"}]))
    finally:
        await ctx.close()


@pytest.mark.browser
@browser_test
async def test_browser_a_tenants_handoff_label_wins_in_its_language_and_the_widgets_words_elsewhere(
    browser: Any,
) -> None:
    from playwright.async_api import expect

    gw = FakeGateway()
    gw.lang_attr = None
    gw.config = _config("email")
    gw.config["appearance"]["texts"] = {"en": {"operator_button": "Get me a person"}}
    ctx, page = await _open_page(browser, gw)
    try:
        await expect(page.locator("[data-config=applied]")).to_have_count(1)
        await _open_and_send(page, "Vorrei parlare con una persona")
        await gw.add("ai", "Certo. Vuoi che chiami un operatore?", actions=ITALIAN_OFFER, language="it")
        buttons = page.locator("[data-testid=action-button][data-handoff]")
        await expect(buttons).to_have_text(["Sì, chiama un operatore", "No, continua con l'assistente"])
        await gw.add("ai", "We open at 5:30 pm.", language="en")
        await expect(buttons).to_have_text(["Get me a person", "No, continue with the assistant"])
    finally:
        await ctx.close()


# ---- the 4,000-character limit of a message, told to the customer

LIMIT_WORDS = {
    "it": {
        "left": "300 caratteri rimasti",
        "full": "Hai raggiunto il limite di 4000 caratteri.",
        "cut": "Il testo incollato supera il limite di 4000 caratteri: gli ultimi 600 non sono stati inseriti.",
        "all_cut": "Il testo incollato supera il limite di 4000 caratteri: gli ultimi 4600 non sono stati inseriti.",
    },
    "en": {
        "left": "300 characters left",
        "full": "You have reached the limit of 4,000 characters.",
        "cut": "The pasted text is longer than the 4,000-character limit: its last 600 characters were left out.",
        "all_cut": "The pasted text is longer than the 4,000-character limit: its last 4,600 characters were left out.",
    },
}


async def _paste(page: Any, testid: str, text: str) -> None:
    """Pastes `text` into the box as a customer does: copied from the page (Ctrl+C), then Ctrl+V."""
    await page.evaluate(
        """(text) => {
        const source = document.getElementById("copied") || document.createElement("textarea");
        source.id = "copied";
        document.body.appendChild(source);
        source.value = text;
        source.select();
    }""",
        text,
    )
    await page.keyboard.press("Control+C")
    await page.locator(f"[data-testid={testid}]").focus()
    await page.keyboard.press("Control+V")


@pytest.mark.browser
@browser_test
@LANG_VIEWPORTS
async def test_browser_a_message_cut_at_the_limit_is_told_never_silent(
    browser: Any, tmp_path: Path, lang: str, viewport: dict[str, int]
) -> None:
    from playwright.async_api import expect

    words = LIMIT_WORDS[lang]
    gw = FakeGateway()
    gw.lang_attr = lang
    ctx, page = await _open_page(browser, gw, viewport=viewport)
    try:
        await page.evaluate("window.LucineWidget.open()")
        box = page.locator("[data-testid=input]")
        counter = page.locator("[data-testid=input-counter]")
        cut = page.locator("[data-testid=input-cut]")
        # Far from the limit nothing is said; near it, how much is left.
        await box.fill("a" * 3500)
        await expect(counter).to_be_hidden()
        await box.fill("a" * 3700)
        await expect(counter).to_have_text(words["left"])
        await page.screenshot(path=str(tmp_path / f"widget-counter-{lang}.png"))
        await box.fill("")
        await expect(counter).to_be_hidden()

        # A 4,600-character paste: the box keeps 4,000, and the customer is told what was left out.
        pasted = "x" * 4000 + "y" * 600
        await _paste(page, "input", pasted)
        assert await box.input_value() == "x" * 4000
        await expect(cut).to_have_text(words["cut"])
        await expect(cut).to_have_attribute("role", "alert")
        await expect(counter).to_be_hidden()  # the notice states the limit
        await page.screenshot(path=str(tmp_path / f"widget-paste-cut-{lang}.png"))
        await box.press("Backspace")
        await expect(cut).to_be_visible()  # still near the limit: the notice stays
        await box.press("Enter")
        await _wait(lambda: _async(len(gw.message_posts) == 1))
        assert gw.message_posts[0]["text"] == "x" * 3999
        await expect(cut).to_be_hidden()  # sent: the box is empty again

        # The ticket form's message box, the same way; a paste into a full box loses all of it.
        await page.click("[data-testid=menu]")
        await page.click("[data-testid=menu-leave-message]")
        message = page.locator("[data-testid=ticket-message]")
        form_cut = page.locator("[data-testid=ticket-message-cut]")
        await _paste(page, "ticket-message", pasted)
        assert await message.input_value() == "x" * 4000
        await expect(form_cut).to_have_text(words["cut"])
        await form_cut.scroll_into_view_if_needed()
        await page.screenshot(path=str(tmp_path / f"widget-form-paste-cut-{lang}.png"))
        await message.press("End")
        await page.keyboard.press("Control+V")
        await expect(form_cut).to_have_text(words["all_cut"])
        await message.fill("")
        await expect(form_cut).to_be_hidden()
        await message.fill("x" * 4000)  # typed up to the limit: the counter says so
        await expect(page.locator("[data-testid=ticket-message-counter]")).to_have_text(words["full"])
    finally:
        await ctx.close()


# ------------------------------------------------------------------ the contact form's channels


def _config(*channels: str) -> dict[str, Any]:
    return {
        "tenant_name": "Lucine di Natale",
        "languages": ["it", "en"],
        "default_language": "it",
        "appearance": {"primary_color": "#0e3b2c", "accent_color": "#e0b54a", "position": "bottom-right", "texts": {}},
        "channels": list(channels),
    }


async def _ticket_form(browser: Any, gw: FakeGateway) -> tuple[Any, Any]:
    from playwright.async_api import expect

    ctx, page = await _open_page(browser, gw)
    state = "applied" if gw.config is not None else "default"
    await expect(page.locator(f"[data-config={state}]")).to_have_count(1)
    await _open_and_send(page, "Vorrei prenotare una visita per un gruppo")
    await _no_operator_available(page, gw)
    return ctx, page


def _choice(page: Any, channel: str) -> Any:
    return page.locator(f"[data-testid=ticket-preferred][data-channel={channel}]")


async def _visible_choices(page: Any) -> list[str]:
    found = []
    for channel in ("email", "whatsapp", "sms", "phone"):
        if await _choice(page, channel).is_visible():
            found.append(channel)
    return found


@pytest.mark.browser
@browser_test
@pytest.mark.parametrize(
    ("channels", "offered"),
    [
        (("email",), ["email", "phone"]),
        (("email", "whatsapp"), ["email", "whatsapp", "phone"]),
        (("email", "whatsapp", "sms"), ["email", "whatsapp", "sms", "phone"]),
    ],
)
async def test_browser_the_form_offers_only_the_channels_the_tenant_can_write_on(
    browser: Any, tmp_path: Path, channels: tuple[str, ...], offered: list[str]
) -> None:
    from playwright.async_api import expect

    gw = FakeGateway()
    gw.config = _config(*channels)
    ctx, page = await _ticket_form(browser, gw)
    try:
        await page.fill("[data-testid=ticket-name]", "Anna Rossi")
        await page.fill("[data-testid=ticket-email]", "anna.rossi@example.com")
        await page.fill("[data-testid=ticket-phone]", "+39 333 1234567")
        await expect(_choice(page, "phone")).to_be_visible()
        assert await _visible_choices(page) == offered
        await page.screenshot(path=str(tmp_path / f"widget-channels-{'-'.join(channels)}.png"))
    finally:
        await ctx.close()


@pytest.mark.browser
@browser_test
async def test_browser_without_a_configuration_only_email_is_written_to(browser: Any) -> None:
    gw = FakeGateway()  # an older gateway, or none reached: no `channels`
    ctx, page = await _ticket_form(browser, gw)
    try:
        await page.fill("[data-testid=ticket-phone]", "+39 333 1234567")
        assert await _visible_choices(page) == ["phone"]
    finally:
        await ctx.close()


@pytest.mark.browser
@browser_test
async def test_browser_the_first_channel_offered_is_preselected_whichever_field_came_first(browser: Any) -> None:
    gw = FakeGateway()
    gw.config = _config("email", "whatsapp")
    ctx, page = await _ticket_form(browser, gw)
    try:
        await page.fill("[data-testid=ticket-phone]", "+39 333 1234567")
        assert await _choice(page, "whatsapp").is_checked()
        await page.fill("[data-testid=ticket-email]", "anna.rossi@example.com")
        assert await _choice(page, "email").is_checked(), "the phone came first, but email is first in the list"
        # The customer's own choice stays while it is offered.
        await _choice(page, "phone").check()
        await page.fill("[data-testid=ticket-email]", "anna.bianchi@example.com")
        assert await _choice(page, "phone").is_checked()
    finally:
        await ctx.close()


async def _send_ticket(page: Any, gw: FakeGateway) -> None:
    from playwright.async_api import expect

    await page.click("[data-testid=ticket-submit]")
    await expect(page.locator("[data-testid=ticket-registering]")).to_be_visible()
    gw.status = "TICKET_CREATED"
    await gw.push({"type": "status", "status": "TICKET_CREATED"})
    await gw.add("system", "Abbiamo registrato la tua richiesta TCK-2026-000123.")
    await expect(page.locator("[data-testid=ticket-number]")).to_have_text("TCK-2026-000123")


@pytest.mark.browser
@browser_test
async def test_browser_a_call_back_says_where_the_written_confirmation_goes(browser: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    gw = FakeGateway()
    gw.config = _config("email")
    ctx, page = await _ticket_form(browser, gw)
    try:
        await page.fill("[data-testid=ticket-name]", "Anna Rossi")
        await page.fill("[data-testid=ticket-email]", "anna.rossi@example.com")
        await page.fill("[data-testid=ticket-phone]", "+39 333 1234567")
        await _choice(page, "phone").check()
        await _send_ticket(page, gw)
        assert gw.ticket_posts[-1]["preferred_contact"] == "phone"
        via = page.locator("[data-testid=ticket-via]")
        await expect(via).to_have_text(
            "Ti chiameremo al +39 333 1234567; una conferma scritta arriverà alla tua email anna.rossi@example.com."
        )
        await page.screenshot(path=str(tmp_path / "widget-call-back-confirmation.png"))
        # Said again after a reload (the confirmation is kept with the conversation).
        await page.reload()
        await page.wait_for_function("window.LucineWidget && window.LucineWidget.state().connected")
        await page.evaluate("window.LucineWidget.open()")
        await expect(via).to_have_text(
            "Ti chiameremo al +39 333 1234567; una conferma scritta arriverà alla tua email anna.rossi@example.com."
        )
    finally:
        await ctx.close()


@pytest.mark.browser
@browser_test
@pytest.mark.parametrize(
    ("channels", "expected"),
    [
        (
            ("email", "sms"),
            "We will call you at +44 7700 900123; a written confirmation goes by SMS to the same number.",
        ),
        (("email",), "We will call you at +44 7700 900123."),
    ],
)
async def test_browser_a_call_back_without_an_email_in_english(
    browser: Any, channels: tuple[str, ...], expected: str
) -> None:
    from playwright.async_api import expect

    gw = FakeGateway()
    gw.lang_attr = "en"
    gw.config = _config(*channels)
    ctx, page = await _ticket_form(browser, gw)
    try:
        await page.fill("[data-testid=ticket-name]", "Anna Rossi")
        await page.fill("[data-testid=ticket-phone]", "+44 7700 900123")
        assert await _visible_choices(page) == [*(c for c in channels if c != "email"), "phone"]
        await _choice(page, "phone").check()
        await _send_ticket(page, gw)
        await expect(page.locator("[data-testid=ticket-via]")).to_have_text(expected)
    finally:
        await ctx.close()
