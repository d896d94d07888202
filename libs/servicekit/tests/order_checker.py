"""Checks, as an outside reader would, that every conversation's `MessagePosted` events reached a
topic in order: run as its own process by the ordering test (test_replicas.py).

    python order_checker.py --topic TOPIC --messages N --timeout SECONDS CONVERSATION_ID...

Each conversation was sent the commands 1..N (their text is the number). The checker reads the
topic from the beginning, without a consumer group, and drops repeats of an event id (as an
idempotent consumer does). It stops once every conversation has all N, and everything published
by then has been read, or after the timeout. It then prints one JSON object: whether all arrived,
how many repeats it dropped, and for each conversation its partition and its problems (missing,
posted twice, out of order, `seq` other than the command's number), empty when it is in order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from contracts import parse_envelope

SHOWN = 12  # items listed at most per problem


@dataclass(frozen=True)
class Arrival:
    number: int | None  # the command number the text carries
    seq: int
    text: str
    published_ms: int  # the record's timestamp, set by the producer that published it


@dataclass
class ConversationLog:
    """One conversation's events in the order they were read, repeats of an event id dropped."""

    arrivals: list[Arrival] = field(default_factory=list)
    event_ids: set[str] = field(default_factory=set)
    partitions: set[int] = field(default_factory=set)
    repeats_dropped: int = 0

    def take(self, record: ConsumerRecord[Any, Any]) -> None:
        envelope = parse_envelope(record.value)
        self.partitions.add(record.partition)
        if str(envelope.event_id) in self.event_ids:
            self.repeats_dropped += 1
            return
        self.event_ids.add(str(envelope.event_id))
        text = envelope.payload.text
        number = int(text) if text.isdigit() else None
        self.arrivals.append(Arrival(number, envelope.payload.seq, text, record.timestamp))

    def complete(self, messages: int) -> bool:
        return {arrival.number for arrival in self.arrivals} >= set(range(1, messages + 1))


def ranges(numbers: Iterable[int]) -> str:
    """1, 2, 3, 7, 9, 10 -> '1-3, 7, 9-10'."""
    spans: list[list[int]] = []
    for number in sorted(numbers):
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ", ".join(str(first) if first == last else f"{first}-{last}" for first, last in spans)


def runs_in_arrival_order(numbers: list[int]) -> list[tuple[int, int, int]]:
    """Consecutive ascending runs, as (first, last, index of the first arrival)."""
    runs: list[tuple[int, int, int]] = []
    for index, number in enumerate(numbers):
        if runs and number == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], number, runs[-1][2])
        else:
            runs.append((number, number, index))
    return runs


def listed(items: list[str]) -> str:
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def problems(arrivals: list[Arrival], messages: int) -> list[str]:
    """What is wrong with one conversation's events, in words; empty when they are exactly the
    commands 1..messages, in order, each with its own number as `seq`."""
    found: list[str] = []
    if strays := [repr(a.text) for a in arrivals if a.number is None or not 1 <= a.number <= messages]:
        found.append(f"texts that are no command number: {listed(strays)}")
    numbered = [(a.number, a) for a in arrivals if a.number is not None]
    if wrong := [f"command {number} got seq {a.seq}" for number, a in numbered if a.seq != number]:
        found.append(f"seq differs from the command: {listed(wrong)}")
    order = [number for number, _ in numbered]
    counts = Counter(order)
    if repeated := [number for number, count in counts.items() if count > 1]:
        found.append(f"posted more than once (as different events): {ranges(repeated)}")
    if missing := set(range(1, messages + 1)) - counts.keys():
        found.append(f"never arrived: {ranges(missing)}")
    if any(later <= earlier for earlier, later in pairwise(order)):
        runs = runs_in_arrival_order(order)
        shown = [str(first) if first == last else f"{first}-{last}" for first, last, _ in runs]
        found.append(f"arrived out of order: {listed(shown)}")
        # How late each overtaken run was published: the delay points at what held it back.
        for first, last, index in runs:
            overtaking = next(((n, a) for n, a in numbered[:index] if n > last), None)
            if overtaking is not None:
                delay = (numbered[index][1].published_ms - overtaking[1].published_ms) / 1000
                span = str(first) if first == last else f"{first}-{last}"
                found.append(f"{span} published {delay:.1f} s after {overtaking[0]}")
    return found


async def read_until_complete(
    bootstrap_servers: str, topic: str, conversations: list[str], messages: int, timeout: float
) -> tuple[dict[str, ConversationLog], bool]:
    """The conversations' logs, and whether every one of them completed before the timeout."""
    logs = {conversation: ConversationLog() for conversation in conversations}
    reader = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await reader.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    read_up_to: dict[Any, int] | None = None  # the topic's end once all had arrived
    try:
        while loop.time() < deadline:
            for records in (await reader.getmany(timeout_ms=500)).values():
                for record in records:
                    log = logs.get(record.key.decode())
                    if log is not None:
                        log.take(record)
            if read_up_to is None and all(log.complete(messages) for log in logs.values()):
                # Whatever was published by now is read too, so a late repeat is not missed.
                read_up_to = await reader.end_offsets(list(reader.assignment()))
            if read_up_to is not None and all([await reader.position(p) >= end for p, end in read_up_to.items()]):
                return logs, True
        return logs, False
    finally:
        await reader.stop()


def report(logs: dict[str, ConversationLog], complete: bool, messages: int) -> dict[str, Any]:
    return {
        "complete": complete,
        "repeats_dropped": sum(log.repeats_dropped for log in logs.values()),
        "conversations": {
            conversation: {
                "partitions": sorted(log.partitions),
                "received": len(log.arrivals),
                "problems": problems(log.arrivals, messages),
            }
            for conversation, log in logs.items()
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topic", required=True)
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("conversations", nargs="+")
    args = parser.parse_args()
    bootstrap_servers = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    logs, complete = asyncio.run(
        read_until_complete(bootstrap_servers, args.topic, args.conversations, args.messages, args.timeout)
    )
    json.dump(report(logs, complete, args.messages), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
