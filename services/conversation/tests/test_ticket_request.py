"""The ticket request the conversation service emits, against the real PostgreSQL (migrated schema).

The handlers are applied in one transaction per batch, as the idempotent consumer applies them,
without Kafka: what they emit is read back from the outbox.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import contracts
from contracts import Envelope, Payload, new_envelope
from contracts.common import TRANSCRIPT_EXCERPT_LINE_CHARS, TRANSCRIPT_EXCERPT_LINES, ContactDetails
from contracts.events import OpenTicket, PostCustomerMessage, StartConversation, SubmitTicketDetails
from conversation import handlers
from conversation.app import MIGRATIONS
from devkit.testing import Infra
from servicekit.db import OutboxRecord, create_engine, session_factory
from servicekit.migrations import upgrade_to_head

TENANT = "lucine-di-natale"
Step = Callable[[list[Envelope[Any]], AsyncSession], Awaitable[None]]
Handler = Callable[[Envelope[Any], AsyncSession], Awaitable[None]]


class Handlers:
    """Collects what `handlers.register` registers on a consumer, to apply batches directly."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.by_payload: dict[type[Payload], Handler] = {}
        self.before: list[Step] = []
        self.after: list[Step] = []
        handlers.register(self)  # type: ignore[arg-type]

    def on(self, payload_cls: type[Payload]) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.by_payload[payload_cls] = handler
            return handler

        return register

    def prepare(self, step: Step) -> Step:
        self.before.append(step)
        return step

    def finish(self, step: Step) -> Step:
        self.after.append(step)
        return step

    async def apply(self, *envelopes: Envelope[Any]) -> None:
        batch = list(envelopes)
        async with self.sessions() as session, session.begin():
            for step in self.before:
                await step(batch, session)
            for envelope in batch:
                await self.by_payload[type(envelope.payload)](envelope, session)
            for step in self.after:
                await step(batch, session)

    async def emitted(self, payload_cls: type[Payload]) -> list[Envelope[Any]]:
        async with self.sessions() as session:
            rows = await session.scalars(select(OutboxRecord.value).order_by(OutboxRecord.id))
        return [e for e in map(contracts.parse_envelope, rows) if isinstance(e.payload, payload_cls)]


@pytest.fixture
async def conversation_handlers(infra: Infra, database: str) -> AsyncIterator[Handlers]:
    url = infra.database_url(database)
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, url)
    engine = create_engine(url)
    yield Handlers(session_factory(engine))
    await engine.dispose()


def command(payload: Payload, conversation_id: uuid.UUID) -> Envelope[Any]:
    return new_envelope(payload, tenant_id=TENANT, conversation_id=conversation_id)


async def test_a_ticket_request_carries_the_end_of_the_transcript_and_where_to_read_all_of_it(
    conversation_handlers: Handlers,
) -> None:
    cid = uuid.uuid4()
    texts = [f"messaggio {n}" for n in range(1, 25)] + ["lungo " * 100]
    await conversation_handlers.apply(command(StartConversation(locale="it"), cid))
    await conversation_handlers.apply(
        *(
            command(PostCustomerMessage(message_id=uuid.uuid4(), client_message_id=f"m-{n}", text=text), cid)
            for n, text in enumerate(texts)
        )
    )
    details = SubmitTicketDetails(contact=ContactDetails(name="Anna", email="anna@example.com"), message="rimborso")
    await conversation_handlers.apply(command(details, cid))
    await conversation_handlers.apply(command(details, cid))  # submitted again

    first, second = await conversation_handlers.emitted(OpenTicket)
    ticket: OpenTicket = first.payload
    assert ticket.idempotency_key == second.payload.idempotency_key == uuid.uuid5(cid, "ticket"), "one ticket"
    assert ticket.message == "rimborso"
    assert ticket.language == "it"
    excerpt = ticket.transcript
    assert excerpt.total_messages == len(texts)
    assert excerpt.transcript_url == f"/internal/conversations/{cid}/messages"
    assert [line.seq for line in excerpt.lines] == list(
        range(len(texts) - TRANSCRIPT_EXCERPT_LINES + 1, len(texts) + 1)
    )
    assert [line.text for line in excerpt.lines[:-1]] == texts[-TRANSCRIPT_EXCERPT_LINES:-1]
    last = excerpt.lines[-1].text
    assert len(last) <= TRANSCRIPT_EXCERPT_LINE_CHARS
    assert last.endswith("…")
    assert texts[-1].startswith(last[:-1])
