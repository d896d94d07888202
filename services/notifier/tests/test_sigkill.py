"""The notifier as a real process on real Kafka and PostgreSQL, SIGKILLed while it waits on a slow
SMTP server, then restarted: every notification is delivered, and none twice, counted where they
arrive — at the SMTP server by Message-ID and at the webhook receiver by `webhook-id`.

What is guaranteed, and what is not, in the crash window: a send the process started but did not
record (its row still `sending`) is made again once its lease runs out, with the same Message-ID or
`webhook-id`. Here the SMTP server accepts a mail only at the end of its delay, and a connection
cut before that leaves nothing, so the mails in flight at the kill arrive once, after the restart.
Had the server accepted one just before the kill, it would hold two copies with one Message-ID
(at least once across that boundary), which the test allows for the sends in flight at the kill and
no more; the webhook receiver acknowledges such a resend without processing it again. A WhatsApp or
SMS message in that window would reach the customer twice: Twilio's API takes no idempotency key.
The dead letter and the `DeliveryCompleted` of a webhook that keeps failing reach Kafka too."""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts import Envelope, Payload, new_envelope, parse_envelope
from contracts.common import ContactDetails, DeliveryChannel, SlaClock
from contracts.events import DeliveryCompleted, SlaBreached, TicketOpened
from contracts.readapi import DeliveryLogView
from contracts.topics import NOTIFICATIONS_EVENTS
from devkit.mailsink import MailSink
from devkit.stack import free_port
from devkit.testing import Infra, ServiceProcess, eventually
from notifier import domain
from servicekit.kafka import physical_topic
from servicekit.topics import delete_topics, ensure_topics

from .conftest import LINK_SECRET, TENANT, WEBHOOK_SECRET, WebhookReceiver, write_tenant

TICKETS = 12
CONCURRENCY = 4
SMTP_DELAY_SECONDS = 1.0  # the server accepts each mail only after this: the kill comes while it waits
LEASE_SECONDS = 4


@pytest.fixture
async def prefix(infra: Infra) -> AsyncIterator[str]:
    name = f"notifier-kill-{uuid.uuid4().hex[:8]}."
    await ensure_topics(infra.kafka_bootstrap_servers, prefix=name)
    yield name
    await delete_topics(infra.kafka_bootstrap_servers, name)


def opened(number: int) -> Envelope[Any]:
    payload = TicketOpened(
        ticket_id=uuid.uuid4(),
        ticket_number=f"TCK-2025-{number:06d}",
        contact=ContactDetails(name=f"Cliente {number}", email=f"cliente{number}@example.com"),
        language="it",
    )
    return new_envelope(payload, tenant_id=TENANT, conversation_id=uuid.uuid4())


def message_id(event: Envelope[Any], template: str, recipient: str) -> str:
    return f"<{domain.delivery_id(event.event_id, DeliveryChannel.EMAIL, template, recipient)}@lucinedinatale.it>"


