"""The capacity search: the highest offered rate of customer turns whose p99 stays within the
target, found with short steps of rising offered rate, stopping at the first failing step, then
bisecting between the last passing and the first failing rate. Pure logic (the load generator
runs the steps), so that it can be tested on synthetic step results."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

# A step passes when its p99 is within the limit, it completed nearly all it was offered and
# almost no turn failed: a system that drops or sheds turns is not keeping up, whatever its p99.
MIN_ACHIEVED_FRACTION = 0.95
MAX_FAILED_FRACTION = 0.01


@dataclass(frozen=True)
class StepResult:
    offered_tps: float
    seconds: float
    started: int
    completed: int
    failed: int  # errors and timeouts among the turns started in the window
    shed: int
    p50_ms: float | None
    p99_ms: float | None
    ticket_wait_p99_ms: float | None = None

    @property
    def achieved_tps(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    def passes(self, p99_limit_ms: float) -> bool:
        return (
            self.p99_ms is not None
            and self.p99_ms <= p99_limit_ms
            and self.achieved_tps >= MIN_ACHIEVED_FRACTION * self.offered_tps
            and self.failed <= MAX_FAILED_FRACTION * max(self.started, 1)
        )

    def as_dict(self, p99_limit_ms: float) -> dict[str, Any]:
        return {**asdict(self), "achieved_tps": round(self.achieved_tps, 1), "passed": self.passes(p99_limit_ms)}


def step_result(
    turns: list[tuple[float, float, float, str]], shed: list[float], window: tuple[float, float], offered_tps: float
) -> StepResult:
    """A step's figures from the generator's observations (scheduled, started, finished, outcome),
    for the turns whose POST started within `window`."""
    w0, w1 = window
    inside = [t for t in turns if w0 <= t[1] < w1]
    latencies = [1000 * (finished - started) for _, started, finished, outcome in inside if outcome == "ok"]
    waits = [1000 * (started - scheduled) for scheduled, started, _, _ in inside]

    def pct(values: list[float], q: float) -> float | None:
        return round(float(np.percentile(values, q)), 1) if values else None

    return StepResult(
        offered_tps=offered_tps,
        seconds=w1 - w0,
        started=len(inside),
        completed=len(latencies),
        failed=len(inside) - len(latencies),
        shed=sum(1 for s in shed if w0 <= s < w1),
        p50_ms=pct(latencies, 50),
        p99_ms=pct(latencies, 99),
        ticket_wait_p99_ms=pct(waits, 99),
    )


@dataclass
class CapacitySearch:
    """Offered rates `start`, `start + step`, ... up to `maximum`, until one fails; then
    `bisections` steps halfway between the highest passing and the lowest failing rate. The
    capacity is the highest passing rate (0 when none passed); `bounded` says whether a failing
    step was found at all (if not, the capacity is at least `maximum`)."""

    start: float
    step: float
    maximum: float
    bisections: int
    p99_limit_ms: float
    results: list[StepResult] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.start <= 0 or self.step <= 0 or self.maximum < self.start or self.bisections < 0:
            raise ValueError("the search needs 0 < start <= maximum, step > 0 and bisections >= 0")

    @property
    def passed(self) -> float:
        return max((r.offered_tps for r in self.results if r.passes(self.p99_limit_ms)), default=0.0)

    @property
    def failed(self) -> float | None:
        return min((r.offered_tps for r in self.results if not r.passes(self.p99_limit_ms)), default=None)

    def next_rate(self) -> float | None:
        """The next offered rate to try, or None when the search is over."""
        if not self.results:
            return self.start
        failed = self.failed
        if failed is None:  # still rising
            rate = self.results[-1].offered_tps + self.step
            return rate if rate <= self.maximum else None
        ramp = 0
        for result in self.results:  # the rising steps, up to and including the first failure
            ramp += 1
            if not result.passes(self.p99_limit_ms):
                break
        if len(self.results) - ramp >= self.bisections:
            return None
        middle = round((self.passed + failed) / 2)
        if middle <= self.passed or middle >= failed:  # nothing left between them
            return None
        return float(middle)

    def record(self, result: StepResult) -> None:
        self.results.append(result)

    def summary(self) -> dict[str, Any]:
        return {
            "capacity_tps": self.passed,
            "bounded": self.failed is not None,
            "first_failing_tps": self.failed,
            "p99_limit_ms": self.p99_limit_ms,
            "steps": [r.as_dict(self.p99_limit_ms) for r in self.results],
        }
