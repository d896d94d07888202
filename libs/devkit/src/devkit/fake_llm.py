"""A real OpenAI-compatible HTTP server on loopback whose answers, delay and failures a test
decides: the ai-responder's LLM mode is tested against it (its unit tests, and the end-to-end
tests that start the ai-responder with `LLM_BASE_URL` pointing here)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def _default_reply(body: dict[str, Any]) -> str:
    return '{"answer": "ok", "answerable": true, "confidence": 0.9}'


@dataclass
class FakeLlm:
    """Behaviour of the server, changeable while it runs."""

    base_url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    """The headers of each request, by the same index (names in lower case)."""
    answered: int = 0
    """Completions sent back so far (a request still waiting on `delay_s` is not counted)."""
    delay_s: float = 0.0
    status: int = 200
    reply: Callable[[dict[str, Any]], str] = _default_reply

    def reset(self) -> None:
        self.requests.clear()
        self.headers.clear()
        self.answered = 0
        self.delay_s = 0.0
        self.status = 200
        self.reply = _default_reply


def _app(state: FakeLlm) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> JSONResponse:
        body = await request.json()
        state.requests.append(body)
        state.headers.append(dict(request.headers))
        if state.delay_s:
            await asyncio.sleep(state.delay_s)
        state.answered += 1
        if state.status != 200:
            error = {"error": {"message": "boom", "type": "server_error", "code": None}}
            return JSONResponse(error, status_code=state.status)
        return JSONResponse(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": state.reply(body)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
            }
        )

    return app


@contextmanager
def fake_llm_server() -> Iterator[FakeLlm]:
    """The server on a free loopback port, run by uvicorn in a thread; `base_url` ends in `/v1`."""
    state = FakeLlm()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(_app(state), log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake LLM server did not start")
            time.sleep(0.02)
        state.base_url = f"http://127.0.0.1:{port}/v1"
        yield state
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()
