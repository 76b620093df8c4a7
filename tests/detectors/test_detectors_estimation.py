"""Estimated performance before the labels arrive: calibration, CBPE metrics, the
``estimated_performance`` alert, its resolution, state."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from scipy.stats import mannwhitneyu

from driftline.detectors import Baseline, DetectionConfig, Monitor, build_baseline
from driftline.detectors._calibration import MIN_ROWS, Calibration, learn_calibration
from driftline.detectors._estimation import estimated_metrics
from driftline.detectors._state import decode_state, encode_state
from driftline.detectors.exceptions import ConfigError
from driftline.replay._summary import estimate_lines
from driftline.schemas import LabelEvent, PredictionEvent, parse_timestamp

T0 = 1_700_000_000.0


def _sample(rng: np.random.Generator, n: int, spread: float = 1.0):
    x = rng.normal(0.0, spread, n)
    p = 1.0 / (1.0 + np.exp(-2.5 * x))
    y = (rng.random(n) < p).astype(float)
    return x, p, y


def _events(seed: int, n: int, *, onset: int | None = None, spread: float = 0.8, t0=T0, **kw):
    """Predictions of a calibrated binary model (score = p); after ``onset`` the inputs
    move towards the decision boundary. ``label=True``: each carries its truth (training)."""
    rng = np.random.default_rng(seed)
    s = np.ones(n)
    if onset is not None:
        s[onset:] = spread
    x, p, y = _sample(rng, n)
    x = x * s
    p = 1.0 / (1.0 + np.exp(-2.5 * x))
    y = (rng.random(n) < p).astype(int)
    out = []
    for i in range(n):
        extra = {"label": int(y[i])} if kw.get("label") else {}
        out.append(
            PredictionEvent(
                model="m",
                timestamp=t0 + i,
                features={"x": float(x[i])},
                prediction=float(p[i]),
                prediction_id=f"{kw.get('pid', 'p')}{i}" if kw.get("pid") else None,
                extra=extra,
            )
        )
    return out, y


@pytest.fixture(scope="module")
def baseline() -> Baseline:
    evs, _ = _events(99, 12_000, t0=T0 - 50_000, label=True)
    return build_baseline(evs)


# ------------------------------------------------------------------------------ calibration
def test_isotonic_calibration_is_monotone_with_enough_rows_and_recovers_rates():
    rng = np.random.default_rng(1)
    s = np.round(rng.random(30_000), 2)  # heavily tied scores
    truth = (rng.random(30_000) < s**2).astype(float)  # miscalibrated: P(y=1) = s^2
    cal = learn_calibration(s, truth, (s >= 0.5).astype(float))
    assert min(cal.rows) >= MIN_ROWS and sum(cal.rows) == 30_000
    assert list(cal.positive_rate) == sorted(cal.positive_rate)
    # tied scores never straddle two bins: each start is a distinct reference score
    assert len(set(cal.starts)) == len(cal.starts)
    probe = np.array([0.3, 0.6, 0.9])
    got = np.asarray(cal.positive_rate)[cal.bins(probe)]
    assert np.all(np.abs(got - probe**2) < 0.06)
    # the reference counts per predicted class add up to the rows
    assert [a + b for a, b in cal.guessed] == list(cal.rows)


def test_no_calibration_from_too_few_rows_or_one_class():
    s = np.linspace(0, 1, 500)
    assert learn_calibration(s, (s > 0.5).astype(float), s) is None
    s = np.linspace(0, 1, 5000)
    assert learn_calibration(s, np.ones(5000), s) is None


def test_calibration_profile_round_trip_and_bad_documents():
    cal = Calibration((0.0, 0.5), (0.1, 0.9), (300, 300), ((300, 0), (0, 300)))
    assert Calibration.from_profile(cal.to_profile()) == cal
    for bad in (
        {**cal.to_profile(), "version": 9},
        {**cal.to_profile(), "positive_rate": [0.9, 0.1]},
        {**cal.to_profile(), "starts": [0.5, 0.0]},
        {**cal.to_profile(), "rows": [300]},
        {**cal.to_profile(), "guessed": "x"},
    ):
        with pytest.raises(ConfigError):
            Calibration.from_profile(bad)


# ------------------------------------------------------------------------------ metrics
def test_estimated_metrics_match_realized_ones_on_calibrated_scores():
    rng = np.random.default_rng(2)
    _, ref_p, ref_y = _sample(rng, 40_000)
    cal = learn_calibration(ref_p, ref_y, (ref_p >= 0.5).astype(float))
    _, p, y = _sample(rng, 20_000, spread=0.7)  # a shifted window, still calibrated
    g = (p >= 0.5).astype(int)
    k = len(cal.starts)
    counts = np.bincount(cal.bins(p) * 2 + g, minlength=2 * k).reshape(k, 2)
    est = estimated_metrics(counts, cal)
    tp = float(((g == 1) & (y == 1)).sum())
    fp = float(((g == 1) & (y == 0)).sum())
    fn = float(((g == 0) & (y == 1)).sum())
    realized = {
        "accuracy": float((g == y).mean()),
        "precision": tp / (tp + fp),
        "recall": tp / (tp + fn),
        "f1": 2 * tp / (2 * tp + fp + fn),
        "roc_auc": mannwhitneyu(p[y == 1], p[y == 0]).statistic / ((y == 1).sum() * (y == 0).sum()),
    }
    for name, value in realized.items():
        lo, hi = est[f"{name}_interval"]
        assert lo <= value <= hi, (name, value, est[name], lo, hi)
        assert abs(est[name] - value) < 0.015, (name, value, est[name])
    assert est["count"] == 20_000


# ------------------------------------------------------------------------------ baseline
def test_baseline_build_learns_a_versioned_calibration(baseline):
    op = baseline.profile("m", None)["outcomes"]
    cal = op["calibration"]
    assert cal["version"] == 1 and cal["method"] == "isotonic"
    assert sum(cal["rows"]) == 12_000
    again = Baseline.from_json(baseline.to_json())
    assert again.profile("m", None)["outcomes"]["calibration"] == cal
    doc = orjson.loads(baseline.to_json())
    rates = doc["profiles"][0]["outcomes"]["calibration"]["positive_rate"]
    rates[0] = 2.0
    broken = orjson.dumps(doc)
    with pytest.raises(ValueError, match="calibration"):
        Baseline.from_json(broken)


def test_without_labels_there_is_no_estimate_and_status_says_why():
    evs, _ = _events(3, 3000)
    unlabelled = build_baseline(_events(4, 3000, t0=T0 - 9000)[0])
    for base, word in ((None, "no baseline"), (unlabelled, "no score calibration")):
        mon = Monitor(DetectionConfig(), baseline=base)
        mon.process(evs)
        est = mon.status("m")["streams"][0]["estimated_performance"]
        assert est["available"] is False and word in est["reason"]


# ------------------------------------------------------------------------------ alerts
def _firing(alerts, kind="estimated_performance"):
    return [a for a in alerts if a.kind == kind and a.status == "firing"]


def test_a_covariate_shift_to_harder_inputs_alerts_with_no_labels(baseline):
    evs, _ = _events(5, 14_000, onset=8_000, spread=0.7)
    mon = Monitor(DetectionConfig(), baseline=baseline)
    alerts = mon.process(evs)
    assert not [a for a in alerts if parse_timestamp(a.event_time) - T0 < 8_000]
    fired = _firing(alerts)
    assert len(fired) == 1
    a = fired[0]
    delay = parse_timestamp(a.event_time) - T0 - 8_000
    assert 0 <= delay <= 5_000
    st = a.statistics
    assert a.detector == "estimated_accuracy" and st["metric"] == "accuracy"
    assert st["after"] < st["before"] and st["interval"][0] <= st["after"] <= st["interval"][1]
    assert st["unlabelled"] == st["estimated_metrics"]["count"] == 2048  # no label at all
    assert "2,048 of them still unlabelled" in a.message
    win = mon.status("m")["streams"][0]["estimated_performance"]
    assert win["available"] and win["alert"] == a.alert_id
    assert win["window"]["accuracy"] < win["reference"]["accuracy"]
    for name in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        lo, hi = win["window"][f"{name}_interval"]
        assert lo <= win["window"][name] <= hi
    (line,) = estimate_lines(mon.status("m"))  # replay's summary
    assert line.startswith("m (version any): accuracy ") and "ROC AUC" in line


def test_stationary_stream_raises_no_estimated_alert(baseline):
    evs, _ = _events(6, 30_000)
    alerts = Monitor(DetectionConfig(), baseline=baseline).process(evs)
    assert alerts == []


def test_labels_catching_up_resolve_the_estimated_incident(baseline):
    evs, y = _events(7, 20_000, onset=4_000, spread=0.7, pid="p")
    mon = Monitor(DetectionConfig(), baseline=baseline)
    alerts = mon.process(evs[:8_000])
    assert len(_firing(alerts)) == 1
    labels = [
        LabelEvent(model="m", timestamp=T0 + 8_000, prediction_id=f"p{i}", label=int(y[i]))
        for i in range(8_000)
    ]
    alerts = mon.process(labels) + mon.process(evs[8_000:])
    resolved = [a for a in alerts if a.kind == "estimated_performance" and a.status == "resolved"]
    assert resolved and resolved[0].statistics["reason"] == "labels_caught_up"
    assert "labels have caught up" in resolved[0].message


def test_state_round_trip_is_deterministic_and_old_states_load(baseline):
    evs, _ = _events(8, 12_000, onset=6_000, spread=0.7)
    whole = Monitor(DetectionConfig(), baseline=baseline).process(evs)
    mon = Monitor(DetectionConfig(), baseline=baseline)
    first = mon.process(evs[:5_300])
    again = Monitor(DetectionConfig(), baseline=baseline)
    again.load_model("m", mon.dump_model("m"))
    rest = again.process(evs[5_300:])
    assert [a.alert_id for a in first + rest] == [a.alert_id for a in whole]
    assert _firing(whole)
    # a state written before the estimate existed loads (without one)
    state = decode_state(mon.dump_model("m"))
    for s in state["streams"]:
        del s["estimator"], s["no_estimate"]
    old = Monitor(DetectionConfig(), baseline=baseline)
    old.load_model("m", encode_state(state))
    assert old.status("m")["streams"][0]["estimated_performance"]["available"] is False


# ------------------------------------------------------------------------------ calibration check
def _labelled_stream(seed: int, n: int, flip_from: int | None, flip: float, lag: int = 200):
    """Predictions with ids and their labels ``lag`` events later; after ``flip_from`` a
    fraction ``flip`` of the labels is flipped (the concept moves, the scores do not)."""
    evs, y = _events(seed, n, pid="q")
    if flip_from is not None:
        rng = np.random.default_rng(seed + 1)
        flipped = (np.arange(n) >= flip_from) & (rng.random(n) < flip)
        y = np.where(flipped, 1 - y, y)
    out = []
    for i in range(n + lag):
        if i < n:
            out.append(evs[i])
        j = i - lag
        if j >= 0:
            out.append(
                LabelEvent(
                    model="m", timestamp=T0 + j + lag, prediction_id=f"q{j}", label=int(y[j])
                )
            )
    return out


def test_calibration_check_holds_on_calibrated_labels(baseline):
    mon = Monitor(DetectionConfig(), baseline=baseline)
    alerts = mon.process(_labelled_stream(11, 20_000, None, 0.0))
    assert alerts == []
    check = mon.status("m")["streams"][0]["estimated_performance"]["calibration_check"]
    assert check["outcomes"] == 2048 and check["alert"] is None
    assert abs(check["expected_accuracy"] - check["realized_accuracy"]) < 0.03


def test_a_concept_change_the_scores_cannot_see_is_a_calibration_drift(baseline):
    mon = Monitor(DetectionConfig(), baseline=baseline)
    alerts = mon.process(_labelled_stream(12, 14_000, 6_000, 0.15))
    assert not [a for a in alerts if parse_timestamp(a.event_time) - T0 < 6_000]
    assert not _firing(alerts)  # the scores did not move: no estimated drop
    cal = [a for a in _firing(alerts, "concept_drift") if a.detector == "calibration"]
    assert len(cal) == 1 and cal[0].feature == "calibration"
    st = cal[0].statistics
    assert st["after"] < st["before"] - 0.03
    assert parse_timestamp(cal[0].event_time) - T0 - 6_000 <= 4_000  # labels lag 200
    assert "Calibration drift" in cal[0].message


def test_estimate_totals_are_cumulative_expected_counts(baseline):
    mon = Monitor(DetectionConfig(), baseline=baseline)
    assert mon.estimate_totals("m") is None  # no stream yet
    evs, _ = _events(13, 3_072)
    mon.process(evs[:1_024])
    first = mon.estimate_totals("m")
    mon.process(evs[1_024:])
    total = mon.estimate_totals("m")
    assert first["count"] == 1_024 and total["count"] == 3_072
    assert total["tp"] + total["fp"] + total["fn"] + total["tn"] == pytest.approx(3_072)
    est = mon.status("m")["streams"][0]["estimated_performance"]["total"]
    assert (total["tp"] + total["tn"]) / total["count"] == pytest.approx(est["accuracy"])
    assert Monitor(DetectionConfig()).estimate_totals("m") is None


def test_baseline_build_and_replay_files_report_the_estimate(tmp_path):
    """The file commands: ``baseline build`` says what it learnt of the calibration, and
    replay's summary prints the estimate of the last window, with no label in the log."""
    from driftline.replay import build_baseline_file, load_baseline, replay_files

    def write(path, evs):
        rows = []
        for e in evs:
            row = {"model": "m", "timestamp": e.timestamp, "features": e.features}
            row["prediction"] = e.prediction
            row.update(e.extra)
            rows.append(orjson.dumps(row) + b"\n")
        path.write_bytes(b"".join(rows))

    write(tmp_path / "train.jsonl", _events(14, 5_000, t0=T0 - 9_000, label=True)[0])
    write(tmp_path / "serve.jsonl", _events(15, 10_000, onset=4_000, spread=0.7)[0])
    built = build_baseline_file([str(tmp_path / "train.jsonl")], tmp_path / "p.json")
    assert "score calibration:" in built.format() and "bins" in built.format()
    summary = replay_files(
        [str(tmp_path / "serve.jsonl")],
        tmp_path / "alerts.jsonl",
        baseline=load_baseline(tmp_path / "p.json"),
    )
    assert summary.alerts_by_kind.get("estimated_performance") == 1
    text = summary.format()
    assert "estimated performance (calibrated scores, last window):" in text
    assert "m (version any): accuracy " in text
