"""Static checks of services/<svc>/Dockerfile and the root .dockerignore."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

PYTHON_IMAGE = "python:3.11-slim"
LOCK = "requirements/runtime.lock"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions in order, continuation lines joined, comments and blank lines dropped."""
    instructions: list[Instruction] = []
    buffer = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # comment inside a continued instruction
            continue
        if line.endswith("\\"):
            buffer += line[:-1].strip() + " "
            continue
        buffer += line
        keyword, _, args = buffer.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
        buffer = ""
    assert not buffer, f"{path}: dangling line continuation"
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last_from = max(i for i, ins in enumerate(instructions) if ins.keyword == "FROM")
    return instructions[last_from:]


def arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    defaults: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "ARG" and "=" in ins.args:
            name, _, value = ins.args.partition("=")
            defaults[name.strip()] = value.strip()
    return defaults


@pytest.fixture
def dockerfile(repo_root: Path, service: str) -> Path:
    return repo_root / "services" / service / "Dockerfile"


@pytest.fixture
def instructions(dockerfile: Path) -> list[Instruction]:
    assert dockerfile.is_file(), f"missing {dockerfile}"
    return parse_dockerfile(dockerfile)


def test_every_service_has_a_dockerfile(repo_root: Path, services: dict[str, str]) -> None:
    missing = [svc for svc in services if not (repo_root / "services" / svc / "Dockerfile").is_file()]
    assert not missing, f"services without a Dockerfile: {missing}"


def test_base_image_is_python_3_11_slim(instructions: list[Instruction]) -> None:
    defaults = arg_defaults(instructions)
    bases = []
    for ins in instructions:
        if ins.keyword != "FROM":
            continue
        image = ins.args.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m.group(1), m.group(0)), image)
        bases.append(image)
    assert bases, "no FROM"
    assert all(b == PYTHON_IMAGE for b in bases), f"every stage must build FROM {PYTHON_IMAGE}, got {bases}"


def test_cmd_runs_the_service_package(
    instructions: list[Instruction], repo_root: Path, service: str, package: str, wheel_packages: list[str]
) -> None:
    cmds = [ins for ins in instructions if ins.keyword == "CMD"]
    assert len(cmds) == 1, "exactly one CMD"
    assert json.loads(cmds[0].args) == ["python", "-m", package]
    assert (repo_root / "services" / service / "src" / package / "__init__.py").is_file()
    assert f"src/{package}" in wheel_packages, "the CMD module must be the package the wheel installs"


def test_runs_as_non_root(instructions: list[Instruction]) -> None:
    users = [ins.args for ins in final_stage(instructions) if ins.keyword == "USER"]
    assert users, "the runtime stage must switch USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, f"runtime user is {users[-1]}"
    # numeric, so Kubernetes runAsNonRoot can verify it without /etc/passwd
    assert user.isdigit(), "use a numeric UID so runAsNonRoot can be verified"
    stage = final_stage(instructions)
    last_user = max(i for i, ins in enumerate(stage) if ins.keyword == "USER")
    assert not any(ins.keyword == "RUN" for ins in stage[last_user:]), "no RUN after dropping to the app user"


def test_installs_locked_dependencies_with_hashes(instructions: list[Instruction], service: str) -> None:
    runs = [ins.args for ins in instructions if ins.keyword == "RUN"]
    assert any(f"pip install --require-hashes -r {LOCK}" in r for r in runs), "lock must be installed with hashes"
    local = [r for r in runs if "--no-deps" in r]
    assert len(local) == 1, "one pip install of the workspace packages"
    assert "--no-build-isolation" in local[0]
    for path in ("./libs/contracts", "./libs/servicekit", f"./services/{service}"):
        assert path in local[0].split(), f"{path} is not installed"


def test_copy_sources_exist_in_the_build_context(instructions: list[Instruction], repo_root: Path) -> None:
    for ins in instructions:
        if ins.keyword not in {"COPY", "ADD"}:
            continue
        parts = [p for p in ins.args.split() if not p.startswith("--")]
        if any(p.startswith("--from") for p in ins.args.split()):
            continue
        for src in parts[:-1]:
            assert (repo_root / src).exists(), f"COPY source {src} does not exist (context = repo root)"


def test_healthcheck_probes_healthz(instructions: list[Instruction]) -> None:
    checks = [ins.args for ins in final_stage(instructions) if ins.keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "/healthz" in checks[0]
    assert "HTTP_PORT" in checks[0], "the health check must follow HTTP_PORT"


def test_listens_on_8000(instructions: list[Instruction]) -> None:
    stage = final_stage(instructions)
    assert any(ins.keyword == "EXPOSE" and ins.args.split() == ["8000"] for ins in stage)
    envs = " ".join(ins.args for ins in stage if ins.keyword == "ENV")
    assert re.search(r"\bHTTP_PORT=8000\b", envs), "HTTP_PORT=8000 must be the image default"


def test_dockerfiles_share_one_shape(repo_root: Path, services: dict[str, str]) -> None:
    """Every Dockerfile is the same text once its service name and package are abstracted
    (both map to one token; test_cmd_runs_the_service_package checks which one CMD uses)."""
    shapes: dict[str, list[str]] = {}
    for svc, pkg in services.items():
        text = (repo_root / "services" / svc / "Dockerfile").read_text()
        normalised = re.sub(rf"\b{re.escape(pkg)}\b", "<svc>", text.replace(svc, "<svc>"))
        shapes.setdefault(normalised, []).append(svc)
    assert len(shapes) == 1, f"Dockerfiles differ in shape: {sorted(shapes.values())}"


# ----------------------------------------------------------------------------- .dockerignore


def dockerignore_rules(path: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, regex) per pattern, with Docker's semantics: `*` stays in one path segment,
    `**` crosses segments, a matched directory excludes everything below it."""
    rules = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        rules.append((negated, re.compile(rf"^{regex}(?:/.*)?$")))
    return rules


def is_ignored(rules: list[tuple[bool, re.Pattern[str]]], path: str) -> bool:
    ignored = False
    for negated, regex in rules:
        if regex.match(path):
            ignored = not negated
    return ignored


@pytest.fixture(scope="module")
def ignore_rules(repo_root: Path) -> list[tuple[bool, re.Pattern[str]]]:
    path = repo_root / ".dockerignore"
    assert path.is_file(), ".dockerignore is missing at the repository root"
    return dockerignore_rules(path)


def test_dockerignore_keeps_what_the_build_needs(
    ignore_rules: list[tuple[bool, re.Pattern[str]]], repo_root: Path, services: dict[str, str]
) -> None:
    needed = [LOCK, "libs/contracts/pyproject.toml", "libs/servicekit/pyproject.toml"]
    needed += [str(p.relative_to(repo_root)) for p in (repo_root / "libs").glob("*/src/**/*.py")]
    for svc, pkg in services.items():
        needed += [f"services/{svc}/pyproject.toml", f"services/{svc}/src/{pkg}/__init__.py"]
    dropped = [p for p in needed if is_ignored(ignore_rules, p)]
    assert not dropped, f".dockerignore excludes files the Dockerfiles need: {dropped}"


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        ".venv/bin/python",
        ".local/kafka/data",
        "services/gateway/tests/test_api.py",
        "libs/servicekit/tests/conftest.py",
        "services/gateway/src/gateway/__pycache__/app.cpython-311.pyc",
        "tests/deploy/test_compose.py",
        ".env",
    ],
)
def test_dockerignore_drops_local_state(ignore_rules: list[tuple[bool, re.Pattern[str]]], path: str) -> None:
    assert is_ignored(ignore_rules, path), f"{path} would be sent to the Docker daemon"
