"""The live stream: history then live frames, no duplicate, no gap, over a real WebSocket."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
import websockets
from gateway_testkit import JWT_SECRET, LUCINE_ORIGIN, OTHER_ORIGIN, message
from websockets.exceptions import ConnectionClosed

from contracts.events import MessagePosted, PostCustomerMessage, QueuePositionUpdated, StatusChanged


def posted(
    seq: int, sender: str = "ai", status: str = "AI", text: str | None = None, language: str | None = None
) -> MessagePosted:
    m = message(seq, sender, text)
    return MessagePosted(
        message_id=uuid.UUID(m["message_id"]),
        seq=seq,
        sender=sender,
        text=m["text"],
        status=status,
        language=language,
    )


async def next_frame(ws: Any, timeout: float = 10) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def frames_until(ws: Any, predicate: Any, timeout: float = 10) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while not frames or not predicate(frames[-1]):
        frames.append(await next_frame(ws, max(deadline - asyncio.get_running_loop().time(), 0.01)))
    return frames


async def no_more_frames(ws: Any, wait: float = 1.0) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ws.recv(), wait)


def seqs(frames: list[dict[str, Any]]) -> list[int]:
    return [f["message"]["seq"] for f in frames if f["type"] == "message"]


async def open_stream(gateway, conversation_id, token, after=0, **headers):
    url = f"{gateway.ws_url}/v1/conversations/{conversation_id}/stream?token={token}&after={after}"
    return await websockets.connect(url, additional_headers=headers or None)


async def test_history_then_live_with_no_duplicate_and_no_gap(gateway):
    conversation_id, token = await gateway.start_conversation()
    history = [
        message(1, "customer", "Ciao"),
        message(2, "ai", "Buonasera!", language="it"),
        message(3, "customer", "Orari?"),
    ]
    gateway.read_api.put(conversation_id, "lucine-di-natale", history)

    async with await open_stream(gateway, conversation_id, token, after=1) as ws:
        frames = await frames_until(ws, lambda f: f["type"] == "status")
        assert seqs(frames) == [2, 3]
        assert frames[0]["message"]["text"] == "Buonasera!"
        assert set(frames[0]["message"]) == {
            "seq",
            "message_id",
            "sender",
            "text",
            "smart_actions",
            "sources",
            "created_at",
            "language",
        }
        # The widget speaks the conversation's language by its messages' (None: not known).
        assert [f["message"]["language"] for f in frames[:2]] == ["it", None]
        assert frames[-1] == {"type": "status", "status": "AI"}

        # A redelivered old event, then the next one: only the new one goes out.
        await gateway.publish_event(posted(3, "customer"), conversation_id)
        await gateway.publish_event(posted(4, "ai", text="Dalle 17 alle 23", language="it"), conversation_id)
        frame = await next_frame(ws)
        assert frame["type"] == "message"
        assert frame["message"]["seq"] == 4
        assert frame["message"]["text"] == "Dalle 17 alle 23"
        assert frame["message"]["language"] == "it"

        # seq 5 never reaches this replica: 6 arrives; 5 is fetched from the read API first.
        history += [message(4, "ai", "Dalle 17 alle 23"), message(5, "customer", "grazie"), message(6, "ai", "Prego!")]
        gateway.read_api.put(conversation_id, "lucine-di-natale", history)
        await gateway.publish_event(posted(6, "ai", text="Prego!"), conversation_id)
        frames = [await next_frame(ws), await next_frame(ws)]
        assert seqs(frames) == [5, 6]
        assert (str(conversation_id), 4) in gateway.read_api.requests

        await gateway.publish_event(StatusChanged(previous="AI", status="HANDOFF_OFFERED"), conversation_id)
        assert await next_frame(ws) == {"type": "status", "status": "HANDOFF_OFFERED"}

        await ws.send(json.dumps({"type": "ping"}))
        assert await next_frame(ws) == {"type": "pong"}
        await no_more_frames(ws)


async def test_the_queue_position_reaches_the_widget_as_a_frame_of_its_own(gateway):
    conversation_id, token = await gateway.start_conversation()
    gateway.read_api.put(conversation_id, "lucine-di-natale", [message(1, "customer", "Un operatore, per favore")])
    async with await open_stream(gateway, conversation_id, token, after=1) as ws:
        await frames_until(ws, lambda f: f["type"] == "status")
        await gateway.publish_event(QueuePositionUpdated(position=3, estimated_wait_seconds=240), conversation_id)
        assert await next_frame(ws) == {"type": "queue", "position": 3, "estimated_wait_seconds": 240}


async def test_live_events_during_the_history_fetch_are_buffered(gateway):
    conversation_id, token = await gateway.start_conversation()
    gateway.read_api.put(conversation_id, "lucine-di-natale", [message(1, "customer"), message(2, "ai")])
    gateway.read_api.delays[str(conversation_id)] = 2.0  # the history answer is slow
    try:
        connecting = asyncio.create_task(open_stream(gateway, conversation_id, token))
        await asyncio.sleep(0.8)  # connected, waiting for the history
        assert conversation_id in gateway.runtime.hub.sockets
        await gateway.publish_event(posted(2, "ai"), conversation_id)  # also in the history
        await gateway.publish_event(posted(3, "customer", status="AI"), conversation_id)
        async with await connecting as ws:
            frames = await frames_until(ws, lambda f: f["type"] == "typing")
            assert [f["type"] for f in frames] == ["message", "message", "status", "message", "typing"]
            assert seqs(frames) == [1, 2, 3]
            assert frames[-1] == {"type": "typing", "sender": "ai"}
            await no_more_frames(ws)
    finally:
        gateway.read_api.delays.pop(str(conversation_id))


async def test_typing_only_while_the_ai_answers(gateway):
    conversation_id, token = await gateway.start_conversation()
    async with await open_stream(gateway, conversation_id, token) as ws:
        assert await next_frame(ws) == {"type": "status", "status": "AI"}  # not materialised yet
        await gateway.publish_event(posted(1, "customer", status="WITH_OPERATOR"), conversation_id)
        assert seqs([await next_frame(ws)]) == [1]
        await gateway.publish_event(posted(2, "operator", status="WITH_OPERATOR"), conversation_id)
        assert seqs([await next_frame(ws)]) == [2]  # no typing frame in between
        await no_more_frames(ws, 0.5)


async def test_every_socket_of_the_conversation_gets_the_event_and_no_other(gateway):
    first, first_token = await gateway.start_conversation()
    second, second_token = await gateway.start_conversation()
    async with (
        await open_stream(gateway, first, first_token) as a,
        await open_stream(gateway, first, first_token) as b,
        await open_stream(gateway, second, second_token) as c,
    ):
        for ws in (a, b, c):
            assert (await next_frame(ws))["type"] == "status"
        await gateway.publish_event(posted(1, "ai"), first)
        assert seqs([await next_frame(a)]) == [1]
        assert seqs([await next_frame(b)]) == [1]
        await no_more_frames(c, 0.5)
    await asyncio.sleep(0.2)
    assert first not in gateway.runtime.hub.sockets  # unregistered on close
    assert second not in gateway.runtime.hub.sockets


async def closed_with(ws_factory) -> int:
    ws = await ws_factory
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 5)
    return closed.value.rcvd.code


async def test_bad_tokens_close_the_stream(gateway):
    first, token = await gateway.start_conversation()
    second, _ = await gateway.start_conversation()
    assert await closed_with(open_stream(gateway, first, "garbage")) == 4401
    assert await closed_with(open_stream(gateway, second, token)) == 4403
    assert await closed_with(open_stream(gateway, first, token, Origin=OTHER_ORIGIN)) == 4403
    async with await open_stream(gateway, first, token, Origin=LUCINE_ORIGIN) as ws:
        assert (await next_frame(ws))["type"] == "status"


async def test_the_read_api_status_and_time_are_passed_through(gateway):
    conversation_id, token = await gateway.start_conversation()
    gateway.read_api.put(conversation_id, "lucine-di-natale", [message(1, "ai")], status="QUEUED")
    async with await open_stream(gateway, conversation_id, token) as ws:
        frames = await frames_until(ws, lambda f: f["type"] == "status")
        assert frames[-1]["status"] == "QUEUED"
        assert datetime.fromisoformat(frames[0]["message"]["created_at"]) <= datetime.now(UTC)


async def send_message(ws: Any, **frame: Any) -> dict[str, Any]:
    """Sends a message frame and returns the gateway's answer to it (other frames passed over)."""
    await ws.send(json.dumps({"type": "message", **frame}))
    frames = await frames_until(ws, lambda f: f["type"] in ("accepted", "error"))
    return frames[-1]


