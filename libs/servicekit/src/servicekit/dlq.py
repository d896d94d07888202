"""The dead-letter queue, operable: list, show and replay dead letters.

    python -m servicekit.dlq list [--topic T] [--group G]
    python -m servicekit.dlq show --topic T.dlq --offset N
    python -m servicekit.dlq replay --topic T.dlq (--offset N | --all) [--group G]

A consumer that cannot apply a record sends it to `<topic>.dlq` (`servicekit.consumer.send_to_dlq`)
with its key and value unchanged and headers naming the error, the consumer group and where the
record was. Kafka is found through KAFKA_BOOTSTRAP_SERVERS, the namespace through
KAFKA_TOPIC_PREFIX; topics on the command line are contract names (`analytics.facts.v1.dlq`, or
`analytics.facts.v1` for its dead-letter topic), put under the prefix unless already there. The
functions below take Kafka's topic names and are what the command line calls.

What it guarantees:
- Reading joins no consumer group and commits nothing: listing and showing change nothing. It
  reads up to the end offsets seen when it starts, so it returns even while dead letters keep
  coming, and at once on an empty topic.
- A replay publishes each dead letter's key and value to its original topic, with the header
  `dlq-replay-group: <the group that dead-lettered it>`: that group applies it, the other groups
  skip it (they applied the original, or never had it). It uses an idempotent producer with
  acks=all and returns once Kafka has acknowledged every record; dead letters that cannot be
  replayed (no group or original topic in their headers) are refused before anything is sent.
- Replaying a dead letter again is harmless while its group still remembers the event id it
  applied (`processed_events_retention_days` after the first replay): it is skipped as a
  redelivery. A value that is not an event is dead-lettered again.
- Dead letters are never removed: the `.dlq` topic stays the record of what failed (for
  `servicekit.topics.DLQ_RETENTION`).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError, for_code

from contracts.topics import ALL_TOPICS
from servicekit.consumer import (
    DLQ_CONSUMER_GROUP,
    DLQ_ERROR,
    DLQ_ORIGINAL_OFFSET,
    DLQ_ORIGINAL_PARTITION,
    DLQ_ORIGINAL_TOPIC,
    DLQ_REPLAY_GROUP,
)
from servicekit.kafka import physical_topic
from servicekit.topics import admin_client

DLQ_SUFFIX = ".dlq"
READ_TIMEOUT = 30.0  # seconds to read a dead-letter topic up to its end, at most


class DeadLetterNotFound(LookupError):
    """No dead letter at that topic, partition and offset (never written, or past retention)."""


class NotReplayable(ValueError):
    """A dead letter lacks what a replay needs: its consumer group and original topic."""


@dataclass(frozen=True)
class DeadLetter:
    """One record of a dead-letter topic, with what its headers say about it."""

    topic: str
    partition: int
    offset: int
    timestamp: datetime
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]

    @property
    def consumer_group(self) -> str | None:
        return self.headers.get(DLQ_CONSUMER_GROUP)

    @property
    def error(self) -> str | None:
        return self.headers.get(DLQ_ERROR)

    @property
    def original_topic(self) -> str | None:
        return self.headers.get(DLQ_ORIGINAL_TOPIC)

    @property
    def original_partition(self) -> int | None:
        return _as_int(self.headers.get(DLQ_ORIGINAL_PARTITION))

    @property
    def original_offset(self) -> int | None:
        return _as_int(self.headers.get(DLQ_ORIGINAL_OFFSET))

    @functools.cached_property
    def document(self) -> Any:
        """The value parsed as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.value or b"")
        except ValueError:  # also UnicodeDecodeError
            return None

    @property
    def event_type(self) -> str | None:
        """The envelope's `type`, when the value is an envelope (read leniently: no validation)."""
        return _field(self.document, "type")

    @property
    def event_id(self) -> str | None:
        return _field(self.document, "event_id")


@dataclass(frozen=True)
class Replayed:
    """A dead letter published again, and where Kafka put it."""

    dead_letter: DeadLetter
    topic: str
    partition: int
    offset: int
    group: str


def _as_int(text: str | None) -> int | None:
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


def _field(document: Any, name: str) -> str | None:
    value = document.get(name) if isinstance(document, dict) else None
    return str(value) if value is not None else None


def dead_letter_topic(prefix: str, name: str) -> str:
    """The Kafka name of a dead-letter topic given by its contract name, or by the name of the
    topic it collects for; a name already under the prefix is taken as it is."""
    name = name if name.endswith(DLQ_SUFFIX) else name + DLQ_SUFFIX
    return name if prefix and name.startswith(prefix) else physical_topic(prefix, name)


async def dead_letter_topics(bootstrap_servers: str, prefix: str = "") -> list[str]:
    """The dead-letter topics of the namespace that exist on the broker."""
    async with admin_client(bootstrap_servers, "dlq-admin") as admin:
        existing = set(await admin.list_topics())
    return [name for topic in ALL_TOPICS if (name := physical_topic(prefix, topic.dlq)) in existing]


