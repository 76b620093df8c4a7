"""A flood of new feature names is refused beyond ``max_features``: counted, one alert,
never stored, the same whatever the batching."""

import numpy as np

from driftline.detectors import DetectionConfig, Monitor
from driftline.schemas import FeatureEvent

T0 = 1_700_000_000.0
CFG = DetectionConfig(warmup=300, block=128, max_features=40)


def _flood(n=1200, start=600, names=120, seed=2):
    """``n`` events of ten features; from ``start`` each also carries ``names`` new names."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        f = {f"f{k}": float(rng.normal()) for k in range(10)}
        if i >= start:
            f.update({f"junk{i}_{k}": 1.0 for k in range(names)})
        out.append(FeatureEvent(model="m", timestamp=T0 + i, features=f))
    return out


def _run(events, cuts):
    mon, alerts = Monitor(CFG), []
    for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True):
        alerts += mon.process(events[a:b])
    return mon, alerts


def test_feature_names_over_the_limit_are_counted_alerted_once_and_never_stored():
    events = _flood()
    mon, alerts = _run(events, [])
    limit = [a for a in alerts if a.detector == "feature_limit"]
    assert len(limit) == 1 and limit[0].kind == "schema" and limit[0].severity == "warning"
    assert "max_features" in limit[0].message
    (stream,) = mon.status("m")["streams"]
    assert len(stream["features"]) <= CFG.max_features
    assert all(n.startswith("f") or n.startswith("junk") for n in stream["features"])
    over = stream["counters"]["features_over_limit"]
    kept_junk = sum(1 for n in stream["features"] if n.startswith("junk"))
    # every junk value whose name was refused is counted (the kept names are monitored)
    assert 0 < over <= (1200 - 600) * 120 - kept_junk
    assert mon.dump_model("m") and len(mon.dump_model("m")) < 2_000_000


def test_the_limit_does_not_depend_on_batching():
    events = _flood(n=1100)
    _, whole = _run(events, [])
    _, pieces = _run(events, [1, 130, 601, 777, 1000])
    assert [a.alert_id for a in whole] == [a.alert_id for a in pieces]
