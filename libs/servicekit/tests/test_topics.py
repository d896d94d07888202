"""Topic namespaces against a real Kafka: created whole, idempotently, with explicit retention, and
deleted whole."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from aiokafka.admin import NewTopic

from contracts.topics import ALL_TOPICS
from devkit.testing import Infra
from servicekit.settings import ServiceSettings
from servicekit.topics import (
    DLQ_RETENTION,
    admin_client,
    delete_topics,
    ensure_topics,
    explicit_topic_configs,
    wanted_topics,
)

DEDUP_WINDOW = timedelta(days=ServiceSettings.model_fields["processed_events_retention_days"].default)


async def topic_names(bootstrap_servers: str) -> set[str]:
    async with admin_client(bootstrap_servers, "topic-test") as admin:
        return set(await admin.list_topics())


async def configs_of(bootstrap_servers: str, names: list[str]) -> dict[str, dict[str, str]]:
    async with admin_client(bootstrap_servers, "topic-test") as admin:
        return await explicit_topic_configs(admin, names)


def longest_life(config: dict[str, str]) -> timedelta:
    """How long a record can stay in a topic: its segment is deleted once the segment's newest
    record is older than the retention, and a segment takes records for at most `segment.ms`."""
    return timedelta(milliseconds=int(config["retention.ms"]) + int(config["segment.ms"]))


def assert_retention_explicit_and_within_the_dedup_window(configs: dict[str, dict[str, str]], prefix: str) -> None:
    for topic in ALL_TOPICS:
        domain = configs[prefix + topic.name]
        assert "retention.ms" in domain, f"{topic.name} inherits the broker's retention"
        assert "segment.ms" in domain, f"{topic.name} inherits the broker's segment roll"
        assert longest_life(domain) < DEDUP_WINDOW, f"{topic.name} can redeliver records whose ids were forgotten"
        assert timedelta(milliseconds=int(configs[prefix + topic.dlq]["retention.ms"])) == DLQ_RETENTION


async def test_a_namespace_is_created_once_and_deleted_whole_leaving_the_others(infra: Infra) -> None:
    bootstrap = infra.kafka_bootstrap_servers
    prefix, neighbour = f"ns-{uuid.uuid4().hex[:8]}.", f"ns-{uuid.uuid4().hex[:8]}."
    wanted = {topic.name for topic in wanted_topics(1, prefix)}
    try:
        assert set(await ensure_topics(bootstrap, prefix=prefix)) == wanted
        assert await ensure_topics(bootstrap, prefix=prefix) == []  # already there
        await ensure_topics(bootstrap, prefix=neighbour)

        await delete_topics(bootstrap, prefix)  # returns once the broker no longer lists them

        names = await topic_names(bootstrap)
        assert not names & wanted
        assert {topic.name for topic in wanted_topics(1, neighbour)} <= names
    finally:
        await delete_topics(bootstrap, prefix)
        await delete_topics(bootstrap, neighbour)


async def test_the_default_namespace_is_never_deleted(infra: Infra) -> None:
    with pytest.raises(ValueError, match="default namespace"):
        await delete_topics(infra.kafka_bootstrap_servers, "")


async def test_the_brokers_topics_keep_records_for_less_time_than_consumers_remember_their_ids(infra: Infra) -> None:
    """The default namespace as the infrastructure set it up (`ensure_topics`, like `make infra-up`)."""
    bootstrap = infra.kafka_bootstrap_servers
    configs = await configs_of(bootstrap, [topic.name for topic in wanted_topics(1)])
    assert_retention_explicit_and_within_the_dedup_window(configs, prefix="")


async def test_topics_made_without_a_retention_get_it_and_keep_their_other_settings(infra: Infra) -> None:
    bootstrap = infra.kafka_bootstrap_servers
    prefix = f"ns-{uuid.uuid4().hex[:8]}."
    bare = [NewTopic(topic.name, topic.num_partitions, 1) for topic in wanted_topics(1, prefix)]
    tuned = prefix + ALL_TOPICS[0].name
    bare[0] = NewTopic(tuned, bare[0].num_partitions, 1, topic_configs={"max.message.bytes": "2000000"})
    try:
        async with admin_client(bootstrap, "topic-test") as admin:
            await admin.create_topics(bare)
        before = await configs_of(bootstrap, [topic.name for topic in bare])
        assert not any("retention.ms" in config for config in before.values())

        assert await ensure_topics(bootstrap, prefix=prefix) == []  # nothing created, only configured

        configs = await configs_of(bootstrap, [topic.name for topic in bare])
        assert_retention_explicit_and_within_the_dedup_window(configs, prefix)
        assert configs[tuned]["max.message.bytes"] == "2000000"
    finally:
        await delete_topics(bootstrap, prefix)
