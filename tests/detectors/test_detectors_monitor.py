import contextlib
import itertools
import math

import numpy as np
import orjson
import pytest
from _streams import (
    T0,
    assert_state_round_trips,
    mixed_events,
    numeric_events,
    process_in_pieces,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.detectors import DetectionConfig, Monitor, StateError
from driftline.schemas import Alert, FeatureEvent, parse_timestamp

SMALL = DetectionConfig(warmup=200, block=64, window_blocks=2, cooldown=300, readapt_after=1500)


def _stream():
    """Mixed stream: numeric mean shift, then back; categorical shift; two models."""
    ev = mixed_events(4000, seed=11, shift_at=1500, shift=1.5)
    rng = np.random.default_rng(5)
    for i, e in enumerate(ev):
        if 2500 <= i < 3200 and e.kind != "label":
            e.features["c"] = str(rng.choice(["a", "b", "c"], p=[0.1, 0.3, 0.6]))
        if i >= 2800 and e.kind != "label":
            e.features["x"] = None if e.features["x"] is None else e.features["x"] - 1.5
    other = numeric_events(np.random.default_rng(2).normal(size=1500), model="other")
    merged = []
    for i, e in enumerate(ev):
        merged.append(e)
        if i < len(other):
            merged.append(other[i])
    return merged


EVENTS = _stream()
REFERENCE = [a.to_dict() for a in Monitor(SMALL).process(EVENTS)]


def test_reference_stream_raises_firing_and_resolved_alerts():
    statuses = {(a["feature"], a["status"]) for a in REFERENCE}
    assert ("x", "firing") in statuses and ("x", "resolved") in statuses
    assert ("c", "firing") in statuses


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cuts=st.lists(st.integers(0, len(EVENTS)), max_size=12),
    dump_at=st.integers(0, len(EVENTS)),
)
def test_alerts_do_not_depend_on_batches_or_dump_load(cuts, dump_at):
    assert process_in_pieces(SMALL, EVENTS, cuts, dump_at) == REFERENCE


@settings(max_examples=15, deadline=None)
@given(st.integers(0, len(EVENTS)))
def test_dump_load_round_trip_is_exact(at):
    assert_state_round_trips(SMALL, EVENTS[:at])


def test_alert_ids_are_stable_and_distinct():
    again = [a.to_dict() for a in Monitor(SMALL).process(EVENTS)]
    assert [a["alert_id"] for a in again] == [a["alert_id"] for a in REFERENCE]
    assert len({a["alert_id"] for a in REFERENCE}) == len(REFERENCE)


def test_alerts_follow_the_contract_and_explain_themselves():
    for d in REFERENCE:
        alert = Alert.from_json(orjson.dumps(d))
        assert alert.kind == "data_drift" and alert.severity in ("warning", "critical")
        assert set(alert.window) == {"reference", "current"}
        assert alert.message.endswith(".") and alert.feature in alert.message
        if alert.status == "firing":
            for key in ("before", "after", "score", "p_value"):
                assert key in alert.statistics


def test_one_sd_shift_is_detected_quickly_and_named():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 1, 6000), rng.normal(1, 1, 2000)])
    alerts = Monitor().process(numeric_events(x))
    firing = [a for a in alerts if a.status == "firing"]
    assert len(firing) == 1
    a = firing[0]
    idx = parse_timestamp(a.event_time) - T0
    assert 6000 <= idx <= 6000 + 150
    assert a.detector == "mean" and a.statistics["after"] > a.statistics["before"] + 0.5
    assert a.statistics["p_value"] < DetectionConfig().confirm_alpha


def test_variance_change_with_same_mean_is_detected():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(0, 1, 6000), rng.normal(0, 2, 3000)])
    firing = [a for a in Monitor().process(numeric_events(x)) if a.status == "firing"]
    assert firing and firing[0].detector in ("scale", "shape")
    assert parse_timestamp(firing[0].event_time) - T0 >= 6000


def test_categorical_frequency_shift_is_detected():
    rng = np.random.default_rng(3)
    c = np.concatenate(
        [
            rng.choice(list("abc"), 6000, p=[0.6, 0.3, 0.1]),
            rng.choice(list("abc"), 4000, p=[0.4, 0.3, 0.3]),
        ]
    )
    ev = [
        FeatureEvent(model="m", timestamp=T0 + i, features={"c": str(v)}) for i, v in enumerate(c)
    ]
    firing = [a for a in Monitor().process(ev) if a.status == "firing"]
    assert len(firing) == 1 and firing[0].detector == "frequency"
    assert firing[0].statistics["most_changed"] in ("a", "c")


