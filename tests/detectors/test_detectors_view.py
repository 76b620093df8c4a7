"""The page's views of detector state: statistic against threshold, distributions, history."""

from __future__ import annotations

import random

import orjson
import pytest

from driftline.detectors import DetectionConfig, Monitor, ScoreHistory
from driftline.schemas import FeatureEvent, page_html


def _events(n: int, shift_at: int, seed: int = 5) -> list[FeatureEvent]:
    rnd = random.Random(seed)
    return [
        FeatureEvent(
            model="m",
            timestamp=1.7e9 + i,
            features={
                "x": rnd.gauss(1.5 if i >= shift_at else 0.0, 1.0),
                "z": rnd.gauss(0.0, 1.0),
                "c": rnd.choice("ab") if i < shift_at else rnd.choice("abbb"),
            },
        )
        for i in range(n)
    ]


def _row(mon: Monitor, name: str) -> dict:
    (stream,) = mon.page_view("m")
    return next(r for r in stream["rows"] if r["name"] == name)


def test_rows_show_the_detectors_own_threshold_and_the_incident():
    mon = Monitor(DetectionConfig(warmup=1000, block=250))
    events = _events(6000, 3000)
    before = None
    fired = None
    for i in range(0, len(events), 250):
        alerts = [a for a in mon.process(events[i : i + 250]) if a.feature == "x"]
        if alerts:
            fired = alerts[0]
            break
        before = _row(mon, "x")
    assert fired is not None and fired.detector == "mean"
    # the row before the alert measured the same CUSUM against the same threshold
    assert before["detector"] == "mean_up"
    assert before["threshold"] == pytest.approx(fired.statistics["threshold"], rel=1e-9)
    assert 0.0 < before["score"] < 1.0  # on its way, not yet there
    assert before["score"] == pytest.approx(before["value"] / before["threshold"], abs=1e-4)
    row = _row(mon, "x")
    assert row["state"] == "firing" and row["alert"] == fired.alert_id
    assert row["severity"] == fired.severity
    calm = _row(mon, "z")
    assert calm["state"] == "ok" and calm["score"] < 0.5 and calm["alert"] is None


def test_warmup_rows_and_outputs():
    mon = Monitor(DetectionConfig(warmup=1000, block=250))
    mon.process(_events(500, 10_000))
    rows = {r["name"]: r for r in mon.page_view("m")[0]["rows"]}
    assert rows["x"]["state"] == "warmup" and rows["x"]["score"] is None
    assert mon.page_view("nobody") == []
    assert mon.feature_detail("m", "-", "nothing") is None
    assert mon.feature_detail("m", "v9", "x") is None


def test_distributions_compare_the_reference_with_the_current_window():
    mon = Monitor(DetectionConfig(warmup=1000, block=250))
    mon.process(_events(4000, 2000))
    num = mon.feature_detail("m", "-", "x")
    edges = num["edges"]
    assert edges == sorted(edges) and len(edges) == len(num["reference"]) + 1
    assert sum(num["reference"]) == pytest.approx(1.0)
    assert sum(num["current"]) == pytest.approx(1.0)
    # shifted up by 1.5 sd: most current values in the reference's top bins
    assert sum(num["current"][-4:]) > 0.5 > sum(num["reference"][-4:])
    cat = mon.feature_detail("m", "-", "c")
    share = dict(zip(cat["categories"], cat["current"], strict=True))
    ref = dict(zip(cat["categories"], cat["reference"], strict=True))
    assert share["b"] > 0.65 and ref["b"] == pytest.approx(0.5, abs=0.05)


def test_sliding_history_keeps_the_newest_points():
    h = ScoreHistory(points=3, step=10.0)
    for t, v in [(0, 0.1), (5, 0.4), (12, 0.2), (30, 0.3), (45, None), (60, 0.9)]:
        h.record("k", t, {"x": v, "metric:accuracy": t})
    view = h.view("k")
    assert view["t"] == [30.0, 45.0, 60.0]
    assert view["series"]["x"] == [0.3, None, 0.9]
    h2 = ScoreHistory(points=5, step=10.0)
    h2.record("k", 0, {"x": 0.1, "metric:accuracy": 0.9})
    h2.record("k", 5, {"x": 0.4, "metric:accuracy": 0.7})  # same point: max score, last metric
    assert h2.view("k")["series"] == {"x": [0.4], "metric:accuracy": [0.7]}
    h2.record("k", 20, {"y": 1.0})  # a new name is padded before, an old one after
    assert h2.view("k")["series"] == {
        "x": [0.4, None],
        "metric:accuracy": [0.7, None],
        "y": [None, 1.0],
    }
    h2.forget("k")
    assert h2.view("k") == {"t": [], "series": {}}


@pytest.mark.parametrize("points", [7, 8])  # halving an even and an odd number of points
def test_compacting_history_covers_the_whole_log_within_its_bound(points):
    h = ScoreHistory(points=points, step=1e-9, compact=True)
    for t in range(100):
        h.record("k", float(t), {"x": float(t % 10)})
    view = h.view("k")
    assert len(view["t"]) <= points
    assert len(view["series"]["x"]) == len(view["t"])
    assert view["t"][0] == 0.0 and view["t"][-1] >= 90.0
    assert max(v for v in view["series"]["x"] if v is not None) == 9.0  # peaks survive
    with pytest.raises(ValueError):
        ScoreHistory(points=1)


def test_page_embeds_a_document_that_cannot_close_its_script():
    doc = {"mode": "report", "note": "</script><script>alert(1)</script>", "v": float("nan")}
    html = page_html(doc)
    assert html.count(b"</script>") == page_html().count(b"</script>") + 1
    start = html.index(b'type="application/json">') + len(b'type="application/json">')
    body = html[start : html.index(b"</script>", start)]
    assert orjson.loads(body) == {**doc, "v": None}
    live = page_html()
    assert b"driftline-data" in live and b'id="driftline-data" type' not in live
    for needle in (b"http://", b"https://", b"src=", b"@import"):
        assert needle not in live, needle


def test_label_alerts_belong_to_the_label_error_row():
    from driftline.detectors import alert_row
    from driftline.schemas import LabelEvent, PredictionEvent

    rnd = random.Random(11)
    mon = Monitor(DetectionConfig(warmup=500, block=100))
    events: list = []
    for i in range(6000):
        p = rnd.random()
        truth = p > 0.5 if i < 3000 else rnd.random() < 0.5  # the model stops being right
        events.append(
            PredictionEvent(
                model="m",
                timestamp=1.7e9 + i,
                prediction_id=f"p{i}",
                features={"x": rnd.gauss(0, 1)},
                prediction=p,
            )
        )
        events.append(
            LabelEvent(model="m", timestamp=1.7e9 + i + 0.5, prediction_id=f"p{i}", label=truth)
        )
    alerts = [a for a in mon.process(events) if a.kind in ("concept_drift", "performance")]
    assert alerts and all(a.feature is None for a in alerts)
    assert {alert_row(a)["column"] for a in alerts} == {"label_error"}
    (stream,) = mon.page_view("m")
    assert stream["metrics"]["accuracy"] < 0.8
    row = next(r for r in stream["rows"] if r["name"] == "label_error")
    assert row["role"] == "labels"
