"""The live page's book in a worker (pure: a monitor and batches, no broker)."""

from __future__ import annotations

import random

from driftline.detectors import DetectionConfig, Monitor
from driftline.schemas import FeatureEvent
from driftline.streams._livepage import LivePage


def _batch(model: str, start: int, n: int, shift: float, rnd: random.Random) -> list:
    return [
        FeatureEvent(
            model=model,
            timestamp=1.7e9 + i,
            features={"x": rnd.gauss(shift if i >= 2500 else 0.0, 1.0), "z": rnd.gauss(0, 1)},
        )
        for i in range(start, start + n)
    ]


def test_document_details_and_history_follow_the_stream():
    rnd = random.Random(3)
    mon = Monitor(DetectionConfig(warmup=1000, block=250))
    page = LivePage(mon, points=50, sample_seconds=0.0, max_alerts=3, budget=None)
    for start in range(0, 5000, 500):
        for model, shift in (("calm", 0.0), ("drifty", 2.0)):
            events = _batch(model, start, 500, shift, rnd)
            page.observe(events, mon.process(events))
    doc = page.document()
    assert doc["selected"] == "drifty"  # by default the model with the most firing columns
    by_model = {m["model"]: m for m in doc["models"]}
    assert "rows" in by_model["drifty"]["streams"][0]
    assert "rows" not in by_model["calm"]["streams"][0], "only the model on screen"
    assert by_model["drifty"]["streams"][0]["firing"] >= 1
    assert by_model["calm"]["streams"][0]["firing"] == 0
    assert by_model["calm"]["streams"][0]["events"] == 5000
    assert 1 <= len(by_model["drifty"]["alerts"]) <= 3
    assert "rows" in {m["model"]: m for m in page.document("calm")["models"]}["calm"]["streams"][0]
    det = page.detail("drifty", "-", "x")
    t = det["history"]["t"]
    assert len(t) == 10 and t == sorted(t) and t[-1] == 1.7e9 + 4999
    assert det["alerts"] and all(a["feature"] == "x" for a in det["alerts"])
    assert page.detail("drifty", "-", "nope") is None
    # a model this worker no longer owns disappears with its history
    mon.drop_model("drifty")
    assert [m["model"] for m in page.document()["models"]] == ["calm"]
    assert page.history.view("drifty\x1f-") == {"t": [], "series": {}}


def test_sampling_stays_within_its_share_of_the_worker():
    rnd = random.Random(4)
    mon = Monitor(DetectionConfig(warmup=1000, block=250))
    page = LivePage(mon, sample_seconds=0.0, budget=1e-9)  # a sample costs far more than this
    for start in range(0, 2000, 250):
        events = _batch("calm", start, 250, 0.0, rnd)
        page.observe(events, mon.process(events))
    assert len(page.history.view("calm\x1f-")["t"]) == 1  # the first sample, then no more