def test_stationary_stream_gives_no_alert():
    rng = np.random.default_rng(4)
    n = 200_000
    cols = {
        "n": rng.normal(5, 2, n).tolist(),
        "l": rng.lognormal(2, 1, n).tolist(),
        "k": rng.poisson(2, n).tolist(),
        "c": rng.choice(list("abcd"), n).tolist(),
    }
    names = list(cols)
    ev = [
        FeatureEvent(model="m", timestamp=T0 + i, features=dict(zip(names, row, strict=True)))
        for i, row in enumerate(zip(*cols.values(), strict=True))
    ]
    mon = Monitor()
    assert mon.process(ev) == []
    assert mon.stats["events"]["feature"] == n


def test_types_are_inferred_and_ignored_features_skipped():
    cfg = DetectionConfig(warmup=100, block=50, ignore=("k",))
    mon = Monitor(cfg)
    mon.process(mixed_events(400))
    feats = mon.status("m")["streams"][0]["features"]
    assert feats["x"]["kind"] == "numeric" and feats["c"]["kind"] == "categorical"
    assert feats["b"]["kind"] == "categorical" and "k" not in feats
    assert {t["value"] for t in feats["b"]["top"]} == {"true", "false"}
    assert feats["x"]["missing"] > 0
    orjson.dumps(mon.status("m"))
    assert mon.stats["events"]["label"] > 0


def test_versions_are_separate_streams_and_models_can_be_dropped():
    rng = np.random.default_rng(6)
    mon = Monitor(DetectionConfig(warmup=100, block=50))
    mon.process(numeric_events(rng.normal(size=200), version="v1"))
    mon.process(numeric_events(rng.normal(size=120), version="v2"))
    versions = [s["model_version"] for s in mon.status("m")["streams"]]
    assert versions == ["v1", "v2"]
    mon.drop_model("m")
    assert mon.models() == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b[:10],
        lambda b: b"XXXX" + b[4:],
        lambda b: b[:4] + b"\x09\x00" + b[6:],
        lambda b: b + b"trailing",
        lambda b: b"",
    ],
)
def test_corrupt_state_raises_state_error(mutate):
    mon = Monitor(SMALL)
    mon.process(EVENTS[:1000])
    blob = mon.dump_model("m")
    with pytest.raises(StateError):
        Monitor(SMALL).load_model("m", mutate(blob))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_random_byte_damage_never_escapes_as_another_error(data):
    mon = Monitor(SMALL)
    mon.process(EVENTS[:800])
    blob = bytearray(mon.dump_model("m"))
    pos = data.draw(st.integers(0, len(blob) - 1))
    blob[pos] = data.draw(st.integers(0, 255))
    with contextlib.suppress(StateError):
        Monitor(SMALL).load_model("m", bytes(blob))


def test_state_of_another_model_is_refused():
    mon = Monitor(SMALL)
    mon.process(EVENTS[:300])
    with pytest.raises(StateError, match="belongs to model"):
        Monitor(SMALL).load_model("other", mon.dump_model("m"))


def test_severity_grows_with_effect_size():
    rng = np.random.default_rng(8)
    sev = {}
    for shift in (0.6, 3.0):
        x = np.concatenate([rng.normal(0, 1, 4000), rng.normal(shift, 1, 2000)])
        firing = [a for a in Monitor().process(numeric_events(x)) if a.status == "firing"]
        sev[shift] = firing[0].severity
    assert sev == {0.6: "warning", 3.0: "critical"}


def test_budget_scales_thresholds():
    loose = Monitor(DetectionConfig(false_alarms_per_million=1000.0))
    tight = Monitor(DetectionConfig(false_alarms_per_million=0.01))
    x = np.random.default_rng(9).normal(size=3000)
    loose.process(numeric_events(x))
    tight.process(numeric_events(x))
    r_loose = loose.status("m")["streams"][0]["false_alarm_rate_per_detector"]
    r_tight = tight.status("m")["streams"][0]["false_alarm_rate_per_detector"]
    assert math.isclose(r_loose / r_tight, 1e5)


def _statuses(alerts):
    return [(a.status, a.statistics.get("reason")) for a in alerts]


def test_persistent_drift_is_adopted_as_new_reference():
    rng = np.random.default_rng(10)
    x = np.concatenate([rng.normal(0, 1, 2000), rng.normal(2, 1, 12000)])
    cfg = DetectionConfig(warmup=500, block=100, readapt_after=3000)
    alerts = Monitor(cfg).process(numeric_events(x))
    assert _statuses(alerts) == [("firing", None), ("resolved", "new_reference")]
    fired, resolved = alerts
    assert resolved.statistics["fired_alert_id"] == fired.alert_id
    gap = parse_timestamp(resolved.event_time) - parse_timestamp(fired.event_time)
    assert 3000 <= gap <= 3000 + 500 + 2 * 100


def test_cooldown_keeps_a_flapping_feature_quiet():
    rng = np.random.default_rng(12)
    parts = [(0, 3000), (1.5, 1500), (0, 3000), (1.5, 1500), (0, 3000)]
    x = np.concatenate([rng.normal(m, 1, n) for m, n in parts])
    cfg = DetectionConfig(warmup=1000, block=100, window_blocks=4)
    quiet = Monitor(cfg.with_options(cooldown=50_000)).process(numeric_events(x))
    loud = Monitor(cfg.with_options(cooldown=0)).process(numeric_events(x))
    assert [s for s, _ in _statuses(quiet)] == ["firing", "resolved"]
    assert [s for s, _ in _statuses(loud)] == ["firing", "resolved"] * 2


