"""What the observability tests share: where the Prometheus and Grafana files are,
promtool, Herald's metric names as its code defines them, and the metric names a
PromQL expression (a rule's, a dashboard panel's) reads.

Test modules import the ``promtool`` fixture from here, as they do the gateway's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from services.dispatcher.metrics import DispatcherMetrics
from services.gateway.metrics import GatewayMetrics
from services.matcher.metrics import MatcherMetrics
from services.scheduler.metrics import SchedulerMetrics
from shared.metrics import ServiceMetrics

ROOT = Path(__file__).resolve().parents[1]
OBSERVABILITY = ROOT / "deploy" / "observability"
PROMETHEUS_CONFIG = OBSERVABILITY / "prometheus" / "prometheus.yml"
RULES_DIR = OBSERVABILITY / "prometheus" / "rules"
RULES = RULES_DIR / "herald.rules.yml"
RULE_TESTS = OBSERVABILITY / "prometheus" / "tests" / "herald.rules.test.yml"
GRAFANA = OBSERVABILITY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "herald.json"
DOCS = ROOT / "docs" / "observability.md"

# Series Prometheus makes itself.
PROMETHEUS_OWN = {"up", "ALERTS", "ALERTS_FOR_STATE"}
# RabbitMQ's exporter (the rabbitmq_prometheus plugin) as the board reads it: the
# default endpoint and /metrics/detailed?family=queue_coarse_metrics. Checked against
# a live broker by the end-to-end test when the plugin answers.
RABBITMQ_SERIES = {"rabbitmq_connections", "rabbitmq_detailed_queue_messages_unacked"}

# The samples a family of each type exposes (prometheus-client names a counter's
# family without its _total).
_SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


def tool_path(name: str) -> str | None:
    """``make promtool`` puts promtool and prometheus beside the virtualenv's python;
    else ones on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def require_tool(name: str) -> str:
    found = tool_path(name)
    if found is None:
        message = f"{name} is not installed: `make promtool` (Debian's prometheus package)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool")


def run_promtool(
    promtool: str, *args: str, stdin: bytes | None = None, cwd: Path | None = None
) -> str:
    """promtool's output; the test fails with it when promtool reports a problem."""
    done = subprocess.run(
        [promtool, *args], input=stdin, cwd=cwd, capture_output=True, timeout=120, check=False
    )
    output = (done.stdout + done.stderr).decode()
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def defined_metrics() -> dict[str, str]:
    """Every sample name Herald's code defines, with its family's type: the metrics of
    all four services registered side by side, as their /metrics would show them."""
    registry = CollectorRegistry()
    base = ServiceMetrics("all", registry)
    GatewayMetrics(base)
    DispatcherMetrics.on(base)
    SchedulerMetrics.on(base)
    MatcherMetrics.on(base)
    return {
        family.name + suffix: family.type
        for family in registry.collect()
        for suffix in _SAMPLE_SUFFIXES[family.type]
    }


def rules() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return loaded


def alerting_rules() -> list[dict[str, Any]]:
    return [r for g in rules()["groups"] for r in g["rules"] if "alert" in r]


def recorded_names() -> set[str]:
    return {r["record"] for g in rules()["groups"] for r in g["rules"] if "record" in r}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_queries() -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target, variable query and annotation."""
    board = dashboard()
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", target["expr"]
    for annotation in board["annotations"]["list"]:
        if "expr" in annotation:
            yield f"annotation {annotation['name']!r}", annotation["expr"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            # label_values(METRIC, LABEL) is Grafana's, not PromQL: its selector is
            inner = re.fullmatch(r"label_values\((.+),\s*\w+\)", query)
            assert inner, f"variable {variable['name']}: unexpected query {query}"
            yield f"variable {variable['name']!r}", inner.group(1)


def rule_queries() -> Iterator[tuple[str, str]]:
    for group in rules()["groups"]:
        for rule in group["rules"]:
            yield f"rule {rule.get('alert') or rule.get('record')}", rule["expr"]


def as_promql(query: str) -> str:
    """A dashboard query with Grafana's variables replaced the way Grafana would."""
    query = query.replace("$__rate_interval", "1m").replace("$__interval", "15s")
    return re.sub(r"\$\{?\w+\}?", ".*", query)


def metric_names(query: str) -> set[str]:
    """The metric names a PromQL expression selects (it must parse)."""
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {query}"
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(as_promql(query)), visit)
    return names


def exposed_metrics(exposition: str) -> dict[str, str]:
    """Every sample name a /metrics body declares (with or without samples yet), with
    its family's type."""
    return {
        family.name + suffix: family.type
        for family in text_string_to_metric_families(exposition)
        for suffix in _SAMPLE_SUFFIXES.get(family.type, ("",))
    }


def sample_value(exposition: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` whose labels include ``labels``, if any."""
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    return None
