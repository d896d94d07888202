"""Static checks of deploy/k8s (kustomize base, components and overlays).

The structural checks parse the YAML in Python. When `kubectl` is installed the overlays are
also rendered with `kubectl kustomize` (client-side only, no cluster) and the output checked;
those tests skip when it is absent.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REGISTRY = "ghcr.io/lucine-support"
PART_OF = {"app.kubernetes.io/part-of": "lucine-support"}
REQUIRED_SECRETS = {
    "postgres-credentials",
    "gateway-secrets",
    "ai-responder-secrets",
    "notifier-secrets",
    "ticket-links",
}
OVERLAYS = {"dev": "lucine-support-dev", "production": "lucine-support"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job"}

Doc = dict[str, Any]


# ----------------------------------------------------------------------------- helpers


def load_docs(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kustomization(path: Path) -> Doc:
    data = yaml.safe_load((path / "kustomization.yaml").read_text())
    assert isinstance(data, dict)
    return data


def pod_spec(workload: Doc) -> Doc:
    return workload["spec"]["template"]["spec"]


def containers(workload: Doc) -> list[Doc]:
    return list(pod_spec(workload)["containers"])


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def selector_matches(selector: Doc, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against a label set."""
    if not labels_match(selector.get("matchLabels", {}), labels):
        return False
    for expr in selector.get("matchExpressions", []):
        value, op = labels.get(expr["key"]), expr["operator"]
        if (
            (op == "In" and value not in expr["values"])
            or (op == "NotIn" and value in expr["values"])
            or (op == "Exists" and value is None)
            or (op == "DoesNotExist" and value is not None)
        ):
            return False
    return True


def resolve_port(container: Doc, port: int | str) -> int:
    """A probe or Service targetPort (name or number) -> the container port number it hits."""
    declared = {p["containerPort"]: p for p in container.get("ports", [])}
    if isinstance(port, int):
        assert port in declared, f"{container['name']}: port {port} is not a container port"
        return port
    named = [p["containerPort"] for p in declared.values() if p.get("name") == port]
    assert named, f"{container['name']}: no container port named {port!r}"
    return int(named[0])


def generated_keys(kust: Doc, generator: str) -> dict[str, set[str]]:
    """name -> keys of every literal-based ConfigMap/Secret generator in a kustomization."""
    out: dict[str, set[str]] = {}
    for gen in kust.get(generator, []) or []:
        keys = {lit.split("=", 1)[0] for lit in gen.get("literals", [])}
        keys |= {Path(f.split("=", 1)[0] if "=" in f else f).name for f in gen.get("files", [])}
        out.setdefault(gen["name"], set()).update(keys)
    return out


