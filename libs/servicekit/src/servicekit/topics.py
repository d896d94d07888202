"""Creates every topic of `contracts.topics` and its dead-letter topic, with explicit partition
counts; idempotent.  `python -m servicekit.topics` (run by `make infra-up`, compose and k8s).
Tests and the benchmark work in namespaces of their own (a topic prefix) and delete them after."""

from __future__ import annotations

import asyncio
import os
import sys

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError

from contracts.topics import ALL_TOPICS

DLQ_PARTITIONS = 1


def wanted_topics(replication_factor: int, prefix: str = "") -> list[NewTopic]:
    topics = []
    for topic in ALL_TOPICS:
        topics.append(NewTopic(prefix + topic.name, topic.partitions, replication_factor))
        topics.append(NewTopic(prefix + topic.dlq, DLQ_PARTITIONS, replication_factor))
    return topics


async def ensure_topics(
    bootstrap_servers: str, replication_factor: int = 1, prefix: str = "", timeout: float = 60
) -> list[str]:
    """Creates the missing topics; returns the names it created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="topic-setup")
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await admin.start()
            break
        except KafkaConnectionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(1)
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted_topics(replication_factor, prefix) if t.name not in existing]
        if missing:
            await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()


async def delete_topics(bootstrap_servers: str, prefix: str) -> None:
    """Deletes every topic under a namespace prefix (tests' and benchmarks'): each partition left
    behind keeps costing the broker files, memory and time in its periodic tasks."""
    if not prefix:
        raise ValueError("refusing to delete the topics of the default namespace")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="topic-cleanup")
    await admin.start()
    try:
        ours = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


def main() -> int:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:59092")
    replication = int(os.environ.get("KAFKA_REPLICATION_FACTOR", "1"))
    prefix = os.environ.get("KAFKA_TOPIC_PREFIX", "")
    created = asyncio.run(ensure_topics(bootstrap, replication, prefix))
    print(f"[topics] {len(created)} created, {len(wanted_topics(replication)) - len(created)} already there")
    return 0


if __name__ == "__main__":
    sys.exit(main())
