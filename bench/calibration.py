"""A fixed single-core workload that looks like this code's hot paths, timed so that CPU figures
measured on different machines can be compared: CPU per turn divided by the calibration time is
(to first order) a property of the code, not of the machine.

The workload, per simulated turn: the command, the stored message and the AI reply as real
`contracts` envelopes (pydantic validation, `to_json`, and decoding as `_decode` does), the gateway's frame
as plain JSON, the text work of a retrieval answer (normalising, tokenising, counting), and a
little asyncio (a queue between tasks, as a consumer and its relay). Its size is fixed: the
time it takes is what differs between machines.

    python -m bench.calibration [--repeats N]   # prints one JSON object

`measure()` runs it in a fresh interpreter pinned to one core (when the OS allows it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
import unicodedata
import uuid
from collections import Counter
from typing import Any

from pydantic import BaseModel

from contracts.common import ConversationStatus, Sender, SmartAction, SmartActionType, Source
from contracts.envelope import Envelope, envelope_class, new_envelope
from contracts.events import AiReplyGenerated, MessagePosted, PostCustomerMessage

TURNS = 800  # simulated turns per repetition: ~0.15 s on a current server core
REPEATS = 7
TENANT = "calibration-tenant"
QUESTIONS = (
    "Quanto costa il biglietto d'ingresso per un adulto e per i bambini sotto i dieci anni?",
    "A che ora aprite il sabato sera e qual è l'ultimo ingresso consentito?",
    "Dove si parcheggia vicino all'ingresso principale? C'è una navetta dalla stazione?",
    "How much is a ticket for a family of four, and can we buy it at the gate?",
    "What time do you open on Sundays, and is the last entry one hour before closing?",
    "Is the event accessible with a wheelchair and are dogs allowed inside the park?",
)
ANSWER = (
    "Il biglietto intero costa 12 €, il ridotto 8 € (bambini dai 4 ai 10 anni); sotto i 4 anni "
    "l'ingresso è gratuito. I biglietti si acquistano online o alla cassa, fino a esaurimento posti."
)
_WORD = re.compile(r"\w+")
_FOLD = str.maketrans("àèéìòùç'’", "aeeiouc  ")
_STOP = frozenset({"il", "la", "e", "di", "per", "a", "the", "and", "is", "for", "to", "c", "un", "we"})


def _tokens(text: str) -> list[str]:
    folded = unicodedata.normalize("NFC", text).lower().translate(_FOLD)
    return [word for word in _WORD.findall(folded) if word not in _STOP and len(word) > 1]


class _Head(BaseModel):
    type: str
    version: int


def _decode(raw: bytes, model: type[Envelope[Any]]) -> Any:
    """A record decoded as the services did when this workload was fixed (JSON to a dictionary,
    its header, then the whole envelope validated): the yardstick must not move when
    `contracts.parse_envelope` gets faster."""
    data = json.loads(raw)
    _Head.model_validate(data)
    return model.model_validate(data)


def _turn(rng: random.Random, number: int) -> int:
    conversation_id = uuid.UUID(int=rng.getrandbits(128), version=4)
    question = QUESTIONS[number % len(QUESTIONS)]
    command = new_envelope(
        PostCustomerMessage(
            message_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            client_message_id=f"c-{number:08d}",
            text=question,
        ),
        tenant_id=TENANT,
        conversation_id=conversation_id,
    )
    received = _decode(command.to_json(), envelope_class(PostCustomerMessage))
    posted = new_envelope(
        MessagePosted(
            message_id=received.payload.message_id,
            seq=2 * number + 1,
            sender=Sender.CUSTOMER,
            text=received.payload.text,
            client_message_id=received.payload.client_message_id,
            status=ConversationStatus.AI,
        ),
        tenant_id=TENANT,
        conversation_id=conversation_id,
        causation=received,
    )
    question_event = _decode(posted.to_json(), envelope_class(MessagePosted))
    # Retrieval's text work: tokens of the question, scored against the answer's.
    counts = Counter(_tokens(question_event.payload.text))
    answer_tokens = Counter(_tokens(ANSWER))
    score = sum(min(n, answer_tokens[word]) for word, n in counts.items()) / (1 + sum(counts.values()))
    reply = new_envelope(
        AiReplyGenerated(
            in_reply_to=question_event.payload.message_id,
            reply_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            text=f"{ANSWER} ({len(counts)} parole chiave)",
            language="it" if number % 3 else "en",
            confidence=min(1.0, 0.5 + score),
            mode="retrieval",
            sources=[Source(article_id=f"kb-{number % 17}", title="Biglietti e prezzi", score=0.8)],
            smart_actions=[SmartAction(type=SmartActionType.REQUEST_OPERATOR, label="Parla con un operatore")],
        ),
        tenant_id=TENANT,
        conversation_id=conversation_id,
        causation=question_event,
    )
    answered = _decode(reply.to_json(), envelope_class(AiReplyGenerated))
    # The gateway's frame to the widget: a plain dict, dumped and (by the widget) read back.
    frame: dict[str, Any] = {
        "type": "message",
        "conversation_id": str(answered.conversation_id),
        "message": {
            "message_id": str(answered.payload.reply_id),
            "seq": 2 * number + 2,
            "sender": "ai",
            **answered.payload.model_dump(mode="json", include={"text", "language", "sources", "smart_actions"}),
            "created_at": answered.occurred_at.isoformat(),
        },
    }
    echoed = json.loads(json.dumps(frame, ensure_ascii=False))
    return len(echoed["message"]["text"]) + len(counts)


async def _pipeline(items: int) -> int:
    """A consumer and a relay: records through two queues between three tasks."""
    inbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=64)
    outbox: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=64)
    published: list[int] = []

    async def produce() -> None:
        for number in range(items):
            await inbox.put({"offset": number, "key": f"k{number % 32}", "value": {"n": number, "text": "x" * 40}})
        await inbox.put(None)

    async def apply() -> None:
        while (record := await inbox.get()) is not None:
            await outbox.put(json.dumps(record).encode())
            if record["offset"] % 50 == 0:
                await asyncio.sleep(0)
        await outbox.put(None)

    async def relay() -> None:
        while (data := await outbox.get()) is not None:
            published.append(len(data))

    await asyncio.gather(produce(), apply(), relay())
    return sum(published)


def workload(turns: int = TURNS) -> int:
    """One repetition of the fixed workload; returns a checksum (so nothing is optimised away)."""
    rng = random.Random(20261202)
    checksum = sum(_turn(rng, number) for number in range(turns))
    checksum += asyncio.run(_pipeline(turns * 5))
    return checksum


def pin_to_one_core() -> int | None:
    """Pins this process to one of the cores it may use (the last); None where not supported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def run(repeats: int = REPEATS, turns: int = TURNS, pin: bool = True) -> dict[str, Any]:
    """Warm-up once (first-time costs: pydantic's parametrised classes, caches), then `repeats`
    timed repetitions; the figure is the median CPU time of one repetition. CPU time rather than
    wall time: a machine shared with other jobs stretches the wall time far more."""
    core = pin_to_one_core() if pin else None
    workload(turns)
    cpu_ms: list[float] = []
    wall_ms: list[float] = []
    for _ in range(repeats):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        workload(turns)
        cpu_ms.append(1000 * (time.process_time() - cpu0))
        wall_ms.append(1000 * (time.perf_counter() - wall0))
    median = statistics.median(cpu_ms)
    return {
        "calibration_ms": round(median, 1),
        "spread_ms": {"min": round(min(cpu_ms), 1), "max": round(max(cpu_ms), 1)},
        "spread_percent": round(100 * (max(cpu_ms) - min(cpu_ms)) / median, 1) if median else None,
        "runs_cpu_ms": [round(v, 1) for v in cpu_ms],
        "wall_ms_median": round(statistics.median(wall_ms), 1),
        "repeats": repeats,
        "turns_per_repeat": turns,
        "pinned_core": core,
        "python": sys.version.split()[0],
    }


def measure(repeats: int = REPEATS) -> dict[str, Any]:
    """Runs the calibration in a fresh interpreter (nothing warmed up or imported by the caller
    counts) and returns its figures, with the machine's load average around it."""
    load_before = os.getloadavg()
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "bench.calibration", "--repeats", str(repeats)],
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, Any] = json.loads(result.stdout)
    figures["elapsed_s"] = round(time.perf_counter() - started, 2)
    figures["load_average"] = {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)}
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.calibration")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--turns", type=int, default=TURNS)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.repeats, args.turns)))


if __name__ == "__main__":
    main()
