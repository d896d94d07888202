"""Fixtures: the demo knowledge base, a real OpenAI-compatible HTTP server, the local Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from ai_responder.answering import KnowledgeBase, RetrievalResponder, TenantKnowledge
from devkit.fake_llm import FakeLlm, fake_llm_server

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


@pytest.fixture(scope="session")
def llm_server() -> Iterator[FakeLlm]:
    """A real OpenAI-compatible HTTP server on a free loopback port (devkit.fake_llm)."""
    with fake_llm_server() as state:
        yield state


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
