"""Outcome monitoring (issue 12, cases 1-2): the predicted class, baselines that learn labels,
the error-rate CUSUM bank, and alert statistics recomputed from the raw outcomes."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from driftline.detectors import Baseline, DetectionConfig, Monitor, build_baseline
from driftline.detectors._errorrate import ErrorRateCusum, confirm_pvalue
from driftline.detectors._outcomes import Outcomes
from driftline.schemas import LabelEvent, PredictionEvent, decode_event, parse_timestamp

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import _performance as perf  # the benchmark's generator, shared on purpose

T0 = 1_700_000_000.0


def test_predicted_label_decides_the_class_not_the_score():
    o = Outcomes()
    raw = decode_event(
        b'{"model":"m","timestamp":1,"features":{},"prediction":{"score":0.3,"label":1},'
        b'"prediction_id":"a"}'
    )
    from driftline.detectors._outcomes import judged_output

    output = judged_output(raw.prediction_raw, raw.prediction)
    assert raw.prediction == 0.3 and output == 1
    loss, per = o.losses([(0.0, output, 1), (0.0, 0.3, 1)])
    assert loss.tolist() == [0.0, 1.0]  # the label says positive; the bare score does not
    assert per[:, 1].tolist() == [1.0, 0.0]  # TP
    assert per[:, 3].tolist() == [0.0, 1.0]  # FN


def test_decision_threshold_is_configurable():
    o = Outcomes()
    loss, _ = o.losses([(0.0, 0.3, 1), (0.0, 0.1, 0)], threshold=0.25)
    assert loss.tolist() == [0.0, 0.0]
    assert DetectionConfig(decision_threshold=0.25).for_model("m").decision_threshold == 0.25


def test_multiclass_labels_are_compared_as_classes():
    o = Outcomes()
    loss, _ = o.losses([(0.0, "cat", "cat"), (0.0, "dog", "cat"), (0.0, "cat", "bird")])
    assert o.task == "classification" and loss.tolist() == [0.0, 1.0, 1.0]


def _training(n: int, *, label_events: bool) -> list:
    rng = np.random.default_rng(3)
    evs: list = []
    for i in range(n):
        score = float(rng.random())
        truth = int(rng.random() < (0.9 if score >= 0.5 else 0.1))
        extra = {} if label_events else {"label": truth}
        evs.append(
            PredictionEvent(
                model="m",
                timestamp=T0 + i,
                features={"x": score},
                prediction=score,
                prediction_id=f"t{i}",
                extra=extra,
            )
        )
        if label_events:
            evs.append(LabelEvent(model="m", timestamp=T0 + i, prediction_id=f"t{i}", label=truth))
    if label_events:  # labels may come before their predictions in a training file
        evs.reverse()
    return evs


@pytest.mark.parametrize("label_events", [True, False])
def test_baseline_learns_labels_from_events_or_a_label_field(label_events):
    b = Baseline.from_json(build_baseline(_training(4000, label_events=label_events)).to_json())
    op = b.profile("m", None)["outcomes"]
    assert op["task"] == "binary"
    assert op["aggregates"]["count"] == 4000
    # independent recomputation of the error rate from the same generator
    evs = [e for e in _training(4000, label_events=False)]
    errors = sum((e.prediction >= 0.5) != bool(e.extra["label"]) for e in evs)
    assert op["aggregates"]["loss"] == errors
    assert op["metrics"]["accuracy"] == pytest.approx(1 - errors / 4000)
    assert op["start"] == T0 and op["end"] == T0 + 3999


def test_baseline_join_memory_is_bounded_and_drops_are_counted(monkeypatch):
    """Predictions waiting for a label (and labels for a prediction) are bounded: a serving
    log of predictions with ids, most never labelled, must not all stay in memory."""
    from driftline.detectors import BaselineBuilder, _baseline

    monkeypatch.setattr(_baseline, "MAX_PENDING", 10)
    evs = _training(30, label_events=True)
    preds = [e for e in evs if e.kind == "prediction"]
    labels = [e for e in evs if e.kind == "label"]
    builder = BaselineBuilder()
    builder.add(sorted(preds, key=lambda e: e.timestamp))  # all predictions first
    builder.add(labels)
    # the 10 newest predictions waited and joined; the 20 older ones were dropped, and of
    # their 20 labels (no prediction to join) only 10 are kept waiting
    assert builder.unjoined == 20 + 10
    out = builder.build().profile("m", None)["outcomes"]
    assert out["aggregates"]["count"] == 10 and out["start"] == T0 + 20


def test_baseline_outcomes_folded_in_chunks_match_one_pass(monkeypatch):
    """Labelled rows are folded into sums a chunk at a time (bounded memory): the profile is
    the same as when every row is judged at once."""
    from driftline.detectors import _baseline

    evs = _training(3000, label_events=True)
    whole = build_baseline(evs).profile("m", None)["outcomes"]
    monkeypatch.setattr(_baseline, "_CHUNK", 256)
    chunked = build_baseline(evs).profile("m", None)["outcomes"]
    assert chunked == whole and whole["aggregates"]["count"] == 3000


def test_baseline_rejects_malformed_outcomes():
    doc = build_baseline(_training(200, label_events=False)).to_json()
    from driftline.detectors import ConfigError

    with pytest.raises(ConfigError, match=r"outcomes\.aggregates"):
        Baseline.from_json(doc.replace(b'"count": 200', b'"count": -1'))


def test_three_point_drop_is_caught_within_5000_labels_with_a_baseline():
    res = perf.run_case(0, train=25_000, pre=10_000, post=15_000, drop=0.03)
    assert res["false"] == 0
    assert res["delay"] is not None and res["delay"] <= 5_000, res


def test_concept_drift_alert_describes_the_outcomes_since_its_change_point():
    baseline = build_baseline(perf.labelled(5, 25_000, None, 0.0, T0 - 1e6, "t"))
    evs = perf.labelled(6, 16_000, 8_000, 0.04, T0, "p")
    mon = Monitor(DetectionConfig(), baseline=baseline)
    alerts = [a for a in mon.process(evs) if a.status == "firing"]
    rate = [a for a in alerts if a.detector == "error_rate" and a.kind == "concept_drift"]
    assert rate, [a.message for a in alerts]
    a = rate[0]
    st = a.statistics
    # raw outcomes in label order (labels arrive in prediction order here)
    preds = {e.prediction_id: e for e in evs if e.kind == "prediction"}
    labels = [e for e in evs if e.kind == "label"]
    errs = np.array([(preds[e.prediction_id].prediction >= 0.5) != bool(e.label) for e in labels])
    times = np.array([e.timestamp for e in labels])
    end = int(np.searchsorted(times, parse_timestamp(a.event_time)))  # the alert's outcome
    since = errs[st["change_seq"] : end + 1]
    assert abs(st["change_seq"] - 8_000) <= 300  # the labels changed from prediction 8,000
    assert st["values_since_change"] == len(since) == a.window["current"]["count"]
    assert st["after"] == pytest.approx(since.mean())
    assert st["current_metrics"]["accuracy"] == pytest.approx(1 - since.mean())
    assert parse_timestamp(a.window["current"]["start"]) == times[st["change_seq"]]
    op = baseline.profile("credit", None)["outcomes"]
    assert st["before"] == pytest.approx(op["aggregates"]["loss"] / op["aggregates"]["count"])
    assert st["reference_source"] == "baseline"
    assert a.window["reference"]["count"] == op["aggregates"]["count"]
    assert a.window["reference"]["start"] != a.window["reference"]["end"]
    status = mon.status("credit")["streams"][0]["labels"]
    assert status["reference_source"] == "baseline" and status["window"]["count"] == 512


def test_bank_threshold_holds_its_rate_on_a_known_error_rate():
    # exact reference (n0 huge): the bank's crossings per outcome stay below the rate it
    # was given; a loose rate makes crossings observable in a short stream
    rng = np.random.default_rng(0)
    rate = 1e-3
    bank = ErrorRateCusum(0.1, 10**9)
    n, hits = 200_000, 0
    for b in range(n // 500):
        loss = (rng.random(500) < 0.1).astype(float)
        rows = np.zeros((500, 7))
        rows[:, 0] = 1
        rows[:, 5] = loss
        hits += bank.update(loss, rows, np.arange(500.0), b * 500, rate) is not None
    assert hits <= rate * n  # Wald's bound (conservative)
    assert bank.threshold(rate) == pytest.approx(math.log(5 / rate))


def test_confirmation_counts_the_reference_sampling_error():
    # the same excess is significant against a large reference, not against a small one
    assert confirm_pvalue(0.05, 100_000, 70, 1000) < 0.01
    assert confirm_pvalue(0.05, 300, 70, 1000) > 0.05


def test_bank_state_round_trips():
    bank = ErrorRateCusum(0.07, 5000)
    rows = np.zeros((3, 7))
    rows[:, 0] = 1
    rows[:, 5] = [1, 1, 0]
    bank.update(np.array([1.0, 1.0, 0.0]), rows, np.arange(3.0), 0, 1e-6)
    again = ErrorRateCusum.from_state(bank.to_state())
    assert again.p0 == bank.p0 and again.n0 == bank.n0
    assert np.array_equal(again.cusum, bank.cusum) and np.array_equal(again.zero, bank.zero)


def test_error_rate_state_survives_a_dump_and_load_mid_stream():
    baseline = build_baseline(perf.labelled(5, 10_000, None, 0.0, T0 - 1e6, "t"))
    evs = perf.labelled(9, 12_000, 4_000, 0.06, T0, "p")
    whole = [a.to_json() for a in Monitor(DetectionConfig(), baseline=baseline).process(evs)]
    first = Monitor(DetectionConfig(), baseline=baseline)
    cut = len(evs) // 2 + 77
    alerts = first.process(evs[:cut])
    second = Monitor(DetectionConfig(), baseline=baseline)
    second.load_model("credit", first.dump_model("credit"))
    alerts += second.process(evs[cut:])
    assert [a.to_json() for a in alerts] == whole
    assert any(b'"error_rate"' in a for a in whole)


def _regression(seed: int, n: int, onset: int | None, t0: float, pid: str) -> list:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = 2 * x + rng.normal(size=n) * 0.5
    if onset is not None:  # the noise around the model's prediction grows
        y = np.where(np.arange(n) >= onset, y + rng.normal(size=n) * 0.5, y)
    out: list = []
    for i in range(n):
        out.append(
            PredictionEvent(
                model="r",
                timestamp=t0 + i,
                features={"x": float(x[i])},
                prediction=float(2 * x[i]),
                prediction_id=f"{pid}{i}",
            )
        )
        out.append(
            LabelEvent(model="r", timestamp=t0 + i, prediction_id=f"{pid}{i}", label=float(y[i]))
        )
    return out


def test_regression_baseline_learns_its_error_distribution_and_alerts_on_mae():
    b = build_baseline(_regression(1, 8000, None, T0 - 1e6, "t"))
    op = b.profile("r", None)["outcomes"]
    assert op["task"] == "regression" and op["error"]["type"] == "numeric"
    assert op["metrics"]["mae"] == pytest.approx(0.4, abs=0.02)  # E|N(0, 0.5)| = 0.399
    alerts = Monitor(baseline=b).process(_regression(2, 10_000, 5000, T0, "p"))
    firing = [a for a in alerts if a.status == "firing"]
    assert firing and {a.kind for a in firing} <= {"concept_drift", "performance"}
    a = firing[0]
    assert a.statistics["reference_metrics"]["mae"] == pytest.approx(op["metrics"]["mae"])
    assert a.statistics["reference_source"] == "baseline"
    assert "mean absolute error rose" in a.message


def test_an_error_rate_incident_holds_while_the_drop_lasts_and_resolves_after():
    baseline = build_baseline(perf.labelled(5, 10_000, None, 0.0, T0 - 1e6, "t"))
    evs = perf.labelled(11, 30_000, 4_000, 0.05, T0, "p")
    # the drop ends at prediction 20,000: relabel from there as the training concept
    clean = {
        e.prediction_id: e.label
        for e in perf.labelled(11, 30_000, None, 0.0, T0, "p")
        if e.kind == "label"
    }
    for e in evs:
        if e.kind == "label" and int(e.prediction_id[1:]) >= 20_000:
            e.label = clean[e.prediction_id]
    alerts = Monitor(baseline=baseline).process(evs)
    rate = [a for a in alerts if a.kind == "concept_drift"]
    assert [a.status for a in rate] == ["firing", "resolved"]  # no flapping in between
    resolved_at = round(parse_timestamp(rate[1].event_time) - T0 - perf.LAG)
    assert 20_000 < resolved_at < 20_000 + 6_000


def test_a_new_error_reference_starts_its_window_and_look_back_afresh():
    """When the error stream adopts a new reference (a drift that lasted), the metrics
    window and the resolution look-back of the old regime are not evidence about the new
    one: they start again (they kept the old blocks, so the first alerts after an adoption
    mixed regimes and a new incident's resolution test read blocks from before it)."""
    settings = DetectionConfig().for_model("m")
    rng = np.random.default_rng(0)
    o, t = Outcomes(), T0

    def block(error_rate: float) -> None:
        nonlocal t
        wrong = rng.random(settings.outcome_block) < error_rate
        o.buf = [(t + i, int(not w), 1) for i, w in enumerate(wrong)]
        t += settings.outcome_block
        o.run(settings, 1e-6)

    while not o.error.live:
        block(0.05)
    for _ in range(20):
        block(0.3)
    assert o.view().window_pvalues() is not None  # the look-back is full
    o.view().restart_reference()  # what the policy does when it adopts the new regime
    while not o.error.live:
        block(0.3)
    block(0.3)
    assert o.current()[0] == settings.outcome_block  # only the block after the adoption
    assert o.view().window_pvalues() is None  # too few blocks yet to resolve anything


def test_a_change_at_a_block_boundary_starts_at_the_next_blocks_first_outcome():
    """The excursion of a CUSUM whose last zero is a block's last outcome starts at the next
    block's first outcome: its time is that outcome's (it was the previous outcome's); and
    a bank seeded from a baseline, drifting from its first outcome, starts there (it said
    1970-01-01, the zero time of a new bank)."""
    B = 100
    rows = np.zeros((B, 7))
    rows[:, 0] = 1
    errors = rows.copy()
    errors[:, 5] = 1
    times = T0 + np.arange(B, dtype=float)
    bank = ErrorRateCusum(0.05, 10**6)
    assert bank.update(np.zeros(B), rows, times, 0, 1e-3) is None  # all right: at zero
    hit = bank.update(np.ones(B), errors, times + 1000, B, 1e-3)
    assert (hit.change_seq, hit.change_time) == (B, T0 + 1000)
    assert hit.since[0] == hit.since[5] == hit.index + 1  # the errors since, exactly

    fresh = ErrorRateCusum(0.05, 10**6)  # as Outcomes.seed builds it from a baseline
    hit = fresh.update(np.ones(B), errors, times, 0, 1e-3)
    assert (hit.change_seq, hit.change_time) == (0, T0)
    again = ErrorRateCusum.from_state(fresh.to_state())  # restarted after the crossing
    hit = again.update(np.ones(B), errors, times + B, B, 1e-3)
    assert (hit.change_seq, hit.change_time) == (B, T0 + B)
