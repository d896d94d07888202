"""Live fan-out of conversation events to the widget sockets this process holds.

Every replica reads all of `conversation.events.v1` (no consumer group) and hands each event to
the sockets of its conversation, if it holds any. The per-socket cost is kept tiny for 10,000
idle sockets: a small slotted object in a dict; no task of its own except the request's receive
loop. Frames are queued on the socket and written by a short-lived drain task, started only
while there is something to write, which is the socket's single writer: that is what keeps the
frames in seq order with no duplicate, across history, live events and gap fills.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from datetime import datetime
from enum import Enum
from typing import Any, Protocol

from aiokafka import ConsumerRecord
from prometheus_client import Counter, Gauge

from contracts import parse_envelope
from contracts.common import ConversationStatus, Sender
from contracts.events import MessagePosted, NoteAdded, QueuePositionUpdated, StatusChanged
from contracts.readapi import WidgetMessage
from gateway.readapi import ConversationReader
from servicekit.http import ApiError
from servicekit.logs import get_logger
from servicekit.tracing import consumer_span, exporting, headers_of

log = get_logger(__name__)

OPEN_SOCKETS = Gauge("gateway_widget_sockets", "Widget WebSockets open in this process.")
FRAMES_SENT = Counter("gateway_widget_frames_total", "Frames sent to widget sockets.", ["type"])
GAP_FILLS = Counter("gateway_widget_gap_fills_total", "Missing messages fetched from the read API.")

# A client that does not read its frames is dropped; it reconnects with ?after= and loses nothing.
MAX_QUEUED_FRAMES = 500
CLOSE_TOO_SLOW = 4408


class Kind(Enum):
    MESSAGE = 1
    TYPING = 2  # sent only if nothing newer than its message went out meanwhile
    OTHER = 3
    NOTE = 4  # internal notes: operators' feeds only


Frame = tuple[Kind, int, str]  # kind, seq it relates to (0: none), JSON text


def message_frame(message: WidgetMessage) -> Frame:
    text = json.dumps({"type": "message", "message": message.model_dump(mode="json")}, separators=(",", ":"))
    return (Kind.MESSAGE, message.seq, text)


def status_frame(status: ConversationStatus) -> Frame:
    return (Kind.OTHER, 0, json.dumps({"type": "status", "status": status.value}, separators=(",", ":")))


def queue_frame(update: QueuePositionUpdated) -> Frame:
    """Where the customer is in the operators' queue, shown in place by the widget."""
    body = {"type": "queue", "position": update.position, "estimated_wait_seconds": update.estimated_wait_seconds}
    return (Kind.OTHER, 0, json.dumps(body, separators=(",", ":")))


def note_frame(note: NoteAdded, created_at: datetime) -> Frame:
    body = {"type": "note", "note": {**note.model_dump(mode="json"), "created_at": created_at.isoformat()}}
    return (Kind.NOTE, 0, json.dumps(body, separators=(",", ":")))


def reply_frame(body: dict[str, Any]) -> Frame:
    """An answer to something the client sent on its socket (a pong, a message's acceptance)."""
    return (Kind.OTHER, 0, json.dumps(body, separators=(",", ":")))


TYPING_TEXT = json.dumps({"type": "typing", "sender": "ai"}, separators=(",", ":"))
PONG = reply_frame({"type": "pong"})


class FrameSink(Protocol):
    """Where a conversation's frames go: a widget's WebSocket, or one conversation of an
    operator's stream (gateway.operator_stream), which carries several."""

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


