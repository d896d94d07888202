"""The benchmark's supervisor: stack up, scenarios in a separate load-generator process, report."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench import report
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
from bench.params import SCENARIOS, Params
from devkit.stack import REPO, Stack

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


def turns_scenario(stack: Stack, params: Params, sampler: CpuSampler) -> tuple[dict[str, Any], dict[str, Any]]:
    log(f"turns: {params.target_tps:.0f}/s offered, {params.customers} customers, {params.warmup:.0f}s warm-up")
    args = ["turns", "--gateway", stack.url("gateway"), "--tps", str(params.target_tps)]
    args += ["--seconds", str(params.seconds), "--warmup", str(params.warmup)]
    args += ["--customers", str(params.customers), "--timeout", str(params.turn_timeout)]
    raw = run_loadgen(args, RESULTS / "raw-turns.json", sampler, params.warmup + params.seconds + 600)
    check_alive(stack)
    figures = report.turns_figures(raw, params.target_tps)
    origin = raw["origin_wall"] + raw["window"][0]
    figures["cpu_percent_by_process"] = sampler.percent(origin, origin + figures["measured_seconds"])
    cpu = [row for row in sampler.timeline(origin) if row["t"] >= -params.warmup - 1]
    lat = figures["latency_ms"]
    log(
        f"turns: {figures['achieved_tps']}/s, p50 {lat['p50']} p95 {lat['p95']} p99 {lat['p99']} max {lat['max']} ms, "
        f"{figures['errors']} errors, {figures['timeouts']} timeouts, {figures['shed']} shed"
    )
    log(f"CPU % of one core: {figures['cpu_percent_by_process']}")
    return figures, {"cpu_timeline": cpu}


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
    turns: dict[str, Any] | None = None
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
            CpuSampler({p.pid: name for name, p in stack.processes.items()}) as sampler,
        ):
            if "turns" in params.scenarios:
                turns, extra = turns_scenario(stack, params, sampler)
            if seed is not None:
                operators = operators_scenario(stack, params, sampler, seed)
            if "sockets" in params.scenarios:
                sockets = sockets_scenario(stack, params, sampler)
    document = {
        "machine": report.machine(),
        "date": date,
        "parameters": {**params.as_dict(), "service_log_level": log_level, "llm": "none (retrieval only)"},
        "targets": report.targets(turns, sockets, operators),
        "turns": turns,
        "operators": operators,
        "sockets": sockets,
        **extra,
    }
    report.write(RESULTS / "latest.json", document)
    report.plot(RESULTS / "latest.png", turns, sockets, extra["cpu_timeline"], operators)
    stamp = date.replace(":", "").replace("-", "").removesuffix("+0000")
    for suffix in ("json", "png"):  # kept per run, to compare runs
        shutil.copy(RESULTS / f"latest.{suffix}", RESULTS / f"run-{stamp}.{suffix}")
    log(f"wrote {RESULTS / 'latest.json'} and latest.png; targets: {json.dumps(document['targets'])}")
    return 0
