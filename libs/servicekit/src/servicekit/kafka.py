"""The FastStream Kafka broker every service uses: acks=all, idempotent producer, and no automatic
topic creation (topics are made by `servicekit.topics`).

Trace context travels in the records' headers, put there by the outbox and the gateway and read
by the idempotent consumer, which opens one span per event. FastStream's tracing middleware is
left out: it would add a span per publish and per polled batch, and cost a sixth of a busy
service's CPU. Its Prometheus middleware is left out too: the platform's own metrics count what
matters per event (handled, published, relayed, dead-lettered, batch sizes, lag), and the
middleware's per-message bookkeeping cost a few percent of each service's CPU."""

from __future__ import annotations

import logging

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

# How long a batch subscriber's poll waits for records. FastStream then sleeps as long again when
# the poll came back empty, so an event reaching an idle subscriber waits up to this much at
# every hop of a customer turn: kept short (a poll that finds records returns at once anyway).
POLL_TIMEOUT_MS = 5


async def whole_message(message: KafkaMessage) -> KafkaMessage:
    """The decoder of every subscriber: hands the handler the polled message itself (its records,
    their headers, ack and nack). The broker applies no dependency injection, which would resolve
    that same message through a worker thread on every poll."""
    return message


def physical_topic(prefix: str, name: str) -> str:
    """The Kafka topic a contract topic name lives in, under the deployment's namespace prefix."""
    return f"{prefix}{name}"


def create_broker(bootstrap_servers: str, client_id: str) -> KafkaBroker:
    return KafkaBroker(
        bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=1,
        allow_auto_create_topics=False,
        apply_types=False,  # subscribers take the message from `whole_message`
        # FastStream logs every message at its log level; per-message lines belong at DEBUG.
        log_level=logging.DEBUG,
        # Its own logger would print coloured text; this one propagates to the JSON handler.
        logger=logging.getLogger("broker"),
        graceful_timeout=10.0,
    )
