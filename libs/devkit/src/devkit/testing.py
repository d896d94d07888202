"""pytest fixtures for tests that need real infrastructure or a real browser (registered by the root
conftest.py).

Endpoints come from env vars when given (KAFKA_BOOTSTRAP_SERVERS, POSTGRES_HOST...); else from
testcontainers when a Docker engine answers; else from the repository's local infrastructure
(`infra/localinfra.py up`), which is started if it is not running. Nothing is ever skipped for
missing infrastructure: it is started, or the test fails saying why.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts import Envelope, Payload, parse_envelope, utc_now
from contracts.common import FactName
from contracts.events import AnalyticsFact
from devkit.stack import Stack, free_port
from servicekit.consumer import Delivery, EventConsumer
from servicekit.db import OutboxRecord, Timer
from servicekit.kafka import create_broker
from servicekit.timers import TimerFirer
from servicekit.topics import admin_client, delete_topics, ensure_topics

if TYPE_CHECKING:
    from playwright.async_api import Browser

REPO = Path(__file__).resolve().parents[4]


@dataclass(frozen=True)
class Infra:
    kafka_bootstrap_servers: str
    postgres_host: str
    postgres_port: int
    postgres_user: str
    postgres_password: str
    redis_url: str

    @classmethod
    def from_endpoints(cls, env: Mapping[str, str]) -> Infra:
        """From the variables `infra/localinfra.py env` prints (the names services read too)."""
        return cls(
            kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
            postgres_host=env["POSTGRES_HOST"],
            postgres_port=int(env["POSTGRES_PORT"]),
            postgres_user=env["POSTGRES_USER"],
            postgres_password=env["POSTGRES_PASSWORD"],
            redis_url=env["REDIS_URL"],
        )

    def database_url(self, database: str, driver: str = "postgresql+asyncpg") -> str:
        return (
            f"{driver}://{self.postgres_user}:{self.postgres_password}"
            f"@{self.postgres_host}:{self.postgres_port}/{database}"
        )

    def service_env(self, database: str) -> dict[str, str]:
        """Environment for running a service process against this infrastructure."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "POSTGRES_HOST": self.postgres_host,
            "POSTGRES_PORT": str(self.postgres_port),
            "POSTGRES_USER": self.postgres_user,
            "POSTGRES_PASSWORD": self.postgres_password,
            "POSTGRES_DB": database,
            "REDIS_URL": self.redis_url,
            "ENVIRONMENT": "test",
        }


def _from_env() -> Infra | None:
    if "KAFKA_BOOTSTRAP_SERVERS" not in os.environ:
        return None
    return Infra(
        kafka_bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
        postgres_host=os.environ.get("POSTGRES_HOST", "127.0.0.1"),
        postgres_port=int(os.environ.get("POSTGRES_PORT", "5432")),
        postgres_user=os.environ.get("POSTGRES_USER", "postgres"),
        postgres_password=os.environ.get("POSTGRES_PASSWORD", "postgres"),
        redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    )


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


def _from_containers(stack: list[object]) -> Infra:
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.community.redis import RedisContainer

    # The testcontainers Kafka module waits for Confluent's start-up log line, so it gets that image.
    kafka = KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft()
    postgres = PostgresContainer("postgres:16", username="support", password="support", dbname="postgres")
    redis = RedisContainer("redis:7")
    for container in (kafka, postgres, redis):
        container.start()
        stack.append(container)
    return Infra(
        kafka_bootstrap_servers=kafka.get_bootstrap_server(),
        postgres_host=postgres.get_container_host_ip(),
        postgres_port=int(postgres.get_exposed_port(5432)),
        postgres_user="support",
        postgres_password="support",
        redis_url=f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0",
    )


