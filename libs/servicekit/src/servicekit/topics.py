"""Creates every topic of `contracts.topics` and its dead-letter topic, with explicit partition
counts and retention; idempotent.  `python -m servicekit.topics` (run by `make infra-up`, compose
and k8s). Tests and the benchmark work in namespaces of their own (a topic prefix) and delete them
after."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Iterable
from datetime import timedelta
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    KafkaConnectionError,
    RequestTimedOutError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
    for_code,
)

from contracts.topics import ALL_TOPICS

DLQ_PARTITIONS = 1
# How long Kafka keeps the records of a domain topic. Consumers remember the event ids they applied
# for `ServiceSettings.processed_events_retention_days` (8): a record must be gone before its id is
# forgotten, or a redelivery (a consumer restarted behind its group's offsets, a group rewound) would
# apply it again. Kafka deletes a log segment only once its newest record is older than the
# retention, so a record can outlive the retention by up to the age of its segment: segments roll
# at least every 12 hours, so a record lives at most about 7.5 days.
DOMAIN_RETENTION = timedelta(days=7)
DOMAIN_SEGMENT_ROLL = timedelta(hours=12)
# Dead letters are kept long enough to be inspected and replayed well after the fact. That is safe
# although it outlasts the dedup window: no consumer group reads a `.dlq` topic, and a replay
# (`servicekit.dlq`) is a new record in the original topic carrying `dlq-replay-group`, applied only
# by the group that dead-lettered it (which never applied it) and skipped by the others, whose
# processed ids may be long forgotten. Replaying it again is skipped by event id.
DLQ_RETENTION = timedelta(days=30)
# The configuration source Kafka reports for a value set on the topic itself (not inherited).
TOPIC_CONFIG_SOURCE = 1


def _ms(duration: timedelta) -> str:
    return str(int(duration.total_seconds() * 1000))


DOMAIN_TOPIC_CONFIGS = {"retention.ms": _ms(DOMAIN_RETENTION), "segment.ms": _ms(DOMAIN_SEGMENT_ROLL)}
DLQ_TOPIC_CONFIGS = {"retention.ms": _ms(DLQ_RETENTION)}


def wanted_topics(replication_factor: int, prefix: str = "") -> list[NewTopic]:
    topics = []
    for topic in ALL_TOPICS:
        topics.append(
            NewTopic(prefix + topic.name, topic.partitions, replication_factor, topic_configs=DOMAIN_TOPIC_CONFIGS)
        )
        topics.append(NewTopic(prefix + topic.dlq, DLQ_PARTITIONS, replication_factor, topic_configs=DLQ_TOPIC_CONFIGS))
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
    """Creates the missing topics and gives the existing ones the configuration of `wanted_topics`
    (retention, segment roll) where it differs; returns the names it created. On return the broker
    lists every topic of the namespace."""
    wanted = wanted_topics(replication_factor, prefix)
    async with admin_client(bootstrap_servers, "topic-setup", connect_timeout=timeout) as admin:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t.name not in existing]
        created: list[str] = []
        if missing:
            # A broker that has just started may not list topics created a moment ago: those come
            # back as already existing, and are not reported as created.
            response = await admin.create_topics(missing)
            for topic, code, *_ in response.topic_errors:
                if code == 0:
                    created.append(topic)
                elif code != TopicAlreadyExistsError.errno:
                    raise for_code(code)(f"topic {topic} not created")
        await _wait_until_listed(admin, {t.name for t in wanted}, timeout)
        # Topics made before their configuration was declared (or changed since) get it now.
        await _configure(admin, [t for t in wanted if t.name not in created], timeout)
        return created


async def _wait_until_listed(admin: AIOKafkaAdminClient, names: set[str], timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while unlisted := names - set(await admin.list_topics()):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"the broker does not list {len(unlisted)} created topics: {sorted(unlisted)[:5]}")
        await asyncio.sleep(0.2)


async def explicit_topic_configs(admin: AIOKafkaAdminClient, names: Iterable[str]) -> dict[str, dict[str, str]]:
    """The configuration values set on each topic itself, as the broker reports them (values a
    topic inherits from the broker's defaults are left out)."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    if not resources:
        return {}
    configs: dict[str, dict[str, str]] = {}
    for response in await admin.describe_configs(resources):
        resources_read = response.to_object()["resources"]
        _raise_resource_errors(resources_read, "configuration not read")
        for resource in resources_read:
            configs[resource["resource_name"]] = {
                entry["config_names"]: entry["config_value"]
                for entry in resource["config_entries"]
                if entry["config_source"] == TOPIC_CONFIG_SOURCE and entry["config_value"] is not None
            }
    return configs


async def _configure(admin: AIOKafkaAdminClient, topics: list[NewTopic], timeout: float) -> None:
    """Sets the wanted configuration values of existing topics where they differ, and waits until
    the broker reports them (it acknowledges a change before it applies it)."""
    deadline = asyncio.get_running_loop().time() + timeout
    current = await explicit_topic_configs(admin, [t.name for t in topics])
    changes = [
        # AlterConfigs replaces the topic's whole explicit configuration (aiokafka has no
        # incremental variant): the values set there before are sent along, so they stay.
        ConfigResource(ConfigResourceType.TOPIC, topic.name, {**current.get(topic.name, {}), **topic.topic_configs})
        for topic in _unconfigured(topics, current)
    ]
    if not changes:
        return
    for response in await admin.alter_configs(changes):
        _raise_resource_errors(response.to_object()["resources"], "configuration not changed")
    while pending := _unconfigured(topics, await explicit_topic_configs(admin, [c.name for c in changes])):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"the broker does not report the configuration of {[t.name for t in pending][:5]}")
        await asyncio.sleep(0.2)


