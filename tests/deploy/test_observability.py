"""The Prometheus configuration, alert rules and Grafana board in deploy/observability:
valid for promtool, each alert proven by its unit tests, and every metric they read
one that Herald really exports."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import yaml

from tests.observability import (
    DASHBOARD,
    DOCS,
    GRAFANA,
    PROMETHEUS_CONFIG,
    PROMETHEUS_OWN,
    RABBITMQ_SERIES,
    RULE_TESTS,
    RULES,
    RULES_DIR,
    alerting_rules,
    dashboard,
    dashboard_queries,
    defined_metrics,
    metric_names,
    promtool,
    recorded_names,
    rule_queries,
    rules,
    run_promtool,
)

__all__ = ["promtool"]

SERVICES = {
    "herald-gateway": "gateway:9104",
    "herald-scheduler": "scheduler:9101",
    "herald-matcher": "matcher:9102",
    "herald-dispatcher": "dispatcher:9103",
}


def test_prometheus_config_scrapes_every_service_and_loads_the_rules(
    promtool: str, tmp_path: Path
) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name, target in SERVICES.items():
        assert jobs[name]["static_configs"] == [{"targets": [target]}]
        assert jobs[name].get("metrics_path", "/metrics") == "/metrics"
    assert jobs["rabbitmq"]["static_configs"] == [{"targets": ["rabbitmq:15692"]}]
    assert jobs["rabbitmq-queues"]["metrics_path"] == "/metrics/detailed"
    # where the container finds the rules: the whole folder is loaded, so nothing
    # but rule files may be in it (the rule tests are kept beside it)
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    files = sorted(RULES_DIR.iterdir())
    assert RULES in files
    assert all(p.suffix == ".yml" for p in files)
    run_promtool(promtool, "check", "rules", *map(str, files))

    # the same configuration, with the rules where this checkout has them
    checked = tmp_path / "prometheus.yml"
    checked.write_text(
        PROMETHEUS_CONFIG.read_text().replace("/etc/prometheus/rules", str(RULES_DIR))
    )
    output = run_promtool(promtool, "check", "config", str(checked))
    assert "SUCCESS: 1 rule files found" in output
    assert f"Checking {RULES}" in output
    assert re.search(r"SUCCESS: \d+ rules found", output)


def test_rules_pass_promtool_check(promtool: str) -> None:
    output = run_promtool(promtool, "check", "rules", str(RULES))
    count = sum(len(g["rules"]) for g in rules()["groups"])
    assert f"SUCCESS: {count} rules found" in output


def test_rule_unit_tests_pass(promtool: str) -> None:
    output = run_promtool(promtool, "test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert "SUCCESS" in output


def test_every_alert_is_described_tested_both_ways_and_documented() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    cases = [case for t in tests for case in t.get("alert_rule_test", [])]
    docs = DOCS.read_text()
    names = {r["alert"] for r in alerting_rules()}
    for rule in alerting_rules():
        name = rule["alert"]
        assert rule.get("for"), f"{name} has no for:"
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        for annotation in ("summary", "description", "runbook"):
            assert rule["annotations"].get(annotation), f"{name} has no {annotation}"
        assert f"docs/observability.md#{name.lower()}" in rule["annotations"]["runbook"]
    for name in names:
        mine = [c for c in cases if c["alertname"] == name]
        assert any(c["exp_alerts"] for c in mine), f"no test shows {name} firing"
        assert any(not c["exp_alerts"] for c in mine), f"no test shows {name} quiet"
        # the runbook the annotation points at: a heading of its own
        assert re.search(rf"^#+ {name}$", docs, re.MULTILINE), f"{name} is not in {DOCS.name}"


def test_recording_rules_follow_the_naming_convention() -> None:
    for name in recorded_names():
        assert re.fullmatch(r"herald:[a-z_]+:[a-z0-9_]+", name), name


def _unknown(queries: list[tuple[str, str]]) -> list[str]:
    exported, recorded = defined_metrics(), recorded_names()
    unknown = []
    for where, query in queries:
        for name in metric_names(query):
            if name.startswith("herald:"):
                ok = name in recorded
            elif name.startswith("rabbitmq_"):
                ok = name in RABBITMQ_SERIES
            else:
                ok = name in exported or name in PROMETHEUS_OWN
            if not ok:
                unknown.append(f"{where}: {name}")
    return unknown


def test_rules_read_only_metrics_herald_exports() -> None:
    assert _unknown(list(rule_queries())) == []


def test_dashboard_reads_only_metrics_herald_exports() -> None:
    assert _unknown(list(dashboard_queries())) == []


def test_histogram_queries_read_real_histograms() -> None:
    exported = defined_metrics()
    queries = [q for _, q in [*rule_queries(), *dashboard_queries()]]
    for query in queries:
        for name in metric_names(query):
            if name.endswith("_bucket") and name.startswith("herald_"):
                assert exported[name] == "histogram", name
        if "histogram_quantile" in query:
            assert "le" in query, f"a quantile not grouped by le: {query}"


def test_dashboard_is_a_provisionable_grafana_board() -> None:
    board = dashboard()
    assert board["uid"] == "herald"
    assert "id" not in board or board["id"] is None  # provisioned boards get their own
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"

    panels = board["panels"]
    ids = Counter(p["id"] for p in panels)
    assert all(n == 1 for n in ids.values()), "panel ids repeat"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
        assert panel.get("description"), f"{panel['title']} says nothing about itself"
    _no_overlap([p["gridPos"] for p in panels])


def _no_overlap(boxes: list[dict[str, int]]) -> None:
    taken: set[tuple[int, int]] = set()
    for box in boxes:
        assert box["x"] + box["w"] <= 24
        cells = {
            (x, y)
            for x in range(box["x"], box["x"] + box["w"])
            for y in range(box["y"], box["y"] + box["h"])
        }
        assert not cells & taken, f"panels overlap at {box}"
        taken |= cells


def test_dashboard_shows_what_an_operator_asks_first() -> None:
    """Events in, matches, deliveries by channel and outcome, latency percentiles,
    retries, parked messages, queue depths: each on a panel of its own."""
    by_title: dict[str, list[str]] = {}
    for panel in dashboard()["panels"]:
        by_title[panel["title"]] = [t["expr"] for t in panel.get("targets", [])]

    def reads(title: str, *names: str) -> None:
        exprs = " ".join(by_title[title])
        for name in names:
            assert name in exprs, f"{title!r} does not read {name}"

    reads("Events in, by type", "herald:events_ingested:rate5m")
    reads("Matches, by reason", "herald:matches:rate5m")
    reads("Deliveries, by channel and outcome", "herald:deliveries:rate5m")
    reads("Delivery latency percentiles, by channel", "herald:delivery_latency_seconds:quantile5m")
    reads("Delivery latency, all channels", "histogram_quantile(0.99")
    reads("Retries, by queue", "herald_retries_total")
    reads("Parked, by queue and reason", "herald_parked_total")
    reads("Parked messages waiting", 'state="parked"')
    reads("Ready messages, by queue", 'herald:queue_messages:max{state="ready"')
    # the percentiles come from the delivery histogram, recorded per channel
    recorded = {
        r["record"]: r["expr"] for g in rules()["groups"] for r in g["rules"] if "record" in r
    }
    assert (
        "herald_delivery_latency_seconds_bucket"
        in recorded["herald:delivery_latency_seconds_bucket:rate5m"]
    )


def test_grafana_provisioning_points_at_the_board_and_prometheus() -> None:
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/herald.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert DASHBOARD.parent.name == "dashboards"
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"


def test_docs_are_linked_from_the_readme() -> None:
    readme = (DOCS.parents[1] / "README.md").read_text()
    assert "docs/observability.md" in readme