async def test_sigkill_mid_send_delivers_every_notification_once_by_message_id_and_webhook_id(
    infra: Infra, database: str, prefix: str, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    sink = MailSink(tmp_path / "mail", port=free_port(), delay_seconds=SMTP_DELAY_SECONDS).start()
    write_tenant(
        tmp_path / "tenants",
        webhooks=[
            {"url": f"{receiver.url}/hooks", "secret": WEBHOOK_SECRET, "events": ["tickets.ticket_opened"]},
            {"url": f"{receiver.url}/fail", "secret": WEBHOOK_SECRET, "events": ["tickets.sla_breached"]},
        ],
    )
    notifier = ServiceProcess(
        "notifier",
        infra,
        database,
        tmp_path,
        prefix,
        {
            "TENANTS_DIR": str(tmp_path / "tenants"),
            "TICKET_LINK_SECRET": LINK_SECRET,
            "SMTP_PORT": str(sink.port),
            "SMTP_TIMEOUT_SECONDS": "3",
            "WEBHOOK_TIMEOUT_SECONDS": "3",
            "TWILIO_TIMEOUT_SECONDS": "3",
            "DELIVERY_LEASE_SECONDS": str(LEASE_SECONDS),
            "DELIVERY_CONCURRENCY": str(CONCURRENCY),
            "DELIVERY_MAX_ATTEMPTS": "2",
            "DELIVERY_BACKOFF_BASE_SECONDS": "0.3",
            "DELIVERY_POLL_SECONDS": "0.1",
        },
    )
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers, acks="all")
    results = AIOKafkaConsumer(
        physical_topic(prefix, NOTIFICATIONS_EVENTS.name),
        physical_topic(prefix, NOTIFICATIONS_EVENTS.dlq),
        bootstrap_servers=infra.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
    )
    await producer.start()
    await results.start()

    async def send(event: Envelope[Any]) -> None:
        await producer.send_and_wait(physical_topic(prefix, event.payload.topic), event.to_json(), key=event.key)

    tickets = [opened(n) for n in range(1, TICKETS + 1)]
    breach_payload: Payload = SlaBreached(
        ticket_id=tickets[0].payload.ticket_id,
        ticket_number=tickets[0].payload.ticket_number,
        clock=SlaClock.FIRST_RESPONSE,
        due_at=datetime(2025, 12, 12, 13, 30, tzinfo=UTC),
    )
    breach = new_envelope(breach_payload, tenant_id=TENANT, conversation_id=tickets[0].conversation_id)
    # The acknowledgments carry their ticket's Message-ID (the thread's), the alerts their delivery's.
    expected_mails = {domain.ticket_thread_id(t.payload.ticket_id, "lucinedinatale.it") for t in tickets} | {
        message_id(breach, "sla_breach", supervisor)
        for supervisor in ("capo@lucinedinatale.it", "vice@lucinedinatale.it")
    }
    expected_hooks = {
        str(domain.delivery_id(t.event_id, DeliveryChannel.WEBHOOK, t.type, f"{receiver.url}/hooks")) for t in tickets
    }
    failing_hook = domain.delivery_id(breach.event_id, DeliveryChannel.WEBHOOK, breach.type, f"{receiver.url}/fail")

    def mails_by_id() -> collections.Counter[str]:
        return collections.Counter(str(mail["Message-ID"]) for mail in sink.mails())

    try:
        await notifier.start()
        for event in [*tickets, breach]:
            await send(event)
        await eventually(lambda: len(sink.mails()) >= CONCURRENCY - 1, 60, "the first mails")
        notifier.kill()
        at_kill = len(sink.mails())
        assert at_kill < len(expected_mails), "killed mid-send, with mails still to go"

        await notifier.start()
        await eventually(lambda: set(mails_by_id()) == expected_mails, 60, "every mail, after the restart")
        await eventually(lambda: set(receiver.processed) == expected_hooks, 30, "every webhook")
        # Past another lease: a send left `sending` by the killed process would have come again by now.
        await asyncio.sleep(LEASE_SECONDS + 2)

        by_id = mails_by_id()
        assert set(by_id) == expected_mails
        resent = sum(by_id.values()) - len(by_id)
        assert resent <= CONCURRENCY, f"{resent} mails accepted twice: more than the sends in flight at the kill"
        assert set(receiver.processed) == expected_hooks
        assert len(receiver.repeats) <= CONCURRENCY
        assert receiver.refused == []

        completed: dict[uuid.UUID, DeliveryCompleted] = {}
        dead_letters: dict[str, Envelope[Any]] = {}

        async def read_results() -> bool:
            for records in (await results.getmany(timeout_ms=500)).values():
                for record in records:
                    envelope = parse_envelope(record.value)
                    if record.topic.endswith(".dlq"):
                        headers = {k: v.decode() for k, v in record.headers}
                        dead_letters[headers["dlq-delivery-id"]] = envelope
                    else:
                        completed[envelope.payload.delivery_id] = envelope.payload
            return len(completed) == len(expected_mails) + len(expected_hooks) + 1 and bool(dead_letters)

        await eventually(read_results, 30, "every DeliveryCompleted and the dead letter on Kafka")
        assert sum(r.succeeded for r in completed.values()) == len(expected_mails) + len(expected_hooks)
        assert not completed[failing_hook].succeeded
        assert completed[failing_hook].error == "webhook answered 503"
        assert list(dead_letters) == [str(failing_hook)]
        # DELIVERY_MAX_ATTEMPTS tries, then given up; a try the kill cut short before its request
        # counts as one (a delivery that crashed the process must not be tried forever).
        assert completed[failing_hook].attempts == 2
        assert 1 <= len(receiver.attempts_at("/fail")) <= 2
        assert dead_letters[str(failing_hook)].payload == completed[failing_hook]

        async with httpx.AsyncClient() as client:
            query = {"tenant_id": TENANT, "ticket_id": str(tickets[0].payload.ticket_id)}
            log = DeliveryLogView.model_validate(
                (await client.get(f"{notifier.url}/internal/deliveries", params=query)).json()
            )
        assert sorted((d.template, d.status) for d in log.deliveries) == [
            ("sla_breach", "sent"),
            ("sla_breach", "sent"),
            ("ticket_created", "sent"),
            ("tickets.sla_breached", "failed"),
            ("tickets.ticket_opened", "sent"),
        ]
        print(f"mails at the kill: {at_kill}; accepted twice: {resent}; webhooks resent: {len(receiver.repeats)}")
    finally:
        notifier.stop()
        sink.stop()
        await results.stop()
        await producer.stop()
