"""The notifier's test doubles of the outside world, all real servers on loopback: an SMTP server
(`devkit.mailsink`), an HTTP server that answers like Twilio's Messages API, and a webhook
receiver that checks signatures with the standardwebhooks library as a tenant's endpoint would.
Each runs on a thread of its own, so it answers a notifier in the test's event loop or in
another process alike."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs

import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from devkit.mailsink import MailSink
from devkit.stack import free_port
from devkit.testing import Infra
from notifier.app import MIGRATIONS
from servicekit.db import create_engine, session_factory
from servicekit.migrations import upgrade_to_head

TENANT = "lucine-di-natale"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"lucine-webhook-secret-for-tests!").decode()
TWILIO_SID = "AC00000000000000000000000000000001"
TWILIO_TOKEN = "twilio-test-token"
LINK_SECRET = "notifier-tests-link-secret"


@dataclass(frozen=True)
class Received:
    at: float
    path: str
    headers: dict[str, str]
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
                request = Received(
                    time.monotonic(),
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
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
        return f"http://{host}:{port}"

    def answer(self, request: Received) -> tuple[int, bytes]:
        raise NotImplementedError

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class TwilioLike(_Server):
    """Answers `POST /2010-04-01/Accounts/{sid}/Messages.json` as Twilio does: 201 with the message
    sid when the basic auth is the account's, 401 otherwise."""

    def answer(self, request: Received) -> tuple[int, bytes]:
        expected = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
        if request.path != f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json":
            return 404, b'{"message": "not found"}'
        if request.headers.get("authorization") != expected:
            return 401, b'{"code": 20003, "message": "Authenticate"}'
        return 201, json.dumps({"sid": f"SM{uuid.uuid4().hex}", "status": "queued"}).encode()

    def messages(self) -> list[dict[str, str]]:
        return [{k: v[0] for k, v in parse_qs(r.body.decode()).items()} for r in self.requests]


class WebhookReceiver(_Server):
    """A tenant's endpoint: verifies each request with the standardwebhooks library (signature,
    and a timestamp within five minutes), and processes each `webhook-id` once. A request with a
    bad signature or an old timestamp is refused (401); one whose id was processed already is
    acknowledged (200, so that the sender stops) and not processed again. `/fail` always answers 503."""

    def __init__(self, secret: str = WEBHOOK_SECRET) -> None:
        super().__init__()
        self.secret = secret
        self.accepted: dict[str, Any] = {}  # webhook-id → payload, processed once
        self.duplicates: list[str] = []
        self.refused: list[str] = []

    def answer(self, request: Received) -> tuple[int, bytes]:
        if request.path == "/fail":
            return 503, b'{"error": "down for maintenance"}'
        try:
            payload = Webhook(self.secret).verify(request.body, request.headers)
        except WebhookVerificationError as error:
            self.refused.append(str(error))
            return 401, json.dumps({"error": str(error)}).encode()
        webhook_id = request.headers["webhook-id"]
        if webhook_id in self.accepted:
            self.duplicates.append(webhook_id)
            return 200, b'{"duplicate": true}'
        self.accepted[webhook_id] = payload
        return 200, b"{}"

    def attempts_at(self, path: str, webhook_id: str | None = None) -> list[float]:
        """When requests came to `path` (of one webhook-id, if given), in order."""
        return [r.at for r in self.requests if r.path == path and webhook_id in (None, r.headers.get("webhook-id"))]


def write_tenant(directory: Path, webhooks: list[dict[str, Any]] | None = None, **overrides: Any) -> Path:
    """The tenant's YAML file, as an operator would write it."""
    config: dict[str, Any] = {
        "tenant_id": TENANT,
        "name": "Lucine di Natale",
        "languages": ["it", "en"],
        "timezone": "Europe/Rome",
        "email": {"sender": "Lucine di Natale <assistenza@lucinedinatale.it>"},
        "supervisors": ["capo@lucinedinatale.it", "vice@lucinedinatale.it"],
        "twilio": {"sms_from": "+15005550006", "whatsapp_from": "+14155238886"},
        "webhooks": webhooks or [],
    } | overrides
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{config['tenant_id']}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def mail_sink(tmp_path: Path) -> Iterator[MailSink]:
    with MailSink(tmp_path / "mail", port=free_port()) as sink:
        yield sink


@pytest.fixture
def twilio() -> Iterator[TwilioLike]:
    server = TwilioLike().start()
    yield server
    server.stop()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver().start()
    yield server
    server.stop()


@pytest.fixture
async def sessions(infra: Infra, database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url = infra.database_url(database)
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, url)
    engine = create_engine(url)
    yield session_factory(engine)
    await engine.dispose()