async def list_dead_letters(
    bootstrap_servers: str, topics: Sequence[str], *, group: str | None = None, timeout: float = READ_TIMEOUT
) -> list[DeadLetter]:
    """Every dead letter of these topics (of one consumer group's, if given), by topic and offset."""
    letters = await _read(bootstrap_servers, topics, timeout=timeout)
    return [letter for letter in letters if group is None or letter.consumer_group == group]


async def get_dead_letter(
    bootstrap_servers: str, topic: str, offset: int, *, partition: int = 0, timeout: float = READ_TIMEOUT
) -> DeadLetter:
    """The dead letter at this offset; raises DeadLetterNotFound."""
    letters = await _read(
        bootstrap_servers, [topic], partition=partition, first_offset=offset, limit=1, timeout=timeout
    )
    if not letters or letters[0].offset != offset:
        raise DeadLetterNotFound(f"no dead letter at offset {offset} of {topic} (partition {partition})")
    return letters[0]


async def replay(bootstrap_servers: str, dead_letters: Sequence[DeadLetter]) -> list[Replayed]:
    """Publishes each dead letter again to its original topic, same key and value, for its
    consumer group only (see the module's guarantees); returns once Kafka acknowledged them all.
    Raises NotReplayable, before sending anything, if one of them cannot be replayed."""
    targets = [_replay_target(letter) for letter in dead_letters]
    if not dead_letters:
        return []
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, client_id="dlq-replay", acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        sending = []
        for letter, (topic, group) in zip(dead_letters, targets, strict=True):
            # Headers other than the dead-letter ones travel on (a trace context, if it was kept).
            headers = [(k, v.encode()) for k, v in letter.headers.items() if not k.startswith("dlq-")]
            headers.append((DLQ_REPLAY_GROUP, group.encode()))
            sending.append(await producer.send(topic, letter.value, key=letter.key, headers=headers))
        replayed = []
        for letter, (_, group), sent in zip(dead_letters, targets, sending, strict=True):
            metadata = await sent
            replayed.append(Replayed(letter, metadata.topic, metadata.partition, metadata.offset, group))
        return replayed
    finally:
        await producer.stop()


def _replay_target(letter: DeadLetter) -> tuple[str, str]:
    """The topic a dead letter goes back to and the group it is replayed for."""
    where = f"dead letter {letter.offset} of {letter.topic}"
    if not letter.consumer_group:
        raise NotReplayable(f"{where} names no consumer group ({DLQ_CONSUMER_GROUP})")
    topic = letter.topic.removesuffix(DLQ_SUFFIX)
    if letter.original_topic != topic:
        # The dead letter's own topic says where it came from; a header naming another is not followed.
        raise NotReplayable(f"{where} names {letter.original_topic!r} as its original topic, not {topic!r}")
    return topic, letter.consumer_group


async def _read(
    bootstrap_servers: str,
    topics: Sequence[str],
    *,
    partition: int | None = None,
    first_offset: int = 0,
    limit: int | None = None,
    timeout: float,
) -> list[DeadLetter]:
    """The records of these topics (of one partition, if given) from `first_offset` (or the
    oldest kept) up to the end offsets seen at the start, or only the first `limit` of them."""
    partitions = [
        tp for tp in await _partitions(bootstrap_servers, topics) if partition is None or tp.partition == partition
    ]
    if not partitions:
        return []
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, client_id="dlq-reader", group_id=None, enable_auto_commit=False
    )
    await reader.start()
    try:
        ends = await reader.end_offsets(partitions)
        starts = await reader.beginning_offsets(partitions)
        unread = {tp: ends[tp] for tp in partitions if max(starts[tp], first_offset) < ends[tp]}
        reader.assign(list(unread))
        for tp in unread:
            reader.seek(tp, max(starts[tp], first_offset))
        letters: list[DeadLetter] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while unread and (limit is None or len(letters) < limit):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{sorted(unread)} not read to their end offsets within {timeout:.0f} s")
            fetched = await reader.getmany(*unread, timeout_ms=500)
            for tp, records in fetched.items():
                letters += [_dead_letter(record) for record in records if record.offset < unread[tp]]
            for tp in list(unread):
                if await reader.position(tp) >= unread[tp]:
                    del unread[tp]
                    reader.pause(tp)
        letters.sort(key=lambda letter: (letter.topic, letter.partition, letter.offset))
        return letters[:limit]
    finally:
        await reader.stop()


