"""Per-conversation order across replicas, against real Kafka and PostgreSQL.

Two replicas of a real service (sequencer_service.py) share a consumer group and a database.
Each command of a conversation takes the conversation's next sequence number and stages a
`MessagePosted` in the same transaction, so the commits number each conversation's events. While
commands flow, replica "a" is killed (SIGKILL) with rows it committed still unpublished in the
outbox; "b" takes its partitions over and commits newer rows of the same conversations; "a" comes
back and takes some partitions from "b" while "b" has commits of its own still unpublished. A
third process (order_checker.py) reads the output topic as an outside consumer would and checks
that every conversation's events arrived exactly once each, in commit order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import new_envelope, parse_envelope
from contracts.events import PostCustomerMessage
from contracts.topics import CONVERSATION_COMMANDS, CONVERSATION_EVENTS
from devkit.testing import Infra, topic_namespace, wait_for_group
from servicekit.db import create_engine

SEQUENCER_SERVICE = Path(__file__).with_name("sequencer_service.py")
ORDER_CHECKER = Path(__file__).with_name("order_checker.py")
RELAY_DELAY_VARIABLE = "SEQUENCER_RELAY_DELAY_SECONDS"  # read by sequencer_service.py
# This module's own namespace of topics: what the checker reads is only this test's.
PREFIX = f"sq-{uuid.uuid4().hex[:8]}."
COMMANDS = PREFIX + CONVERSATION_COMMANDS.name
EVENTS = PREFIX + CONVERSATION_EVENTS.name

CONVERSATIONS = 30
ROUND_INTERVAL = 0.2  # seconds between two rounds of commands (one per conversation)
KILL_AFTER_ROUND = 30
ROUNDS_AFTER_RETURN = 30  # sent once the killed replica is back in the group
# Seconds a slow relay pauses before each publish: its commits wait unpublished meanwhile, so a
# kill or a handover finds some.
RELAY_DELAY = 0.5
ARRIVAL_TIMEOUT = 60.0  # seconds, after the last command, for every event to reach Kafka
GROUP_TIMEOUT = 60.0  # seconds for the group to settle (a killed member leaves after its 10 s session)


@pytest.fixture(scope="module", autouse=True)
def prefixed_topics(infra: Infra) -> Iterator[None]:
    yield from topic_namespace(infra, PREFIX)


class Replicas:
    """Processes of sequencer_service.py in one group, on one database; their logs go to files."""

    def __init__(self, infra: Infra, database: str, group: str, log_dir: Path) -> None:
        self.env = {
            **os.environ,
            **infra.service_env(database),
            "KAFKA_TOPIC_PREFIX": PREFIX,
            "KAFKA_GROUP_ID": group,
            "LOG_LEVEL": "WARNING",
        }
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, relay_delay: float = 0.0) -> None:
        env = {**self.env, RELAY_DELAY_VARIABLE: str(relay_delay)}
        with (self.log_dir / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, str(SEQUENCER_SERVICE)], env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


class CommandStream:
    """Sends every conversation its commands 1, 2, 3... (the text is the number), one round every
    ROUND_INTERVAL. Each round is acknowledged before the next, so each conversation's commands
    reach Kafka in order."""

    def __init__(self, infra: Infra, tenant: str, conversations: list[uuid.UUID]) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=infra.kafka_bootstrap_servers, acks="all", enable_idempotence=True
        )
        self.tenant = tenant
        self.conversations = conversations
        self.started = 0.0
        self.rounds_sent = 0
        self.last_round: int | None = None  # unknown until `finish_after`
        self._sending: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.producer.start()
        self.started = asyncio.get_running_loop().time()

    async def send(self, rounds: int) -> None:
        """Sends rounds, at the stream's pace, until this many have been sent."""
        while self.rounds_sent < rounds:
            await self._send_next_round()

    def keep_sending(self) -> None:
        """Goes on sending in the background, until `finish_after`."""
        self._sending = asyncio.create_task(self._send_until_finished())

    async def finish_after(self, rounds: int) -> int:
        """Sends this many more rounds and stops; returns the number of the last command."""
        assert self._sending is not None
        self.last_round = self.rounds_sent + rounds
        await self._sending
        return self.last_round

    async def stop(self) -> None:
        if self._sending is not None:
            self._sending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sending
        await self.producer.stop()

    async def _send_until_finished(self) -> None:
        while self.last_round is None or self.rounds_sent < self.last_round:
            await self._send_next_round()

    async def _send_next_round(self) -> None:
        number = self.rounds_sent + 1
        sent = [
            await self.producer.send(COMMANDS, self.command(conversation, number), key=str(conversation).encode())
            for conversation in self.conversations
        ]
        await asyncio.gather(*sent)
        self.rounds_sent = number
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(self.started + number * ROUND_INTERVAL - loop.time(), 0))

    def command(self, conversation: uuid.UUID, number: int) -> bytes:
        payload = PostCustomerMessage(message_id=uuid.uuid4(), client_message_id=f"m{number}", text=str(number))
        return new_envelope(payload, tenant_id=self.tenant, conversation_id=conversation).to_json()


