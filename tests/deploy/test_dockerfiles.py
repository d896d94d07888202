"""Static checks of the Dockerfile (one for every service, built with its SERVICE and PACKAGE
build arguments) and the root .dockerignore."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

PYTHON_IMAGE = "python:3.11-slim"
LOCK = "requirements/runtime.lock"
# Development-only packages: in requirements.lock for tests and tools, never in an image.
DEV_ONLY_MODULES = frozenset({"devkit", "pytest", "testcontainers", "playwright"})


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order, continuation lines joined, comments and blank lines dropped."""
    instructions: list[Instruction] = []
    buffer = ""
    for raw in text.splitlines():
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
    assert not buffer, "dangling line continuation"
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    starts = [i for i, ins in enumerate(instructions) if ins.keyword == "FROM"]
    return [instructions[a:b] for a, b in zip(starts, [*starts[1:], len(instructions)], strict=True)]


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


@pytest.fixture(scope="module")
def dockerfile(repo_root: Path) -> str:
    path = repo_root / "Dockerfile"
    assert path.is_file(), "missing the Dockerfile at the repository root"
    return path.read_text()


@pytest.fixture
def instructions(dockerfile: str, service: str, package: str) -> list[Instruction]:
    """The Dockerfile as built for one service: its build arguments substituted, as Docker does
    (docker-compose.yml passes these two; test_compose checks that it does)."""
    for name, value in {"SERVICE": service, "PACKAGE": package}.items():
        dockerfile = dockerfile.replace("${" + name + "}", value)
    return parse_dockerfile(dockerfile)


def test_every_stage_takes_the_service_and_its_package_and_a_build_without_them_fails(dockerfile: str) -> None:
    for stage in stages(parse_dockerfile(dockerfile)):
        args = {ins.args for ins in stage if ins.keyword == "ARG"}
        assert {"SERVICE", "PACKAGE"} <= args, f"the stage {stage[0].args} must declare both, without defaults"
    build = stages(parse_dockerfile(dockerfile))[0]
    first_run = next(ins.args for ins in build if ins.keyword == "RUN")
    assert 'test -n "$SERVICE"' in first_run
    assert 'test -n "$PACKAGE"' in first_run
    assert "exit 1" in first_run


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
    # `exec`, so the service is process 1 and gets the container's SIGTERM itself.
    assert json.loads(cmds[0].args) == ["sh", "-c", 'exec python -m "$SERVICE_PACKAGE"']
    envs = " ".join(ins.args for ins in final_stage(instructions) if ins.keyword == "ENV")
    assert re.search(rf"\bSERVICE_PACKAGE={re.escape(package)}(\s|$)", envs), "the image must name its package"
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


def copied_sources(instructions: list[Instruction]) -> list[str]:
    """The build-context paths the Dockerfile copies (not those copied from another stage)."""
    sources: list[str] = []
    for ins in instructions:
        if ins.keyword in {"COPY", "ADD"} and "--from" not in ins.args:
            sources += [p for p in ins.args.split() if not p.startswith("--")][:-1]
    return sources


def imported_modules(path: Path) -> set[str]:
    """Top-level names of the modules a Python file imports (absolute imports only)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_image_ships_no_development_code(instructions: list[Instruction], repo_root: Path) -> None:
    """Test fixtures, the stack runner and the widget client live in libs/devkit, which no image
    copies; nothing the image does copy may import it or a test tool (it would fail at import)."""
    sources = copied_sources(instructions)
    assert not [src for src in sources if src.startswith("libs/devkit")], "libs/devkit is development-only"
    assert all(src.startswith(("requirements/", "libs/", "services/")) for src in sources), sources
    for module in ("testing", "stack", "widget_client"):
        assert not (repo_root / "libs/servicekit/src/servicekit" / f"{module}.py").exists(), f"{module} is devkit's"
    for src in sources:
        for path in sorted((repo_root / src).glob("src/**/*.py")):
            dev_only = sorted(imported_modules(path) & DEV_ONLY_MODULES)
            assert not dev_only, f"{path.relative_to(repo_root)} imports {dev_only}, which no image installs"


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
