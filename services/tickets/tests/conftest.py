"""The tickets service's handlers and read API against the real PostgreSQL (migrated schema),
without Kafka: batches are applied one transaction each through its real consumer
(`devkit.testing.ConsumerHarness`), what they emit is read back from the outbox, and durable
timers are fired into it by the real `TimerFirer`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts import Envelope, Payload, new_envelope
from contracts.common import ContactChannel, ContactDetails, Sender, TranscriptExcerpt, TranscriptLine
from contracts.events import OpenTicket
from devkit.testing import ConsumerHarness, Infra
from servicekit.db import Timer, create_engine, session_factory
from servicekit.http import create_app
from servicekit.migrations import upgrade_to_head
from tickets import handlers
from tickets.api import router
from tickets.app import MIGRATIONS
from tickets.config import Settings
from tickets.profiles import TenantProfiles
from tickets.store import SlaClockRow, Ticket

TENANT = "acme"
OTHER_TENANT = "globex"
LINK_SECRET = "a-test-secret-of-enough-length"
# Seconds-long targets (no business hours), so that a test can also wait for a real deadline.
TENANT_CONFIG = """\
tenant_id: {tenant_id}
ticket_prefix: {prefix}
sla:
  urgent: {{first_response: 2s, resolution: 4s}}
  high: {{first_response: 3s, resolution: 6s}}
  normal: {{first_response: 5s, resolution: 10s}}
  low: {{first_response: 1h, resolution: 2h}}
"""


def write_tenants(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for tenant_id, prefix in ((TENANT, "TCK"), (OTHER_TENANT, "GLX")):
        (directory / f"{tenant_id}.yaml").write_text(TENANT_CONFIG.format(tenant_id=tenant_id, prefix=prefix))
    return directory


def contact(
    name: str = "Anna Rossi", email: str | None = "anna@example.com", phone: str | None = None
) -> ContactDetails:
    return ContactDetails(
        name=name,
        email=email,
        phone=phone,
        preferred_contact=ContactChannel.EMAIL if email else ContactChannel.SMS,
    )


def open_ticket(
    conversation_id: uuid.UUID | None = None, *, tenant_id: str = TENANT, **fields: Any
) -> Envelope[OpenTicket]:
    """An OpenTicket as the conversation service sends it (keyed by the conversation), or as an
    operator's (`created_by`, no conversation)."""
    if conversation_id is not None:
        fields.setdefault("idempotency_key", uuid.uuid5(conversation_id, "ticket"))
        fields.setdefault(
            "transcript",
            TranscriptExcerpt(
                lines=[
                    TranscriptLine(seq=1, sender=Sender.CUSTOMER, text="Ciao, ho un problema con il biglietto"),
                    TranscriptLine(seq=2, sender=Sender.AI, text="Mi dispiace, posso aiutarti?"),
                ],
                total_messages=2,
                transcript_url=TranscriptExcerpt.url_of(conversation_id),
            ),
        )
    fields.setdefault("idempotency_key", uuid.uuid4())
    fields.setdefault("contact", contact())
    fields.setdefault("message", "Il biglietto non arriva")
    return new_envelope(OpenTicket(**fields), tenant_id=tenant_id, conversation_id=conversation_id)


def command(payload: Payload, tenant_id: str = TENANT, conversation_id: uuid.UUID | None = None) -> Envelope[Any]:
    return new_envelope(payload, tenant_id=tenant_id, conversation_id=conversation_id)


class TicketsHarness(ConsumerHarness):
    """The tickets service's handlers on its real consumer, applied batch by batch."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        super().__init__(sessions)
        self.settings = settings
        self.seen: set[uuid.UUID] = set()
        # Tenant profiles reach this cache only once a test starts its listener (test_profiles.py).
        self.profiles = TenantProfiles()
        handlers.register(self.consumer, settings, profiles=self.profiles)

    async def new_events(self, payload_cls: type[Payload] = Payload) -> list[Envelope[Any]]:
        """The envelopes emitted since the last call (of any type), keeping those of `payload_cls`."""
        fresh = [e for e in await self.emitted() if e.event_id not in self.seen]
        self.seen |= {e.event_id for e in fresh}
        return [e for e in fresh if isinstance(e.payload, payload_cls)]

    async def ticket(self, ticket_id: uuid.UUID) -> Ticket:
        async with self.sessions() as session:
            ticket = await session.get(Ticket, ticket_id)
        assert ticket is not None
        return ticket

    async def tickets(self, tenant_id: str = TENANT) -> list[Ticket]:
        async with self.sessions() as session:
            rows = await session.scalars(select(Ticket).where(Ticket.tenant_id == tenant_id).order_by(Ticket.number))
            return list(rows)

    async def clock(self, ticket_id: uuid.UUID, clock: str) -> SlaClockRow:
        async with self.sessions() as session:
            row = await session.get(SlaClockRow, (ticket_id, clock))
        assert row is not None
        return row

    async def timers(self) -> dict[str, Envelope[Any]]:
        from contracts import parse_envelope

        async with self.sessions() as session:
            rows = await session.execute(select(Timer.name, Timer.value))
        return {name: parse_envelope(value) for name, value in rows.all()}

    async def fire_and_apply(self, name: str) -> list[Envelope[Any]]:
        """Makes the timer due, lets the real firer move it to the outbox, and applies what it delivered."""
        fired = await self.fire_timer(name)
        await self.apply(*fired)
        return fired


@pytest.fixture
def tenants_dir(tmp_path: Path) -> Path:
    return write_tenants(tmp_path / "tenants")


@pytest.fixture
def settings(tenants_dir: Path) -> Settings:
    return Settings(tenants_dir=tenants_dir, ticket_link_secret=LINK_SECRET)


@pytest.fixture
async def sessions(infra: Infra, database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url = infra.database_url(database)
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, url)
    engine = create_engine(url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
def tickets(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> TicketsHarness:
    return TicketsHarness(sessions, settings)


def api_client(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> httpx.AsyncClient:
    # The routes need only the runtime's sessions and settings; no broker, no consumer.
    runtime = SimpleNamespace(sessions=sessions, settings=settings)
    app = create_app(runtime, title="tickets", routers=[router])  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tickets")


@pytest.fixture
async def api(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(sessions, settings) as client:
        yield client