async def _partitions(bootstrap_servers: str, topics: Sequence[str]) -> list[TopicPartition]:
    """The partitions of these topics; raises DeadLetterNotFound for a topic the broker lacks.
    (Asked of the admin client: a consumer subscribed to nothing learns no topic's partitions.)"""
    if not topics:
        return []
    async with admin_client(bootstrap_servers, "dlq-admin") as admin:
        described = await admin.describe_topics(list(topics))
    partitions = []
    for topic in described:
        if topic["error_code"] == UnknownTopicOrPartitionError.errno:
            raise DeadLetterNotFound(f"no topic {topic['topic']}")
        if topic["error_code"]:
            raise for_code(topic["error_code"])(f"topic {topic['topic']} not described")
        partitions += [TopicPartition(topic["topic"], p["partition"]) for p in topic["partitions"]]
    return sorted(partitions)


def _dead_letter(record: ConsumerRecord[Any, Any]) -> DeadLetter:
    return DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp=datetime.fromtimestamp(record.timestamp / 1000, UTC),
        key=record.key,
        value=record.value,
        headers={key: (value or b"").decode(errors="replace") for key, value in record.headers or ()},
    )


# The command line: a thin layer over the functions above.


def _one_line(letter: DeadLetter, error_width: int = 100) -> str:
    if letter.document is None:
        event = "(not JSON)"
    elif letter.event_type is None:
        event = "(not an envelope)"
    else:
        event = f"{letter.event_type} {letter.event_id or '-'}"
    original = f"{letter.original_topic or '-'}/{_text(letter.original_partition)}/{_text(letter.original_offset)}"
    error = " ".join((letter.error or "-").split())
    if len(error) > error_width:
        error = error[: error_width - 1] + "…"
    return (
        f"{letter.topic}  offset={letter.offset}  group={letter.consumer_group or '-'}  "
        f"original={original}  event={event}  error={error}"
    )


def _text(value: int | None) -> str:
    return "-" if value is None else str(value)


def _in_full(letter: DeadLetter) -> str:
    key = "-" if letter.key is None else letter.key.decode(errors="replace")
    lines = [
        f"topic      {letter.topic}",
        f"partition  {letter.partition}",
        f"offset     {letter.offset}",
        f"timestamp  {letter.timestamp.isoformat()}",
        f"key        {key}",
        "headers",
        *(f"  {name}: {value}" for name, value in letter.headers.items()),
    ]
    document = letter.document
    if document is None:
        lines += ["value (not JSON)", (letter.value or b"").decode(errors="replace")]
    else:
        lines += ["value", json.dumps(document, indent=2, ensure_ascii=False)]
    return "\n".join(lines)


def _describe(replayed: Replayed) -> str:
    letter = replayed.dead_letter
    event = f"{letter.event_type} {letter.event_id}" if letter.event_type else "not an event"
    return (
        f"replayed {letter.topic} offset {letter.offset} to {replayed.topic} partition {replayed.partition} "
        f"offset {replayed.offset} for group {replayed.group} ({event})"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m servicekit.dlq", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="every dead letter, one line each")
    listing.add_argument("--topic", help="one dead-letter topic (default: every one of the namespace)")
    listing.add_argument("--group", help="only the dead letters of this consumer group")
    showing = commands.add_parser("show", help="one dead letter in full")
    showing.add_argument("--topic", required=True)
    showing.add_argument("--offset", type=int, required=True)
    replaying = commands.add_parser("replay", help="publish dead letters again to their original topic")
    replaying.add_argument("--topic", required=True)
    which = replaying.add_mutually_exclusive_group(required=True)
    which.add_argument("--offset", type=int)
    which.add_argument("--all", action="store_true", help="every dead letter of the topic")
    replaying.add_argument("--group", help="only the dead letters of this consumer group")
    return parser


async def _run(args: argparse.Namespace, bootstrap_servers: str, prefix: str) -> None:
    if args.command == "list":
        if args.topic:
            topics = [dead_letter_topic(prefix, args.topic)]
        else:
            topics = await dead_letter_topics(bootstrap_servers, prefix)
        letters = await list_dead_letters(bootstrap_servers, topics, group=args.group)
        for letter in letters:
            print(_one_line(letter))
        print(f"{len(letters)} dead letters ({len(topics)} dead-letter topics read)")
    elif args.command == "show":
        print(_in_full(await get_dead_letter(bootstrap_servers, dead_letter_topic(prefix, args.topic), args.offset)))
    else:
        topic = dead_letter_topic(prefix, args.topic)
        if args.all:
            letters = await list_dead_letters(bootstrap_servers, [topic], group=args.group)
        else:
            letters = [await get_dead_letter(bootstrap_servers, topic, args.offset)]
            if args.group and letters[0].consumer_group != args.group:
                raise NotReplayable(f"dead letter {args.offset} of {topic} is group {letters[0].consumer_group}'s")
        for replayed in await replay(bootstrap_servers, letters):
            print(_describe(replayed))
        print(f"{len(letters)} dead letters replayed")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    bootstrap_servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:59092")
    prefix = os.environ.get("KAFKA_TOPIC_PREFIX", "")
    try:
        asyncio.run(_run(args, bootstrap_servers, prefix))
    except (LookupError, ValueError, TimeoutError, KafkaError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
