"""Turns the load generator's raw observations into figures, `latest.json` and `latest.png`."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from bench.params import (
    TARGET_HANDOFF_P99_MS,
    TARGET_HANDOFF_SECONDS,
    TARGET_HANDOFFS,
    TARGET_OPERATORS,
    TARGET_P99_MS,
    TARGET_RSS_MB,
    TARGET_SECONDS,
    TARGET_SOCKETS,
    TARGET_TPS,
)
from devkit.stack import REPO


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            info["cpu_model"] = line.split(":", 1)[1].strip()
            break
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            info["memory_gib"] = round(int(line.split()[1]) / 1024**2, 1)
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True)
    info["git"] = git.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    return info


def percentiles(values_ms: list[float]) -> dict[str, float | None]:
    if not values_ms:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    array = np.asarray(values_ms)
    p50, p95, p99 = np.percentile(array, [50, 95, 99])
    return {
        "p50": round(float(p50), 1),
        "p95": round(float(p95), 1),
        "p99": round(float(p99), 1),
        "max": round(float(array.max()), 1),
        "mean": round(float(array.mean()), 1),
    }


def turns_figures(raw: dict[str, Any], target_tps: float) -> dict[str, Any]:
    """Figures of the measured window (turns whose POST started in it); a per-second timeline of
    the whole run (t < 0 is the warm-up) by reply arrival."""
    w0, w1 = raw["window"]
    seconds = w1 - w0
    inside = [t for t in raw["turns"] if w0 <= t[1] < w1]
    ok = [t for t in inside if t[3] == "ok"]
    outcomes = Counter(t[3] for t in inside)
    latencies = [1000 * (t[2] - t[1]) for t in ok]
    waits = [1000 * (t[1] - t[0]) for t in inside]
    by_second: dict[int, list[float]] = {}
    for _, started, finished, outcome in raw["turns"]:
        if outcome == "ok":
            by_second.setdefault(math.floor(finished - w0), []).append(1000 * (finished - started))
    timeline = [  # every second, also those where no reply arrived
        {
            "t": second,
            "turns_per_s": len(by_second.get(second, [])),
            "p99_ms": round(float(np.percentile(by_second[second], 99)), 1) if second in by_second else None,
        }
        for second in range(-math.ceil(w0), math.ceil(seconds))
    ]
    return {
        "target_tps": target_tps,
        "warmup_seconds": w0,
        "measured_seconds": seconds,
        "offered": round(target_tps * seconds),
        "started": len(inside),
        "completed": len(ok),
        "achieved_tps": round(len(ok) / seconds, 1) if seconds else 0.0,
        "latency_ms": percentiles(latencies),
        "timeouts": outcomes.get("timeout", 0),
        "errors": sum(n for outcome, n in outcomes.items() if outcome not in {"ok", "timeout"}),
        "error_kinds": {k: n for k, n in outcomes.items() if k not in {"ok", "timeout"}},
        "connect_errors": raw["errors"],
        "shed": sum(1 for s in raw["shed"] if w0 <= s < w1),
        "unstarted_at_end": raw["unstarted_at_end"],
        "ticket_wait_ms": percentiles(waits),
        "handoffs_offered": sum(raw["handoffs"].values()),
        "handoff_questions": dict(list(raw["handoffs"].items())[:10]),
        "customers_connected": raw["customers_connected"],
        "loadgen_cpu_percent": round(100 * raw["loadgen_cpu_seconds"] / seconds, 1) if seconds else None,
        "loadgen_cpu_ms_per_turn": round(1000 * raw["loadgen_cpu_seconds"] / len(inside), 2) if inside else None,
        "timeline": timeline,
    }


def sockets_figures(raw: dict[str, Any], wanted: int) -> dict[str, Any]:
    final = raw["final"]
    baseline = raw["steps"][0]["rss_mb"]
    held = final["sockets"]
    return {
        "wanted": wanted,
        "created": raw["created"],
        "creation_seconds": raw["creation_seconds"],
        "max_open": raw["max_open"],
        "open_at_end": held,
        "ping_sampled": final["pinged"],
        "pongs": final["pongs"],
        "rss_baseline_mb": baseline,
        "rss_mb": final["rss_mb"],
        "rss_per_socket_kb": round(1024 * (final["rss_mb"] - baseline) / held, 1) if held else None,
        "permessage_deflate": raw["extensions"],
        "errors": raw["errors"],
        "steps": raw["steps"],
    }


def _between(row: dict[str, Any], start: str, end: str) -> float | None:
    """Milliseconds from one of a handoff's moments to another, if both happened."""
    if row[start] is None or row[end] is None:
        return None
    return 1000 * (float(row[end]) - float(row[start]))


