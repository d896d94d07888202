"""Fixtures: the demo knowledge base, a real OpenAI-compatible HTTP server, the local Redis."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.asyncio import Redis

from ai_responder.answering import KnowledgeBase, RetrievalResponder, TenantKnowledge

SERVICE_DIR = Path(__file__).resolve().parents[1]
KB_ROOT = SERVICE_DIR / "kb"
TENANT = "lucine-di-natale"


@pytest.fixture(scope="session")
def knowledge() -> KnowledgeBase:
    return KnowledgeBase.load(KB_ROOT)


@pytest.fixture(scope="session")
def tenant(knowledge: KnowledgeBase) -> TenantKnowledge:
    return knowledge.tenant(TENANT)


@pytest.fixture(scope="session")
def responder(knowledge: KnowledgeBase) -> RetrievalResponder:
    return RetrievalResponder(knowledge)


# --------------------------------------------------------------------------- fake LLM server


@dataclass
class FakeLlm:
    """Behaviour of the local OpenAI-compatible server, changeable per test."""

    base_url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    """The headers of each request, by the same index (names in lower case)."""
    delay_s: float = 0.0
    status: int = 200
    reply: Callable[[dict[str, Any]], str] = lambda body: '{"answer": "ok", "answerable": true, "confidence": 0.9}'

    def reset(self) -> None:
        self.requests.clear()
        self.headers.clear()
        self.delay_s = 0.0
        self.status = 200
        self.reply = FakeLlm().reply


def _fake_llm_app(state: FakeLlm) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> JSONResponse:
        body = await request.json()
        state.requests.append(body)
        state.headers.append(dict(request.headers))
        if state.delay_s:
            await asyncio.sleep(state.delay_s)
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


@pytest.fixture(scope="session")
def llm_server() -> Iterator[FakeLlm]:
    """A real HTTP server on a free loopback port, run by uvicorn in a thread."""
    state = FakeLlm()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(_fake_llm_app(state), log_level="warning", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("fake LLM server did not start")
        time.sleep(0.02)
    state.base_url = f"http://127.0.0.1:{port}/v1"
    yield state
    server.should_exit = True
    thread.join(timeout=5)
    sock.close()


@pytest.fixture
def fake_llm(llm_server: FakeLlm) -> Iterator[FakeLlm]:
    llm_server.reset()
    yield llm_server
    llm_server.reset()


# --------------------------------------------------------------------------- Redis


@pytest.fixture
async def redis_client() -> AsyncIterator[Redis]:
    client = Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:56379/0"))
    yield client
    await client.aclose()


@pytest.fixture
async def key_prefix(redis_client: Redis) -> AsyncIterator[str]:
    """A key prefix unique to the test; its keys are deleted afterwards."""
    prefix = f"test:ai-responder:{uuid.uuid4().hex}"
    yield prefix
    async for key in redis_client.scan_iter(match=f"{prefix}:*"):
        await redis_client.delete(key)
