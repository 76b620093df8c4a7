"""Issue-4 signals: schema, data quality, prediction, concept, latency, segments, baselines."""

import numpy as np
import orjson
import pytest
from _streams import assert_state_round_trips, process_in_pieces
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.detectors import Baseline, DetectionConfig, Monitor, build_baseline
from driftline.detectors._state import decode_state
from driftline.detectors.exceptions import ConfigError
from driftline.schemas import FeatureEvent, LabelEvent, PredictionEvent, parse_timestamp

T0 = 1_700_000_000.0
CFG = DetectionConfig(warmup=600, block=128, outcome_block=64)
REGIONS = ("eu", "us", "apac", "latam")


def stream(n, *, onset=None, what=None, seed=0, label_every=3, model="m"):
    """Prediction events with four features, latency, segments and delayed labels."""
    rng = np.random.default_rng(seed)
    out, due = [], []
    for i in range(n):
        post = onset is not None and i >= onset
        x = float(rng.normal())
        f = {"x": x, "k": int(rng.poisson(3)), "c": str(rng.choice(["a", "b", "c"])), "z": 0.0}
        f["z"] = float(rng.normal())
        region = REGIONS[i % 4]
        pred = float(1 / (1 + np.exp(-2 * x)))
        lat = float(rng.lognormal(3, 0.3))
        y = int(rng.random() < pred)
        version = "v1"
        if post:
            if what == "type":
                f["k"] = str(f["k"])
            elif what == "empty":
                f["c"] = ""
            elif what == "vanish":
                del f["z"]
            elif what == "new":
                f["extra"] = float(rng.normal())
            elif what == "missing" and rng.random() < 0.3:
                f["x"] = None
            elif what == "unseen" and rng.random() < 0.1:
                f["c"] = f"new{rng.integers(5)}"
            elif what == "range" and rng.random() < 0.05:
                f["z"] = 1000.0
            elif what == "concept":
                y = int(rng.random() < 1 - pred)
            elif what == "latency":
                lat *= 1.6
            elif what == "version":
                version, pred = "v2", pred**3
            elif what == "nulls" and rng.random() < 0.3:
                pred = None
            elif what == "segment" and region == "eu":
                f["z"] += 1.5
        pid = f"p{i}"
        out.append(
            PredictionEvent(
                model=model,
                timestamp=T0 + i,
                features=f,
                prediction=pred,
                prediction_id=pid,
                latency_ms=lat,
                model_version=version,
                segment={"region": region},
            )
        )
        if label_every and i % label_every == 0:
            due.append((i + int(rng.integers(100, 400)), pid, y))
            due.sort()
        while due and due[0][0] <= i:
            _, p, yy = due.pop(0)
            out.append(LabelEvent(model=model, timestamp=T0 + i, prediction_id=p, label=yy))
    return out


def firing(events, cfg=CFG, baseline=None, batch=333):
    mon = Monitor(cfg, baseline=baseline)
    out = []
    for i in range(0, len(events), batch):
        out.extend(mon.process(events[i : i + batch]))
    return [a for a in out if a.status == "firing"], mon


def index_of(alert):
    return parse_timestamp(alert.event_time) - T0


@pytest.mark.parametrize(
    ("what", "kind", "feature", "detector"),
    [
        ("type", "schema", "k", "type_change"),
        ("empty", "schema", "c", "type_change"),
        ("vanish", "schema", "z", "vanished"),
        ("new", "schema", "extra", "new_feature"),
        ("missing", "data_quality", "x", "missing_rate"),
        ("unseen", "data_quality", "c", "unseen_categories"),
        ("range", "data_quality", "z", "out_of_range"),
        ("latency", "latency", None, None),
        ("nulls", "prediction_drift", None, "null_rate"),
    ],
)
def test_each_signal_is_found_and_named(what, kind, feature, detector):
    onset = 3000
    alerts, _ = firing(stream(4500, onset=onset, what=what, label_every=0))
    assert alerts, what
    first = alerts[0]
    assert (first.kind, first.feature, first.segment) == (kind, feature, None)
    if detector is not None:
        assert first.detector == detector
    assert onset <= index_of(first) <= onset + 4 * CFG.block
    assert first.message.endswith(".")


def test_vanished_feature_is_named_in_the_message():
    alerts, _ = firing(stream(4000, onset=3000, what="vanish", label_every=0))
    assert "'z'" in alerts[0].message and "vanished" in alerts[0].message


def test_stationary_stream_with_labels_and_segments_gives_no_alert():
    alerts, mon = firing(stream(30_000, seed=3))
    assert alerts == []
    labels = mon.status("m")["streams"][0]["labels"]
    assert labels["joined"] > 9000 and labels["task"] == "binary"
    assert mon.labels_joined("m") == labels["joined"] and mon.labels_joined("other") == 0
    assert labels["window"]["accuracy"] > 0.6
    orjson.dumps(mon.status("m"))  # JSON-able for the /status view
    seg = mon.status("m")["streams"][0]["segments"]
    assert {s["segment"]["region"] for s in seg} == set(REGIONS)