def env_names(container: Doc, configmaps: dict[str, set[str]]) -> set[str]:
    names = {e["name"] for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            ref = source["configMapRef"]["name"]
            assert ref in configmaps, f"envFrom unknown ConfigMap {ref}"
            names |= configmaps[ref]
        else:
            pytest.fail(f"{container['name']}: secrets must be referenced key by key, not with envFrom")
    return names


def iter_kustomizations(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("kustomization.yaml")):
        yield path.parent


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def k8s_root(repo_root: Path) -> Path:
    root = repo_root / "deploy" / "k8s"
    assert root.is_dir()
    return root


@pytest.fixture(scope="module")
def base(k8s_root: Path) -> Path:
    return k8s_root / "base"


@pytest.fixture(scope="module")
def base_docs(base: Path) -> list[Doc]:
    docs: list[Doc] = []
    for resource in kustomization(base)["resources"]:
        docs += load_docs(base / resource)
    return docs


@pytest.fixture(scope="module")
def base_configmaps(base: Path) -> dict[str, set[str]]:
    return generated_keys(kustomization(base), "configMapGenerator")


@pytest.fixture
def manifest(base: Path, service: str) -> list[Doc]:
    path = base / f"{service}.yaml"
    assert path.is_file(), f"services/{service} has no k8s manifest {path}"
    return load_docs(path)


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


@pytest.fixture
def deployment(manifest: list[Doc], service: str) -> Doc:
    return one(manifest, "Deployment", service)


@pytest.fixture
def container(deployment: Doc, service: str) -> Doc:
    (c,) = containers(deployment)
    assert c["name"] == service
    return c


# ----------------------------------------------------------------------------- kustomize layout


def test_every_kustomization_reference_exists(k8s_root: Path) -> None:
    for directory in iter_kustomizations(k8s_root):
        kust = kustomization(directory)
        refs: list[str] = list(kust.get("resources", [])) + list(kust.get("components", []))
        refs += [p["path"] for p in kust.get("patches", []) if "path" in p]
        for gen in (kust.get("configMapGenerator") or []) + (kust.get("secretGenerator") or []):
            refs += [f.split("=", 1)[-1] for f in gen.get("files", [])]
        for ref in refs:
            target = (directory / ref).resolve()
            assert target.exists(), f"{directory / 'kustomization.yaml'} lists missing {ref}"
            if target.is_dir():
                assert (target / "kustomization.yaml").is_file(), f"{ref} is not a kustomization"
        for comp in kust.get("components", []):
            assert kustomization(directory / comp)["kind"] == "Component"


def test_every_manifest_is_listed_by_its_kustomization(k8s_root: Path) -> None:
    for directory in iter_kustomizations(k8s_root):
        kust = kustomization(directory)
        listed = set(kust.get("resources", [])) | {p["path"] for p in kust.get("patches", []) if "path" in p}
        for manifest in sorted(directory.glob("*.yaml")):
            if manifest.name != "kustomization.yaml":
                assert manifest.name in listed, f"{manifest} is not listed in {directory}/kustomization.yaml"


def test_every_service_is_in_the_base(base: Path, services: dict[str, str]) -> None:
    in_base = set(kustomization(base)["resources"])
    for svc in services:
        assert f"{svc}.yaml" in in_base, f"{svc} is not listed by the base"


def test_components_are_kustomize_components(k8s_root: Path) -> None:
    for name in ("network-policies", "dev-infra"):
        kust = kustomization(k8s_root / "components" / name)
        assert kust["kind"] == "Component"
        assert kust["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"


# Folders of a developer's machine that have no business in a manifest.
MACHINE_FOLDERS = ("home", "Users", "work", "root")
MACHINE_PATH = re.compile("(" + "|".join(f"/{folder}/" for folder in MACHINE_FOLDERS) + "|/tmp/[a-z])")


def test_no_machine_paths(k8s_root: Path, repo_root: Path) -> None:
    for path in [*k8s_root.rglob("*.yaml"), repo_root / "docker-compose.yml"]:
        text = path.read_text()
        assert not MACHINE_PATH.search(text), f"{path} contains a machine path"


# ----------------------------------------------------------------------------- per service


def test_manifest_has_deployment_service_and_service_account(manifest: list[Doc], service: str) -> None:
    for kind in ("Deployment", "Service", "ServiceAccount"):
        one(manifest, kind, service)


def test_deployment_uses_its_service_account(deployment: Doc, manifest: list[Doc], service: str) -> None:
    sa = one(manifest, "ServiceAccount", service)
    assert pod_spec(deployment)["serviceAccountName"] == sa["metadata"]["name"]
    assert sa.get("automountServiceAccountToken") is False
    assert pod_spec(deployment).get("automountServiceAccountToken") is False


def test_labels_and_selectors(deployment: Doc, manifest: list[Doc], service: str) -> None:
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert template_labels.get("app.kubernetes.io/name") == service
    assert labels_match(PART_OF, template_labels), "network policies select pods by part-of"
    assert labels_match(deployment["spec"]["selector"]["matchLabels"], template_labels)
    svc = one(manifest, "Service", service)
    assert svc["spec"]["selector"], "a Service without a selector routes nowhere"
    assert labels_match(svc["spec"]["selector"], template_labels), "Service selector does not match the pods"


def test_service_port_reaches_the_container(container: Doc, manifest: list[Doc], service: str) -> None:
    svc = one(manifest, "Service", service)
    (port,) = svc["spec"]["ports"]
    assert port["port"] == 8000
    assert resolve_port(container, port["targetPort"]) == 8000


def test_probes(container: Doc) -> None:
    readiness = container["readinessProbe"]["httpGet"]
    liveness = container["livenessProbe"]["httpGet"]
    assert readiness["path"] == "/readyz"
    assert liveness["path"] == "/healthz"
    for probe in (readiness, liveness, container.get("startupProbe", {}).get("httpGet", liveness)):
        assert resolve_port(container, probe["port"]) == 8000, "probes must hit HTTP_PORT"


def test_container_port_matches_http_port(container: Doc, base_configmaps: dict[str, set[str]], base: Path) -> None:
    literals = dict(
        lit.split("=", 1)
        for gen in kustomization(base)["configMapGenerator"]
        if gen["name"] == "platform-config"
        for lit in gen["literals"]
    )
    assert [p["containerPort"] for p in container["ports"]] == [int(literals["HTTP_PORT"])]


def test_resources(container: Doc) -> None:
    resources = container["resources"]
    for section in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources.get(section, {})), f"{section} needs cpu and memory"


def test_pod_hardening(deployment: Doc, container: Doc) -> None:
    pod = pod_spec(deployment)["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod.get("runAsUser", 0) != 0
    assert pod["seccompProfile"]["type"] == "RuntimeDefault"
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert "add" not in sc["capabilities"]
    assert sc.get("privileged", False) is False
    assert not pod_spec(deployment).get("hostNetwork", False)


def test_tmp_is_a_writable_empty_dir(deployment: Doc, container: Doc) -> None:
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    assert "/tmp" in mounts, "read-only root filesystem needs a writable /tmp"
    volumes = {v["name"]: v for v in pod_spec(deployment).get("volumes", [])}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_image(container: Doc, service: str) -> None:
    assert container["image"] == f"{REGISTRY}/{service}", "base images are untagged; overlays set the tag"


def test_environment_matches_the_contract(
    container: Doc, base_configmaps: dict[str, set[str]], expected_env: frozenset[str]
) -> None:
    names = env_names(container, base_configmaps)
    assert names == expected_env, f"missing {sorted(expected_env - names)}, unexpected {sorted(names - expected_env)}"


def test_database_and_secret_references(container: Doc, package: str) -> None:
    env = {e["name"]: e for e in container.get("env", [])}
    assert env["POSTGRES_DB"]["value"] == package
    for item in container.get("env", []):
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["name"] in REQUIRED_SECRETS, f"{item['name']} reads undocumented secret {ref['name']}"
        if any(w in item["name"] for w in ("PASSWORD", "SECRET", "TOKEN", "API_KEY", "ACCOUNT_SID")):
            assert ref, f"{item['name']} must come from a Secret"
            assert item["name"] != "OPENAI_API_KEY" or ref.get("optional") is True, "no key = retrieval-only"


def test_autoscaler_and_disruption_budget(manifest: list[Doc], deployment: Doc, service: str) -> None:
    hpa = one(manifest, "HorizontalPodAutoscaler", service)
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", service)
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert "replicas" not in deployment["spec"], "the HPA owns replicas; a fixed count would fight it on apply"
    pdb = one(manifest, "PodDisruptionBudget", service)
    assert selector_matches(pdb["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])
    assert "maxUnavailable" in pdb["spec"] or "minAvailable" in pdb["spec"]


# ----------------------------------------------------------------------------- topics job


def test_topics_job(base_docs: list[Doc], base_configmaps: dict[str, set[str]]) -> None:
    job = one(base_docs, "Job", "kafka-topics")
    (c,) = containers(job)
    assert c["command"] == ["python", "-m", "servicekit.topics"]
    assert c["image"] == f"{REGISTRY}/gateway"
    env = {e["name"]: e for e in c["env"]}
    ref = env["KAFKA_BOOTSTRAP_SERVERS"]["valueFrom"]["configMapKeyRef"]
    assert ref["key"] in base_configmaps[ref["name"]]
    assert pod_spec(job)["restartPolicy"] in {"OnFailure", "Never"}
    assert pod_spec(job)["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(c["resources"]["limits"])


# ----------------------------------------------------------------------------- every Service routes somewhere


def test_every_service_selects_exactly_one_workload(k8s_root: Path) -> None:
    docs: list[Doc] = []
    for path in sorted(k8s_root.rglob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += load_docs(path)
    workloads = [d for d in docs if d["kind"] in WORKLOAD_KINDS - {"Job"}]
    for svc in (d for d in docs if d["kind"] == "Service"):
        matches = [
            w for w in workloads if labels_match(svc["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(matches) == 1, f"Service {svc['metadata']['name']} selects {len(matches)} workloads"
        (c,) = containers(matches[0])
        for port in svc["spec"]["ports"]:
            resolve_port(c, port["targetPort"])


# ----------------------------------------------------------------------------- network policies


@pytest.fixture(scope="module")
def policies(k8s_root: Path) -> list[Doc]:
    path = k8s_root / "components" / "network-policies"
    docs = [d for r in kustomization(path)["resources"] for d in load_docs(path / r)]
    assert all(d["kind"] == "NetworkPolicy" for d in docs)
    return docs


def test_default_deny(policies: list[Doc]) -> None:
    deny = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress") and not p["spec"].get("egress")
    ]
    assert deny, "no default-deny policy"
    assert set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}


def test_dns_is_allowed(policies: list[Doc]) -> None:
    dns = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {}
        and any(
            port.get("port") == 53 and port.get("protocol") == "UDP"
            for rule in p["spec"].get("egress", [])
            for port in rule.get("ports", [])
        )
    ]
    assert dns, "every pod needs DNS once egress is denied"


def allowed_ports(policies: list[Doc], labels: dict[str, str], direction: str) -> set[int]:
    ports: set[int] = set()
    for p in policies:
        if selector_matches(p["spec"]["podSelector"], labels) and direction.capitalize() in p["spec"]["policyTypes"]:
            for rule in p["spec"].get(direction, []):
                ports |= {int(port["port"]) for port in rule.get("ports", [])}
    return ports


def test_each_service_can_reach_its_backing_services(policies: list[Doc], deployment: Doc, k8s_root: Path) -> None:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    egress = allowed_ports(policies, labels, "egress")
    assert {9092, 5432, 6379} <= egress
    # the in-cluster infrastructure accepts those ports too
    infra_labels = {"app.kubernetes.io/component": "infrastructure", **PART_OF}
    assert {9092, 5432, 6379} <= allowed_ports(policies, infra_labels, "ingress")
    # and they are the ports the dev infrastructure really listens on
    infra_ports: set[int] = set()
    for path in (k8s_root / "components" / "dev-infra").glob("*.yaml"):
        for doc in load_docs(path):
            if doc["kind"] == "Service":
                infra_ports |= {p["port"] for p in doc["spec"]["ports"]}
    assert {9092, 5432, 6379} == infra_ports


def test_only_the_gateway_accepts_traffic_from_anywhere(policies: list[Doc], services: dict[str, str]) -> None:
    for svc in services:
        labels = {"app.kubernetes.io/name": svc, **PART_OF}
        open_rules = [
            rule
            for p in policies
            if selector_matches(p["spec"]["podSelector"], labels)
            for rule in p["spec"].get("ingress", [])
            if not rule.get("from")
        ]
        if svc == "gateway":
            assert open_rules, "nothing can reach the gateway"
            assert all({p["port"] for p in r["ports"]} == {8000} for r in open_rules)
        else:
            assert not open_rules, f"{svc} accepts ingress from anywhere"
            assert 8000 in allowed_ports(policies, labels, "ingress"), f"{svc}: the gateway cannot reach it"


# ----------------------------------------------------------------------------- dev infrastructure


def test_dev_postgres_init_script_creates_every_service_database(k8s_root: Path, services: dict[str, str]) -> None:
    k8s_sql = (k8s_root / "components" / "dev-infra" / "init-databases.sql").read_text()
    created = set(re.findall(r"CREATE DATABASE\s+(\w+)\s*;", k8s_sql, re.IGNORECASE))
    assert created == set(services.values())


def test_dev_infra_uses_official_images_and_is_hardened(k8s_root: Path) -> None:
    images = {}
    for path in (k8s_root / "components" / "dev-infra").glob("*.yaml"):
        for doc in load_docs(path):
            if doc["kind"] != "StatefulSet":
                continue
            (c,) = containers(doc)
            images[doc["metadata"]["name"]] = c["image"]
            assert pod_spec(doc)["securityContext"]["runAsNonRoot"] is True
            assert pod_spec(doc)["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
            assert pod_spec(doc).get("enableServiceLinks") is False
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert c.get("readinessProbe"), doc["metadata"]["name"]
            assert c.get("livenessProbe"), doc["metadata"]["name"]
            assert {"cpu", "memory"} <= set(c["resources"]["limits"])
    assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", images["kafka"])
    assert images["postgres"] == "postgres:16"
    assert images["redis"] == "redis:7"


def test_overlays_tag_every_service_image(k8s_root: Path, services: dict[str, str]) -> None:
    for overlay in OVERLAYS:
        kust = kustomization(k8s_root / "overlays" / overlay)
        tags = {i["name"]: str(i.get("newTag", "")) for i in kust["images"]}
        for svc in services:
            tag = tags.get(f"{REGISTRY}/{svc}")
            assert tag, f"{overlay}: {svc} has no image tag"
            assert tag != "latest", f"{overlay}: {svc} must pin a release tag"
        assert len(set(tags.values())) == 1, f"{overlay}: services released with different tags {tags}"
        assert kust["namespace"] == OVERLAYS[overlay]


# ----------------------------------------------------------------------------- rendered overlays


KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed; structural checks above still run")


def render(k8s_root: Path, overlay: str) -> list[Doc]:
    if KUBECTL is None:
        pytest.skip("kubectl not installed")
    out = subprocess.run(
        [KUBECTL, "kustomize", str(k8s_root / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module", params=sorted(OVERLAYS))
def rendered(request: pytest.FixtureRequest, k8s_root: Path) -> tuple[str, list[Doc]]:
    return request.param, render(k8s_root, request.param)


@pytest.fixture(scope="module")
def rendered_dev(k8s_root: Path) -> list[Doc]:
    return render(k8s_root, "dev")


@pytest.fixture(scope="module")
def rendered_production(k8s_root: Path) -> list[Doc]:
    return render(k8s_root, "production")


@needs_kubectl
def test_rendered_references_resolve(rendered: tuple[str, list[Doc]]) -> None:
    overlay, docs = rendered
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    configmaps = {d["metadata"]["name"]: set(d.get("data", {})) for d in docs if d["kind"] == "ConfigMap"}
    for w in (d for d in docs if d["kind"] in WORKLOAD_KINDS):
        spec = pod_spec(w)
        if "serviceAccountName" in spec:
            assert ("ServiceAccount", spec["serviceAccountName"]) in names
        for c in spec["containers"]:
            for source in c.get("envFrom", []):
                assert source["configMapRef"]["name"] in configmaps
            for item in c.get("env", []):
                ref = item.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    assert ref["configMapKeyRef"]["key"] in configmaps[ref["configMapKeyRef"]["name"]]
                if "secretKeyRef" in ref:
                    secret = ref["secretKeyRef"]["name"]
                    if overlay == "dev":  # dev generates every secret; production expects them in the cluster
                        assert ("Secret", secret) in names, f"{secret} is not generated"
                    else:
                        assert secret in REQUIRED_SECRETS
        for v in spec.get("volumes", []):
            if "configMap" in v:
                assert v["configMap"]["name"] in configmaps


@needs_kubectl
def test_rendered_namespace_images_and_environment(rendered: tuple[str, list[Doc]], services: dict[str, str]) -> None:
    overlay, docs = rendered
    namespace = OVERLAYS[overlay]
    assert ("Namespace", namespace) in {(d["kind"], d["metadata"]["name"]) for d in docs}
    for d in docs:
        if d["kind"] != "Namespace":
            assert d["metadata"].get("namespace") == namespace, f"{d['kind']}/{d['metadata']['name']}"
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == set(services)
    for name, d in deployments.items():
        image = containers(d)[0]["image"]
        assert re.fullmatch(rf"{re.escape(REGISTRY)}/{name}:[\w.-]+", image), image
        assert not image.endswith(":latest"), image
    platform = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("platform-config"))
    assert platform["data"]["ENVIRONMENT"] == ("local" if overlay == "dev" else "production")
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "NetworkPolicy"} >= {"default-deny-all"}


@needs_kubectl
def test_rendered_production_is_production_grade(rendered_production: list[Doc]) -> None:
    docs = rendered_production
    assert not [d for d in docs if d["kind"] == "Secret"], "no secrets in git for production"
    assert not [d for d in docs if d["kind"] == "StatefulSet"], "production uses managed Kafka/Postgres/Redis"
    for hpa in (d for d in docs if d["kind"] == "HorizontalPodAutoscaler"):
        assert hpa["spec"]["minReplicas"] >= 2, f"{hpa['metadata']['name']}: one replica cannot survive a drain"
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("platform-config"))
    for key in ("KAFKA_BOOTSTRAP_SERVERS", "POSTGRES_HOST", "REDIS_URL"):
        assert "localhost" not in config["data"][key]
    ns = next(d for d in docs if d["kind"] == "Namespace")
    assert ns["metadata"]["labels"].get("pod-security.kubernetes.io/enforce") == "restricted"
    for d in (d for d in docs if d["kind"] == "Deployment"):
        limits = containers(d)[0]["resources"]["limits"]
        assert limits["memory"] != "384Mi", f"{d['metadata']['name']} still has dev-sized resources"


@needs_kubectl
def test_rendered_dev_is_self_contained(rendered_dev: list[Doc]) -> None:
    docs = rendered_dev
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "StatefulSet"} == {"kafka", "postgres", "redis"}
    assert {d["metadata"]["name"].rsplit("-", 1)[0] for d in docs if d["kind"] == "Secret"} == REQUIRED_SECRETS
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("platform-config"))
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    host, port = config["data"]["KAFKA_BOOTSTRAP_SERVERS"].split(":")
    assert port in {str(p["port"]) for p in services[host]["spec"]["ports"]}
    assert config["data"]["POSTGRES_HOST"] in services
    assert config["data"]["REDIS_URL"].split("//")[1].split(":")[0] in services
