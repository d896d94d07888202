"""Topic namespaces against a real Kafka: created whole, idempotently, and deleted whole."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from devkit.testing import Infra
from servicekit.topics import admin_client, delete_topics, ensure_topics, wanted_topics


async def topic_names(bootstrap_servers: str) -> set[str]:
    async with admin_client(bootstrap_servers, "topic-test") as admin:
        return set(await admin.list_topics())


async def test_a_namespace_is_created_once_and_deleted_whole_leaving_the_others(infra: Infra) -> None:
    bootstrap = infra.kafka_bootstrap_servers
    prefix, neighbour = f"ns-{uuid.uuid4().hex[:8]}.", f"ns-{uuid.uuid4().hex[:8]}."
    wanted = {topic.name for topic in wanted_topics(1, prefix)}
    try:
        assert set(await ensure_topics(bootstrap, prefix=prefix)) == wanted
        assert await ensure_topics(bootstrap, prefix=prefix) == []  # already there
        await ensure_topics(bootstrap, prefix=neighbour)

        await delete_topics(bootstrap, prefix)
        for _ in range(50):  # the broker drops deleted topics from its metadata shortly after
            names = await topic_names(bootstrap)
            if not names & wanted:
                break
            await asyncio.sleep(0.2)
        assert not names & wanted
        assert {topic.name for topic in wanted_topics(1, neighbour)} <= names
    finally:
        await delete_topics(bootstrap, prefix)
        await delete_topics(bootstrap, neighbour)


async def test_the_default_namespace_is_never_deleted(infra: Infra) -> None:
    with pytest.raises(ValueError, match="default namespace"):
        await delete_topics(infra.kafka_bootstrap_servers, "")