def test_change_point_mode_reports_each_level_shift():
    rng = np.random.default_rng(13)
    levels = [0, 4, 0, 5]
    x = np.concatenate([rng.normal(m, 1, 150) for m in levels])
    cfg = DetectionConfig(
        warmup=25,
        block=1,
        window_blocks=8,
        bins=4,
        readapt_after=0,
        cooldown=0,
        false_alarms_per_million=1000.0,
    )
    firing = [a for a in Monitor(cfg).process(numeric_events(x)) if a.status == "firing"]
    cps = [a.statistics["change_seq"] for a in firing]
    assert len(cps) == 3
    for cp, true in zip(cps, (150, 300, 450), strict=True):
        assert abs(cp - true) <= 5


def test_rare_values_of_a_constant_feature_do_not_alert_but_a_new_regime_does():
    rng = np.random.default_rng(14)
    x = np.zeros(200_000)
    x[rng.choice(np.arange(3000, 200_000), 20, replace=False)] = 1.0  # rare, isolated
    assert Monitor().process(numeric_events(x)) == []
    y = np.concatenate([np.zeros(4000), (rng.random(2000) < 0.1).astype(float)])
    firing = [a for a in Monitor().process(numeric_events(y)) if a.status == "firing"]
    assert len(firing) == 1 and parse_timestamp(firing[0].event_time) - T0 < 4000 + 300


def test_identifier_like_categorical_stays_quiet_and_bounded():
    n = 20_000
    ev = [FeatureEvent(model="m", timestamp=T0 + i, features={"id": f"user-{i}"}) for i in range(n)]
    mon = Monitor(DetectionConfig(heavy_hitters=64))
    assert mon.process(ev) == []
    feat = mon.status("m")["streams"][0]["features"]["id"]
    assert len(feat["top"]) == 10 and 0.9 * n < feat["cardinality"] < 1.1 * n
    assert len(mon._models["m"][None].features["id"].heavy.counts) <= 64


def _gappy_events():
    rng = np.random.default_rng(15)
    x = np.concatenate([rng.normal(0, 1, 1500), rng.normal(2, 1, 500)])
    gaps = rng.exponential(1.0, len(x)) * np.where(rng.random(len(x)) < 0.02, 200, 1)
    return [
        FeatureEvent(model="m", timestamp=T0 + float(t), features={"x": float(v)})
        for t, v in zip(np.cumsum(gaps), x, strict=True)
    ]


GAPPY = _gappy_events()
TIMED = DetectionConfig(warmup=300, block=256, block_seconds=120.0)


@settings(max_examples=15, deadline=None)
@given(cuts=st.lists(st.integers(0, len(GAPPY)), max_size=8), dump_at=st.integers(0, len(GAPPY)))
def test_event_time_blocks_do_not_depend_on_batches(cuts, dump_at):
    expected = [a.to_dict() for a in Monitor(TIMED).process(GAPPY)]
    assert any(a["status"] == "firing" for a in expected)
    bounds = sorted({0, len(GAPPY), dump_at, *cuts})
    mon, out = Monitor(TIMED), []
    for lo, hi in itertools.pairwise(bounds):
        if lo == dump_at:
            blob = mon.dump_model("m") if "m" in mon.models() else None
            mon = Monitor(TIMED)
            if blob is not None:
                mon.load_model("m", blob)
        out.extend(mon.process(GAPPY[lo:hi]))
    assert [a.to_dict() for a in out] == expected


def test_block_seconds_bounds_the_latency_of_a_quiet_model():
    rng = np.random.default_rng(16)
    x = np.concatenate([rng.normal(0, 1, 600), rng.normal(3, 1, 100)])
    ev = numeric_events(x)  # one event per second
    cfg = DetectionConfig(warmup=300, block=10_000, block_seconds=30.0)
    mon = Monitor(cfg)
    emitted_at = None
    for i, e in enumerate(ev):
        if mon.process([e]) and emitted_at is None:
            emitted_at = i
    assert emitted_at is not None and 600 <= emitted_at <= 600 + 60
    assert Monitor(cfg.with_options(block_seconds=0.0)).process(ev) == []  # block never fills


def test_state_loaded_under_new_window_options_rebuilds_the_reference():
    mon = Monitor(SMALL)
    mon.process(EVENTS[:2000])
    blob = mon.dump_model("m")
    other = Monitor(SMALL.with_options(bins=8, window_blocks=3))
    other.load_model("m", blob)
    feats = other.status("m")["streams"][0]["features"]
    assert feats["x"]["reference"] is None and feats["x"]["count"] > 0
    other.process(EVENTS[2000:])  # and it keeps working
