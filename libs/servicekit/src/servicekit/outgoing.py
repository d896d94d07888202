"""The events a handler emits in answer to one incoming envelope.

Each event is wrapped in an envelope of the same tenant, caused by the incoming one (so it
carries its correlation id, and its event id as causation), and about the same conversation
unless told otherwise. `flush` stages them in the outbox of the handler's transaction
(`servicekit.outbox.add_to_outbox`), so they leave only if its effects commit:

    @consumer.on(StartConversation)
    async def on_start(envelope: Envelope[StartConversation], session: AsyncSession) -> None:
        out = Outgoing(session, envelope)
        ...
        out.emit(ConversationStarted(channel=..., locale=...))
        out.flush()
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope, Payload, new_envelope
from servicekit.outbox import add_to_outbox


class Outgoing:
    """Events caused by one incoming envelope, staged in the outbox together by `flush`."""

    __slots__ = ("cause", "events", "session")

    def __init__(self, session: AsyncSession, cause: Envelope[Any]) -> None:
        self.session = session
        self.cause = cause
        self.events: list[Envelope[Any]] = []

    def emit(self, payload: Payload, conversation_id: uuid.UUID | None = None) -> None:
        """Adds an event about `conversation_id`, by default the cause's conversation."""
        self.events.append(
            new_envelope(
                payload,
                tenant_id=self.cause.tenant_id,
                conversation_id=conversation_id or self.cause.conversation_id,
                causation=self.cause,
            )
        )

    def flush(self) -> None:
        """Stages the events emitted so far in the session's transaction, in emission order.
        Events emitted afterwards wait for the next flush (none is ever staged twice)."""
        add_to_outbox(self.session, self.events)
        self.events = []
