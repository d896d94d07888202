"""The operators' live stream: routing's decisions for the operator's tenant, its tickets'
changes, and the messages, notes and status of the conversations the operator follows.

A conversation an operator follows is a `hub.WidgetSocket` registered in the same `Hub` as the
widgets' (so the same seq rules hold: history then live, no gap, no duplicate), whose frames go
into the operator's one socket tagged with their `conversation_id`. An operator follows the
conversations assigned to them (learned from `routing.events.v1`) and any other of their tenant
they subscribe to. Every replica reads every routing and ticket event (no consumer group), like
the conversation events: any replica may hold the operator's socket.

Ticket events carry no sequence number: a `ticket` frame names the event (`event_id`) and the
gateway drops one it has already pushed (a redelivery); the dashboard reads the ticket list again
on `ready` and after frames, so what happened while it was away comes from the read, never lost.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import OrderedDict, deque
from typing import Any

from aiokafka import ConsumerRecord
from fastapi import WebSocket
from prometheus_client import Gauge
from pydantic_core import to_jsonable_python

from contracts import Envelope, parse_envelope
from contracts.events import (
    ConversationQueued,
    NoOperatorAvailable,
    OfferClosed,
    OfferMade,
    OperatorAssigned,
    OperatorPresenceChanged,
    OperatorReleased,
    QueuePositionChanged,
    SlaBreached,
    SlaWarning,
    TicketCommandRejected,
    TicketOpened,
    TicketReplyPosted,
    TicketUpdated,
)
from gateway.hub import CLOSE_TOO_SLOW, MAX_QUEUED_FRAMES, Hub, WidgetSocket
from gateway.tokens import OperatorClaims
from servicekit.http import ApiError
from servicekit.logs import get_logger

log = get_logger(__name__)

OPEN_OPERATOR_SOCKETS = Gauge("gateway_operator_sockets", "Operator WebSockets open in this process.")

# The frame `type` of each routing event (its `event` field is the event's own name).
FRAME_TYPES: dict[type[Any], str] = {
    ConversationQueued: "queue",
    QueuePositionChanged: "queue",
    NoOperatorAvailable: "queue",
    OfferMade: "offer",
    OfferClosed: "offer",
    OperatorAssigned: "assignment",
    OperatorReleased: "assignment",
    OperatorPresenceChanged: "presence",
}
SUPERVISING_ROLES = frozenset({"supervisor", "admin"})
# Ticket events remembered per process to drop a redelivered one (a few minutes of a busy tenant).
RECENT_TICKET_EVENTS = 10_000


def dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))


def error_frame(code: str, message: str, conversation_id: uuid.UUID | None = None) -> str:
    body: dict[str, Any] = {"type": "error", "error": {"code": code, "message": message}}
    if conversation_id is not None:
        body["conversation_id"] = str(conversation_id)
    return dumps(body)


def routing_frame(envelope: Envelope[Any]) -> str | None:
    frame_type = FRAME_TYPES.get(type(envelope.payload))
    if frame_type is None:
        return None
    return dumps(
        {
            "type": frame_type,
            "event": envelope.type.removeprefix("routing."),
            "conversation_id": str(envelope.conversation_id) if envelope.conversation_id else None,
            "occurred_at": envelope.occurred_at.isoformat(),
            "data": envelope.payload.model_dump(mode="json"),
        }
    )


def queue_changed_frame(envelope: Envelope[Any]) -> str:
    return dumps(
        {
            "type": "queue",
            "event": "queue_changed",
            "conversation_id": str(envelope.conversation_id) if envelope.conversation_id else None,
            "occurred_at": envelope.occurred_at.isoformat(),
            "data": {},
        }
    )


def ticket_frame(envelope: Envelope[Any]) -> str | None:
    """A ticket event as the dashboard's list needs it: ids, number, status, priority, assignee and
    SLA state only. Never the contact, the subject or a reply's or note's text (a reply tells only
    that the customer answered); the operator reads the ticket for those (GET /v1/tickets/{id})."""
    payload = envelope.payload
    data: dict[str, Any]
    if isinstance(payload, TicketOpened):
        data = {
            "status": "OPEN",  # every ticket opens OPEN (contracts.common.TicketStatus)
            "priority": payload.priority,
            "assignee_id": payload.assignee_id,
            "source": payload.source,
            "first_response_due": payload.first_response_due,
            "resolution_due": payload.resolution_due,
        }
    elif isinstance(payload, TicketUpdated):
        data = {
            "status": payload.status,
            "previous_status": payload.previous_status,
            "priority": payload.priority,
            "assignee_id": payload.assignee_id,
            "changed_by": payload.changed_by,
            "first_response_due": payload.first_response_due,
            "resolution_due": payload.resolution_due,
        }
    elif isinstance(payload, SlaWarning | SlaBreached):
        state = "at_risk" if isinstance(payload, SlaWarning) else "breached"
        data = {"clock": payload.clock, "due_at": payload.due_at, "sla_state": state}
    elif isinstance(payload, TicketReplyPosted) and payload.author == "customer":
        data = {"reply_id": payload.reply_id, "author": payload.author}
    elif isinstance(payload, TicketCommandRejected) and payload.ticket_id is not None:
        # The dashboard matches `command_id` with the 202 of its PATCH (the rejected command's id).
        data = {"command_id": envelope.causation_id, "code": payload.code, "message": payload.message}
    else:
        return None
    ticket_id = payload.ticket_id
    number = getattr(payload, "ticket_number", None)
    body = {
        "type": "ticket",
        "event": envelope.type.removeprefix("tickets."),
        "event_id": str(envelope.event_id),
        "ticket_id": str(ticket_id),
        "ticket_number": number,
        "conversation_id": str(envelope.conversation_id) if envelope.conversation_id else None,
        "occurred_at": envelope.occurred_at.isoformat(),
        "data": data,
    }
    return json.dumps(body, separators=(",", ":"), default=to_jsonable_python)


class FeedSink:
    """What a followed conversation's feed writes to: the operator's socket, each frame tagged
    with the conversation it belongs to."""

    __slots__ = ("connection", "prefix")

    def __init__(self, connection: OperatorConnection, conversation_id: uuid.UUID) -> None:
        self.connection = connection
        # Every frame is a JSON object: the tag goes right after its opening brace.
        self.prefix = '{"conversation_id":"' + str(conversation_id) + '",'

    async def send_text(self, data: str) -> None:
        self.connection.push(self.prefix + data[1:])

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.connection.close(code, reason or "")


QUEUE_HINT = "queue"  # the coalescing key of every `queue` frame
# Seconds a socket holds a coalescable frame before writing it, so that a burst of them (a busy
# tenant changes its queue many times a second) is one frame. Each `queue` frame makes a dashboard
# read the queue again: with 200 operators online, a hint every 100 ms each was up to 1,200 reads a
# second of `GET /v1/queue`; every 500 ms it is at most 400, and the queue shown lags by half a
# second at most.
HINT_DELAY = 0.5
_OFFERS = (OfferMade, OfferClosed)
_QUEUE_CHANGES = (ConversationQueued, QueuePositionChanged, NoOperatorAvailable)
_ASSIGNMENTS = (OperatorAssigned, OperatorReleased)


def coalescing_key(payload: Any) -> str | None:
    """Frames that say the same thing as a newer one of their key, so a socket with frames waiting
    needs only the newest: a `queue` frame only tells the dashboard to read the queue again (a
    burst of queue changes is one read), and a colleague's `presence` frame carries their whole
    state. None for every other frame, which is always sent."""
    if isinstance(payload, _QUEUE_CHANGES):
        return QUEUE_HINT
    if isinstance(payload, OperatorPresenceChanged):
        return f"presence:{payload.operator_id}"
    return None


class QueuedFrame:
    """A frame waiting in an operator socket's queue; its text is replaced by a newer frame of
    its coalescing key while it waits."""

    __slots__ = ("key", "text")

    def __init__(self, text: str, key: str | None) -> None:
        self.text = text
        self.key = key


class OperatorConnection:
    """One open operator stream. Its frames are queued and written by one drain task at a time
    (the socket's single writer), so each conversation's frames keep their order. A frame with a
    coalescing key (`coalescing_key`) replaces, in place, a frame of the same key still waiting:
    with 200 operators of a tenant, every queue change and every colleague's change of load is a
    frame to each of them, and a socket that falls behind would otherwise fall further. Such a
    frame also waits `hint_delay` before it is written, unless another frame goes out first, so
    that the changes of a busy moment reach a socket that keeps up as one frame too."""

    def __init__(self, hub: Hub, websocket: WebSocket, claims: OperatorClaims, hint_delay: float = HINT_DELAY) -> None:
        self.hub = hub
        self.websocket = websocket
        self.claims = claims
        self.hint_delay = hint_delay
        self.feeds: dict[uuid.UUID, WidgetSocket] = {}
        self.queue: deque[QueuedFrame] = deque()
        self.waiting: dict[str, QueuedFrame] = {}  # coalescing key -> its frame in the queue
        self.draining = False
        self.drain_timer: asyncio.TimerHandle | None = None  # a coalescable frame waiting out its delay
        self.closed = False

    @property
    def supervises(self) -> bool:
        return self.claims.role in SUPERVISING_ROLES

    def push(self, text: str, key: str | None = None) -> None:
        """Queues a frame; one with a `key` replaces the waiting frame of that key, if any."""
        if self.closed:
            return
        if key is not None and (waiting := self.waiting.get(key)) is not None:
            waiting.text = text
            return
        # Several conversations share the socket: it may hold a few frames more than a widget's.
        if len(self.queue) >= 4 * MAX_QUEUED_FRAMES:
            self.close(CLOSE_TOO_SLOW, "not reading; reconnect")
            return
        frame = QueuedFrame(text, key)
        if key is not None:
            self.waiting[key] = frame
        self.queue.append(frame)
        if self.draining:
            return
        if key is None:
            self._drain_now()
        elif self.drain_timer is None:
            self.drain_timer = asyncio.get_running_loop().call_later(self.hint_delay, self._drain_now)

    def _drain_now(self) -> None:
        self._cancel_drain_timer()
        if not self.draining and not self.closed:
            self.draining = True
            self.hub.spawn(self._drain())

    def _cancel_drain_timer(self) -> None:
        if self.drain_timer is not None:
            self.drain_timer.cancel()
            self.drain_timer = None

    async def _drain(self) -> None:
        try:
            while self.queue:
                frame = self.queue.popleft()
                if frame.key is not None:  # from now on a frame of its key is a new one
                    del self.waiting[frame.key]
                await self.websocket.send_text(frame.text)
        except Exception as error:  # the socket is gone
            log.debug("operator socket drain stopped", error=repr(error))
            self.queue.clear()
            self.waiting.clear()
        finally:
            self.draining = False

    def close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self._cancel_drain_timer()
            self.hub.spawn(self.websocket.close(code, reason[:120]))

    async def follow(self, conversation_id: uuid.UUID, after: int = 0) -> None:
        """Sends the conversation's messages after `after`, its status, then its live frames.
        The caller has checked that the operator may read it."""
        if conversation_id in self.feeds or self.closed:
            return
        feed = WidgetSocket(
            self.hub, FeedSink(self, conversation_id), self.claims.tenant_id, conversation_id, after, sees_notes=True
        )
        self.feeds[conversation_id] = feed
        self.hub.add(feed)  # registered before the history is read: live frames wait in its queue
        try:
            await self.hub.catch_up(feed, self.claims.tenant_id)
        except ApiError as error:
            self.unfollow(conversation_id)
            self.push(error_frame(error.code, error.message, conversation_id))

    def unfollow(self, conversation_id: uuid.UUID) -> None:
        feed = self.feeds.pop(conversation_id, None)
        if feed is not None:
            self.hub.remove(feed)

    def release_all(self) -> None:
        for conversation_id in list(self.feeds):
            self.unfollow(conversation_id)

    def sees(self, payload: Any, conversation_id: uuid.UUID | None) -> bool:
        """Offers are the offered operator's (and their supervisors'). An assignment or a release
        is told as it is to its operator, to supervisors and to whoever follows the conversation;
        for the others it only moves the queue. The rest is the tenant's."""
        if isinstance(payload, _OFFERS):
            return self.supervises or payload.operator_id == self.claims.operator_id
        if isinstance(payload, _ASSIGNMENTS):
            return (
                self.supervises
                or payload.operator_id == self.claims.operator_id
                or (conversation_id is not None and conversation_id in self.feeds)
            )
        return True


