"""Static checks of docker-compose.yml (no Docker engine needed)."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

INFRA_IMAGES = {"kafka": r"apache/kafka:\d+\.\d+\.\d+", "postgres": r"postgres:16(\.\d+)?", "redis": r"redis:7(\.\d+)*"}
ONE_SHOT = {"kafka-init", "kb-seed", "demo-seed"}
MEMORY = re.compile(r"^\d+(\.\d+)?([bkmg]b?|[KMG]i?B?)?$", re.IGNORECASE)
# Compose-spec service keys this file may use; a misspelt key (`healtcheck`) is silently ignored
# by older Compose versions, so an unknown key fails here instead.
SERVICE_KEYS = {
    "build",
    "command",
    "depends_on",
    "deploy",
    "environment",
    "extra_hosts",
    "healthcheck",
    "hostname",
    "image",
    "logging",
    "mem_limit",
    "ports",
    "restart",
    "volumes",
    "profiles",
    "entrypoint",
    "user",
}
INTERPOLATION = re.compile(r"^\$\{(\w+)(:?-[^}]*)?\}$")


@pytest.fixture(scope="module")
def compose_text(repo_root: Path) -> str:
    path = repo_root / "docker-compose.yml"
    assert path.is_file(), "docker-compose.yml is missing at the repository root"
    return path.read_text()


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict[str, Any]:
    data = yaml.safe_load(compose_text)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def compose_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture
def app(compose_services: dict[str, dict[str, Any]], service: str) -> dict[str, Any]:
    assert service in compose_services, f"services/{service} has no compose service"
    return compose_services[service]


def environment(spec: dict[str, Any]) -> dict[str, str]:
    env = spec.get("environment", {})
    if isinstance(env, list):  # KEY=value form
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def default_of(value: str) -> str:
    """`${VAR:-default}` -> default, anything else unchanged."""
    m = INTERPOLATION.match(value)
    return (m.group(2) or "")[2:] if m and m.group(2) and m.group(2).startswith(":-") else value


def depends_on(spec: dict[str, Any]) -> dict[str, str]:
    deps = spec.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (cond or {}).get("condition", "service_started") for name, cond in deps.items()}


def memory_limit(spec: dict[str, Any]) -> str | None:
    limit = spec.get("deploy", {}).get("resources", {}).get("limits", {}).get("memory")
    return limit or spec.get("mem_limit")


def healthcheck_text(spec: dict[str, Any]) -> str:
    test = spec.get("healthcheck", {}).get("test", [])
    return " ".join(test) if isinstance(test, list) else str(test)


# ----------------------------------------------------------------------------- coverage


def test_every_service_directory_has_a_compose_service(
    compose_services: dict[str, dict[str, Any]], services: dict[str, str]
) -> None:
    missing = sorted(set(services) - set(compose_services))
    assert not missing, f"no compose service for {missing}"
    for infra in (*INFRA_IMAGES, *ONE_SHOT):
        assert infra in compose_services, f"compose lacks {infra}"


def test_service_keys_are_compose_keys(compose_services: dict[str, dict[str, Any]]) -> None:
    for name, spec in compose_services.items():
        unknown = set(spec) - SERVICE_KEYS
        assert not unknown, f"{name}: unknown compose keys {unknown}"


def test_no_unexpected_compose_services(compose_services: dict[str, dict[str, Any]], services: dict[str, str]) -> None:
    unknown = set(compose_services) - set(services) - set(INFRA_IMAGES) - ONE_SHOT
    assert not unknown, f"compose services that are neither infrastructure nor a services/ directory: {unknown}"


@pytest.mark.parametrize(("name", "pattern"), sorted(INFRA_IMAGES.items()))
def test_infrastructure_uses_official_pinned_images(
    compose_services: dict[str, dict[str, Any]], name: str, pattern: str
) -> None:
    spec = compose_services[name]
    assert "build" not in spec
    assert re.fullmatch(pattern, spec["image"]), f"{name}: {spec['image']} is not the official image {pattern}"


def test_app_builds_the_one_dockerfile_for_its_own_service(
    app: dict[str, Any], repo_root: Path, service: str, package: str
) -> None:
    build = app["build"]
    assert build["context"] == "."
    assert build.get("dockerfile", "Dockerfile") == "Dockerfile"
    assert (repo_root / "Dockerfile").is_file()
    assert build["args"] == {"SERVICE": service, "PACKAGE": package}
    assert re.fullmatch(
        rf"\$\{{IMAGE_REGISTRY:-ghcr\.io/lucine-support\}}/{service}:\$\{{IMAGE_TAG:-local\}}", app["image"]
    )


# ----------------------------------------------------------------------------- dependencies


def test_every_depends_on_target_exists(compose_services: dict[str, dict[str, Any]]) -> None:
    for name, spec in compose_services.items():
        for target, condition in depends_on(spec).items():
            assert target in compose_services, f"{name} depends on unknown service {target}"
            assert target != name
            if condition == "service_healthy":
                assert compose_services[target].get("healthcheck", {}).get("disable") is not True
                assert "test" in compose_services[target].get("healthcheck", {}), f"{target} has no healthcheck"
            if condition == "service_completed_successfully":
                assert target in ONE_SHOT, f"{target} is not a one-shot job"


def test_apps_wait_for_healthy_infrastructure_and_topics(app: dict[str, Any]) -> None:
    deps = depends_on(app)
    assert deps.get("kafka") == "service_healthy"
    assert deps.get("postgres") == "service_healthy"
    assert deps.get("redis") == "service_healthy"
    assert deps.get("kafka-init") == "service_completed_successfully"


def test_depends_on_graph_has_no_cycle(compose_services: dict[str, dict[str, Any]]) -> None:
    state: dict[str, int] = {}

    def visit(node: str, path: tuple[str, ...]) -> None:
        if state.get(node) == 2:
            return
        assert state.get(node) != 1, f"dependency cycle: {' -> '.join((*path, node))}"
        state[node] = 1
        for dep in depends_on(compose_services[node]):
            visit(dep, (*path, node))
        state[node] = 2

    for name in compose_services:
        visit(name, ())


def test_kafka_init_creates_topics_with_the_gateway_image(compose_services: dict[str, dict[str, Any]]) -> None:
    init = compose_services["kafka-init"]
    assert init["build"] == compose_services["gateway"]["build"]
    assert init["command"] == ["python", "-m", "servicekit.topics"]
    assert depends_on(init) == {"kafka": "service_healthy"}
    assert set(environment(init)) >= {"KAFKA_BOOTSTRAP_SERVERS"}
    assert str(init.get("restart", "no")) == "no", "a one-shot job must not restart"


def test_kb_seed_loads_the_shipped_knowledge_bases_with_the_ai_responder_image(
    compose_services: dict[str, dict[str, Any]], repo_root: Path
) -> None:
    seed = compose_services["kb-seed"]
    assert seed["build"] == compose_services["ai-responder"]["build"]
    assert seed["command"] == ["python", "-m", "ai_responder.admin", "load", "kb"]
    assert (repo_root / "services" / "ai-responder" / "kb").is_dir(), "the image's working directory holds kb/"
    assert environment(seed)["POSTGRES_DB"] == "ai_responder"
    assert depends_on(seed) == {"postgres": "service_healthy"}
    assert str(seed.get("restart", "no")) == "no", "a one-shot job must not restart"


def test_demo_seed_seeds_the_demo_tenants_through_the_gateways_api(
    compose_services: dict[str, dict[str, Any]], repo_root: Path
) -> None:
    seed = compose_services["demo-seed"]
    gateway = compose_services["gateway"]
    assert seed["build"] == gateway["build"]
    assert seed["command"] == ["python", "-m", "gateway.seed", "--gateway", "http://gateway:8000"]
    assert (repo_root / "services" / "gateway" / "demo").is_dir(), "the image's working directory holds demo/"
    assert depends_on(seed) == {"gateway": "service_healthy"}
    assert environment(seed)["PLATFORM_ADMIN_TOKEN"] == environment(gateway)["PLATFORM_ADMIN_TOKEN"]
    assert str(seed.get("restart", "no")) == "no", "a one-shot job must not restart"


# ----------------------------------------------------------------------------- runtime shape


def test_long_running_services_restart_and_have_healthchecks(compose_services: dict[str, dict[str, Any]]) -> None:
    for name, spec in compose_services.items():
        if name in ONE_SHOT:
            continue
        assert spec.get("restart") == "unless-stopped", f"{name}: restart must be unless-stopped"
        hc = spec.get("healthcheck", {})
        assert hc.get("test"), f"{name} has no healthcheck"
        assert not hc.get("disable"), f"{name} disables its healthcheck"
        assert {"interval", "timeout", "retries"} <= set(hc), f"{name}: healthcheck timing incomplete"


def test_app_healthcheck_is_readiness(app: dict[str, Any]) -> None:
    text = healthcheck_text(app)
    assert "/readyz" in text
    assert "HTTP_PORT" in text


def test_kafka_healthcheck_uses_kafka_tools(compose_services: dict[str, dict[str, Any]]) -> None:
    text = healthcheck_text(compose_services["kafka"])
    assert re.search(r"/opt/kafka/bin/kafka-(broker-api-versions|topics)\.sh", text)


def test_every_service_has_a_memory_limit(compose_services: dict[str, dict[str, Any]]) -> None:
    for name, spec in compose_services.items():
        limit = memory_limit(spec)
        assert limit, f"{name} has no memory limit"
        assert MEMORY.match(str(limit)), f"{name}: unparseable memory limit {limit}"


def test_every_service_uses_the_shared_logging_anchor(compose: dict[str, Any], compose_text: str) -> None:
    assert "x-logging" in compose
    assert re.search(r"^x-logging: &(\S+)", compose_text, re.MULTILINE)
    for name, spec in compose["services"].items():
        assert spec.get("logging") == compose["x-logging"], f"{name} does not use x-logging"
    assert compose["x-logging"]["options"].get("max-size"), "logs must be rotated"


def test_file_has_section_banners(compose_text: str) -> None:
    banners = re.findall(r"^\s*# ={20,}\n\s*# (.+)\n\s*# ={20,}$", compose_text, re.MULTILINE)
    assert len(banners) >= 3, f"expected banner-separated sections, found {banners}"


def test_only_the_gateway_is_published(compose_services: dict[str, dict[str, Any]]) -> None:
    published = {name: spec["ports"] for name, spec in compose_services.items() if spec.get("ports")}
    assert published == {"gateway": ["8080:8000"]}


# ----------------------------------------------------------------------------- configuration


def test_app_environment_matches_the_contract(app: dict[str, Any], expected_env: frozenset[str]) -> None:
    names = set(environment(app))
    assert names == expected_env, f"missing {sorted(expected_env - names)}, unexpected {sorted(names - expected_env)}"


def test_app_environment_values(app: dict[str, Any], service: str, package: str) -> None:
    env = {k: default_of(v) for k, v in environment(app).items()}
    assert env["HTTP_PORT"] == "8000"
    assert env["POSTGRES_DB"] == package, "each service has its own database, named after its package"
    assert env["ENVIRONMENT"] in {"local", "production"}
    assert env["POSTGRES_HOST"] == "postgres"
    assert env["REDIS_URL"].startswith("redis://redis:6379")
    if service == "gateway":
        assert env["CONVERSATION_URL"] == "http://conversation:8000"
        assert env["ROUTING_URL"] == "http://routing:8000"
        assert env["AI_RESPONDER_URL"] == "http://ai-responder:8000"
        assert env["TICKETS_URL"] == "http://tickets:8000"
        assert env["NOTIFIER_URL"] == "http://notifier:8000"
    if service == "ai-responder":
        assert env["OPENAI_API_KEY"] == "", "no key by default: retrieval-only mode needs no outside account"


def test_kafka_bootstrap_matches_the_advertised_listener(compose_services: dict[str, dict[str, Any]]) -> None:
    kafka_env = environment(compose_services["kafka"])
    advertised = {listener.split("://", 1)[1] for listener in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    for name, spec in compose_services.items():
        bootstrap = environment(spec).get("KAFKA_BOOTSTRAP_SERVERS")
        if bootstrap is not None:
            assert set(bootstrap.split(",")) <= advertised, f"{name}: {bootstrap} is not advertised ({advertised})"


def test_kafka_runs_in_kraft_mode(compose_services: dict[str, dict[str, Any]]) -> None:
    env = environment(compose_services["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert "CONTROLLER://" in env["KAFKA_LISTENERS"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@")
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false", "topics come from kafka-init only"
    # KRaft storage formatting rejects anything but a base64url-encoded 16-byte UUID
    cluster_id = env["CLUSTER_ID"]
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
        assert env[key] == "1", f"{key} must be 1 on a single node"


def test_postgres_init_script_creates_every_service_database(
    compose_services: dict[str, dict[str, Any]], repo_root: Path, services: dict[str, str]
) -> None:
    mounts = [v for v in compose_services["postgres"]["volumes"] if "/docker-entrypoint-initdb.d/" in v]
    assert len(mounts) == 1
    host_path = mounts[0].split(":")[0]
    assert host_path == "./deploy/k8s/components/dev-infra/init-databases.sql", "one init script for compose and k8s"
    script = repo_root / host_path
    assert script.is_file(), f"{host_path} does not exist"
    created = set(re.findall(r"^\s*CREATE DATABASE\s+(\w+)\s*;", script.read_text(), re.MULTILINE | re.IGNORECASE))
    assert created == set(services.values())
    for svc, pkg in services.items():
        assert environment(compose_services[svc])["POSTGRES_DB"] == pkg


def test_postgres_healthcheck_waits_for_tcp(compose_services: dict[str, dict[str, Any]]) -> None:
    """The init scripts run on a socket-only server; only a TCP check sees the final server."""
    text = healthcheck_text(compose_services["postgres"])
    assert "pg_isready" in text
    assert "-h 127.0.0.1" in text or "-h localhost" in text


def test_secrets_and_urls_can_be_overridden_from_the_shell(compose_services: dict[str, dict[str, Any]]) -> None:
    for name, spec in compose_services.items():
        for key, value in environment(spec).items():
            if any(word in key for word in ("PASSWORD", "SECRET", "TOKEN", "API_KEY", "ACCOUNT_SID")):
                assert INTERPOLATION.match(value), f"{name}.{key} must be ${{VAR:-default}} so it can be overridden"


def test_every_service_starts_by_default(app: dict[str, Any], service: str, repo_root: Path, package: str) -> None:
    """Every service has an entry point, so none waits behind a profile."""
    assert (repo_root / "services" / service / "src" / package / "__main__.py").is_file(), f"{service} is not built"
    assert "profiles" not in app, f"{service} starts only with profiles {app.get('profiles')}"
