"""The tickets service as a real process on real Kafka and PostgreSQL, SIGKILLed between an SLA
clock's warning and its deadline: after the restart the clock breaches, and on
`tickets.events.v1` there is exactly one warning and one breach for it; a clock paused meanwhile
(the ticket waiting for the customer) neither warns nor breaches."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts import Envelope, Payload, new_envelope, parse_envelope, utc_now
from contracts.common import SlaClock, TicketStatus
from contracts.events import SlaBreached, SlaWarning, TicketOpened, TicketUpdated, UpdateTicket
from contracts.topics import TICKETS_EVENTS
from devkit.testing import Infra, ServiceProcess
from servicekit.kafka import physical_topic
from servicekit.topics import delete_topics, ensure_topics

from .conftest import TENANT, open_ticket

FIRST_RESPONSE_SECONDS = 12  # warning at 9.6 s: room to kill after it and restart before 12 s
TENANT_FILE = f"""\
tenant_id: {TENANT}
sla:
  urgent: {{first_response: 1h, resolution: 2h}}
  high: {{first_response: 1h, resolution: 2h}}
  normal: {{first_response: {FIRST_RESPONSE_SECONDS}s, resolution: 1h}}
  low: {{first_response: 1h, resolution: 2h}}
"""


class TicketEvents:
    """Everything on the tickets events topic, read without a group from the start."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.seen: dict[uuid.UUID, Envelope[Any]] = {}  # by event id: a redelivered record counts once

    async def read(self, seconds: float) -> None:
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            await self.poll()

    async def poll(self) -> None:
        for records in (await self.consumer.getmany(timeout_ms=200)).values():
            for record in records:
                envelope = parse_envelope(record.value)
                self.seen.setdefault(envelope.event_id, envelope)

    async def wait_for(self, what: str, found: Callable[[], bool], timeout: float = 60) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            await self.poll()
            if found():
                return
        pytest.fail(f"never saw {what}")

    def of(self, payload_cls: type[Payload], ticket_id: uuid.UUID) -> list[Any]:
        return [
            e.payload
            for e in self.seen.values()
            if isinstance(e.payload, payload_cls) and getattr(e.payload, "ticket_id", None) == ticket_id
        ]


@pytest.fixture
async def prefix(infra: Infra) -> AsyncIterator[str]:
    name = f"tickets-kill-{uuid.uuid4().hex[:8]}."
    await ensure_topics(infra.kafka_bootstrap_servers, prefix=name)
    yield name
    await delete_topics(infra.kafka_bootstrap_servers, name)


async def test_sigkill_between_warning_and_deadline_breaches_once_and_a_paused_clock_never(
    infra: Infra, database: str, prefix: str, tmp_path: Path
) -> None:
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / f"{TENANT}.yaml").write_text(TENANT_FILE)
    tickets = ServiceProcess("tickets", infra, database, tmp_path, prefix, {"TENANTS_DIR": str(tenants)})
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers, acks="all")
    consumer = AIOKafkaConsumer(
        physical_topic(prefix, TICKETS_EVENTS.name),
        bootstrap_servers=infra.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
    )
    await producer.start()
    await consumer.start()
    events = TicketEvents(consumer)

    async def send(envelope: Envelope[Any]) -> None:
        topic = physical_topic(prefix, envelope.payload.topic)
        await producer.send_and_wait(topic, envelope.to_json(), key=envelope.key)

    def opened(conversation_id: uuid.UUID) -> TicketOpened | None:
        return next(
            (
                e.payload
                for e in events.seen.values()
                if e.conversation_id == conversation_id and e.type == "tickets.ticket_opened"
            ),
            None,
        )

    late, paused = uuid.uuid4(), uuid.uuid4()
    try:
        await tickets.start()
        await send(open_ticket(late, message="Il biglietto non arriva"))
        await send(open_ticket(paused, message="Il biglietto non arriva"))
        await events.wait_for("both tickets opened", lambda: bool(opened(late) and opened(paused)))
        late_ticket, paused_ticket = opened(late), opened(paused)
        assert late_ticket is not None
        assert paused_ticket is not None
        assert late_ticket.priority == "normal"

        waiting = UpdateTicket(
            ticket_id=paused_ticket.ticket_id, operator_id="marco", status=TicketStatus.WAITING_CUSTOMER
        )
        await send(new_envelope(waiting, tenant_id=TENANT))  # keyed by the ticket, as the gateway sends it
        await events.wait_for("the pause", lambda: bool(events.of(TicketUpdated, paused_ticket.ticket_id)))

        await events.wait_for(
            "the warning",
            lambda: bool(events.of(SlaWarning, late_ticket.ticket_id)),
            timeout=FIRST_RESPONSE_SECONDS + 30,
        )
        assert late_ticket.first_response_due is not None
        tickets.kill()  # SIGKILL, before the deadline
        assert (late_ticket.first_response_due - utc_now()).total_seconds() > 0, "killed after the deadline"
        await tickets.start()

        await events.wait_for("the breach", lambda: bool(events.of(SlaBreached, late_ticket.ticket_id)))
        # The paused ticket's deadline (had it run) and any repeat are well past after this.
        await events.read(FIRST_RESPONSE_SECONDS / 2 + 3)

        (warning,) = events.of(SlaWarning, late_ticket.ticket_id)
        (breach,) = events.of(SlaBreached, late_ticket.ticket_id)
        assert warning.clock == breach.clock == SlaClock.FIRST_RESPONSE
        assert breach.due_at == late_ticket.first_response_due
        assert events.of(SlaWarning, paused_ticket.ticket_id) == []
        assert events.of(SlaBreached, paused_ticket.ticket_id) == []
        assert all(
            e.conversation_id == late
            for e in events.seen.values()
            if getattr(e.payload, "ticket_id", None) == late_ticket.ticket_id
        )
    finally:
        tickets.stop()
        await consumer.stop()
        await producer.stop()
