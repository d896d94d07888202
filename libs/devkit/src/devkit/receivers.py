"""Real HTTP servers on loopback standing in for the outside world the notifier calls: one that
answers like Twilio's Messages API, and a tenant's webhook endpoint that verifies each request
with the `standardwebhooks` library. Each runs on a thread of its own, so it answers a notifier
in the test's event loop or in another process alike:

    with TwilioLike(sid, token) as twilio, WebhookReceiver(secret) as receiver:
        ...  # TWILIO_BASE_URL=twilio.url, a tenant webhook at f"{receiver.url}/hooks"
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs

import httpx
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from devkit.stack import free_port


@dataclass(frozen=True)
class Received:
    at: float  # time.time() when it arrived
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes


class _Server:
    """A threaded HTTP server whose answers come from `answer(request) -> (status, body)`."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                headers = {k.lower(): v for k, v in self.headers.items()}
                request = Received(time.time(), self.path, headers, self.rfile.read(length))
                with owner._lock:
                    owner.requests.append(request)
                    status, body = owner.answer(request)
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def answer(self, request: Received) -> tuple[int, bytes]:
        raise NotImplementedError

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class TwilioLike(_Server):
    """Answers `POST /2010-04-01/Accounts/{sid}/Messages.json` as Twilio does: 201 with a message
    sid when the basic auth is the account's, 401 otherwise, 404 for another path."""

    def __init__(self, sid: str, token: str) -> None:
        super().__init__()
        self.sid = sid
        self._expected = "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode()

    def answer(self, request: Received) -> tuple[int, bytes]:
        if request.path != f"/2010-04-01/Accounts/{self.sid}/Messages.json":
            return 404, b'{"message": "not found"}'
        if request.headers.get("authorization") != self._expected:
            return 401, b'{"code": 20003, "message": "Authenticate"}'
        return 201, json.dumps({"sid": f"SM{uuid.uuid4().hex}", "status": "queued"}).encode()

    def messages(self) -> list[dict[str, str]]:
        """The form of every request received (`From`, `To`, `Body`), in order."""
        return [{k: v[0] for k, v in parse_qs(r.body.decode()).items()} for r in self.requests]


class WebhookReceiver(_Server):
    """A tenant's endpoint as Standard Webhooks asks receivers to be: the signature is checked with
    the `standardwebhooks` library (which also refuses timestamps more than five minutes off), a
    timestamp older than `max_age_seconds` is refused too (a captured request replayed later), and
    each `webhook-id` is processed once: a repeat is acknowledged (200, so that a sender's retry
    stops) but never processed again. Refusals answer 401. A path of `down_paths` answers 503 to
    everything (an endpoint that is down)."""

    def __init__(self, secret: str, max_age_seconds: float = 300.0, down_paths: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.secret = secret
        self.max_age_seconds = max_age_seconds
        self.down_paths = down_paths
        self.processed: dict[str, Any] = {}  # webhook-id -> payload, processed once
        self.repeats: list[str] = []  # webhook-ids received again and not processed
        self.refused: list[str] = []  # why each refused request was refused

    def answer(self, request: Received) -> tuple[int, bytes]:
        if request.path in self.down_paths:
            return 503, b'{"error": "down for maintenance"}'
        try:
            payload = Webhook(self.secret).verify(request.body, request.headers)
            if time.time() - float(request.headers["webhook-timestamp"]) > self.max_age_seconds:
                raise WebhookVerificationError("Message timestamp too old")
        except WebhookVerificationError as error:
            self.refused.append(str(error))
            return 401, json.dumps({"error": str(error)}).encode()
        webhook_id = request.headers["webhook-id"]
        if webhook_id in self.processed:
            self.repeats.append(webhook_id)
            return 200, b'{"duplicate": true}'
        self.processed[webhook_id] = payload
        return 200, b"{}"

    def attempts_at(self, path: str, webhook_id: str | None = None) -> list[float]:
        """When requests came to `path` (of one webhook-id, if given), in order."""
        return [r.at for r in self.requests if r.path == path and webhook_id in (None, r.headers.get("webhook-id"))]

    def replay(self, request: Received, headers: dict[str, str] | None = None, body: bytes | None = None) -> int:
        """Sends a captured request again, as it was or with some headers or the body changed;
        the status this receiver answers."""
        sent_headers = {k: v for k, v in request.headers.items() if k not in {"content-length", "host"}}
        sent_headers.update(headers or {})
        response = httpx.post(
            self.url + request.path, content=request.body if body is None else body, headers=sent_headers
        )
        return response.status_code
