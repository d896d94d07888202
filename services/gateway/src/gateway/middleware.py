"""Two pure-ASGI middlewares for the widget API (cheap: no per-request task or body copy
beyond what they must read).

- `WidgetCors`: a preflight carries no widget key, so it is allowed when *some* tenant allows
  the Origin; the real request is then checked against the tenant of its key or token (api.py).
- `BodyLimit`: 413 for a body over the limit, whether announced by Content-Length or streamed.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.tenants import TenantDirectory

API_PREFIX = "/v1/"
ALLOWED_METHODS = "GET, POST, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type, X-Widget-Key"
PREFLIGHT_MAX_AGE = "600"


async def send_error(send: Send, status: int, code: str, message: str, extra: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class WidgetCors:
    def __init__(self, app: ASGIApp, directory: Callable[[], TenantDirectory]) -> None:
        self.app = app
        self.directory = directory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:  # not a browser cross-origin request
            await self.app(scope, receive, send)
            return
        known = await self.directory().origin_known(origin)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            if not known:
                await send_error(send, 403, "origin_not_allowed", f"origin {origin} is not allowed")
                return
            await self._preflight(send, origin)
            return
        if not known:
            await self.app(scope, receive, send)  # the route refuses it (403) with the tenant known
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                for name, value in self._cors_headers(origin, preflight=False).items():
                    response_headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_cors)

    @staticmethod
    def _cors_headers(origin: str, *, preflight: bool) -> dict[str, str]:
        headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        if preflight:
            headers |= {
                "Access-Control-Allow-Methods": ALLOWED_METHODS,
                "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
            }
        else:
            headers["Access-Control-Expose-Headers"] = "Retry-After"
        return headers

    async def _preflight(self, send: Send, origin: str) -> None:
        headers = [(k.lower().encode(), v.encode()) for k, v in self._cors_headers(origin, preflight=True).items()]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, larger: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Paths whose bodies may be larger (a document upload), with their own limit.
        self.larger = larger or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in {"POST", "PUT", "PATCH"}:
            await self.app(scope, receive, send)
            return
        max_bytes = self.larger.get(scope["path"], self.max_bytes)
        too_large = f"the request body is larger than {max_bytes} bytes"
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            await send_error(send, 413, "payload_too_large", too_large)
            return
        # Read it all here (small by construction; an upload at most its own limit), counting, then
        # replay it to the app.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_bytes:
                await send_error(send, 413, "payload_too_large", too_large)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