async def test_a_message_sent_on_the_stream_is_taken_as_its_post_would_be(gateway):
    conversation_id, token = await gateway.start_conversation()
    async with await open_stream(gateway, conversation_id, token) as ws:
        assert await next_frame(ws) == {"type": "status", "status": "AI"}
        text = "Quando apre il villaggio?"
        first = await send_message(ws, client_message_id="s-1", text=text)
        assert first == {
            "type": "accepted",
            "client_message_id": "s-1",
            "message_id": str(uuid.uuid5(conversation_id, "s-1")),
        }
        # A retry, on the socket or over HTTP, gets the same message id: one message in the end.
        assert await send_message(ws, client_message_id="s-1", text=text) == first
        response = await gateway.http.post(
            f"/v1/conversations/{conversation_id}/messages",
            json={"client_message_id": "s-1", "text": text},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.json() == {"message_id": first["message_id"]}

        # Refused as the POST refuses it, with the HTTP status, and nothing published.
        refused = await send_message(ws, client_message_id="s-long", text="a" * 4001)
        assert (refused["type"], refused["client_message_id"], refused["status"]) == ("error", "s-long", 422)
        assert refused["error"]["code"] == "invalid_request"
        assert "text" in refused["error"]["message"]
        assert "4000" in refused["error"]["message"]
        refused = await send_message(ws, text="no id")
        assert (refused["client_message_id"], refused["status"]) == (None, 422)
        assert "client_message_id" in refused["error"]["message"]

        # The same per-conversation limit (5 per window in the tests' gateway) counts both ways.
        assert (await send_message(ws, client_message_id="s-2", text="ok"))["type"] == "accepted"
        assert (await send_message(ws, client_message_id="s-3", text="ok"))["type"] == "accepted"
        limited = await send_message(ws, client_message_id="s-4", text="ok")
        assert (limited["status"], limited["error"]["code"]) == (429, "rate_limited")
        assert 1 <= limited["retry_after"] <= 60

        await ws.send(json.dumps({"type": "ping"}))  # the socket still serves the widget
        assert (await frames_until(ws, lambda f: f["type"] == "pong"))[-1] == {"type": "pong"}

    commands = await gateway.commands(conversation_id, 6)
    posts = [c.payload for c in commands if isinstance(c.payload, PostCustomerMessage)]
    assert [p.client_message_id for p in posts] == ["s-1", "s-1", "s-1", "s-2", "s-3"]
    assert {str(p.message_id) for p in posts[:3]} == {first["message_id"]}
    assert posts[0].text == text


async def test_a_token_that_expires_while_the_stream_is_open_refuses_the_next_message(gateway):
    conversation_id, _ = await gateway.start_conversation()
    expires = int(datetime.now(UTC).timestamp()) + 5  # time to connect and send one message, on a busy machine too
    claims = {"sub": str(conversation_id), "tenant_id": "lucine-di-natale", "aud": "widget", "exp": expires}
    token = jwt.encode(claims, JWT_SECRET)
    async with await open_stream(gateway, conversation_id, token) as ws:
        assert (await next_frame(ws))["type"] == "status"
        assert (await send_message(ws, client_message_id="before", text="ciao"))["type"] == "accepted"
        await asyncio.sleep(expires + 0.5 - datetime.now(UTC).timestamp())
        refused = await send_message(ws, client_message_id="after", text="ciao")
        assert (refused["type"], refused["status"], refused["error"]["code"]) == ("error", 401, "unauthorized")


async def test_a_frame_larger_than_any_client_sends_closes_the_socket(gateway):
    conversation_id, token = await gateway.start_conversation()
    async with await open_stream(gateway, conversation_id, token) as ws:
        assert (await next_frame(ws))["type"] == "status"
        await ws.send("x" * 300_000)  # above servicekit's WS_MAX_MESSAGE_BYTES (256 KiB)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009  # message too big
