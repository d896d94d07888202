"""Benchmark parameters, from BENCH_* environment variables (see README.md)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

# Every scenario, in the order they run; `BENCH_SCENARIOS` picks some (all by default).
SCENARIOS = ("turns", "capacity", "operators", "sockets")


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


@dataclass(frozen=True)
class Params:
    seconds: float  # measured window of the turns scenario
    warmup: float
    target_tps: float
    customers: int  # concurrent simulated customers (each at most one turn in flight)
    messages_over: str  # "socket": customers send on their stream, as the widget does; "http": POST
    turn_timeout: float
    sockets: int  # idle WebSockets to hold on one gateway process
    socket_step: int
    create_rate: float  # conversations created per second for the sockets scenario
    socket_deflate: bool  # offer permessage-deflate, as browsers do
    operators: int  # operators online in the operators scenario
    operator_capacity: int  # conversations each of them may hold
    handoffs: int  # handoffs in its measured window
    handoff_seconds: float  # the measured window they are spread over
    handoff_warmup: float  # handoffs at the same rate before it, not counted
    handoff_timeout: float  # seconds for an offer, and for the operator's message, to arrive
    capacity_start: float  # the capacity search's first offered rate (turns/s)
    capacity_step: float  # its rise between steps
    capacity_max: float  # the highest rate it tries
    capacity_seconds: float  # each step's measured window
    capacity_warmup: float  # each step's warm-up at its rate
    capacity_bisections: int  # steps halfway between passing and failing after the first failure
    capacity_settle: float  # pause after each step (then it waits for the services to be quiet)
    light_fraction: float  # the step below saturation, as a fraction of the capacity found
    light_seconds: float  # its measured window
    calibration_repeats: int
    scenarios: tuple[str, ...]

    @classmethod
    def from_env(cls) -> Params:
        target = _float("BENCH_TARGET_TPS", 500)
        return cls(
            seconds=_float("BENCH_SECONDS", 60),
            warmup=_float("BENCH_WARMUP", 10),
            target_tps=target,
            customers=_int("BENCH_CUSTOMERS", max(100, int(target))),
            messages_over=os.environ.get("BENCH_MESSAGES_OVER") or "socket",
            turn_timeout=_float("BENCH_TURN_TIMEOUT", 10),
            sockets=_int("BENCH_SOCKETS", 10_000),
            socket_step=_int("BENCH_SOCKET_STEP", 1000),
            create_rate=_float("BENCH_CREATE_RATE", 400),
            socket_deflate=_int("BENCH_SOCKET_DEFLATE", 1) != 0,
            operators=_int("BENCH_OPERATORS", TARGET_OPERATORS),
            operator_capacity=_int("BENCH_OPERATOR_CAPACITY", 20),
            handoffs=_int("BENCH_HANDOFFS", TARGET_HANDOFFS),
            handoff_seconds=_float("BENCH_HANDOFF_SECONDS", TARGET_HANDOFF_SECONDS),
            handoff_warmup=_float("BENCH_HANDOFF_WARMUP", 10),
            handoff_timeout=_float("BENCH_HANDOFF_TIMEOUT", 10),
            capacity_start=_float("BENCH_CAPACITY_START", 250),
            capacity_step=_float("BENCH_CAPACITY_STEP", 250),
            capacity_max=_float("BENCH_CAPACITY_MAX", 3000),
            capacity_seconds=_float("BENCH_CAPACITY_SECONDS", 15),
            capacity_warmup=_float("BENCH_CAPACITY_WARMUP", 3),
            capacity_bisections=_int("BENCH_CAPACITY_BISECT", 2),
            capacity_settle=_float("BENCH_CAPACITY_SETTLE", 2),
            light_fraction=_float("BENCH_LIGHT_FRACTION", 0.6),
            light_seconds=_float("BENCH_LIGHT_SECONDS", 20),
            calibration_repeats=_int("BENCH_CALIBRATION_REPEATS", 7),
            scenarios=tuple((os.environ.get("BENCH_SCENARIOS") or ",".join(SCENARIOS)).replace(" ", "").split(",")),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# The targets the results are judged against.
TARGET_TPS = 500.0
TARGET_SECONDS = 60.0
TARGET_P99_MS = 250.0
TARGET_SOCKETS = 10_000
TARGET_RSS_MB = 600.0
TARGET_OPERATORS = 200
TARGET_HANDOFFS = 2000
TARGET_HANDOFF_SECONDS = 60.0
TARGET_HANDOFF_P99_MS = 500.0
