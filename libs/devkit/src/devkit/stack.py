"""Runs the services as real local processes: `make up` (detached, with pid files) and the
end-to-end tests (as children they can SIGKILL and restart) both start them through `Stack`.

    python -m devkit.stack up|down|status
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[4]
STATE = Path(os.environ.get("LOCAL_INFRA_DIR", REPO / ".local"))
SHIPPED_KNOWLEDGE = REPO / "services" / "ai-responder" / "kb"
SHIPPED_DEMO_TENANTS = REPO / "services" / "gateway" / "demo"
MAIL_DIR = STATE / "mail"
MAIL_SINK_PORT = 1025  # the notifier's default SMTP port
# The ai-responder's knowledge-base admin token of `make up` (a stack's extra_env may set its own).
LOCAL_ADMIN_TOKEN = "local-development-kb-admin-token"  # noqa: S105 -- local stack only (ENVIRONMENT=local)
# The gateway's platform API token of a stack, with which `gateway.seed` seeds the demo tenants.
LOCAL_PLATFORM_TOKEN = "local-development-platform-token"  # noqa: S105 -- local stack only


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    port: int
    database: str | None

    @property
    def built(self) -> bool:
        """Services whose package has an entry point yet; the others are only skeletons."""
        package = REPO / "services" / self.name / "src" / self.module
        return (package / "__main__.py").exists()


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("conversation", "conversation", 8081, "conversation"),
    ServiceSpec("ai-responder", "ai_responder", 8082, "ai_responder"),
    ServiceSpec("routing", "routing", 8083, "routing"),
    ServiceSpec("tickets", "tickets", 8084, "tickets"),
    ServiceSpec("notifier", "notifier", 8085, "notifier"),
    ServiceSpec("analytics", "analytics", 8086, "analytics"),
    ServiceSpec("gateway", "gateway", 8080, "gateway"),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    """A set of service processes sharing one infrastructure environment."""

    base_env: dict[str, str]
    ports: dict[str, int]
    databases: dict[str, str]
    log_dir: Path
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)
    detached: bool = False
    # The demo tenants' seed files (`gateway.seed`); a test stack may seed variants of them.
    demo_seeds: Path = SHIPPED_DEMO_TENANTS
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def specs(self) -> list[ServiceSpec]:
        return [spec for spec in SERVICES if spec.built and spec.name in self.ports]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def env_for(self, spec: ServiceSpec) -> dict[str, str]:
        env = {**os.environ, **self.base_env, "HTTP_PORT": str(self.ports[spec.name])}
        if spec.database:
            env["POSTGRES_DB"] = self.databases[spec.name]
        if "conversation" in self.ports:  # a stack of one service (a chaos test's) has no other
            env["CONVERSATION_URL"] = self.url("conversation")
        if "routing" in self.ports:
            env["ROUTING_URL"] = self.url("routing")
        if "ai-responder" in self.ports:
            env["AI_RESPONDER_URL"] = self.url("ai-responder")
        if "tickets" in self.ports:
            env["TICKETS_URL"] = self.url("tickets")
        if "notifier" in self.ports:
            env["NOTIFIER_URL"] = self.url("notifier")
        if "analytics" in self.ports:
            env["ANALYTICS_URL"] = self.url("analytics")
        if "gateway" in self.ports:
            env["PUBLIC_BASE_URL"] = self.url("gateway")
        # One admin token for the ai-responder and the gateway's knowledge-base page.
        admin_token = self.extra_env.get("ai-responder", {}).get("ADMIN_TOKEN", LOCAL_ADMIN_TOKEN)
        if spec.name == "ai-responder":
            env["ADMIN_TOKEN"] = admin_token
        if spec.name == "gateway":
            env["AI_RESPONDER_ADMIN_TOKEN"] = admin_token
            # `make up` is for trying things: self-service sign-up is open (production's is closed).
            env["SIGNUP_ENABLED"] = "true"
            env["PLATFORM_ADMIN_TOKEN"] = LOCAL_PLATFORM_TOKEN
        env.update(self.extra_env.get(spec.name, {}))
        return env

    def start(self, name: str, wait: bool = True) -> None:
        spec = next(s for s in self.specs if s.name == name)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", spec.module],
            env=self.env_for(spec),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=self.detached,
            cwd=REPO,
        )
        self.processes[name] = process
        if self.detached:
            (self.log_dir / f"{name}.pid").write_text(str(process.pid))
        if wait:
            self.wait_ready(name)

    def start_all(self) -> None:
        """Starts every service, waits until each is ready, then seeds the demo tenants."""
        for spec in self.specs:
            self.start(spec.name, wait=False)
        for spec in self.specs:
            self.wait_ready(spec.name)
        if "gateway" in self.processes:
            self.seed_demo_tenants()

    def seed_demo_tenants(self) -> None:
        """The shipped demo tenants through the gateway's platform and settings APIs, as a
        tenant would set itself up (`gateway.seed`; again on every start: it is idempotent)."""
        spec = next(s for s in self.specs if s.name == "gateway")
        seeds = [str(path) for path in sorted(self.demo_seeds.glob("*.yaml"))]
        command = [sys.executable, "-m", "gateway.seed", "--gateway", self.url("gateway"), *seeds]
        subprocess.run(command, env=self.env_for(spec), check=True, cwd=REPO, stdout=subprocess.DEVNULL)

    def wait_ready(self, name: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        process = self.processes.get(name)
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {self.log_dir / (name + '.log')}")
            try:
                # Only ever our own http://127.0.0.1 URL.
                with urllib.request.urlopen(f"{self.url(name)}/readyz", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{name} was not ready within {timeout:.0f}s; see {self.log_dir / (name + '.log')}")

    def seed_knowledge_bases(self) -> None:
        """Loads the shipped knowledge bases (the demo tenant's among them) into the ai-responder's
        store; run before the stack starts, it is there for the first question."""
        spec = next((s for s in self.specs if s.name == "ai-responder"), None)
        if spec is not None:
            command = [sys.executable, "-m", "ai_responder.admin", "load", str(SHIPPED_KNOWLEDGE)]
            subprocess.run(command, env=self.env_for(spec), check=True, cwd=REPO)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes.pop(name)
        process.send_signal(sig)
        process.wait(timeout=30)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.kill(name, signal.SIGTERM)


def local_stack() -> Stack:
    """The stack `make up` runs: fixed ports, the service databases made by `make infra-up`."""
    return Stack(
        base_env={"ENVIRONMENT": "local"},
        ports={spec.name: spec.port for spec in SERVICES},
        databases={spec.name: spec.database for spec in SERVICES if spec.database},
        log_dir=STATE / "services",
        detached=True,
    )


def start_mail_sink(stack: Stack) -> None:
    """The developers' SMTP server (`devkit.mailsink`): the notifier's mails land as `.eml` files."""
    stack.log_dir.mkdir(parents=True, exist_ok=True)
    log = (stack.log_dir / "mailsink.log").open("ab")
    command = [sys.executable, "-m", "devkit.mailsink", "--port", str(MAIL_SINK_PORT), "--dir", str(MAIL_DIR)]
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO
    )
    (stack.log_dir / "mailsink.pid").write_text(str(process.pid))


def stop_detached(stack: Stack) -> None:
    for name in [spec.name for spec in SERVICES] + ["mailsink"]:
        pid_file = stack.log_dir / f"{name}.pid"
        if not pid_file.exists():
            continue
        try:
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
            print(f"stopped {name}")
        except ProcessLookupError:
            pass
        pid_file.unlink()


def print_demo_operators() -> None:
    """The demo tenants' accounts, seeded by `gateway.seed` (public passwords, demo only)."""
    for path in sorted(SHIPPED_DEMO_TENANTS.glob("*.yaml")):
        seed = yaml.safe_load(path.read_text())
        admin = seed["tenant"]["admin"]
        accounts = [{**admin, "role": "admin"}, *seed.get("operators", [])]
        print(f"\nDemo accounts of {seed['tenant']['tenant_id']} (demo-only passwords):")
        for account in accounts:
            print(f"  {account['username']:10} {account['password']:22} {account.get('role', 'operator')}")


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "status"
    stack = local_stack()
    if command == "up":
        stop_detached(stack)
        start_mail_sink(stack)
        stack.seed_knowledge_bases()
        stack.start_all()
        for spec in stack.specs:
            print(f"  {spec.name:13} {stack.url(spec.name)}  (log: {stack.log_dir / (spec.name + '.log')})")
        gateway = stack.url("gateway")
        print(f"\nWidget demo:  {gateway}/demo/lucine-di-natale")
        print(f"Dashboard:    {gateway}/dashboard")
        print(f"API docs:     {gateway}/docs")
        print(f"Ticket status page: {gateway}/tickets/status")
        print(f"Mails sent by the notifier: {MAIL_DIR}/*.eml (a local SMTP sink on port {MAIL_SINK_PORT})")
        print_demo_operators()
        return 0
    if command == "down":
        stop_detached(stack)
        return 0
    for spec in stack.specs:
        pid_file = stack.log_dir / f"{spec.name}.pid"
        print(f"{spec.name:13} {stack.url(spec.name)} {'running' if pid_file.exists() else 'stopped'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