def _unconfigured(topics: list[NewTopic], current: dict[str, dict[str, str]]) -> list[NewTopic]:
    return [
        topic
        for topic in topics
        if topic.name in current
        and any(current[topic.name].get(key) != value for key, value in topic.topic_configs.items())
    ]


def _raise_resource_errors(resources: list[dict[str, Any]], what: str) -> None:
    for resource in resources:
        if resource["error_code"]:
            raise for_code(resource["error_code"])(f"{resource['resource_name']}: {what}")


async def delete_topics(bootstrap_servers: str, prefix: str, timeout: float = 60) -> None:
    """Deletes every topic under a namespace prefix (tests' and benchmarks'): each partition left
    behind keeps costing the broker files, memory and time in its periodic tasks. Returns once the
    broker no longer lists any of them; raises TimeoutError if it still does after `timeout`
    seconds."""
    if not prefix:
        raise ValueError("refusing to delete the topics of the default namespace")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_request = float("-inf")
    async with admin_client(bootstrap_servers, "topic-cleanup") as admin:
        while ours := [name for name in await admin.list_topics() if name.startswith(prefix)]:
            if loop.time() > deadline:
                raise TimeoutError(f"{len(ours)} topics under {prefix!r} still listed after {timeout:.0f} s")
            # A request the broker timed out on, or a topic created a moment ago that it did not
            # know yet, leaves topics behind: those still listed a while later are asked for again.
            if loop.time() - last_request > 5:
                last_request = loop.time()
                response = await admin.delete_topics(ours)
                for result in response.to_object()["topic_error_codes"]:
                    code = result["error_code"]
                    if code not in (0, UnknownTopicOrPartitionError.errno, RequestTimedOutError.errno):
                        raise for_code(code)(f"topic {result['topic']} not deleted")
            await asyncio.sleep(0.2)


def main() -> int:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:59092")
    replication = int(os.environ.get("KAFKA_REPLICATION_FACTOR", "1"))
    prefix = os.environ.get("KAFKA_TOPIC_PREFIX", "")
    created = asyncio.run(ensure_topics(bootstrap, replication, prefix))
    print(f"[topics] {len(created)} created, {len(wanted_topics(replication)) - len(created)} already there")
    return 0


if __name__ == "__main__":
    sys.exit(main())
