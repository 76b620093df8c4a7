"""Labels read before their predictions (a worker's backlog) join when the prediction comes,
in label order, so concept-drift alerts do not depend on how the topics interleave."""

import random

import numpy as np
import pytest

from driftline.detectors import DetectionConfig, Monitor
from driftline.detectors._early import EarlyLabels
from driftline.detectors._state import decode_state, encode_state
from driftline.detectors.exceptions import StateError
from driftline.schemas import LabelEvent, PredictionEvent

T0 = 1_700_000_000.0
CFG = DetectionConfig(warmup=600, block=128, outcome_block=64)


def _log(n=7000, onset=4000, seed=5, label_every=2):
    """A log in event order: predictions, and labels 30-300 s after them; from ``onset``
    the labels contradict the model (concept drift with unchanged inputs)."""
    rng = np.random.default_rng(seed)
    out, due = [], []
    for i in range(n):
        x = float(rng.normal())
        pred = float(1 / (1 + np.exp(-2 * x)))
        y = int(rng.random() < (1 - pred if onset is not None and i >= onset else pred))
        out.append(
            PredictionEvent(
                model="m",
                timestamp=T0 + i,
                features={"x": x},
                prediction=pred,
                prediction_id=f"p{i}",
            )
        )
        if i % label_every == 0:
            due.append((i + int(rng.integers(30, 300)), f"p{i}", y))
            due.sort()
        while due and due[0][0] <= i:
            _, pid, label = due.pop(0)
            out.append(LabelEvent(model="m", timestamp=T0 + i, prediction_id=pid, label=label))
    return out


def _backlog(events, seed):
    """The two topics read at their own paces, labels running ahead: each topic in its own
    order, interleaved at random, cut into random batches."""
    rnd = random.Random(seed)
    preds = [e for e in events if e.kind == "prediction"]
    labels = [e for e in events if e.kind == "label"]
    merged, i, j = [], 0, 0
    while i < len(preds) or j < len(labels):
        take_label = j < len(labels) and (i >= len(preds) or rnd.random() < 0.7)
        n = rnd.randint(1, 400)
        if take_label:
            merged += labels[j : j + n]
            j += n
        else:
            merged += preds[i : i + n]
            i += n
    batches, k = [], 0
    while k < len(merged):
        n = rnd.randint(1, 700)
        batches.append(merged[k : k + n])
        k += n
    return batches


def _run(batches, config=CFG, restart_at=None):
    mon, alerts = Monitor(config), []
    for b, batch in enumerate(batches):
        alerts += mon.process(batch)
        if b == restart_at:
            blob = mon.dump_model("m")
            mon = Monitor(config)
            mon.load_model("m", blob)
    return alerts, mon


def _ids(alerts, kinds=("concept_drift", "performance")):
    return sorted(a.alert_id for a in alerts if a.kind in kinds)


def test_a_backlog_read_labels_first_gives_the_alerts_of_the_log_order():
    events = _log()
    expected, in_order = _run([events])
    assert _ids(expected), "the log must contain a concept drift to compare"
    assert in_order.stats["labels_early"] == 0
    for seed in range(3):
        got, mon = _run(_backlog(events, seed), restart_at=seed * 3 + 1)
        assert _ids(got) == _ids(expected)
        assert sorted(a.alert_id for a in got) == sorted(a.alert_id for a in expected)
        assert mon.stats["labels_early"] > 0  # the labels really ran ahead


def test_labels_all_first_then_predictions_still_join():
    events = _log(n=3000, onset=None)
    labels = [e for e in events if e.kind == "label"]
    preds = [e for e in events if e.kind == "prediction"]
    _, mon = _run([labels, preds])
    stats = mon.stats
    assert stats["labels_early"] == len(labels)
    assert stats["labels_early_joined"] == len(labels) and stats["labels_waiting"] == 0
    assert stats["labels_unmatched"] == 0
    joined = mon.status("m")["streams"][0]["labels"]["joined"]
    assert joined == len(labels)


def test_a_label_whose_prediction_never_comes_gives_up_and_blocks_nobody():
    events = _log(n=2000, onset=None)
    orphan = LabelEvent(model="m", timestamp=T0 + 100, prediction_id="nobody", label=1)
    labels = [e for e in events if e.kind == "label"]
    preds = [e for e in events if e.kind == "prediction"]
    _, mon = _run([[orphan, *labels], preds])
    stats = mon.stats
    assert stats["labels_unmatched"] == 1  # gave up after early_label_wait of event time
    assert stats["labels_early_joined"] == len(labels) and stats["labels_waiting"] == 0
    early = mon.status("m")["early_labels"]
    assert early == {"early": len(labels) + 1, "joined": len(labels), "expired": 1,
                     "evicted": 0, "waiting": 0}  # fmt: skip


def test_the_early_label_buffer_is_bounded():
    cfg = DetectionConfig(warmup=600, block=128, outcome_block=64, max_early_labels=50)
    labels = [
        LabelEvent(model="m", timestamp=T0 + i, prediction_id=f"q{i}", label=0) for i in range(80)
    ]
    _, mon = _run([labels], config=cfg)
    assert mon.status("m")["early_labels"]["waiting"] == 50
    assert mon.status("m")["early_labels"]["evicted"] == 30
    assert mon.stats["labels_unmatched"] == 30  # pushed out: they will never join


def test_waiting_labels_survive_a_state_round_trip_and_old_states_load():
    events = _log(n=2500, onset=None)
    labels = [e for e in events if e.kind == "label"]
    preds = [e for e in events if e.kind == "prediction"]
    mon = Monitor(CFG)
    mon.process(preds[:200] + labels)
    blob = mon.dump_model("m")
    waiting = mon.stats["labels_waiting"]
    assert waiting > 0
    back = Monitor(CFG)
    back.load_model("m", blob)
    assert back.stats["labels_waiting"] == waiting
    back.process(preds[200:])
    assert back.stats["labels_waiting"] == 0
    assert back.stats["labels_early_joined"] == waiting
    # a state written before the buffer existed has no "early_labels": it loads, none wait
    state = decode_state(blob)
    del state["early_labels"]
    old = Monitor(CFG)
    old.load_model("m", encode_state(state))
    assert old.stats["labels_waiting"] == 0


@pytest.mark.parametrize(
    "damage",
    [
        lambda s: s.update(pids=s["pids"][:-1]),
        lambda s: s.update(counts={"early": -1}),
        lambda s: s.update(times=[1.0]),
        lambda s: s.update(versions=[3] * len(s["versions"])),
    ],
)
def test_a_damaged_early_label_state_is_a_state_error(damage):
    e = EarlyLabels(60.0, 10)
    from driftline.detectors._early import EarlyLabel

    for i in range(3):
        e.hold(EarlyLabel(f"p{i}", T0 + i, 1, None))
    state = decode_state(encode_state(e.to_state()))
    assert len(EarlyLabels.from_state(state, 60.0, 10)) == 3
    damage(state)
    with pytest.raises(StateError):
        EarlyLabels.from_state(state, 60.0, 10)
