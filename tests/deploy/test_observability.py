"""deploy/observability: the alert rules pass promtool (syntax and their unit tests), the
dashboards are Grafana JSON, and every PromQL expression in them and in the rules names only
metrics the services export (read from the Prometheus registry after importing every service's
app, so a renamed or misspelled metric fails here instead of drawing an empty panel)."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from devkit.stack import SERVICES

REPO = Path(__file__).resolve().parents[2]
OBSERVABILITY = REPO / "deploy" / "observability"
DASHBOARDS = sorted(OBSERVABILITY.glob("dashboard-*.json"))
RULES = OBSERVABILITY / "alerts.yml"
# Series Prometheus makes itself, not the services.
PROMETHEUS_OWN = {"up"}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool",
    "inf", "nan",
}  # fmt: skip


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        # Installed the way the browser tests get Chromium (Debian's package, idempotent).
        subprocess.run([sys.executable, str(REPO / "infra" / "localinfra.py"), "promtool"], capture_output=True)
        found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed and could not be (Debian's `prometheus` package needs root and apt)")
    return found


def test_the_alert_rules_and_the_scrape_configuration_pass_promtool() -> None:
    tool = promtool()
    for command in (["check", "rules", "alerts.yml"], ["check", "config", "prometheus.yml"]):
        result = subprocess.run([tool, *command], cwd=OBSERVABILITY, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_fire_when_they_should_and_only_then() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", "alerts.test.yml"], cwd=OBSERVABILITY, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_platform_alerts_exist() -> None:
    alerts = {rule["alert"] for group in rule_groups() for rule in group["rules"] if "alert" in rule}
    assert {
        "ConsumerLagHigh",
        "DeadLettersGrowing",
        "OutboxRowsParked",
        "SlaBreached",
        "HttpErrorRateHigh",
        "NoOperatorOnlineInBusinessHours",
    } <= alerts


def exported_metric_names() -> set[str]:
    """The sample names every service can expose: each built service's app is imported (which
    imports servicekit's metrics and its own), then the registry lists the families."""
    for spec in SERVICES:
        if spec.built:
            importlib.import_module(f"{spec.module}.app")
    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        elif family.type == "histogram":
            names |= {family.name, *(f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count", "created"))}
        else:
            names.add(family.name)
    return names


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["groups"]
    return groups


def dashboard_expressions(path: Path) -> list[str]:
    def walk(panels: list[dict[str, Any]]) -> list[str]:
        found: list[str] = []
        for panel in panels:
            found += [target["expr"] for target in panel.get("targets", [])]
            found += walk(panel.get("panels", []))
        return found

    return walk(json.loads(path.read_text())["panels"])


def metric_names_in(expression: str) -> set[str]:
    """The series names a PromQL expression selects: what is left once strings, label matchers,
    range and offset durations, grouping clauses, Grafana variables and function calls are
    taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)
    text = re.sub(r"\boffset\s+\w+", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        if re.match(r"\s*\(", text[match.end() :]):  # a function or aggregation
            continue
        if text[match.start() - 1 : match.start()].isdigit():  # 1e3, 5m
            continue
        names.add(match.group())
    return names - PROMQL_WORDS


def test_the_expression_parser_finds_the_series_it_should() -> None:
    expression = (
        'histogram_quantile(0.95, sum by (le, route) (rate(http_request_seconds_bucket{route!="x"}[$__rate_interval])))'
        " / on (job) group_left max by (job) (outbox_backlog offset 5m) and on () hour() >= 9"
    )
    assert metric_names_in(expression) == {"http_request_seconds_bucket", "outbox_backlog"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_a_dashboard_is_grafana_json_on_a_prometheus_datasource(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"]
    assert dashboard["title"]
    assert dashboard["panels"]
    expressions = dashboard_expressions(path)
    assert len(expressions) >= 10
    datasources = {target["datasource"]["type"] for panel in dashboard["panels"] for target in panel.get("targets", [])}
    assert datasources == {"prometheus"}
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert "datasource" in variables, "the Prometheus datasource is chosen on import"


def test_dashboards_and_rules_name_only_metrics_the_services_export() -> None:
    exported = exported_metric_names()
    recorded = {rule["record"] for group in rule_groups() for rule in group["rules"] if "record" in rule}
    known = exported | recorded | PROMETHEUS_OWN
    expressions = [(path.name, e) for path in DASHBOARDS for e in dashboard_expressions(path)]
    # Recording rules too, but only alerts must select a series (business hours are clock-only).
    expressions += [(RULES.name, rule["expr"]) for group in rule_groups() for rule in group["rules"]]
    unknown: list[str] = []
    for where, expression in expressions:
        names = metric_names_in(expression)
        assert names or "vector(" in expression, f"{where}: no series found in {expression!r}"
        unknown += [f"{where}: {name} in {expression!r}" for name in sorted(names - known)]
    assert not unknown, "\n".join(unknown)
    # What the platform promised to show is there.
    used = {name for _, expression in expressions for name in metric_names_in(expression)}
    for needed in (
        "http_request_seconds_bucket",
        "event_handler_seconds_bucket",
        "consumer_lag",
        "outbox_backlog",
        "outbox_parked_rows",
        "dlq_messages_total",
        "gateway_widget_sockets",
        "gateway_operator_sockets",
        "timers_pending",
        "timers_overdue",
        "routing_operators_online",
        "tickets_opened_total",
        "tickets_sla_breaches_total",
        "notifier_deliveries_total",
        "conversation_ai_replies_dropped_total",
    ):
        assert needed in used, f"no panel or rule shows {needed}"
