"""The notifier's test doubles of the outside world, all real servers on loopback: an SMTP server
(`devkit.mailsink`), an HTTP server that answers like Twilio's Messages API, and a webhook
receiver that checks signatures with the standardwebhooks library as a tenant's endpoint would
(`devkit.receivers`, shared with the end-to-end tests; its `/fail` is down).
Each runs on a thread of its own, so it answers a notifier in the test's event loop or in
another process alike."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from devkit.mailsink import MailSink
from devkit.receivers import TwilioLike, WebhookReceiver
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
    server = TwilioLike(TWILIO_SID, TWILIO_TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(WEBHOOK_SECRET, down_paths=frozenset({"/fail"})).start()
    yield server
    server.stop()


@pytest.fixture
async def sessions(infra: Infra, database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url = infra.database_url(database)
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, url)
    engine = create_engine(url)
    yield session_factory(engine)
    await engine.dispose()