class WidgetSocket:
    """One conversation's feed to one socket: the seq bookkeeping (no gap, no duplicate) and the
    single writer of its frames. `sees_notes`: an operator's feed, which also gets internal notes."""

    __slots__ = (
        "conversation_id",
        "draining",
        "hub",
        "last_seq",
        "queue",
        "ready",
        "sees_notes",
        "tenant_id",
        "websocket",
    )

    def __init__(
        self,
        hub: Hub,
        websocket: FrameSink,
        tenant_id: str,
        conversation_id: uuid.UUID,
        last_seq: int,
        *,
        sees_notes: bool = False,
    ) -> None:
        self.hub = hub
        self.websocket = websocket
        self.tenant_id = tenant_id  # a disabled tenant's sockets are closed (GatewayRuntime)
        self.conversation_id = conversation_id
        self.last_seq = last_seq
        self.sees_notes = sees_notes
        self.queue: deque[Frame] | None = None  # made on first use: most sockets sit idle
        self.ready = False  # False while the history is being sent: live frames wait in the queue
        self.draining = False

    def push(self, frame: Frame) -> None:
        if self.queue is None:
            self.queue = deque()
        if len(self.queue) >= MAX_QUEUED_FRAMES:
            self.hub.spawn(self.websocket.close(CLOSE_TOO_SLOW, "not reading; reconnect with ?after="))
            return
        self.queue.append(frame)
        self.kick()

    def kick(self) -> None:
        if self.ready and not self.draining and self.queue:
            self.draining = True
            self.hub.spawn(self._drain())

    async def send_messages(self, messages: list[WidgetMessage]) -> None:
        """Sends, in order, those of `messages` newer than what this socket has seen."""
        for message in messages:
            if message.seq > self.last_seq:
                await self._send(message_frame(message))

    async def send_now(self, frame: Frame) -> None:
        """Only while not `ready` (the connect handler is then the single writer)."""
        assert not self.ready
        await self._send(frame)

    async def _send(self, frame: Frame) -> None:
        kind, seq, text = frame
        await self.websocket.send_text(text)
        if kind is Kind.MESSAGE:
            self.last_seq = seq
            FRAMES_SENT.labels("message").inc()
        else:
            FRAMES_SENT.labels("typing" if kind is Kind.TYPING else "other").inc()

    async def _drain(self) -> None:
        sent_here = 0  # the typing hint follows its message only if that message went out now
        try:
            while self.queue:
                frame = self.queue.popleft()
                kind, seq, _ = frame
                if kind is Kind.MESSAGE:
                    if seq <= self.last_seq:
                        continue  # already sent (history, or a redelivered event)
                    if seq > self.last_seq + 1:
                        await self._fill_gap()
                        if seq <= self.last_seq:
                            continue
                        # Still missing: better in order with a hole than stuck; the widget's
                        # next reconnect (?after=) fills it.
                        log.warning("gap not filled", conversation_id=str(self.conversation_id), seq=seq)
                elif kind is Kind.TYPING and not (seq == sent_here == self.last_seq):
                    continue  # stale (a newer message went out) or its message was a redelivery
                await self._send(frame)
                if kind is Kind.MESSAGE:
                    sent_here = seq
        except Exception as error:  # the socket is gone, or the read API failed during a gap fill
            log.debug("widget socket drain stopped", error=repr(error))
            if self.queue is not None:
                self.queue.clear()
        finally:
            self.draining = False

    async def _fill_gap(self) -> None:
        GAP_FILLS.inc()
        transcript = await self.hub.reader.messages(self.conversation_id, self.last_seq)
        if transcript is not None:
            await self.send_messages(transcript.messages)


StatusWatch = Callable[[StatusChanged], bool]


