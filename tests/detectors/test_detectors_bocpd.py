"""Bayesian online change-point detection (the ``changepoint`` preset's numeric detector)."""

from __future__ import annotations

import numpy as np

from driftline.detectors import DetectionConfig, Monitor
from driftline.detectors._bocpd import BocpdDetector
from driftline.schemas import FeatureEvent, parse_timestamp

T0 = 1_700_000_000.0


def _levels(seed: int, levels: list[float], n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(m, 1.0, n) for m in levels])


def test_reports_each_level_change_near_where_it_happened():
    x = _levels(1, [0.0, 3.0, -1.0, 2.0], 80)
    d = BocpdDetector(0.01, float(x[:25].mean()), float(x[:25].std()))
    hits = d.feed(x.tolist(), list(range(len(x))))
    begins = [b for _, b in hits]
    for true in (80, 160, 240):
        assert min(abs(b - true) for b in begins) <= 3, begins
    assert len(begins) <= 4  # no report inside the stationary segments (one spare)


def test_a_change_begins_at_the_first_value_of_the_new_level():
    """The reported run begins at the first value of the new segment, not the last value of
    the old one: a run of length m holds the last m values (a clean step, found at once)."""
    for seed in range(3):
        x = _levels(seed, [0.0, 6.0], 60)
        d = BocpdDetector(0.01, 0.0, 1.0)
        for i, v in enumerate(x.tolist()):
            hits = d.feed([v], [i], [T0 + i])
            if hits and i >= 60:
                break
        assert (i, hits[0][1]) == (60, 60), (seed, i, hits)
        assert d.since(60, 60) == (1, T0 + 60)  # one value since the change: this one


def test_state_round_trip_continues_identically():
    x = _levels(2, [0.0, 4.0, 0.0], 60).tolist()
    whole = BocpdDetector(0.01, 0.0, 1.0).feed(x, list(range(len(x))))
    a = BocpdDetector(0.01, 0.0, 1.0)
    first = a.feed(x[:70], list(range(70)))
    b = BocpdDetector.from_state(a.to_state())
    rest = b.feed(x[70:], list(range(70, len(x))))
    assert [h[1] for h in first + rest] == [h[1] for h in whole]


def test_preset_alerts_name_the_change_and_close_the_previous_one():
    x = _levels(3, [0.0, 5.0, 1.0], 100)
    evs = [
        FeatureEvent(model="s", timestamp=T0 + i, features={"v": float(v)}) for i, v in enumerate(x)
    ]
    alerts = Monitor(DetectionConfig.preset("changepoint")).process(evs)
    firing = [a for a in alerts if a.status == "firing"]
    assert [a.detector for a in firing] == ["bocpd", "bocpd"]
    for a, true in zip(firing, (100, 200), strict=True):
        st = a.statistics
        assert abs(st["change_seq"] - true) <= 3
        end = round(parse_timestamp(a.event_time) - T0)
        assert (
            st["values_since_change"] == a.window["current"]["count"] == end - st["change_seq"] + 1
        )
        assert parse_timestamp(a.window["current"]["start"]) == T0 + st["change_seq"]
    resolved = [a for a in alerts if a.status == "resolved"]
    # the first change's report closes once the new level is its reference
    assert resolved[0].statistics["reason"] == "new_reference"
    assert resolved[0].statistics["fired_alert_id"] == firing[0].alert_id


def test_changes_closer_than_a_warm_up_are_each_reported():
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(m, 1.0, n) for m, n in ((0, 40), (6, 15), (0, 15), (6, 15))])
    # changes closer together than the 25-value warm-up of each new reference
    evs = [
        FeatureEvent(model="s", timestamp=T0 + i, features={"v": float(v)}) for i, v in enumerate(x)
    ]
    alerts = Monitor(DetectionConfig.preset("changepoint")).process(evs)
    firing = [a for a in alerts if a.status == "firing"]
    assert len(firing) >= 2
    closed = [
        a for a in alerts if a.status == "resolved" and a.statistics["reason"] == "next_change"
    ]
    assert closed and closed[0].statistics["fired_alert_id"] == firing[0].alert_id


def test_with_larger_blocks_the_alert_describes_the_series_at_the_change():
    """``block`` > 1 feeds BOCPD a block at a time; the alert's run length, before and after
    must be the posterior at the change, not at the block's end (they were: run length 20
    for a change one value old, before/after both the new level)."""
    x = _levels(3, [0.0, 5.0, 1.0], 300)
    evs = [
        FeatureEvent(model="s", timestamp=T0 + i, features={"v": float(v)}) for i, v in enumerate(x)
    ]
    cfg = DetectionConfig.preset("changepoint").with_options(block=64)
    firing = [a for a in Monitor(cfg).process(evs) if a.status == "firing"]
    assert firing
    for a in firing:
        st = a.statistics
        end = round(parse_timestamp(a.event_time) - T0)
        assert st["run_length"] == st["values_since_change"] == end - st["change_seq"] + 1
    first = firing[0].statistics
    assert first["change_seq"] == 300
    assert first["before"] < 1.0 < first["after"]  # from the old level towards the new one
