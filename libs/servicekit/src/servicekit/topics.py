"""Creates every topic of `contracts.topics` and its dead-letter topic, with explicit partition
counts; idempotent.  `python -m servicekit.topics` (run by `make infra-up`, compose and k8s).
Tests and the benchmark work in namespaces of their own (a topic prefix) and delete them after."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError, for_code

from contracts.topics import ALL_TOPICS

DLQ_PARTITIONS = 1


def wanted_topics(replication_factor: int, prefix: str = "") -> list[NewTopic]:
    topics = []
    for topic in ALL_TOPICS:
        topics.append(NewTopic(prefix + topic.name, topic.partitions, replication_factor))
        topics.append(NewTopic(prefix + topic.dlq, DLQ_PARTITIONS, replication_factor))
    return topics


@contextlib.asynccontextmanager
async def admin_client(
    bootstrap_servers: str, client_id: str, connect_timeout: float = 0
) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed on exit; connecting is retried for up to `connect_timeout`
    seconds (Kafka may still be starting)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id=client_id)
    deadline = asyncio.get_running_loop().time() + connect_timeout
    while True:
        try:
            await admin.start()
            break
        except KafkaConnectionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(1)
    try:
        yield admin
    finally:
        await admin.close()


async def ensure_topics(
    bootstrap_servers: str, replication_factor: int = 1, prefix: str = "", timeout: float = 60
) -> list[str]:
    """Creates the missing topics; returns the names it created."""
    async with admin_client(bootstrap_servers, "topic-setup", connect_timeout=timeout) as admin:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted_topics(replication_factor, prefix) if t.name not in existing]
        if not missing:
            return []
        # A broker that has just started may not list topics created a moment ago: those come
        # back as already existing, and are not reported as created.
        response = await admin.create_topics(missing)
        created: list[str] = []
        for topic, code, *_ in response.topic_errors:
            if code == 0:
                created.append(topic)
            elif code != TopicAlreadyExistsError.errno:
                raise for_code(code)(f"topic {topic} not created")
        return created


async def delete_topics(bootstrap_servers: str, prefix: str) -> None:
    """Deletes every topic under a namespace prefix (tests' and benchmarks'): each partition left
    behind keeps costing the broker files, memory and time in its periodic tasks."""
    if not prefix:
        raise ValueError("refusing to delete the topics of the default namespace")
    async with admin_client(bootstrap_servers, "topic-cleanup") as admin:
        ours = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if ours:
            await admin.delete_topics(ours)


def main() -> int:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:59092")
    replication = int(os.environ.get("KAFKA_REPLICATION_FACTOR", "1"))
    prefix = os.environ.get("KAFKA_TOPIC_PREFIX", "")
    created = asyncio.run(ensure_topics(bootstrap, replication, prefix))
    print(f"[topics] {len(created)} created, {len(wanted_topics(replication)) - len(created)} already there")
    return 0


if __name__ == "__main__":
    sys.exit(main())