def test_concept_drift_with_unchanged_inputs_is_found_through_labels():
    alerts, _ = firing(stream(9000, onset=5000, what="concept"))
    assert alerts and alerts[0].kind in ("concept_drift", "performance")
    assert alerts[0].feature is None
    stats = alerts[0].statistics
    assert stats["current_metrics"]["accuracy"] < stats["reference_metrics"]["accuracy"]
    assert index_of(alerts[0]) >= 5000
    assert not [a for a in alerts if a.kind in ("data_drift", "schema", "data_quality")]


def test_regression_labels_give_mae_and_rmse():
    rng = np.random.default_rng(4)
    events = []
    for i in range(6000):
        x = float(rng.normal())
        events.append(
            PredictionEvent(
                model="r",
                timestamp=T0 + i,
                features={"x": x},
                prediction=2 * x,
                prediction_id=str(i),
            )
        )
        noise = 0.3 if i < 4000 else 1.5
        events.append(
            LabelEvent(
                model="r",
                timestamp=T0 + i,
                prediction_id=str(i),
                label=2 * x + rng.normal(0, noise),
            )
        )
    alerts, mon = firing(events)
    assert alerts and alerts[0].kind in ("concept_drift", "performance")
    labels = mon.status("r")["streams"][0]["labels"]
    assert labels["task"] == "regression"
    assert labels["window"]["mae"] > labels["reference"]["mae"]
    assert labels["window"]["rmse"] > labels["reference"]["rmse"]


def test_labels_join_within_a_bounded_time_to_live():
    cfg = CFG.with_options(label_ttl=50.0, max_pending_labels=1000)
    events = stream(3000, seed=5)
    _, mon = firing(events, cfg)
    labels = mon.status("m")["streams"][0]["labels"]
    # labels arrive 100-400 s late: every one is past the 50 s time-to-live
    assert labels["joined"] == 0 and labels["expired"] + labels["evicted"] > 500
    assert labels["awaiting"] <= 1000


def test_new_model_version_is_compared_with_the_previous_one():
    alerts, _ = firing(stream(4500, onset=3000, what="version", label_every=0))
    a = alerts[0]
    assert (a.kind, a.feature, a.model_version) == ("prediction_drift", None, "v2")
    assert "v1" in a.message and a.statistics["reference_version"] == "v1"
    assert index_of(a) <= 3000 + 2 * CFG.block


def test_drift_confined_to_one_segment_names_the_segment():
    cfg = CFG.with_options(warmup=400)
    alerts, _ = firing(stream(12_000, onset=6000, what="segment", label_every=0), cfg)
    sliced = [a for a in alerts if a.segment is not None]
    assert sliced and sliced[0].segment == {"region": "eu"} and sliced[0].feature == "z"
    assert all(a.segment in (None, {"region": "eu"}) for a in alerts)
    assert all(a.feature == "z" for a in alerts)


def test_input_alerts_do_not_depend_on_where_the_labels_arrive():
    events = stream(6000, onset=4000, what="range", label_every=2)
    preds = [e for e in events if e.kind == "prediction"]
    labels = [e for e in events if e.kind == "label"]
    interleaved, _ = firing(events)
    labels_last, _ = firing(preds + labels)

    def inputs(alerts):
        return [a.to_dict() for a in alerts if a.kind not in ("concept_drift", "performance")]

    assert inputs(interleaved) and inputs(interleaved) == inputs(labels_last)


def test_bulk_routing_to_slices_equals_routing_event_by_event(monkeypatch):
    from driftline.detectors._stream import ModelStream

    cfg = CFG.with_options(warmup=400)
    events = stream(9000, onset=6000, what="segment", label_every=5)
    taken = []
    bulk = ModelStream._route_tracked

    def counting(self, evs, segs):
        out = bulk(self, evs, segs)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(ModelStream, "_route_tracked", counting)
    fast, fast_mon = firing(events, cfg)
    monkeypatch.setattr(ModelStream, "_route_tracked", lambda self, evs, segs: None)
    slow, slow_mon = firing(events, cfg)
    assert sum(taken) > len(taken) / 2  # the bulk path did most of the routing
    assert any(a.segment for a in fast)
    assert [a.to_dict() for a in fast] == [a.to_dict() for a in slow]
    # the states agree too, but for the KLL sketches (randomised compaction: no two runs agree)
    assert _without_sketches(decode_state(fast_mon.dump_model("m"))) == _without_sketches(
        decode_state(slow_mon.dump_model("m"))
    )


def _without_sketches(state):
    if isinstance(state, dict):
        return {k: _without_sketches(v) for k, v in state.items() if k != "sketch"}
    if isinstance(state, list):
        return [_without_sketches(v) for v in state]
    if isinstance(state, np.ndarray):
        return state.tolist()
    return state


# ------------------------------------------------------------------ determinism and state
MIXED = stream(5000, onset=3000, what="concept", seed=9)[:6500]
for e in MIXED[4000:]:
    if e.kind == "prediction":
        e.features["c"] = "" if e.timestamp % 7 == 0 else e.features["c"]