def _from_local_processes() -> Infra:
    result = subprocess.run(
        [sys.executable, str(REPO / "infra" / "localinfra.py"), "up"], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.fail(f"could not start the local infrastructure:\n{result.stdout}\n{result.stderr}", pytrace=False)
    env = dict(
        line.removeprefix("export ").split("=", 1)
        for line in subprocess.run(
            [sys.executable, str(REPO / "infra" / "localinfra.py"), "env"], capture_output=True, text=True, check=True
        ).stdout.splitlines()
    )
    return Infra.from_endpoints(env)


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    containers: list[object] = []
    found = _from_env() or (_from_containers(containers) if _docker_available() else _from_local_processes())
    asyncio.run(ensure_topics(found.kafka_bootstrap_servers))
    yield found
    for container in containers:
        container.stop()  # type: ignore[attr-defined]


async def create_database(infra: Infra, prefix: str = "test") -> str:
    """A new, empty database with a unique name; the caller drops it with `drop_database`."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(infra.database_url("postgres", driver="postgresql"))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return name


async def drop_database(infra: Infra, name: str) -> None:
    connection = await asyncpg.connect(infra.database_url("postgres", driver="postgresql"))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture
async def database(infra: Infra) -> AsyncIterator[str]:
    """A fresh database for one test, dropped afterwards."""
    name = await create_database(infra)
    yield name
    await drop_database(infra, name)


# Debian's Chromium in a container or CI runner: no sandbox (root), no GPU, nothing fetched on its
# own (updates, safe browsing) while a test measures the page.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-gpu"]


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium driven by Playwright, one per test module (each test opens its own
    context). Never skipped: `make test` installs it, and a missing browser fails loudly."""
    from playwright.async_api import async_playwright  # only for the tests that open a browser

    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is required: `make test` installs it (infra/localinfra.py browser)"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def topic_end_offsets(infra: Infra, topic: str) -> dict[TopicPartition, int]:
    """The end offset of every partition of `topic`, asked of the broker (the admin client knows
    the partitions; a consumer subscribed to nothing does not)."""
    async with admin_client(infra.kafka_bootstrap_servers, "end-offsets-probe") as admin:
        (description,) = await admin.describe_topics([topic])
    partitions = [TopicPartition(topic, p["partition"]) for p in description["partitions"]]
    assert partitions, f"topic {topic} has no partitions"
    probe = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap_servers)
    await probe.start()
    try:
        ends: dict[TopicPartition, int] = await probe.end_offsets(partitions)
    finally:
        await probe.stop()
    return ends


async def wait_until_caught_up(infra: Infra, group_id: str, topic: str, timeout: float = 30.0) -> None:
    """Waits until `group_id` has committed offsets at the end of every partition of `topic`."""
    ends = await topic_end_offsets(infra, topic)
    async with admin_client(infra.kafka_bootstrap_servers, "caught-up-probe") as admin:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            committed = await admin.list_consumer_group_offsets(group_id, partitions=list(ends))
            behind = {
                tp: end for tp, end in ends.items() if (committed.get(tp) and committed[tp].offset) != end and end
            }
            if not behind:
                return
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"consumer group {group_id} still behind on {behind}")
            await asyncio.sleep(0.2)


async def wait_for_group(infra: Infra, group: str, members: int, timeout: float = 60.0) -> None:
    """Until the consumer group has settled with this many members, each holding its partitions."""
    async with admin_client(infra.kafka_bootstrap_servers, "group-probe") as admin:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            [response] = await admin.describe_consumer_groups([group])
            [description] = response.to_object()["groups"]
            if description["state"] == "Stable" and len(description["members"]) == members:
                return
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"group {group} did not settle with {members} members: {description['state']}")
            await asyncio.sleep(0.2)


