#!/usr/bin/env python3
"""Local infrastructure without Docker: Apache Kafka (KRaft), PostgreSQL and Redis.

Each server runs as a plain process on loopback, with its data, logs and pid file under
`.local/` in the repository, on ports of its own, so a system-wide instance is never
touched. Every command is idempotent: `up` on a running stack only checks it.

    python3 infra/localinfra.py up|down|status|env|browser|promtool

Only the standard library is used: this runs before the project's virtualenv exists.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("LOCAL_INFRA_DIR", REPO / ".local"))
HOST = "127.0.0.1"
KAFKA_PORT = int(os.environ.get("LOCAL_KAFKA_PORT", "59092"))
KAFKA_CONTROLLER_PORT = int(os.environ.get("LOCAL_KAFKA_CONTROLLER_PORT", "59093"))
POSTGRES_PORT = int(os.environ.get("LOCAL_POSTGRES_PORT", "55432"))
REDIS_PORT = int(os.environ.get("LOCAL_REDIS_PORT", "56379"))
POSTGRES_USER = "support"
POSTGRES_PASSWORD = "support"
# One database per service that owns a Postgres store: no service reads another's tables.
SERVICE_DATABASES = ("gateway", "conversation", "ai_responder", "routing", "tickets", "notifier", "analytics")
KAFKA_HEAP = os.environ.get("LOCAL_KAFKA_HEAP", "-Xms256m -Xmx768m")


class InfraError(RuntimeError):
    """A problem the user must fix; printed without a traceback."""


def log(message: str) -> None:
    print(f"[infra] {message}", flush=True)


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, **kwargs)  # type: ignore[call-overload, no-any-return]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def wait_until(check: Callable[[], bool], what: str, timeout: float, log_file: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    tail = ""
    if log_file and log_file.exists():
        tail = (
            "\n--- last lines of "
            + str(log_file)
            + " ---\n"
            + "\n".join(log_file.read_text(errors="replace").splitlines()[-25:])
        )
    raise InfraError(f"{what} did not become ready within {timeout:.0f}s{tail}")


def pid_alive(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, IndexError):
        return None
    except PermissionError:
        return pid
    return pid


def is_root() -> bool:
    return os.geteuid() == 0


def apt_install(packages: list[str]) -> None:
    if not is_root() or not shutil.which("apt-get"):
        raise InfraError(f"missing system packages {packages}: install them with your package manager")
    log(f"installing {' '.join(packages)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], env=env, stdout=subprocess.DEVNULL)


# --------------------------------------------------------------------------- PostgreSQL


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def make_traversable_for(user: str, path: Path) -> None:
    """Postgres refuses to run as root, so as root it runs as `user`, who must reach `path`."""
    for parent in [path, *path.parents]:
        probe = subprocess.run(["runuser", "-u", user, "--", "test", "-x", str(parent)], check=False)
        if probe.returncode != 0:
            log(f"granting traverse permission on {parent} so the '{user}' user can reach its data")
            parent.chmod(parent.stat().st_mode | 0o001)


@dataclass
class Postgres:
    root: Path = STATE / "postgres"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def as_server_user(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if is_root() else cmd

    def up(self) -> None:
        bin_dir = postgres_bin()
        if bin_dir is None:
            apt_install(["postgresql"])
            bin_dir = postgres_bin()
        if bin_dir is None:
            raise InfraError("PostgreSQL binaries not found after install")
        self.root.mkdir(parents=True, exist_ok=True)
        if is_root():
            run(["chown", "-R", "postgres:postgres", str(self.root)])
            make_traversable_for("postgres", self.root)
        if not (self.data / "PG_VERSION").exists():
            log("initialising PostgreSQL data directory")
            pwfile = self.root / "pwfile"
            pwfile.write_text(POSTGRES_PASSWORD + "\n")
            if is_root():
                run(["chown", "postgres:postgres", str(pwfile)])
            run(
                self.as_server_user(
                    [
                        str(bin_dir / "initdb"),
                        "-D",
                        str(self.data),
                        "-U",
                        POSTGRES_USER,
                        f"--pwfile={pwfile}",
                        "--auth-host=scram-sha-256",
                        "--auth-local=trust",
                        "-E",
                        "UTF8",
                        "--locale=C.UTF-8",
                    ]
                ),
                stdout=subprocess.DEVNULL,
            )
            pwfile.unlink()
        if port_open(POSTGRES_PORT):
            log(f"PostgreSQL already listening on {HOST}:{POSTGRES_PORT}")
        else:
            log(f"starting PostgreSQL on {HOST}:{POSTGRES_PORT}")
            options = f"-p {POSTGRES_PORT} -k {self.root} -c listen_addresses={HOST} -c max_connections=300 -c fsync=on"
            run(
                self.as_server_user(
                    [
                        str(bin_dir / "pg_ctl"),
                        "-D",
                        str(self.data),
                        "-l",
                        str(self.root / "postgres.log"),
                        "-o",
                        options,
                        "-w",
                        "-t",
                        "60",
                        "start",
                    ]
                ),
                stdout=subprocess.DEVNULL,
            )
        self.create_databases()

    def psql(self, sql: str) -> str:
        psql = shutil.which("psql") or str((postgres_bin() or Path("/usr/bin")) / "psql")
        env = {**os.environ, "PGPASSWORD": POSTGRES_PASSWORD}
        out = run(
            [psql, "-h", HOST, "-p", str(POSTGRES_PORT), "-U", POSTGRES_USER, "-d", "postgres", "-tAc", sql],
            env=env,
            capture_output=True,
        )
        return out.stdout.strip()

    def create_databases(self) -> None:
        existing = set(self.psql("SELECT datname FROM pg_database").split())
        for name in SERVICE_DATABASES:
            if name not in existing:
                self.psql(f'CREATE DATABASE "{name}"')
                log(f"created database {name}")

    def down(self) -> None:
        bin_dir = postgres_bin()
        if bin_dir and (self.data / "postmaster.pid").exists():
            log("stopping PostgreSQL")
            subprocess.run(
                self.as_server_user([str(bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
                check=False,
                stdout=subprocess.DEVNULL,
            )


# --------------------------------------------------------------------------- Redis


@dataclass
class Redis:
    root: Path = STATE / "redis"

    def up(self) -> None:
        if not shutil.which("redis-server"):
            apt_install(["redis-server"])
        self.root.mkdir(parents=True, exist_ok=True)
        if port_open(REDIS_PORT):
            log(f"Redis already listening on {HOST}:{REDIS_PORT}")
            return
        log(f"starting Redis on {HOST}:{REDIS_PORT}")
        run(
            [
                "redis-server",
                "--port",
                str(REDIS_PORT),
                "--bind",
                HOST,
                "--dir",
                str(self.root),
                "--daemonize",
                "yes",
                "--pidfile",
                str(self.root / "redis.pid"),
                "--logfile",
                str(self.root / "redis.log"),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--maxclients",
                "20000",
            ]
        )
        wait_until(lambda: port_open(REDIS_PORT), "Redis", 20, self.root / "redis.log")

    def down(self) -> None:
        if port_open(REDIS_PORT):
            log("stopping Redis")
            subprocess.run(
                ["redis-cli", "-h", HOST, "-p", str(REDIS_PORT), "shutdown", "nosave"], check=False, capture_output=True
            )


# --------------------------------------------------------------------------- Kafka


@dataclass
class Kafka:
    root: Path = STATE / "kafka"

    @property
    def libs(self) -> Path:
        return self.root / "libs"

    @property
    def config(self) -> Path:
        return self.root / "server.properties"

    @property
    def pid_file(self) -> Path:
        return self.root / "kafka.pid"

    def resolve_classpath(self) -> None:
        if list(self.libs.glob("kafka_2.13-*.jar")):
            return
        for tool in ("java", "mvn"):
            if not shutil.which(tool):
                apt_install(["default-jre-headless" if tool == "java" else "maven"])
        log("resolving the Kafka broker and its dependencies from Maven Central")
        staging = self.root / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(REPO / "infra" / "kafka" / "pom.xml"),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ]
        )
        staging.rename(self.libs)

    def write_config(self) -> None:
        data = self.root / "data"
        self.config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers={HOST}:{KAFKA_CONTROLLER_PORT}",
                    f"listeners=PLAINTEXT://{HOST}:{KAFKA_PORT},CONTROLLER://{HOST}:{KAFKA_CONTROLLER_PORT}",
                    f"advertised.listeners=PLAINTEXT://{HOST}:{KAFKA_PORT}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={data}",
                    # Topics are created explicitly with their partition counts; a typo must not
                    # silently create a new one.
                    "auto.create.topics.enable=false",
                    "num.partitions=3",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=10",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "log.retention.hours=168",
                    "",
                ]
            )
        )
        (self.root / "log4j2.yaml").write_text(
            "Configuration:\n"
            "  Appenders:\n"
            "    Console: {name: STDOUT, PatternLayout: {Pattern: '[%d] %p %m (%c)%n'}}\n"
            "  Loggers:\n"
            "    Root: {level: WARN, AppenderRef: [{ref: STDOUT}]}\n"
            "    Logger: [{name: kafka.server.KafkaServer, level: INFO}, {name: kafka.Kafka, level: INFO}]\n"
        )

    def java(self, main: str, *args: str, **kwargs: object) -> list[str]:
        return ["java", f"-Dlog4j2.configurationFile={self.root / 'log4j2.yaml'}", "-cp", f"{self.libs}/*", main, *args]

    def up(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.resolve_classpath()
        if port_open(KAFKA_PORT):
            log(f"Kafka already listening on {HOST}:{KAFKA_PORT}")
            return
        self.write_config()
        if not (self.root / "data" / "meta.properties").exists():
            log("formatting Kafka KRaft storage")
            run(
                self.java(
                    # `=`: a generated id may start with "-", which would read as an option.
                    "kafka.tools.StorageTool",
                    "format",
                    "--standalone",
                    f"--cluster-id={uuid_for_kafka()}",
                    "-c",
                    str(self.config),
                ),
                stdout=subprocess.DEVNULL,
            )
        log(f"starting Kafka (KRaft) on {HOST}:{KAFKA_PORT}")
        log_file = self.root / "kafka.log"
        env = {**os.environ, "KAFKA_HEAP_OPTS": KAFKA_HEAP}
        with log_file.open("ab") as out:
            proc = subprocess.Popen(
                [
                    "java",
                    *KAFKA_HEAP.split(),
                    "-XX:+UseG1GC",
                    "-Djava.awt.headless=true",
                    *self.java("kafka.Kafka", str(self.config))[1:],
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        self.pid_file.write_text(str(proc.pid))
        wait_until(lambda: port_open(KAFKA_PORT) and proc.poll() is None, "Kafka", 90, log_file)

    def down(self) -> None:
        pid = pid_alive(self.pid_file)
        if pid is None:
            return
        log("stopping Kafka")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and pid_alive(self.pid_file):
            time.sleep(0.3)
        if pid_alive(self.pid_file):
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)


def uuid_for_kafka() -> str:
    """A cluster id in Kafka's format: a UUID as 22 characters of URL-safe base64."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