REF = [a.to_dict() for a in Monitor(CFG).process(MIXED)]


def test_mixed_stream_raises_alerts():
    assert {a["kind"] for a in REF} >= {"schema"}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(0, len(MIXED)), max_size=10), dump_at=st.integers(0, len(MIXED)))
def test_labels_and_segments_do_not_depend_on_batches_or_dump_load(cuts, dump_at):
    assert process_in_pieces(CFG, MIXED, cuts, dump_at) == REF


@settings(max_examples=10, deadline=None)
@given(st.integers(0, len(MIXED)))
def test_state_with_labels_slices_and_outputs_round_trips(at):
    assert_state_round_trips(CFG, MIXED[:at])


# ------------------------------------------------------------------ baselines
TRAIN = stream(5000, seed=21, label_every=0)


def test_baseline_is_plain_versioned_json_and_round_trips():
    b = build_baseline(TRAIN)
    blob = b.to_json()
    text = blob.decode()
    assert '"format": "driftline.baseline"' in text and '"format_version": 1' in text
    p = b.profile("m", "v1")
    assert p["events"] == 5000
    x = p["features"]["x"]
    assert x["type"] == "numeric" and abs(x["mean"]) < 0.1 and 0.9 < x["sd"] < 1.1
    assert p["features"]["c"]["categories"].keys() == {"a", "b", "c"}
    assert p["features"]["k"]["integer"] is True
    assert p["prediction"]["type"] == "numeric" and p["latency_ms"]["count"] == 5000
    assert Baseline.from_json(blob).to_json() == blob


@pytest.mark.parametrize(
    "bad",
    [b"nope", b"{}", b'{"format": "driftline.baseline", "format_version": 9, "profiles": []}'],
)
def test_bad_baseline_is_refused(bad):
    with pytest.raises(ConfigError):
        Baseline.from_json(bad)


def test_baseline_is_the_reference_from_the_first_event():
    base = build_baseline(TRAIN)
    serving = stream(1500, seed=22, label_every=0, onset=0, what="type")
    alerts, _ = firing(serving, baseline=base)
    assert alerts and (alerts[0].kind, alerts[0].feature) == ("schema", "k")
    assert index_of(alerts[0]) < 2 * CFG.block  # no warm-up
    shifted = [
        FeatureEvent(
            model="m",
            timestamp=T0 + i,
            features={**e.features, "x": e.features["x"] + 1},
            model_version="v1",
        )
        for i, e in enumerate(stream(1500, seed=23, label_every=0))
    ]
    alerts, _ = firing(shifted, baseline=base)
    assert alerts and (alerts[0].kind, alerts[0].feature) == ("data_drift", "x")
    assert index_of(alerts[0]) < 3 * CFG.block
    calm, _ = firing(stream(3000, seed=24, label_every=0), baseline=base)
    assert calm == []


def test_segments_share_the_budget_and_stay_bounded():
    cfg = CFG.with_options(max_segments=2, max_segment_keys=1)
    mon = Monitor(cfg)
    events = []
    for i in range(3000):
        seg = {"region": REGIONS[i % 4], "device": "ios" if i % 2 else "web"}
        events.append(
            FeatureEvent(model="s", timestamp=T0 + i, features={"x": float(i % 7)}, segment=seg)
        )
    plain = Monitor(cfg)
    plain.process(
        [
            FeatureEvent(model="s", timestamp=T0 + i, features={"x": float(i % 7)})
            for i in range(3000)
        ]
    )
    mon.process(events)
    top = mon._models["s"][None]
    slices = mon.status("s")["streams"][0]["segments"]
    assert len(slices) == 2 and all(set(s["segment"]) == {"region"} for s in slices)
    base_rate = plain._models["s"][None].rate_per_unit()
    # one segment key tracked: the model-wide stream and the key's slices get half each
    assert top.rate_per_unit() == pytest.approx(base_rate / 2)
    assert all(c.rate_per_unit() == pytest.approx(base_rate / 2) for c in top.slices.values())


def test_rate_test_matches_the_beta_binomial():
    from scipy.stats import betabinom

    from driftline.detectors._rates import rate_pvalues

    k = np.array([20.0, 40.0, 100.0, 260.0])
    m = np.full(4, 2048.0)
    a = np.array([2.0, 0.5, 200.5, 200.5])
    b = np.array([2047.0, 2000.5, 1800.5, 1800.5])
    p = rate_pvalues(k, m, a, b)
    exact = betabinom.sf(k - 1, m, a, b)
    big = exact < 1e-3  # the screen only clears counts far above these levels
    assert np.allclose(p[big], exact[big], rtol=1e-3)
    assert (p[~big] >= 1e-3).all()
    two = rate_pvalues(k, m, a, b, two_sided=True)
    lower = 2 * betabinom.cdf(k[2], m[2], a[2], b[2])
    assert two[2] == pytest.approx(lower, rel=1e-3) and lower < 1e-3