async def eventually(check: Callable[[], object], timeout: float = 60.0, what: str = "condition") -> None:
    """Waits until `check()` (a value or an awaitable) is truthy, polling every 0.2 s; fails the
    test saying `what` after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def topic_namespace(infra: Infra, prefix: str) -> Iterator[None]:
    """The body of a module's topics fixture: every topic under `prefix` while its tests run, all
    deleted afterwards (each partition left behind keeps costing the broker).

        @pytest.fixture(scope="module", autouse=True)
        def prefixed_topics(infra: Infra) -> Iterator[None]:
            yield from topic_namespace(infra, PREFIX)
    """
    asyncio.run(ensure_topics(infra.kafka_bootstrap_servers, prefix=prefix))
    yield
    asyncio.run(delete_topics(infra.kafka_bootstrap_servers, prefix))


class ServiceProcess:
    """One service as a real child process for the chaos tests, through `devkit.stack.Stack`:
    started and awaited until `/readyz` answers, SIGKILLed, started again with the same settings
    (its own port, database, topic prefix and consumer group), and stopped at the end. Its output
    goes to `<log_dir>/<name>.log`.

        routing = ServiceProcess("routing", infra, database, tmp_path, prefix, {"OFFER_TIMEOUT_SECONDS": "8"})
        await routing.start()
        routing.kill()
        await routing.start()
        ...
        routing.stop()
    """

    def __init__(
        self,
        name: str,
        infra: Infra,
        database: str,
        log_dir: Path,
        topic_prefix: str,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        base_env = {
            **infra.service_env(database),
            "KAFKA_TOPIC_PREFIX": topic_prefix,
            "KAFKA_GROUP_ID": f"{name}-{uuid.uuid4().hex[:8]}",
            **(env or {}),
        }
        self.stack = Stack(base_env=base_env, ports={name: free_port()}, databases={name: database}, log_dir=log_dir)
        self.log = log_dir / f"{name}.log"

    @property
    def port(self) -> int:
        return self.stack.ports[self.name]

    @property
    def url(self) -> str:
        return self.stack.url(self.name)

    async def start(self) -> None:
        """Starts the process and returns once it is ready (fails if it exits or is not ready in 90 s)."""
        self.stack.start(self.name, wait=False)
        # In a thread: the test's own servers (receivers, sinks) may share this event loop.
        await asyncio.to_thread(self.stack.wait_ready, self.name)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.stack.kill(self.name)

    def stop(self) -> None:
        """SIGTERM, if it still runs (the end of a test)."""
        self.stack.stop_all()


class ConsumerHarness:
    """A service's handlers on its real `EventConsumer`, applied without Kafka: each `apply` is
    one consumer transaction (event ids claimed, the batch steps, the handlers, the outbox), as a
    fetched batch would be. What the handlers emit is read back from the outbox; a durable timer
    is fired by the real `TimerFirer` once made due. A service's tests register its handlers on
    `consumer` (`handlers.register(harness.consumer, settings)`)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        # Never started: nothing here reaches Kafka (a dead letter would fail the test loudly).
        self.consumer = EventConsumer(
            create_broker("127.0.0.1:9", "harness"), sessions, group_id="harness", bootstrap_servers="127.0.0.1:9"
        )

    async def apply(self, *envelopes: Envelope[Any]) -> None:
        """One batch, in this order, in one transaction."""
        deliveries = [Delivery(_record_of(e), e, self.consumer.handlers[e.type]) for e in envelopes]
        await self.consumer.apply(deliveries)

    async def emitted(self, payload_cls: type[Payload] = Payload) -> list[Envelope[Any]]:
        """Everything in the outbox of this type, in commit order."""
        async with self.sessions() as session:
            rows = await session.scalars(select(OutboxRecord.value).order_by(OutboxRecord.id))
        return [e for e in map(parse_envelope, rows) if isinstance(e.payload, payload_cls)]

    async def fire_timer(self, name: str) -> list[Envelope[Any]]:
        """Makes the timer `name` due now, fires it into the outbox, and returns what it delivered."""
        async with self.sessions() as session, session.begin():
            moved = await session.execute(update(Timer).where(Timer.name == name).values(due_at=utc_now()))
        assert getattr(moved, "rowcount", 0) == 1, f"no timer {name}"
        before = {e.event_id for e in await self.emitted()}
        await TimerFirer(self.sessions).fire_due()
        return [e for e in await self.emitted() if e.event_id not in before]


def probe_fact(
    label: str, source_event_id: uuid.UUID | None = None, *, index: int | None = None, padded: bool = False
) -> AnalyticsFact:
    """A valid fact for tests of the platform itself (outbox, consumer, dead letters, timers), which
    carry it through as an opaque event: `label` (lowercase letters and `_`) travels as its
    `reason_code`, `index` (from 1) as its `seq`; `padded` fills its id fields to their bounds
    (about 380 bytes more on the wire)."""
    now = utc_now()
    padding = "p" * 100 if padded else None
    return AnalyticsFact(
        fact_id=uuid.uuid4(),
        name=FactName.STATUS_CHANGED,
        tenant_id="platform-probe",
        occurred_at=now,
        processed_at=now,
        source_event_id=source_event_id or uuid.uuid4(),
        source_event_type="platform.probe" + ("_" * 65 if padded else ""),
        reason_code=label,
        seq=index,
        operator_id=padding,
        previous_operator_id=padding,
        assignee_id=padding,
        ticket_number="PROBE-2026-0000000001" if padded else None,
    )


def _record_of(envelope: Envelope[Any]) -> ConsumerRecord[bytes, bytes]:
    value = envelope.to_json()
    return ConsumerRecord(
        topic=envelope.payload.topic,
        partition=0,
        offset=0,
        timestamp=0,
        timestamp_type=0,
        key=envelope.key,
        value=value,
        checksum=None,
        serialized_key_size=len(envelope.key),
        serialized_value_size=len(value),
        headers=(),
    )