class OperatorHub:
    """The operator streams this process holds, by tenant; routing's events are handed to them."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.by_tenant: dict[str, set[OperatorConnection]] = {}
        self.events_seen = 0
        self.ticket_events_seen = 0
        self.pushed_ticket_events: OrderedDict[uuid.UUID, None] = OrderedDict()

    def add(self, connection: OperatorConnection) -> None:
        self.by_tenant.setdefault(connection.claims.tenant_id, set()).add(connection)
        OPEN_OPERATOR_SOCKETS.inc()

    def remove(self, connection: OperatorConnection) -> None:
        connection.release_all()
        group = self.by_tenant.get(connection.claims.tenant_id)
        if group is not None and connection in group:
            group.discard(connection)
            OPEN_OPERATOR_SOCKETS.dec()
            if not group:
                del self.by_tenant[connection.claims.tenant_id]

    async def on_record(self, record: ConsumerRecord[Any, Any]) -> None:
        """One record of routing.events.v1: pushed to the streams of its tenant, never another's."""
        self.events_seen += 1
        if not self.by_tenant:
            return
        try:
            envelope = parse_envelope(record.value)
        except ValueError as error:
            log.debug("routing event ignored", error=str(error))
            return
        connections = self.by_tenant.get(envelope.tenant_id)
        frame = routing_frame(envelope) if connections else None
        if not connections or frame is None:
            return
        payload = envelope.payload
        conversation_id = envelope.conversation_id
        key = coalescing_key(payload)
        moved: str | None = None
        for connection in list(connections):
            if not connection.sees(payload, conversation_id):
                # An offer to a colleague, or a colleague's assignment, still moves the queue
                # everyone reads (GET /v1/queue lists offered conversations too): told without its
                # details, to read the queue again. With 200 operators, an assignment told in full
                # to each was three in four of the frames written.
                moved = moved or queue_changed_frame(envelope)
                connection.push(moved, QUEUE_HINT)
                continue
            connection.push(frame, key)
            if conversation_id is None or getattr(payload, "operator_id", None) != connection.claims.operator_id:
                continue
            # The operator's own conversations are followed while they have them.
            if isinstance(payload, OperatorAssigned):
                self.hub.spawn(connection.follow(conversation_id))
            elif isinstance(payload, OperatorReleased):
                connection.unfollow(conversation_id)

    async def on_ticket_record(self, record: ConsumerRecord[Any, Any]) -> None:
        """One record of tickets.events.v1: a `ticket` frame to every operator stream of its tenant
        (tickets are the tenant's desk, not one operator's), never another tenant's; once per event."""
        self.ticket_events_seen += 1
        if not self.by_tenant:
            return
        try:
            envelope = parse_envelope(record.value)
        except ValueError as error:
            log.debug("ticket event ignored", error=str(error))
            return
        connections = self.by_tenant.get(envelope.tenant_id)
        if not connections or envelope.event_id in self.pushed_ticket_events:
            return
        frame = ticket_frame(envelope)
        if frame is None:
            return
        self.pushed_ticket_events[envelope.event_id] = None
        if len(self.pushed_ticket_events) > RECENT_TICKET_EVENTS:
            self.pushed_ticket_events.popitem(last=False)
        for connection in list(connections):
            connection.push(frame)
