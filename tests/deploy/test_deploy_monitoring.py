"""Prometheus and Grafana configuration: well-formed, wired together, covering what matters.

Whether the metric names exist is checked against a real worker in
``test_deploy_consistency.py``; here: the files' structure, and the small PromQL lexer that
check relies on.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def dashboard(deploy_dir: Path) -> dict:
    return json.loads((deploy_dir / "grafana" / "dashboards" / "driftline.json").read_text())


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (topic) (rate(driftline_events_total{job="x"}[5m]))', {"driftline_events_total"}),
        (
            "histogram_quantile(0.99, sum by (le) (rate(a_seconds_bucket[$__rate_interval])))",
            {"a_seconds_bucket"},
        ),
        ("max by (instance, shard) (a) > 600 and on (instance, shard) b > 0", {"a", "b"}),
        ('label_replace(c{topic=~".+-s"} > 0, "shard", "$1", "partition", "(.+)")', {"c"}),
        ("label_values(driftline_alerts_total, model)", {"driftline_alerts_total"}),
        ('count(up{job="driftline"} == 1) > 1e3', {"up"}),
    ],
)
def test_promql_lexer_finds_the_metric_names(promql_names, expr, names):
    assert promql_names(expr) == names


def test_prometheus_loads_the_rules_and_scrapes_the_workers(deploy_dir, yaml_documents):
    (config,) = yaml_documents(deploy_dir / "prometheus" / "prometheus.yml")
    for rule_file in config["rule_files"]:
        assert (deploy_dir / "prometheus" / rule_file).is_file(), rule_file
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["driftline"].get("metrics_path", "/metrics") == "/metrics"


def test_alert_rules_are_complete(deploy_dir, yaml_documents):
    (rules,) = yaml_documents(deploy_dir / "prometheus" / "alerts.yml")
    names = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            names.append(rule["alert"])
            assert rule["expr"].strip(), rule["alert"]
            assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
            assert rule.get("for"), f"{rule['alert']}: fires on a single scrape"
    assert len(names) == len(set(names))
    for needed in ("DriftlineWorkerDown", "DriftlineConsumerLagHigh", "DriftlineCheckpointStale"):
        assert needed in names


def test_rule_unit_tests_cover_rules_that_exist(deploy_dir, yaml_documents):
    """alerts.test.yml (run with promtool) must not test rules that were renamed away."""
    (rules,) = yaml_documents(deploy_dir / "prometheus" / "alerts.yml")
    existing = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    (tests,) = yaml_documents(deploy_dir / "prometheus" / "alerts.test.yml")
    assert tests["rule_files"] == ["alerts.yml"]
    tested = {case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"]}
    assert tested and tested <= existing


def test_grafana_provisioning_matches_the_compose_mounts(compose, deploy_dir, yaml_documents):
    grafana = compose["services"]["grafana"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in grafana["volumes"]}
    provisioning = mounts["./grafana/provisioning"]
    assert provisioning == "/etc/grafana/provisioning"
    (providers,) = yaml_documents(
        deploy_dir / "grafana" / "provisioning" / "dashboards" / "driftline.yml"
    )
    (provider,) = providers["providers"]
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provider["options"]["path"] + "/")
    assert (deploy_dir / "grafana" / "dashboards" / Path(home).name).is_file()


def test_datasource_points_at_prometheus_and_panels_use_it(
    compose, deploy_dir, yaml_documents, dashboard
):
    (datasources,) = yaml_documents(
        deploy_dir / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
    )
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    port = compose["services"]["prometheus"]["ports"][0].split(":")[-1]
    assert source["url"] == f"http://prometheus:{port}"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == source["uid"], panel["title"]


def test_dashboard_panels_cover_the_operating_questions(dashboard, promql_names):
    """One panel per question the issue lists, found by the metric it queries."""
    by_metric: dict[str, list[str]] = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            for name in promql_names(target["expr"]):
                by_metric.setdefault(name, []).append(panel["title"])
    titles = {p["title"] for p in dashboard["panels"]}
    for title in (
        "Events per second by topic",
        "Invalid messages per second",
        "Alerts by kind and model",
        "Drift statistic per feature",
        "Consumer lag",
        "Checkpoint age",
        "Processing latency",
    ):
        assert title in titles
    assert "Events per second by topic" in by_metric["driftline_events_total"]
    assert "Consumer lag" in by_metric["driftline_consumer_lag"]
    assert "Checkpoint age" in by_metric["driftline_checkpoint_age_seconds"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] and not dashboard["editable"]