# --------------------------------------------------------------------------- commands


def endpoints() -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": f"{HOST}:{KAFKA_PORT}",
        "POSTGRES_HOST": HOST,
        "POSTGRES_PORT": str(POSTGRES_PORT),
        "POSTGRES_USER": POSTGRES_USER,
        "POSTGRES_PASSWORD": POSTGRES_PASSWORD,
        "REDIS_URL": f"redis://{HOST}:{REDIS_PORT}/0",
    }


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "status"
    servers = {"postgres": Postgres(), "redis": Redis(), "kafka": Kafka()}
    try:
        if command == "up":
            for server in servers.values():
                server.up()
            log("infrastructure is up")
        elif command == "down":
            for server in reversed(list(servers.values())):
                server.down()
        elif command == "browser":
            # Browser tests drive Debian's Chromium; test tools cannot download their own here.
            if not shutil.which("chromium"):
                apt_install(["chromium", "fonts-dejavu-core"])
        elif command == "promtool":
            # The alert rules' tests run Debian's promtool (in its `prometheus` package); only the
            # tool is used, no Prometheus server is started.
            if not shutil.which("promtool"):
                apt_install(["prometheus"])
        elif command == "status":
            ports = {"postgres": POSTGRES_PORT, "redis": REDIS_PORT, "kafka": KAFKA_PORT}
            for name, port in ports.items():
                print(f"{name:9} {HOST}:{port} {'up' if port_open(port) else 'down'}")
        elif command == "env":
            for key, value in endpoints().items():
                print(f"export {key}={value}")
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except InfraError as error:
        print(f"[infra] error: {error}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as error:
        print(f"[infra] error: command failed ({error.returncode}): {' '.join(map(str, error.cmd))}", file=sys.stderr)
        if error.stderr:
            print(error.stderr, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
