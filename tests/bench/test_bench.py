"""The benchmark's pure parts: the capacity search on synthetic steps, the CPU-per-turn figures,
which PostgreSQL processes count, and the calibration workload."""

from __future__ import annotations

import pytest

from bench import calibration
from bench.capacity import CapacitySearch, StepResult, step_result
from bench.harness import postgres_group
from bench.report import cpu_per_turn

LIMIT = 250.0


def step(rate: float, p99: float | None, achieved_fraction: float = 1.0, failed: int = 0) -> StepResult:
    seconds = 15.0
    started = round(rate * seconds)
    completed = round(rate * seconds * achieved_fraction) - failed
    return StepResult(rate, seconds, started, completed, failed, 0, None if p99 is None else p99 / 2, p99)


def run_search(search: CapacitySearch, p99_at: object) -> list[float]:
    """Runs the search against a synthetic system; returns the rates it tried, in order."""
    tried = []
    while (rate := search.next_rate()) is not None:
        tried.append(rate)
        search.record(p99_at(rate))  # type: ignore[operator]
        assert len(tried) < 50
    return tried


def saturating_at(knee: float) -> object:
    return lambda rate: step(rate, 80.0 if rate <= knee else 3000.0, 1.0 if rate <= knee else knee / rate)


def test_rises_until_the_first_failing_step_then_bisects_twice() -> None:
    search = CapacitySearch(start=250, step=250, maximum=3000, bisections=2, p99_limit_ms=LIMIT)
    tried = run_search(search, saturating_at(820))
    assert tried == [250, 500, 750, 1000, 875, 812]
    summary = search.summary()
    assert summary["capacity_tps"] == 812
    assert summary["bounded"] is True
    assert summary["first_failing_tps"] == 875
    assert [s["passed"] for s in summary["steps"]] == [True, True, True, False, False, True]


def test_without_bisection_the_capacity_is_the_last_passing_step() -> None:
    search = CapacitySearch(start=200, step=200, maximum=3000, bisections=0, p99_limit_ms=LIMIT)
    assert run_search(search, saturating_at(650)) == [200, 400, 600, 800]
    assert search.passed == 600


def test_a_first_step_that_fails_bisects_towards_zero() -> None:
    search = CapacitySearch(start=250, step=250, maximum=3000, bisections=2, p99_limit_ms=LIMIT)
    assert run_search(search, saturating_at(100)) == [250, 125, 62]
    assert search.summary()["capacity_tps"] == 62


def test_never_failing_stops_at_the_maximum_unbounded() -> None:
    search = CapacitySearch(start=500, step=500, maximum=2000, bisections=2, p99_limit_ms=LIMIT)
    assert run_search(search, saturating_at(10_000)) == [500, 1000, 1500, 2000]
    summary = search.summary()
    assert summary["capacity_tps"] == 2000
    assert summary["bounded"] is False
    assert summary["first_failing_tps"] is None


def test_bisection_stops_when_nothing_is_left_between() -> None:
    search = CapacitySearch(start=1, step=1, maximum=10, bisections=5, p99_limit_ms=LIMIT)
    assert run_search(search, saturating_at(3)) == [1, 2, 3, 4]


def test_a_step_fails_on_p99_on_throughput_or_on_failed_turns() -> None:
    assert step(500, 250.0).passes(LIMIT)
    assert not step(500, 251.0).passes(LIMIT)
    assert not step(500, None).passes(LIMIT)  # nothing completed
    assert not step(500, 90.0, achieved_fraction=0.9).passes(LIMIT)  # fast, but not keeping up
    assert not step(500, 90.0, failed=100).passes(LIMIT)  # 100 of 7,500 turns failed


def test_invalid_search_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="the search needs"):
        CapacitySearch(start=0, step=100, maximum=1000, bisections=1, p99_limit_ms=LIMIT)
    with pytest.raises(ValueError, match="the search needs"):
        CapacitySearch(start=500, step=100, maximum=100, bisections=1, p99_limit_ms=LIMIT)


def test_step_result_counts_the_turns_started_in_its_window() -> None:
    turns = [
        (9.0, 9.5, 9.6, "ok"),  # warm-up: not counted
        (10.0, 10.0, 10.1, "ok"),
        (10.5, 10.6, 10.8, "ok"),
        (11.0, 11.2, 21.2, "timeout"),
        (11.5, 11.5, 11.6, "http_503"),
        (12.0, 12.0, 12.05, "ok"),  # the window's end is excluded
    ]
    result = step_result(turns, shed=[10.2, 13.0], window=(10.0, 12.0), offered_tps=2)
    assert (result.started, result.completed, result.failed, result.shed) == (4, 2, 2, 1)
    assert result.achieved_tps == 1.0
    assert result.p99_ms == pytest.approx(199.0, abs=1.0)
    assert result.ticket_wait_p99_ms == pytest.approx(197.0, abs=1.0)  # waits 0, 100, 200, 0 ms


def test_cpu_per_turn_leaves_out_the_load_generator_and_normalises() -> None:
    percent = {"gateway": 50.0, "conversation": 30.0, "kafka": 20.0, "loadgen": 40.0, "machine": 180.0, "other": 40.0}
    cpu = cpu_per_turn(percent, seconds=10.0, turns=1000, calibration_ms=200.0, offered_tps=100.0)
    assert cpu["by_process_ms"] == {"gateway": 5.0, "conversation": 3.0, "kafka": 2.0}
    assert cpu["total_ms"] == 10.0
    assert cpu["loadgen_ms"] == 4.0
    assert cpu["other_ms"] == 4.0
    assert cpu["per_1000_turns_in_calibrations"] == 50.0  # 10 s of CPU for 1,000 turns = 50 x 200 ms
    assert cpu_per_turn(percent, 10.0, 0, 200.0, 100.0)["total_ms"] is None


def test_postgres_counts_this_runs_backends_and_the_shared_processes() -> None:
    ours = {"bench_conversation_0123456789ab"}
    assert postgres_group("postgres: support bench_conversation_0123456789ab 127.0.0.1(4242) idle", ours)
    assert postgres_group("postgres: autovacuum worker bench_conversation_0123456789ab", ours)
    assert postgres_group("postgres: checkpointer", ours)
    assert postgres_group("postgres: walwriter", ours)
    assert postgres_group("postgres: support test_abcdef 127.0.0.1(4243) idle", ours) is None
    assert postgres_group("postgres: support test_abcdef 127.0.0.1(4243) idle", set()) == "postgres"


def test_the_calibration_workload_runs_and_takes_a_positive_time() -> None:
    assert calibration.workload(turns=5) > 0
    figures = calibration.run(repeats=2, turns=20, pin=False)
    assert figures["calibration_ms"] > 0
    assert len(figures["runs_cpu_ms"]) == 2


def test_the_calibration_runs_in_its_own_pinned_process() -> None:
    figures = calibration.measure(repeats=1)
    assert figures["calibration_ms"] > 0
    assert figures["repeats"] == 1