def _spread(rows: list[dict[str, Any]], start: str, end: str) -> dict[str, float | None]:
    return percentiles([ms for row in rows if (ms := _between(row, start, end)) is not None])


def _outcome(row: dict[str, Any], timeout: float) -> str:
    """The generator's outcome, with a step that took longer than `timeout` seconds a timeout."""
    if row["outcome"] != "ok":
        return str(row["outcome"])
    if (_between(row, "yes", "offer") or 0.0) > 1000 * timeout:
        return "timeout_offer"
    if (_between(row, "take", "message") or 0.0) > 1000 * timeout:
        return "timeout_message"
    return "ok"


def operators_figures(raw: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Figures of the handoffs whose YES fell in the measured window; a per-second timeline of the
    whole run (t < 0 is the warm-up) by YES time."""
    w0, w1 = raw["window"]
    seconds = w1 - w0
    inside = [row for row in raw["handoffs"] if row["measured"]]
    offered = [row for row in inside if (ms := _between(row, "yes", "offer")) is not None and ms <= 1000 * timeout]
    taken = [row for row in inside if row["take_status"] == 200]
    delivered = [row for row in taken if row["message"] is not None]
    outcomes = Counter(_outcome(row, timeout) for row in inside)
    take_statuses = Counter(row["take_status"] for row in inside if row["take_status"])
    by_operator = Counter(row["operator_id"] for row in offered)
    by_second: dict[int, list[dict[str, Any]]] = {}
    for row in raw["handoffs"]:
        by_second.setdefault(math.floor(row["scheduled"] - w0), []).append(row)

    def p99(rows: list[dict[str, Any]], start: str, end: str) -> float | None:
        values = [ms for row in rows if (ms := _between(row, start, end)) is not None]
        return round(float(np.percentile(values, 99)), 1) if values else None

    timeline = [
        {
            "t": second,
            "handoffs": len(by_second.get(second, [])),
            "offer_p99_ms": p99(by_second.get(second, []), "yes", "offer"),
            "message_p99_ms": p99(by_second.get(second, []), "take", "message"),
        }
        for second in range(-math.ceil(w0), math.ceil(seconds))
    ]
    return {
        "operators": raw["operators"],
        "operators_online": raw["operators_online"],
        "warmup_seconds": w0,
        "measured_seconds": seconds,
        "handoffs": len(inside),
        "handoffs_per_s": round(len(inside) / seconds, 1) if seconds else 0.0,
        "yes_to_offer_ms": _spread(inside, "yes", "offer"),
        "take_to_message_ms": _spread(inside, "take", "message"),
        # Where take → message goes: the take's answer, the conversation becoming the operator's
        # (WITH_OPERATOR on their socket: only then does the conversation service accept their
        # message), the message's POST, and the message reaching the customer.
        "breakdown_ms": {
            "yes_http": _spread(inside, "yes", "yes_done"),
            "take_http": _spread(inside, "take", "take_done"),
            "take_to_with_operator": _spread(inside, "take", "writable"),
            "message_post_to_customer": _spread(inside, "post", "message"),
        },
        "offers_received": len(offered),
        "takes_200": len(taken),
        "takes_409": take_statuses.get(409, 0),
        "take_statuses": {str(k): n for k, n in sorted(take_statuses.items())},
        "messages_delivered": len(delivered),
        "timeouts": sum(n for outcome, n in outcomes.items() if outcome.startswith("timeout")),
        "errors": sum(n for outcome, n in outcomes.items() if outcome != "ok" and not outcome.startswith("timeout")),
        "outcomes": dict(outcomes.most_common()),
        "offers_per_operator": {
            "min": min(by_operator.values(), default=0),
            "max": max(by_operator.values(), default=0),
            "operators_offered": len(by_operator),
        },
        "repeat_offers": raw["repeat_offers"],
        "stray_offers": raw["stray_offers"],
        "operator_frames_received": raw["operator_frames"],
        "setup_errors": raw["errors"],
        "customers_connected": raw["customers_connected"],
        "loadgen_cpu_percent": round(100 * raw["loadgen_cpu_seconds"] / seconds, 1) if seconds else None,
        "loadgen_cpu_ms_per_handoff": round(1000 * raw["loadgen_cpu_seconds"] / len(inside), 2) if inside else None,
        "timeline": timeline,
    }


def cpu_ms_per_unit(percent_by_process: dict[str, float], seconds: float, units: int) -> dict[str, float]:
    """CPU milliseconds per unit of work (a turn, a handoff), per process, from the average CPU
    percentages of a window."""
    if not units:
        return {}
    return {group: round(10 * percent * seconds / units, 2) for group, percent in percent_by_process.items()}


# Not the system under test: the load generator, and the machine-wide figures.
NOT_SYSTEM = frozenset({"loadgen", "machine", "other"})


def cpu_per_turn(
    percent_by_process: dict[str, float],
    seconds: float,
    turns: int,
    calibration_ms: float | None,
    offered_tps: float,
) -> dict[str, Any]:
    """CPU milliseconds per turn over a window: per process, the system's total (every service,
    Kafka, PostgreSQL and Redis; not the load generator), and that total normalised by the
    machine's calibration: `per_1000_turns_in_calibrations` is how many calibration workloads'
    worth of CPU 1,000 turns cost, a figure meant to travel between machines."""
    by_process = cpu_ms_per_unit(percent_by_process, seconds, turns)
    system = {k: v for k, v in by_process.items() if k not in NOT_SYSTEM}
    total = round(sum(system.values()), 2) if system else None
    return {
        "offered_tps": offered_tps,
        "turns": turns,
        "seconds": round(seconds, 1),
        "by_process_ms": dict(sorted(system.items(), key=lambda kv: -kv[1])),
        "total_ms": total,
        "loadgen_ms": by_process.get("loadgen"),
        "machine_ms": by_process.get("machine"),
        "other_ms": by_process.get("other"),
        "per_1000_turns_in_calibrations": (
            round(1000 * total / calibration_ms, 2) if total is not None and calibration_ms else None
        ),
    }


def targets(
    turns: dict[str, Any] | None, sockets: dict[str, Any] | None, operators: dict[str, Any] | None = None
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if turns is not None:
        p99 = turns["latency_ms"]["p99"]
        result["turns"] = {
            "target": f">= {TARGET_TPS:.0f} turns/s for {TARGET_SECONDS:.0f} s with p99 <= {TARGET_P99_MS:.0f} ms",
            "achieved_tps": turns["achieved_tps"],
            "p99_ms": p99,
            "met": bool(
                turns["measured_seconds"] >= TARGET_SECONDS
                and turns["achieved_tps"] >= TARGET_TPS
                and p99 is not None
                and p99 <= TARGET_P99_MS
            ),
        }
    if sockets is not None:
        result["sockets"] = {
            "target": f"{TARGET_SOCKETS} idle sockets on one gateway process < {TARGET_RSS_MB:.0f} MB RSS",
            "held": sockets["open_at_end"],
            "rss_mb": sockets["rss_mb"],
            "met": bool(
                sockets["open_at_end"] >= TARGET_SOCKETS
                and sockets["pongs"] == sockets["ping_sampled"]
                and sockets["rss_mb"] < TARGET_RSS_MB
            ),
        }
    if operators is not None:
        offer_p99 = operators["yes_to_offer_ms"]["p99"]
        message_p99 = operators["take_to_message_ms"]["p99"]
        result["operators"] = {
            "target": (
                f"{TARGET_OPERATORS} operators online, {TARGET_HANDOFFS} handoffs in {TARGET_HANDOFF_SECONDS:.0f} s: "
                f"p99 <= {TARGET_HANDOFF_P99_MS:.0f} ms from YES to the offer on an operator's socket and from "
                "take to the operator's first message on the customer's socket, with the customer-turn target met"
            ),
            "yes_to_offer_p99_ms": offer_p99,
            "take_to_message_p99_ms": message_p99,
            "handoffs_completed": operators["messages_delivered"],
            "met": bool(
                operators["operators_online"] >= TARGET_OPERATORS
                and operators["handoffs"] >= TARGET_HANDOFFS
                and operators["measured_seconds"] <= TARGET_HANDOFF_SECONDS
                and operators["outcomes"].get("ok", 0) == operators["handoffs"]
                and offer_p99 is not None
                and offer_p99 <= TARGET_HANDOFF_P99_MS
                and message_p99 is not None
                and message_p99 <= TARGET_HANDOFF_P99_MS
            ),
            # Judged by the turns scenario of the same run (None when it did not run).
            "customer_turn_target_met": result["turns"]["met"] if "turns" in result else None,
        }
    return result


def plot(
    path: Path,
    turns: dict[str, Any] | None,
    sockets: dict[str, Any] | None,
    cpu: list[dict[str, float]],
    operators: dict[str, Any] | None = None,
    document: dict[str, Any] | None = None,
) -> None:
    cost = document if document is not None and (document.get("capacity") or turns is not None) else None
    if operators is not None and turns is None and sockets is None and cost is None:  # the operators scenario alone
        fig, axes = plt.subplots(1, 2, figsize=(14, 4.5), squeeze=False)
        _plot_operators(axes[0][0], axes[0][1], operators)
        for ax in axes.flat:
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return
    rows = 2 + (operators is not None) + (cost is not None)
    fig, axes = plt.subplots(rows, 2, figsize=(14, 4.5 * rows), squeeze=False)
    (tps_ax, p99_ax), (cpu_ax, rss_ax) = axes[0], axes[1]
    if turns is not None and turns["timeline"]:
        seconds = [row["t"] for row in turns["timeline"]]
        for ax in (tps_ax, p99_ax, cpu_ax):
            ax.axvspan(-turns["warmup_seconds"], 0, color="0.92", label="warm-up")
        tps_ax.plot(seconds, [row["turns_per_s"] for row in turns["timeline"]], label="completed turns/s")
        tps_ax.axhline(turns["target_tps"], color="tab:red", ls="--", label=f"offered {turns['target_tps']:.0f}/s")
        tps_ax.set_title(f"Throughput: {turns['achieved_tps']} turns/s sustained")
        p99 = [np.nan if row["p99_ms"] is None else row["p99_ms"] for row in turns["timeline"]]
        p99_ax.plot(seconds, p99, color="tab:orange", marker=".", label="p99 per second (gap: no reply)")
        p99_ax.axhline(TARGET_P99_MS, color="tab:red", ls="--", label=f"target {TARGET_P99_MS:.0f} ms")
        p99_ax.set_yscale("log")
        p99_ax.set_xlim(min(seconds), max(seconds))
        lat = turns["latency_ms"]
        p99_ax.set_title(f"Turn latency (POST → AI frame): p50 {lat['p50']} / p99 {lat['p99']} ms")
    if cpu:
        groups = sorted({k for row in cpu for k in row if k not in {"t", "machine"}})
        for group in groups:
            cpu_ax.plot([row["t"] for row in cpu], [row.get(group, 0.0) for row in cpu], label=group)
        machine_total = [row.get("machine", 0.0) for row in cpu]
        cpu_ax.plot([row["t"] for row in cpu], machine_total, color="k", ls="--", label="whole machine")
        cpu_ax.axhline(100 * (os.cpu_count() or 1), color="0.5", ls=":")
        cpu_ax.set_title("CPU by process during the turns scenario (% of one core; 2 cores = 200)")
        cpu_ax.legend(fontsize=7, ncol=2)
    if sockets is not None:
        steps = sockets["steps"]
        rss_ax.plot([s["sockets"] for s in steps], [s["rss_mb"] for s in steps], marker="o", label="gateway VmRSS")
        rss_ax.axhline(TARGET_RSS_MB, color="tab:red", ls="--", label=f"target {TARGET_RSS_MB:.0f} MB")
        rss_ax.set_xlabel("open idle widget sockets")
        rss_ax.set_ylabel("MB")
        rss_ax.set_title(f"Gateway RSS: {sockets['rss_mb']} MB with {sockets['open_at_end']} sockets")
    if operators is not None:
        _plot_operators(axes[2][0], axes[2][1], operators)
    if cost is not None:
        _plot_cost(axes[-1][0], axes[-1][1], cost)
    for ax, label in ((tps_ax, "turns/s"), (p99_ax, "ms"), (cpu_ax, "% CPU")):
        ax.set_xlabel("seconds from the start of the measured window")
        ax.set_ylabel(label)
    for ax in (tps_ax, p99_ax, rss_ax):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_operators(latency_ax: Any, cpu_ax: Any, operators: dict[str, Any]) -> None:
    rows = operators["timeline"]
    seconds = [row["t"] for row in rows]
    latency_ax.axvspan(-operators["warmup_seconds"], 0, color="0.92", label="warm-up")
    for key, label in (("offer_p99_ms", "YES → offer"), ("message_p99_ms", "take → operator message")):
        values = [np.nan if row[key] is None else row[key] for row in rows]
        latency_ax.plot(seconds, values, marker=".", label=f"{label}, p99 per second")
    latency_ax.axhline(TARGET_HANDOFF_P99_MS, color="tab:red", ls="--", label=f"target {TARGET_HANDOFF_P99_MS:.0f} ms")
    latency_ax.set_yscale("log")
    offer, message = operators["yes_to_offer_ms"], operators["take_to_message_ms"]
    latency_ax.set_title(
        f"Handoffs ({operators['handoffs']}, {operators['operators_online']} operators): p99 YES → offer "
        f"{offer['p99']} ms, take → message {message['p99']} ms",
        fontsize=10,
    )
    latency_ax.set_xlabel("seconds from the start of the measured window")
    latency_ax.set_ylabel("ms")
    latency_ax.legend(fontsize=8)
    per_handoff = {k: v for k, v in operators.get("cpu_ms_per_handoff_by_process", {}).items() if k != "machine"}
    if per_handoff:
        names = sorted(per_handoff, key=lambda name: -per_handoff[name])
        cpu_ax.barh(names, [per_handoff[name] for name in names], color="tab:blue")
        cpu_ax.invert_yaxis()
        cpu_ax.set_xlabel("CPU ms per handoff")
        total = operators.get("cpu_ms_per_handoff_by_process", {}).get("machine")
        cpu_ax.set_title(f"CPU per handoff by process (whole machine {total} ms)")


def _plot_cost(capacity_ax: Any, cpu_ax: Any, document: dict[str, Any]) -> None:
    """The capacity search's steps (p99 against offered rate), and the CPU per turn by process at
    the target and below saturation, with the calibration they are normalised by."""
    capacity = document.get("capacity")
    if capacity and capacity["steps"]:
        steps = capacity["steps"]
        for passed, colour, label in ((True, "tab:green", "pass"), (False, "tab:red", "fail")):
            chosen = [s for s in steps if s["passed"] == passed]
            capacity_ax.scatter(
                [s["offered_tps"] for s in chosen],
                [s["p99_ms"] if s["p99_ms"] is not None else np.nan for s in chosen],
                color=colour,
                label=label,
                zorder=3,
            )
        for order, step in enumerate(steps, 1):
            if step["p99_ms"] is not None:
                capacity_ax.annotate(
                    str(order),
                    (step["offered_tps"], step["p99_ms"]),
                    fontsize=7,
                    xytext=(4, 4),
                    textcoords="offset points",
                )
        capacity_ax.axhline(capacity["p99_limit_ms"], color="tab:red", ls="--", label="p99 limit")
        capacity_ax.axvline(capacity["capacity_tps"], color="tab:green", ls=":", label="capacity")
        capacity_ax.set_yscale("log")
        bound = "" if capacity["bounded"] else " (not bounded)"
        capacity_ax.set_title(f"Capacity search: {capacity['capacity_tps']:.0f} turns/s with p99 within limit{bound}")
        capacity_ax.set_xlabel("offered turns/s (numbers: order of the steps)")
        capacity_ax.set_ylabel("p99 ms")
        capacity_ax.legend(fontsize=8)
    per_turn = {k: v for k, v in (document.get("cpu_per_turn") or {}).items() if v}
    if per_turn:
        names = sorted({name for cpu in per_turn.values() for name in cpu["by_process_ms"]})
        names.sort(key=lambda name: -max(cpu["by_process_ms"].get(name, 0.0) for cpu in per_turn.values()))
        height = 0.8 / len(per_turn)
        for index, (label, cpu) in enumerate(per_turn.items()):
            positions = [i + index * height for i in range(len(names))]
            total, normalised = cpu["total_ms"], cpu["per_1000_turns_in_calibrations"]
            cpu_ax.barh(
                positions,
                [cpu["by_process_ms"].get(name, 0.0) for name in names],
                height=height,
                label=f"{label.replace('_', ' ')} ({cpu['offered_tps']:.0f}/s): {total} ms, {normalised} cal/1000",
            )
        cpu_ax.set_yticks([i + 0.4 - height / 2 for i in range(len(names))], names)
        cpu_ax.invert_yaxis()
        cpu_ax.set_xlabel("CPU ms per turn")
        calib = document.get("calibration") or {}
        cpu_ax.set_title(f"CPU per turn by process (calibration {calib.get('calibration_ms')} ms)", fontsize=10)
        cpu_ax.legend(fontsize=8)


def write(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
