"""The one way the gateway sends a command: straight to Kafka, awaited with acks=all, so that
a 2xx answer means the command is durable. (The gateway stores nothing about a conversation,
hence no outbox here: the awaited publish is the only effect of the request.)"""

from __future__ import annotations

import uuid
from typing import TypeVar

from aiokafka.errors import KafkaError
from prometheus_client import Counter

from contracts import Envelope, Payload, new_envelope
from servicekit.http import ApiError, Runtime
from servicekit.logs import get_logger, log_context
from servicekit.tracing import current_trace_headers

log = get_logger(__name__)

P = TypeVar("P", bound=Payload)

COMMANDS_PUBLISHED = Counter("gateway_commands_published_total", "Commands published to Kafka.", ["type"])


async def send_command(
    runtime: Runtime, payload: P, *, tenant_id: str, conversation_id: uuid.UUID | None
) -> Envelope[P]:
    """Publishes on the payload's own topic (widget commands on conversation.commands.v1,
    dashboard commands on operator.commands.v1); keyed by the conversation, else the aggregate."""
    envelope = new_envelope(payload, tenant_id=tenant_id, conversation_id=conversation_id)
    with log_context(correlation_id=envelope.correlation_id, conversation_id=conversation_id, tenant_id=tenant_id):
        try:
            await runtime.broker.publish(
                envelope.to_json(),
                runtime.topic(payload.topic),
                key=envelope.key,
                headers=current_trace_headers(),
            )
        except (KafkaError, TimeoutError) as error:
            log.error("command not published", type=envelope.type, error=str(error))
            raise ApiError(503, "unavailable", "the message could not be accepted now; retry") from error
        COMMANDS_PUBLISHED.labels(envelope.type).inc()
        log.info("command published", type=envelope.type, event_id=str(envelope.event_id))
    return envelope
