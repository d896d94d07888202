"""The fixed cost of one consumer batch: `python -m bench.batch_cost` (`make bench-batch`).

Below saturation every event is a batch of its own in every consumer that reads it, so what one
batch costs, whatever it holds, sets the CPU of a turn or a handoff at low rates (see README.md).
This measures it apart from the rest of the system: a minimal real service built on servicekit
(the ordering test's `sequencer_service.py`: its one handler takes the conversation's next number
in one statement and stages one event, in the consumer's transaction, with the claim of the event
id and the outbox row) is fed `BENCH_BATCH_RATE` commands a second (default 50, each to a
conversation of its own, far enough apart that each is a batch of one) for `BENCH_BATCH_SECONDS`
(default 20). Reported: CPU ms per batch above each process's idle CPU (measured for 5 s before) of
the service, of PostgreSQL (its database's backends and the server's shared processes), of Kafka
(the whole broker: keep the machine otherwise quiet) and in total, normalised by the machine's
calibration (`bench/calibration.py`); the feeder's own CPU apart. About a minute. Written to
`bench/results/batch-cost.json`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from bench import calibration
from bench.harness import CpuSampler, infra_up, log
from contracts import new_envelope
from contracts.events import PostCustomerMessage
from contracts.topics import CONVERSATION_COMMANDS, CONVERSATION_EVENTS
from devkit.testing import Infra, create_database, drop_database, topic_end_offsets, wait_for_group
from servicekit.topics import delete_topics, ensure_topics

REPO = Path(__file__).resolve().parent.parent
SERVICE = REPO / "libs" / "servicekit" / "tests" / "sequencer_service.py"
RESULT = REPO / "bench" / "results" / "batch-cost.json"
TENANT = "bench-batch"
WARMUP_COMMANDS = 100
SETTLE_SECONDS = 3.0  # after the warm-up and after the last command: the batches under way finish
IDLE_SECONDS = 5.0  # measured before the commands: each process's idle CPU, left out of the figures


class Feeder:
    """Sends commands, each to a new conversation, each acknowledged before the next."""

    def __init__(self, infra: Infra, topic: str) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=infra.kafka_bootstrap_servers, acks="all", enable_idempotence=True
        )
        self.topic = topic

    async def send(self) -> None:
        command = PostCustomerMessage(message_id=uuid.uuid4(), text="ciao", client_message_id=str(uuid.uuid4()))
        envelope = new_envelope(command, tenant_id=TENANT, conversation_id=uuid.uuid4())
        await self.producer.send_and_wait(self.topic, envelope.to_json(), key=envelope.key)

    async def at_rate(self, rate: float, count: int) -> None:
        start = time.monotonic()
        for number in range(count):
            await asyncio.sleep(max(0.0, start + number / rate - time.monotonic()))
            await self.send()


async def measure(infra: Infra, rate: float, seconds: float, calibration_ms: float) -> dict[str, Any]:
    prefix = f"batch-{uuid.uuid4().hex[:8]}."
    group = f"batch-cost-{uuid.uuid4().hex[:8]}"
    database = await create_database(infra, "bench_batch")
    await ensure_topics(infra.kafka_bootstrap_servers, prefix=prefix)
    env = {
        **os.environ,
        **infra.service_env(database),
        "KAFKA_TOPIC_PREFIX": prefix,
        "KAFKA_GROUP_ID": group,
        "LOG_LEVEL": "WARNING",
    }
    service = await asyncio.create_subprocess_exec(sys.executable, str(SERVICE), env=env, cwd=REPO)
    feeder = Feeder(infra, prefix + CONVERSATION_COMMANDS.name)
    try:
        await wait_for_group(infra, group, members=1)
        await feeder.producer.start()
        await feeder.at_rate(rate, WARMUP_COMMANDS)  # first-time costs: prepared statements, caches
        await asyncio.sleep(SETTLE_SECONDS)
        count = round(rate * seconds)
        with CpuSampler({service.pid: "service", os.getpid(): "feeder"}, databases={database}) as sampler:
            idle_start = time.time()
            await asyncio.sleep(IDLE_SECONDS)
            idle_end = start = time.time()
            await feeder.at_rate(rate, count)
            await asyncio.sleep(SETTLE_SECONDS)
            end = time.time()
            await asyncio.sleep(1.5)  # a sample after the last batch
        if service.returncode is not None:
            raise RuntimeError(f"the service exited with {service.returncode}")
        published = sum((await topic_end_offsets(infra, prefix + CONVERSATION_EVENTS.name)).values())
        if published != WARMUP_COMMANDS + count:  # a figure for batches not all applied would mislead
            raise RuntimeError(f"{published} events for {WARMUP_COMMANDS + count} commands")
    finally:
        await feeder.producer.stop()
        if service.returncode is None:
            service.terminate()
            await asyncio.wait_for(service.wait(), 30)
        await drop_database(infra, database)
        await delete_topics(infra.kafka_bootstrap_servers, prefix)
    idle = sampler.percent(idle_start, idle_end)
    busy = sampler.percent(start, end)
    window = end - start
    # What each process used above its idle share (Kafka's own housekeeping is about a tenth of a
    # core, as much as a batch costs it at 50/s), over the window, per batch: % of a core -> ms.
    per_batch = {
        group: round(10 * max(busy.get(group, 0.0) - idle.get(group, 0.0), 0.0) * window / count, 3)
        for group in ("service", "postgres", "kafka", "feeder")
    }
    total = round(per_batch["service"] + per_batch["postgres"] + per_batch["kafka"], 3)
    return {
        "rate": rate,
        "batches": count,
        "window_s": round(window, 2),
        "idle_percent": {group: idle.get(group, 0.0) for group in ("service", "postgres", "kafka", "other")},
        "other_percent": busy.get("other", 0.0),
        "cpu_ms_per_batch": per_batch,
        "total_ms": total,
        "per_1000_batches_in_calibrations": round(1000 * total / calibration_ms, 2),
    }


def main() -> int:
    rate = float(os.environ.get("BENCH_BATCH_RATE", "50"))
    seconds = float(os.environ.get("BENCH_BATCH_SECONDS", "20"))
    calib = calibration.measure()
    log(f"calibration: {calib['calibration_ms']} ms (spread {calib['spread_percent']}%)")
    infra, _ = infra_up()
    figures = asyncio.run(measure(infra, rate, seconds, calib["calibration_ms"]))
    result = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "calibration": calib, **figures}
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2))
    log(
        f"{figures['batches']} batches of one at {rate:g}/s: CPU ms per batch {figures['cpu_ms_per_batch']}; "
        f"service + PostgreSQL + Kafka {figures['total_ms']} ms "
        f"({figures['per_1000_batches_in_calibrations']} calibrations per 1,000 batches); wrote {RESULT}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