class Hub:
    def __init__(self, reader: ConversationReader) -> None:
        self.reader = reader
        self.sockets: dict[uuid.UUID, set[WidgetSocket]] = {}
        # Requests waiting for a conversation's status change (`until_status`), by conversation.
        self.watches: dict[uuid.UUID, list[tuple[StatusWatch, asyncio.Future[None]]]] = {}
        self.events_seen = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @contextlib.contextmanager
    def watching(self, conversation_id: uuid.UUID, accept: StatusWatch) -> Iterator[asyncio.Future[None]]:
        """A future resolved by the first status change of the conversation that `accept`s, read
        from the events this process fans out anyway (no read API call per try); the watch is
        registered before the caller looks at the current state, so no change slips between."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        watch = (accept, future)
        self.watches.setdefault(conversation_id, []).append(watch)
        try:
            yield future
        finally:
            watches = self.watches.get(conversation_id, [])
            if watch in watches:
                watches.remove(watch)
            if not watches:
                self.watches.pop(conversation_id, None)

    def _resolve_watches(self, conversation_id: uuid.UUID, change: StatusChanged) -> None:
        for accept, future in self.watches.get(conversation_id, []):
            if not future.done() and accept(change):
                future.set_result(None)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)  # keeps a reference until it ends, so it cannot be collected midway
        task.add_done_callback(self._tasks.discard)

    def add(self, socket: WidgetSocket) -> None:
        self.sockets.setdefault(socket.conversation_id, set()).add(socket)
        if not socket.sees_notes:  # operators' feeds are counted as operator sockets
            OPEN_SOCKETS.inc()

    async def catch_up(self, socket: WidgetSocket, tenant_id: str) -> None:
        """Sends a registered socket the messages after its `last_seq` and the conversation's
        status, then lets the live frames queued meanwhile flow. Raises ApiError: 403 when the
        conversation is another tenant's, 502/503 when the history cannot be read."""
        transcript = await self.reader.messages(socket.conversation_id, socket.last_seq)
        if transcript is not None and transcript.tenant_id != tenant_id:
            raise ApiError(403, "forbidden", "this conversation belongs to another tenant")
        if transcript is not None:
            await socket.send_messages(transcript.messages)
        # Sent directly, before the queued live frames: a queued StatusChanged is newer than this.
        await socket.send_now(status_frame(transcript.status if transcript else ConversationStatus.AI))
        socket.ready = True
        socket.kick()

    def remove(self, socket: WidgetSocket) -> None:
        group = self.sockets.get(socket.conversation_id)
        if group is not None and socket in group:
            group.discard(socket)
            if not socket.sees_notes:
                OPEN_SOCKETS.dec()
            if not group:
                del self.sockets[socket.conversation_id]

    async def on_record(self, record: ConsumerRecord[Any, Any]) -> None:
        """One record of conversation.events.v1. The key (the conversation id) tells, before any
        parsing, whether this process holds a socket of that conversation: usually it does not."""
        self.events_seen += 1
        key = record.key
        try:
            conversation_id = uuid.UUID(key.decode()) if key else None
        except (ValueError, UnicodeDecodeError):
            conversation_id = None
        if conversation_id is not None and conversation_id not in self.sockets and conversation_id not in self.watches:
            return
        try:
            envelope = parse_envelope(record.value)
        except ValueError as error:
            log.debug("event ignored", error=str(error))
            return
        if envelope.conversation_id is None:
            return
        if isinstance(envelope.payload, StatusChanged) and envelope.conversation_id in self.watches:
            self._resolve_watches(envelope.conversation_id, envelope.payload)
        group = self.sockets.get(envelope.conversation_id)
        if not group:
            return
        payload = envelope.payload
        frames: list[Frame]
        if isinstance(payload, MessagePosted):
            message = WidgetMessage(
                seq=payload.seq,
                message_id=payload.message_id,
                sender=payload.sender,
                text=payload.text,
                smart_actions=list(payload.smart_actions),
                sources=list(payload.sources),
                created_at=envelope.occurred_at,
                language=payload.language,
            )
            frames = [message_frame(message)]
            if payload.sender is Sender.CUSTOMER and payload.status is ConversationStatus.AI:
                frames.append((Kind.TYPING, payload.seq, TYPING_TEXT))
        elif isinstance(payload, StatusChanged):
            frames = [status_frame(payload.status)]
        elif isinstance(payload, NoteAdded):
            frames = [note_frame(payload, envelope.occurred_at)]
        elif isinstance(payload, QueuePositionUpdated):
            frames = [queue_frame(payload)]
        else:
            return
        # The last span of a customer turn, under the span that emitted the event (its record's
        # headers); only for events this process has sockets for, and only when exporting.
        with (
            consumer_span(
                f"push {envelope.type}",
                topic=record.topic,
                group=None,
                event_type=envelope.type,
                parent=headers_of(record.headers),
            )
            if exporting()
            else contextlib.nullcontext()
        ):
            for socket in list(group):
                for frame in frames:
                    if frame[0] is not Kind.NOTE or socket.sees_notes:  # never a widget's
                        socket.push(frame)
