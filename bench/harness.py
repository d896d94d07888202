"""Brings up an isolated stack for one benchmark run and tears it down: the local infrastructure
(left running if it already was), a unique topic prefix, fresh databases, every built service as
a process through servicekit's `Stack`, the demo knowledge base loaded. Also samples the CPU
time of every process of interest, to tell afterwards which one was the bottleneck."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from devkit.stack import REPO, SERVICES, Stack, free_port
from devkit.testing import Infra, create_database, drop_database
from servicekit.topics import delete_topics, ensure_topics

LOCALINFRA = REPO / "infra" / "localinfra.py"
# Far above anything a run sends: the benchmark measures the system, not the limiter.
NO_RATE_LIMIT = str(10**9)


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def raise_fd_limit() -> int:
    """Raises this process's soft RLIMIT_NOFILE to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _localinfra(command: str) -> str:
    result = subprocess.run([sys.executable, str(LOCALINFRA), command], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"localinfra {command} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def infra_up() -> tuple[Infra, bool]:
    """Starts the local Kafka, PostgreSQL and Redis if needed; returns them and whether they were
    already all running (then the teardown leaves them alone: other users may share them)."""
    status = _localinfra("status")
    already_up = bool(status.strip()) and all(" up" in line for line in status.splitlines() if line.strip())
    if not already_up:
        log("starting the local infrastructure")
        _localinfra("up")
    env = dict(line.removeprefix("export ").split("=", 1) for line in _localinfra("env").splitlines() if "=" in line)
    return Infra.from_endpoints(env), already_up


def _stop_processes(stack: Stack) -> None:
    for process in stack.processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for process in stack.processes.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    stack.processes.clear()


@contextlib.contextmanager
def running_stack(
    log_dir: Path, log_level: str, before_start: Callable[[Stack], None] | None = None
) -> Iterator[Stack]:
    """The stack, up; `before_start` runs once its topics and databases exist, before any service."""
    infra, infra_was_up = infra_up()
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    specs = [spec for spec in SERVICES if spec.built]
    log(f"services: {', '.join(spec.name for spec in specs)}; topic prefix {prefix}")
    databases: dict[str, str] = {}
    stack = Stack(
        base_env={**infra.service_env(""), "KAFKA_TOPIC_PREFIX": prefix, "LOG_LEVEL": log_level},
        ports={spec.name: free_port() for spec in specs},
        databases=databases,
        log_dir=log_dir,
        extra_env={
            "gateway": {
                "RATE_LIMIT_IP_REQUESTS": NO_RATE_LIMIT,
                "RATE_LIMIT_CONVERSATION_MESSAGES": NO_RATE_LIMIT,
                # The operators scenario logs in all its operators from one address.
                "LOGIN_ATTEMPTS_PER_IP": NO_RATE_LIMIT,
            }
        },
    )
    try:
        asyncio.run(ensure_topics(infra.kafka_bootstrap_servers, prefix=prefix))
        for spec in specs:
            if spec.database:
                databases[spec.name] = asyncio.run(create_database(infra, f"bench_{spec.module}"))
        stack.seed_knowledge_bases()
        if before_start is not None:
            before_start(stack)
        stack.start_all()
        log("stack ready: " + ", ".join(f"{name} pid {p.pid}" for name, p in stack.processes.items()))
        yield stack
    finally:
        log("tearing down")
        _stop_processes(stack)
        for name in databases.values():
            with contextlib.suppress(Exception):
                asyncio.run(drop_database(infra, name))
        with contextlib.suppress(Exception):
            asyncio.run(delete_topics(infra.kafka_bootstrap_servers, prefix))
        if not infra_was_up:
            _localinfra("down")


BENCH_TENANT = "bench-operators"


@dataclass(frozen=True)
class OperatorSeed:
    """The benchmark tenant and its operators, as the gateway's seed files (read by the load
    generator too, for the widget key and the operators' credentials)."""

    tenant_file: Path
    operators_file: Path


def write_operator_seed(directory: Path, operators: int, capacity: int) -> OperatorSeed:
    """A tenant of its own for the operators scenario, with `operators` accounts; fresh widget key
    and passwords each run (they live only as long as the run's databases)."""
    directory.mkdir(parents=True, exist_ok=True)
    tenant = {
        "tenant_id": BENCH_TENANT,
        "name": "Benchmark operators",
        "widget_key": f"wk_bench_{secrets.token_hex(12)}",
        "default_language": "it",
    }
    accounts = [
        {
            "operator_id": f"{BENCH_TENANT}-{number:04d}",
            "username": f"bench-op-{number:04d}",
            "display_name": f"Operatore {number}",
            "password": secrets.token_urlsafe(12),
            "role": "operator",
            "capacity": capacity,
        }
        for number in range(1, operators + 1)
    ]
    seed = OperatorSeed(directory / f"tenant-{BENCH_TENANT}.yaml", directory / f"operators-{BENCH_TENANT}.yaml")
    seed.tenant_file.write_text(yaml.safe_dump(tenant, sort_keys=False))
    seed.operators_file.write_text(yaml.safe_dump({"tenant_id": BENCH_TENANT, "operators": accounts}, sort_keys=False))
    return seed


def load_operator_seed(stack: Stack, seed: OperatorSeed) -> None:
    """Loads the tenant and its operators into the stack's gateway database with the gateway's own
    command line (`gateway.tenants load`, `gateway.operators load`), as an operator of the platform would."""
    env = stack.env_for(next(spec for spec in stack.specs if spec.name == "gateway"))
    for command in (["gateway.tenants", "load", seed.tenant_file], ["gateway.operators", "load", seed.operators_file]):
        result = subprocess.run(
            [sys.executable, "-m", *map(str, command)], env=env, cwd=REPO, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeError(f"{command[0]} load failed:\n{result.stdout}\n{result.stderr}")
        log(f"{command[0]}: {result.stdout.strip().splitlines()[-1] if result.stdout.strip() else 'loaded'}")


def rss_mb(pid: int) -> float:
    """Resident set size (VmRSS) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def fd_limit(pid: int) -> int | None:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    return None


# Infrastructure processes are recognised by their command name.
_INFRA_COMMS = {"java": "kafka", "redis-server": "redis"}
_TICK = os.sysconf("SC_CLK_TCK")
# PostgreSQL's own processes, shared by every database on the server (no database in their title).
_POSTGRES_SHARED = ("checkpointer", "background writer", "walwriter", "autovacuum launcher", "logical replication")


def postgres_group(title: str, databases: set[str]) -> str | None:
    """ "postgres" for a PostgreSQL process that works for this run: a backend (or autovacuum
    worker) of one of its `databases`, or one of the server's shared processes; None for the
    backends of other databases (another user's tests). With no `databases`, every one counts."""
    if not databases:
        return "postgres"
    words = title.removeprefix("postgres:").split()
    if any(word in databases for word in words):
        return "postgres"
    rest = " ".join(words)
    if not rest or rest.startswith(_POSTGRES_SHARED):
        return "postgres"
    return None


class CpuSampler:
    """Samples, once a second, the CPU seconds of the named processes (services, load generator,
    and any child process they start) and of the infrastructure (Kafka, PostgreSQL, Redis),
    grouped by name, and of the whole machine ("machine"; "other" is what none of those used,
    e.g. another user's job). PostgreSQL counts the backends of this run's `databases` and the
    server's shared processes, not other users' backends; Kafka and Redis are one process each,
    shared with whoever else uses them."""

    def __init__(self, named: dict[int, str], interval: float = 1.0, databases: set[str] | None = None) -> None:
        self.named = dict(named)
        self.interval = interval
        self.databases = set(databases or ())
        self.samples: list[tuple[float, dict[int, tuple[str, float]]]] = []
        self._groups: dict[tuple[int, str], str | None] = {}  # (pid, start time) -> group, for pids not named
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cpu-sampler")

    def add(self, pid: int, name: str) -> None:
        self.named[pid] = name

    @property
    def groups(self) -> set[str]:
        """Every named group (each built service, the load generator once started)."""
        return set(self.named.values())

    def _group(self, pid: int, comm: str, ppid: int, started: str) -> str | None:
        if pid in self.named:
            return self.named[pid]
        if ppid in self.named:  # a child of a service (a worker process): counted as the service
            return self.named[ppid]
        key = (pid, started)
        if key not in self._groups:
            group = _INFRA_COMMS.get(comm)
            if comm.startswith("postgres"):
                try:
                    title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    return None
                group = postgres_group(title.strip(), self.databases)
            self._groups[key] = group
        return self._groups[key]

    def sample(self) -> None:
        now = time.time()
        taken: dict[int, tuple[str, float]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                raw = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            comm = raw[raw.index("(") + 1 : raw.rindex(")")]
            fields = raw[raw.rindex(")") + 2 :].split()
            group = self._group(pid, comm, int(fields[1]), fields[19])
            if group is None:
                continue
            taken[pid] = (group, (int(fields[11]) + int(fields[12])) / _TICK)  # utime + stime
        # Pseudo-pid 0: the whole machine's busy time (anything else running shows as the rest).
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        busy = sum(int(fields[i]) for i in (0, 1, 2, 5, 6, 7))  # user nice system irq softirq steal
        taken[0] = ("machine", busy / _TICK)
        self.samples.append((now, taken))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def percent(self, start: float, end: float) -> dict[str, float]:
        """Average CPU per group between two wall-clock times, in percent of one core."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return {}
        (t0, first), (t1, last) = inside[0], inside[-1]
        totals: dict[str, float] = dict.fromkeys(self.groups, 0.0)  # a named process that did nothing shows as 0
        for pid, (group, seconds) in last.items():
            if pid in first:  # processes alive at both ends (short-lived ones are negligible)
                totals[group] = totals.get(group, 0.0) + seconds - first[pid][1]
        totals["other"] = totals.get("machine", 0.0) - sum(v for k, v in totals.items() if k != "machine")
        return {group: round(100 * value / (t1 - t0), 1) for group, value in sorted(totals.items())}

    def timeline(self, origin: float) -> list[dict[str, float]]:
        """CPU per group for each interval, with `t` in seconds from `origin`."""
        rows = []
        for (t0, first), (t1, last) in zip(self.samples, self.samples[1:], strict=False):
            row: dict[str, float] = {"t": round(t1 - origin, 2)}
            for pid, (group, seconds) in last.items():
                if pid in first:
                    row[group] = row.get(group, 0.0) + 100 * (seconds - first[pid][1]) / (t1 - t0)
            rows.append({k: round(v, 1) for k, v in row.items()})
        return rows
