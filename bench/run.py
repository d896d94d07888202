"""The benchmark's supervisor: stack up, scenarios in a separate load-generator process, report."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench import calibration, report
from bench.harness import (
    CpuSampler,
    OperatorSeed,
    fd_limit,
    load_operator_seed,
    log,
    raise_fd_limit,
    rss_mb,
    running_stack,
    write_operator_seed,
)
from bench.params import SCENARIOS, TARGET_P99_MS, Params
from devkit.stack import REPO, SERVICES, Stack

RESULTS = REPO / "bench" / "results"


def run_loadgen(args: list[str], out: Path, sampler: CpuSampler, timeout: float) -> dict[str, Any]:
    out.unlink(missing_ok=True)
    process = subprocess.Popen([sys.executable, "-m", "bench.loadgen", *args, "--out", str(out)], cwd=REPO)
    sampler.add(process.pid, "loadgen")
    try:
        code = process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if code != 0:
        raise RuntimeError(f"the load generator exited with {code}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def check_alive(stack: Stack) -> None:
    dead = {name: p.returncode for name, p in stack.processes.items() if p.poll() is not None}
    if dead:
        raise RuntimeError(f"services died during the run: {dead}; see {stack.log_dir}")


def turns_scenario(
    stack: Stack, params: Params, sampler: CpuSampler, calibration_ms: float | None, idle: dict[str, float]
) -> tuple[dict[str, Any], dict[str, Any]]:
    log(f"turns: {params.target_tps:.0f}/s offered, {params.customers} customers, {params.warmup:.0f}s warm-up")
    args = ["turns", "--gateway", stack.url("gateway"), "--tps", str(params.target_tps)]
    args += ["--seconds", str(params.seconds), "--warmup", str(params.warmup)]
    args += ["--customers", str(params.customers), "--timeout", str(params.turn_timeout)]
    args += ["--messages-over", params.messages_over]
    # Then it waits (up to 300 s) for the services to be as quiet as when idle, plus a tenth of a core.
    services = {name: p.pid for name, p in stack.processes.items()}
    idle_percent = sum(idle.get(name, 0) for name in services)
    args += ["--quiet-pids", ",".join(map(str, services.values())), "--quiet-percent", str(idle_percent + 10)]
    args += ["--quiet-timeout", "300"]
    raw = run_loadgen(args, RESULTS / "raw-turns.json", sampler, params.warmup + params.seconds + 900)
    check_alive(stack)
    figures = report.turns_figures(raw, params.target_tps)
    origin = raw["origin_wall"] + raw["window"][0]
    figures["cpu_percent_by_process"] = sampler.percent(origin, origin + figures["measured_seconds"])
    figures["cpu_per_turn"] = report.cpu_per_turn(
        figures["cpu_percent_by_process"],
        figures["measured_seconds"],
        figures["started"],
        calibration_ms,
        params.target_tps,
    )
    # All the work the turns made, however late a service did it: from the first turn until the
    # services are quiet again, less what they use when idle, over every turn started (warm-up
    # included). At saturation a consumer that lags behind uses whatever CPU it is given during
    # the window, so only this figure shows what a change to its cost per event saves.
    started = [turn[1] for turn in raw["turns"] if turn[1] is not None]
    first = raw["origin_wall"] + min(started)
    quiet = raw["origin_wall"] + raw["quiet_at"]
    work = {
        group: max(percent - idle.get(group, 0.0), 0.0)
        for group, percent in sampler.percent(first, quiet).items()
        if group not in ("other", "machine")
    }
    figures["cpu_per_turn_drained"] = report.cpu_per_turn(
        work, quiet - first, len(started), calibration_ms, params.target_tps
    )
    figures["cpu_per_turn_drained"]["drain_seconds"] = round(quiet - (origin + figures["measured_seconds"]), 1)
    cpu = [row for row in sampler.timeline(origin) if row["t"] >= -params.warmup - 1]
    lat = figures["latency_ms"]
    log(
        f"turns: {figures['achieved_tps']}/s, p50 {lat['p50']} p95 {lat['p95']} p99 {lat['p99']} max {lat['max']} ms, "
        f"{figures['errors']} errors, {figures['timeouts']} timeouts, {figures['shed']} shed"
    )
    log(f"CPU % of one core: {figures['cpu_percent_by_process']}")
    log_cpu_per_turn("at the target", figures["cpu_per_turn"])
    drained = figures["cpu_per_turn_drained"]
    log_cpu_per_turn(f"drained ({drained['drain_seconds']} s after the window, idle CPU left out)", drained)
    return figures, {"cpu_timeline": cpu}


def log_cpu_per_turn(label: str, cpu: dict[str, Any]) -> None:
    log(
        f"CPU per turn {label} ({cpu['offered_tps']:.0f}/s offered): {cpu['total_ms']} ms in total without the load "
        f"generator ({cpu['per_1000_turns_in_calibrations']} calibrations per 1,000 turns); by process (ms) "
        f"{cpu['by_process_ms']}; load generator {cpu['loadgen_ms']}, other {cpu['other_ms']}"
    )


def capacity_scenario(
    stack: Stack, params: Params, sampler: CpuSampler, calibration_ms: float | None, idle_percent: float
) -> dict[str, Any]:
    """The capacity search (steps of offered rate, bisected after the first failing one), then a
    step below saturation for the CPU per turn there; the CPU of each step from the sampler."""
    log(
        f"capacity: from {params.capacity_start:.0f}/s in steps of {params.capacity_step:.0f}/s "
        f"({params.capacity_warmup:.0f}s warm-up + {params.capacity_seconds:.0f}s each, "
        f"p99 <= {TARGET_P99_MS:.0f} ms), "
        f"{params.capacity_bisections} bisections, then {params.light_fraction:.0%} of the capacity"
    )
    args = ["capacity", "--gateway", stack.url("gateway"), "--customers", str(params.customers)]
    args += ["--messages-over", params.messages_over]
    args += ["--timeout", str(params.turn_timeout), "--warmup", str(params.capacity_warmup)]
    args += ["--seconds", str(params.capacity_seconds), "--start-tps", str(params.capacity_start)]
    args += ["--step-tps", str(params.capacity_step), "--max-tps", str(params.capacity_max)]
    args += ["--bisections", str(params.capacity_bisections), "--p99-limit", str(TARGET_P99_MS)]
    args += ["--light-fraction", str(params.light_fraction)]
    args += ["--light-seconds", str(params.light_seconds), "--settle", str(params.capacity_settle)]
    # Between steps the generator waits for the services to be nearly as quiet as when idle.
    services = {name: p.pid for name, p in stack.processes.items()}
    args += ["--quiet-pids", ",".join(map(str, services.values())), "--quiet-percent", str(idle_percent + 25)]
    raw = run_loadgen(args, RESULTS / "raw-capacity.json", sampler, 1800)
    check_alive(stack)
    origin = raw["origin_wall"]

    def with_cpu(step: dict[str, Any]) -> dict[str, Any]:
        result = step["result"]
        w0, w1 = (origin + t for t in step["window"])
        cpu = report.cpu_per_turn(sampler.percent(w0, w1), w1 - w0, result["started"], calibration_ms, step["rate"])
        return {**result, "window": step["window"], "cpu_per_turn": cpu}

    search = raw["search"]
    figures: dict[str, Any] = {
        "capacity_tps": search["capacity_tps"],
        "bounded": search["bounded"],
        "first_failing_tps": search["first_failing_tps"],
        "p99_limit_ms": search["p99_limit_ms"],
        "steps": [with_cpu(step) for step in raw["steps"]],
        "below_saturation": with_cpu(raw["light"]) if raw["light"] else None,
        "connect_errors": raw["errors"],
        "customers_connected": raw["customers_connected"],
    }
    for step in figures["steps"]:
        log(
            f"capacity step {step['offered_tps']:.0f}/s: {step['achieved_tps']}/s, p99 {step['p99_ms']} ms, "
            f"{'pass' if step['passed'] else 'fail'}; CPU per turn {step['cpu_per_turn']['total_ms']} ms"
        )
    bound = "" if search["bounded"] else f" (no step failed up to {params.capacity_max:.0f}/s)"
    log(f"capacity: {search['capacity_tps']:.0f} turns/s with p99 <= {TARGET_P99_MS:.0f} ms{bound}")
    light = figures["below_saturation"]
    if light is not None:
        log(f"below saturation: {light['achieved_tps']}/s, p99 {light['p99_ms']} ms")
        log_cpu_per_turn(f"at {params.light_fraction:.0%} of capacity", light["cpu_per_turn"])
    return figures


def operators_scenario(stack: Stack, params: Params, sampler: CpuSampler, seed: OperatorSeed) -> dict[str, Any]:
    log(
        f"operators: {params.operators} online (capacity {params.operator_capacity}), {params.handoffs} handoffs "
        f"over {params.handoff_seconds:.0f}s after {params.handoff_warmup:.0f}s of warm-up"
    )
    args = ["operators", "--gateway", stack.url("gateway"), "--routing", stack.url("routing")]
    args += ["--tenant-file", str(seed.tenant_file), "--operators-file", str(seed.operators_file)]
    args += ["--operators", str(params.operators), "--handoffs", str(params.handoffs)]
    args += ["--seconds", str(params.handoff_seconds), "--warmup", str(params.handoff_warmup)]
    args += ["--timeout", str(params.handoff_timeout), "--create-rate", str(params.create_rate)]
    timeout = params.handoff_warmup + params.handoff_seconds + 900
    raw = run_loadgen(args, RESULTS / "raw-operators.json", sampler, timeout)
    check_alive(stack)
    figures = report.operators_figures(raw, params.handoff_timeout)
    origin = raw["origin_wall"] + raw["window"][0]
    seconds = figures["measured_seconds"]
    figures["cpu_percent_by_process"] = sampler.percent(origin, origin + seconds)
    figures["cpu_ms_per_handoff_by_process"] = report.cpu_ms_per_unit(
        figures["cpu_percent_by_process"], seconds, figures["handoffs"]
    )
    figures["cpu_timeline"] = [row for row in sampler.timeline(origin) if -params.handoff_warmup - 1 <= row["t"]]
    offer, message = figures["yes_to_offer_ms"], figures["take_to_message_ms"]
    log(
        f"operators: {figures['handoffs']} handoffs, {figures['offers_received']} offers, "
        f"{figures['takes_200']} takes, {figures['takes_409']} 409s, {figures['messages_delivered']} messages, "
        f"{figures['errors']} errors, {figures['timeouts']} timeouts"
    )
    log(f"YES → offer: p50 {offer['p50']} p99 {offer['p99']} max {offer['max']} ms")
    log(f"take → message: p50 {message['p50']} p99 {message['p99']} max {message['max']} ms")
    log(f"breakdown (ms): {json.dumps(figures['breakdown_ms'])}")
    log(f"CPU ms per handoff: {figures['cpu_ms_per_handoff_by_process']}")
    return figures


def sockets_scenario(stack: Stack, params: Params, sampler: CpuSampler) -> dict[str, Any]:
    # A fresh gateway process, so the figure is what idle sockets cost, not the turns' leftovers.
    stack.kill("gateway", signal.SIGTERM)
    stack.start("gateway")
    pid = stack.processes["gateway"].pid
    sampler.add(pid, "gateway")
    log(f"sockets: {params.sockets} on gateway pid {pid} (RSS {rss_mb(pid):.0f} MB, fd limit {fd_limit(pid)})")
    args = ["sockets", "--gateway", stack.url("gateway"), "--pid", str(pid), "--count", str(params.sockets)]
    args += ["--step", str(params.socket_step), "--create-rate", str(params.create_rate)]
    args += [] if params.socket_deflate else ["--no-deflate"]
    raw = run_loadgen(args, RESULTS / "raw-sockets.json", sampler, 1800)
    check_alive(stack)
    figures = report.sockets_figures(raw, params.sockets)
    figures["gateway_fd_limit"] = fd_limit(pid)
    pongs = f"{figures['pongs']}/{figures['ping_sampled']}"
    log(f"sockets: {figures['open_at_end']} open, {pongs} pongs, RSS {figures['rss_mb']} MB")
    return figures


def _terminate(signum: int, _: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the teardown


def main() -> int:
    params = Params.from_env()
    unknown = sorted(set(params.scenarios) - set(SCENARIOS))
    if unknown:
        log(f"unknown scenario(s) {', '.join(unknown)}; BENCH_SCENARIOS takes {','.join(SCENARIOS)}")
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    RESULTS.mkdir(parents=True, exist_ok=True)
    logs = RESULTS / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    log(f"fd limit {raise_fd_limit()}; parameters {params.as_dict()}")
    for name in [n for n in os.environ if n.startswith("LLM_") or n == "OPENAI_API_KEY"]:
        del os.environ[name]  # retrieval-only: the assistant answers from the KB alone
    log_level = os.environ.get("BENCH_LOG_LEVEL", "WARNING")
    date = datetime.now(UTC).isoformat(timespec="seconds")
    # Before anything starts: how fast this machine runs a fixed piece of this code on one core.
    calib = calibration.measure(params.calibration_repeats)
    calibration_ms: float = calib["calibration_ms"]
    log(
        f"calibration: {calibration_ms} ms (median of {calib['repeats']}, {calib['spread_ms']['min']}-"
        f"{calib['spread_ms']['max']} ms, spread {calib['spread_percent']}%; core {calib['pinned_core']}; "
        f"load average {calib['load_average']['before']})"
    )
    turns: dict[str, Any] | None = None
    capacity: dict[str, Any] | None = None
    idle: dict[str, float] = {}
    operators: dict[str, Any] | None = None
    sockets: dict[str, Any] | None = None
    extra: dict[str, Any] = {"cpu_timeline": []}
    with tempfile.TemporaryDirectory(prefix="bench-seed-") as seed_dir:
        seed = None
        if "operators" in params.scenarios:
            seed = write_operator_seed(Path(seed_dir), params.operators, params.operator_capacity)

        def before_start(stack: Stack) -> None:
            if seed is not None:  # the benchmark tenant and its operators, in the gateway's fresh database
                load_operator_seed(stack, seed)

        with (
            running_stack(logs, log_level, before_start) as stack,
            CpuSampler(
                {p.pid: name for name, p in stack.processes.items()}, databases=set(stack.databases.values())
            ) as sampler,
        ):
            missing = sorted({spec.name for spec in SERVICES if spec.built} - set(stack.processes))
            if missing:
                raise RuntimeError(f"built services not running: {missing}")
            time.sleep(3)  # the services' CPU when idle: what "quiet" means between capacity steps
            idle = sampler.percent(time.time() - 3.5, time.time())
            idle_percent = round(sum(v for k, v in idle.items() if k in stack.processes), 1)
            log(f"idle: services {idle_percent}% of one core, whole machine {idle.get('machine')}%")
            if "turns" in params.scenarios:
                turns, extra = turns_scenario(stack, params, sampler, calibration_ms, idle)
            if "capacity" in params.scenarios:
                capacity = capacity_scenario(stack, params, sampler, calibration_ms, idle_percent)
            if seed is not None:
                operators = operators_scenario(stack, params, sampler, seed)
            if "sockets" in params.scenarios:
                sockets = sockets_scenario(stack, params, sampler)
    document = {
        "machine": report.machine(),
        "date": date,
        "parameters": {**params.as_dict(), "service_log_level": log_level, "llm": "none (retrieval only)"},
        "targets": report.targets(turns, sockets, operators),
        "calibration": calib,
        "idle_cpu_percent": idle,
        "cpu_per_turn": {
            "at_target": turns["cpu_per_turn"] if turns else None,
            "drained": turns["cpu_per_turn_drained"] if turns else None,
            "below_saturation": capacity["below_saturation"]["cpu_per_turn"]
            if capacity and capacity["below_saturation"]
            else None,
        },
        "capacity": capacity,
        "turns": turns,
        "operators": operators,
        "sockets": sockets,
        **extra,
    }
    report.write(RESULTS / "latest.json", document)
    report.plot(RESULTS / "latest.png", turns, sockets, extra["cpu_timeline"], operators, document)
    stamp = date.replace(":", "").replace("-", "").removesuffix("+0000")
    for suffix in ("json", "png"):  # kept per run, to compare runs
        shutil.copy(RESULTS / f"latest.{suffix}", RESULTS / f"run-{stamp}.{suffix}")
    log(f"wrote {RESULTS / 'latest.json'} and latest.png; targets: {json.dumps(document['targets'])}")
    return 0