async def rows_left_behind(engine: AsyncEngine) -> dict[str, list[int]]:
    """The `seq`s of the outbox rows committed before now that are still there a moment later, by
    conversation: what a replica killed just now left unpublished (the survivor publishes and
    deletes its own rows well within that moment)."""
    async with engine.connect() as connection:
        killed_at: datetime = await connection.scalar(text("SELECT clock_timestamp()"))
    await asyncio.sleep(2)
    async with engine.connect() as connection:
        values = await connection.scalars(
            text("SELECT value FROM outbox WHERE created_at <= :killed_at ORDER BY id"), {"killed_at": killed_at}
        )
        left: dict[str, list[int]] = {}
        for value in values:
            envelope = parse_envelope(value)
            left.setdefault(str(envelope.conversation_id), []).append(envelope.payload.seq)
    return left


async def check_order(infra: Infra, conversations: list[uuid.UUID], messages: int) -> dict[str, Any]:
    """The order checker's report (see order_checker.py), run as a process of its own."""
    checker = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ORDER_CHECKER),
        "--topic",
        EVENTS,
        "--messages",
        str(messages),
        "--timeout",
        str(ARRIVAL_TIMEOUT),
        *(str(conversation) for conversation in conversations),
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        output, _ = await asyncio.wait_for(checker.communicate(), ARRIVAL_TIMEOUT + 30)
    finally:
        if checker.returncode is None:
            checker.kill()
            await checker.wait()
    assert checker.returncode == 0, "the order checker failed"
    report: dict[str, Any] = json.loads(output)
    return report


def describe_failures(report: dict[str, Any], left_behind: dict[str, list[int]], messages: int) -> str:
    broken = {c: found for c, found in report["conversations"].items() if found["problems"]}
    lines = [
        f"{len(broken)} of {len(report['conversations'])} conversations did not get their {messages} events"
        f" exactly once each and in commit order (after dropping {report['repeats_dropped']} repeated event ids);"
        f" the killed replica had left rows of {len(left_behind)} conversations in the outbox:"
    ]
    for conversation, found in sorted(broken.items(), key=lambda item: item[1]["partitions"]):
        left = left_behind.get(conversation)
        left_note = f"; seq {', '.join(map(str, left))} left behind by the killed replica" if left else ""
        lines.append(
            f"  {conversation} (partition {', '.join(map(str, found['partitions']))}, {found['received']} events):"
            f" {'; '.join(found['problems'])}{left_note}"
        )
    return "\n".join(lines)


async def test_each_conversation_reaches_kafka_in_commit_order_when_a_replica_dies_and_another_takes_over(
    infra: Infra, database: str, tmp_path: Path
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    group = f"sequencer-{uuid.uuid4().hex[:8]}"
    conversations = [uuid.uuid4() for _ in range(CONVERSATIONS)]
    replicas = Replicas(infra, database, group, tmp_path)
    commands = CommandStream(infra, tenant, conversations)
    engine = create_engine(infra.database_url(database))
    # Slow relays: "a" is killed, and "b" later hands partitions back, with commits unpublished.
    # The returning "a" publishes at once, so whatever it lets overtake shows.
    replicas.start("a", relay_delay=RELAY_DELAY)
    replicas.start("b", relay_delay=RELAY_DELAY)
    try:
        await wait_for_group(infra, group, members=2, timeout=GROUP_TIMEOUT)
        await commands.start()
        await commands.send(KILL_AFTER_ROUND)
        commands.keep_sending()
        replicas.kill("a")
        left_behind = await rows_left_behind(engine)
        assert left_behind, "the killed replica left nothing in the outbox: the situation under test did not arise"
        # The group drops "a" after its session timeout; "b" then holds every partition and
        # commits newer rows of the conversations "a" left rows of.
        await wait_for_group(infra, group, members=1, timeout=GROUP_TIMEOUT)
        replicas.start("a")
        await wait_for_group(infra, group, members=2, timeout=GROUP_TIMEOUT)
        messages = await commands.finish_after(ROUNDS_AFTER_RETURN)
        report = await check_order(infra, conversations, messages)
    finally:
        await commands.stop()
        replicas.stop_all()
        await engine.dispose()
    # Incomplete conversations show as broken too: their missing events are named.
    broken = [found for found in report["conversations"].values() if found["problems"]]
    assert not broken, describe_failures(report, left_behind, messages) + f"\nreplica logs: {tmp_path}"
