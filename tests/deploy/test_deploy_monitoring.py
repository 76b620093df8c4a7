"""Prometheus and Grafana configuration: well-formed, wired together, covering what matters.

Prometheus' own tools judge the files here: ``promtool check config``/``check rules``,
``promtool test rules`` on the rules' unit tests, ``amtool check-config`` and
``amtool config routes test`` on the Alertmanager route example. Whether the queried metrics
exist is checked against a real worker scraped by a real Prometheus in
``test_deploy_consistency.py``; here: the files' structure and wiring.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def dashboard(deploy_dir: Path) -> dict:
    return json.loads((deploy_dir / "grafana" / "dashboards" / "driftline.json").read_text())


def _run(argv: list[str], cwd: Path) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{output}"
    return output


def test_promtool_accepts_the_configuration_and_rules(program, deploy_dir, yaml_documents):
    prometheus = deploy_dir / "prometheus"
    promtool = program("promtool")
    out = _run([promtool, "check", "config", "prometheus.yml"], prometheus)
    assert "SUCCESS: 1 rule files found" in out
    (rules,) = yaml_documents(prometheus / "alerts.yml")
    count = sum(len(group["rules"]) for group in rules["groups"])
    out = _run([promtool, "check", "rules", "alerts.yml"], prometheus)
    assert f"SUCCESS: {count} rules found" in out


def test_promtool_rule_unit_tests_pass(program, deploy_dir):
    out = _run([program("promtool"), "test", "rules", "alerts.test.yml"], deploy_dir / "prometheus")
    assert "SUCCESS" in out


def test_amtool_accepts_the_alertmanager_configuration(program, deploy_dir):
    out = _run([program("amtool"), "check-config", "alertmanager.yml"], deploy_dir / "alertmanager")
    assert "SUCCESS" in out


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["component=driftline", "severity=warning"], "driftline-operators"),
        (["kind=data_drift", "severity=critical"], "ml-oncall-pager"),
        (["kind=data_drift", "severity=warning"], "ml-team-chat"),
        (["kind=schema", "severity=critical"], "data-pipeline-tickets"),
    ],
)
def test_alertmanager_routes_as_documented(program, deploy_dir, labels, receiver):
    """The route example sends each kind of alert where deploy/alertmanager says it does."""
    argv = [program("amtool"), "config", "routes", "test", "--config.file=alertmanager.yml"]
    out = _run([*argv, *labels], deploy_dir / "alertmanager")
    assert out.split("\n")[0].strip() == receiver


def test_prometheus_scrapes_the_workers_and_alerts_to_alertmanager(
    compose, deploy_dir, yaml_documents
):
    """(promtool checks that the rule files load.)"""
    (config,) = yaml_documents(deploy_dir / "prometheus" / "prometheus.yml")
    targets = [
        t
        for am in config["alerting"]["alertmanagers"]
        for group in am["static_configs"]
        for t in group["targets"]
    ]
    host, port = targets[0].rsplit(":", 1)
    assert compose["services"][host]["ports"][0].endswith(":" + port)
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
            # deploy/alertmanager routes driftline's own alerts by this label.
            assert rule["labels"]["component"] == "driftline", rule["alert"]
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


def test_dashboard_panels_cover_the_operating_questions(dashboard, promql):
    """One panel per question the issue lists, found by the metric it queries."""
    by_metric: dict[str, list[str]] = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            for name in promql(target["expr"]).metrics:
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
