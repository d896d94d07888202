"""A Python client of the public widget API (REST + WebSocket), as a browser widget uses it.
The end-to-end tests drive the system through it (the benchmark's load generator speaks the same
API on aiohttp, which costs it less CPU). Messages and histories are parsed into the models of
`contracts.readapi`, so a body that breaks the contract fails the test that reads it."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import websockets

from contracts.readapi import MessagesResponse, WidgetMessage


@dataclass
class WidgetConversation:
    client: httpx.AsyncClient
    gateway_url: str
    conversation_id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def post(self, text: str, client_message_id: str | None = None) -> httpx.Response:
        body = {"text": text, "client_message_id": client_message_id or uuid.uuid4().hex}
        return await self.client.post(
            f"/v1/conversations/{self.conversation_id}/messages", json=body, headers=self.auth
        )

    async def history(self, after: int = 0) -> MessagesResponse:
        response = await self.client.get(
            f"/v1/conversations/{self.conversation_id}/messages", params={"after": after}, headers=self.auth
        )
        response.raise_for_status()
        return MessagesResponse.model_validate_json(response.content)

    async def action(self, action: str) -> httpx.Response:
        return await self.client.post(
            f"/v1/conversations/{self.conversation_id}/actions", json={"action": action}, headers=self.auth
        )

    def stream_url(self, after: int = 0) -> str:
        base = self.gateway_url.replace("http://", "ws://").replace("https://", "wss://")
        return f"{base}/v1/conversations/{self.conversation_id}/stream?token={self.token}&after={after}"

    async def wait_for_messages(self, count: int, timeout: float = 30.0, after: int = 0) -> list[WidgetMessage]:
        """Polls the history until at least `count` messages after `after` exist."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            messages = (await self.history(after)).messages
            if len(messages) >= count or asyncio.get_running_loop().time() > deadline:
                return messages
            await asyncio.sleep(0.2)


class Stream:
    """One WebSocket to a conversation; collects message frames by sequence number."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.frames: list[dict[str, Any]] = []
        self._socket: Any = None

    async def __aenter__(self) -> Stream:
        self._socket = await websockets.connect(self.url, open_timeout=10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._socket.close()

    @property
    def messages(self) -> list[WidgetMessage]:
        return [
            WidgetMessage.model_validate(frame["message"]) for frame in self.frames if frame.get("type") == "message"
        ]

    async def receive_until(self, predicate: Any, timeout: float = 30.0) -> dict[str, Any]:
        """The first frame, already received or still to come, that satisfies `predicate`."""
        for frame in self.frames:
            if predicate(frame):
                return frame
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await self._socket.recv())
                self.frames.append(frame)
                if predicate(frame):
                    return frame  # type: ignore[no-any-return]

    async def send_message(self, text: str, client_message_id: str | None = None) -> dict[str, Any]:
        """Sends a message on the socket, as the widget does while it is open; returns the
        gateway's `accepted` or `error` frame for it."""
        tag = client_message_id or uuid.uuid4().hex
        await self._socket.send(json.dumps({"type": "message", "client_message_id": tag, "text": text}))
        return await self.receive_until(
            lambda f: f.get("type") in ("accepted", "error") and f.get("client_message_id") == tag
        )

    async def message_from(self, sender: str, timeout: float = 30.0) -> WidgetMessage:
        frame = await self.receive_until(
            lambda f: f.get("type") == "message" and f["message"]["sender"] == sender, timeout
        )
        return WidgetMessage.model_validate(frame["message"])


async def start_conversation(
    client: httpx.AsyncClient, gateway_url: str, widget_key: str, locale: str = "it"
) -> WidgetConversation:
    response = await client.post("/v1/conversations", json={"locale": locale}, headers={"X-Widget-Key": widget_key})
    response.raise_for_status()
    body = response.json()
    return WidgetConversation(client, gateway_url, body["conversation_id"], body["customer_token"])
