"""``driftline replay --report``: one self-contained HTML file of the run."""

from __future__ import annotations

import re

import orjson

from driftline.schemas import Alert


def _document(html: bytes) -> dict:
    m = re.search(
        rb'<script id="driftline-data" type="application/json">(.*?)</script>', html, re.S
    )
    assert m, "the report embeds its document"
    return orjson.loads(m.group(1))


def test_report_holds_the_alerts_distributions_and_history(cli, sample_plain, sample_run, tmp_path):
    report = tmp_path / "report.html"
    run = cli("replay", sample_plain, "--report", report)
    assert run.status == 0, run.stderr
    assert run.stdout == sample_run.stdout, "the report does not change the alerts"
    assert f"report: {report}" in run.stderr
    html = report.read_bytes()
    for needle in (b"http://", b"https://", b" src=", b"@import"):
        assert needle not in html, f"{needle!r}: the report must open with no network"
    doc = _document(html)
    alerts = [Alert.from_json(line) for line in run.stdout.splitlines()]
    listed = [a for m in doc["models"] for a in m["alerts"]]
    assert [a["alert_id"] for a in listed] == [a.alert_id for a in alerts]
    assert [a["message"] for a in listed] == [a.message for a in alerts]
    assert doc["summary"]["alerts"] == len(alerts)
    assert doc["summary"]["events_by_kind"] == {"label": 5985, "prediction": 18000}
    # every firing alert's feature is marked, with its charts' data in the report
    for a in alerts:
        streams = next(m for m in doc["models"] if m["model"] == a.model)["streams"]
        row = next(r for s in streams for r in s["rows"] if r["name"] == a.feature)
        assert row["state"] == "firing"
        key = f"{a.model}\x1f{a.model_version}\x1f{a.feature}"
        det = doc["details"][key]
        assert [x["alert_id"] for x in det["alerts"]] == [a.alert_id]
        history = doc["histories"][f"{a.model}\x1f{a.model_version}"]
        assert len(history["t"]) >= 20
        assert len(history["series"][a.feature]) == len(history["t"])
        assert max(v for v in history["series"][a.feature] if v is not None) > 0.5
        assert det["detail"]["current"] and det["detail"]["reference"]
    assert len(html) < 1_000_000


def test_report_lists_the_bad_lines(cli, bad_lines_file, tmp_path):
    report = tmp_path / "bad.html"
    run = cli("replay", bad_lines_file, "--report", report, "--out", tmp_path / "a.jsonl")
    assert run.status == 0, run.stderr
    summary = _document(report.read_bytes())["summary"]
    assert summary["invalid_lines"] > 0
    assert sum(summary["invalid_by_reason"].values()) == summary["invalid_lines"]
    assert all(":" in line for line in summary["first_invalid"])


def test_report_does_not_apply_to_publish(cli, sample_plain, tmp_path):
    run = cli("replay", sample_plain, "--publish", "--report", tmp_path / "r.html")
    assert run.status == 2
    assert "--report describes a detection run" in run.stderr
    assert not (tmp_path / "r.html").exists()


def test_an_unwritable_report_is_refused_before_the_run(cli, sample_plain, tmp_path):
    out = tmp_path / "alerts.jsonl"
    run = cli("replay", sample_plain, "--out", out, "--report", tmp_path / "no" / "r.html")
    assert run.status == 2
    assert "cannot write the report there" in run.stderr
    assert not out.exists(), "refused before replaying"
