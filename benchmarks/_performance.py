"""Outcome monitoring cases of ``quality.py``: a small accuracy drop seen only through labels.

A binary classifier over six features (two continuous, a score rounded to 0.01, an integer
count, a zero-inflated amount, a three-valued code) whose class is ``score >= 0.5``; about
94% accurate. Training data: ``train`` labelled predictions, each carrying its ground truth
(a top-level ``label`` field, or a separate label event joined by ``prediction_id``), from
which ``build_baseline`` learns the reference error rate. Serving: ``pre`` stationary
predictions, then ``post`` predictions whose labels differ from the training concept for just
enough inputs to lower accuracy by ``drop`` (the inputs and the scores do not change); every
prediction is labelled ``LAG`` events later.

Reported per case: the labels from the change to the first ``concept_drift`` or
``performance`` alert (the label of prediction ``j`` has event time ``T0 + j + LAG``, so the
alert's event time names the prediction), any alert before the change (a false alarm), and
accuracy before and after as the alert states them.
"""

from __future__ import annotations

import numpy as np

from driftline.detectors import DetectionConfig, Monitor, build_baseline
from driftline.schemas import LabelEvent, PredictionEvent, parse_timestamp

__all__ = ["KINDS", "LAG", "labelled", "report", "run_case"]

T0 = 1_700_000_000.0
LAG = 500
KINDS = ("concept_drift", "performance")


def _rows(rng: np.random.Generator, n: int) -> tuple[list[dict], np.ndarray]:
    x1 = rng.normal(0.0, 1.0, n)
    x2 = rng.normal(5.0, 2.0, n)
    count = rng.poisson(3.0, n)
    amount = np.where(rng.random(n) < 0.6, 0.0, np.round(rng.lognormal(3.0, 1.0, n), 2))
    code = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    logit = 10.0 * x1 + 0.8 * (x2 - 5.0) / 2.0 + 0.3 * (code - 0.7)
    p_true = 1.0 / (1.0 + np.exp(-logit))
    score = np.round(p_true, 2)
    feats = [
        {
            "x1": float(x1[i]),
            "x2": float(x2[i]),
            "count": int(count[i]),
            "amount": float(amount[i]),
            "code": int(code[i]),
            "rounded": float(score[i]),
        }
        for i in range(n)
    ]
    return feats, p_true


def labelled(seed: int, n: int, onset: int | None, drop: float, t0: float, pid: str) -> list:
    """Predictions and their labels (``LAG`` events later), in stream order."""
    rng = np.random.default_rng(seed)
    feats, p_true = _rows(rng, n)
    label = (rng.random(n) < p_true).astype(int)
    score = np.round(p_true, 2)
    if onset is not None and drop > 0:
        err = float(np.mean((score >= 0.5) != label))
        q = drop / (1.0 - 2.0 * err)  # flipping a fraction q adds `drop` to the error rate
        flip = (np.arange(n) >= onset) & (rng.random(n) < q)
        label = np.where(flip, 1 - label, label)
    events: list = []
    for i in range(n + LAG):
        if i < n:
            events.append(
                PredictionEvent(
                    model="credit",
                    timestamp=t0 + i,
                    features=feats[i],
                    prediction=float(score[i]),
                    prediction_raw={"score": float(score[i]), "label": int(score[i] >= 0.5)},
                    prediction_id=f"{pid}{i}",
                )
            )
        j = i - LAG
        if j >= 0:
            events.append(
                LabelEvent(
                    model="credit",
                    timestamp=t0 + j + LAG,
                    prediction_id=f"{pid}{j}",
                    label=int(label[j]),
                )
            )
    return events


def run_case(seed: int, *, train: int, pre: int, post: int, drop: float, cfg=None) -> dict:
    """One case; ``train`` 0 means no baseline (the reference is the live warm-up)."""
    cfg = cfg or DetectionConfig()
    baseline = None
    if train:
        baseline = build_baseline(labelled(seed + 10_000, train, None, 0.0, T0 - 10 * train, "t"))
    mon = Monitor(cfg, baseline=baseline)
    onset = pre if drop > 0 else None
    alerts = mon.process(labelled(seed, pre + post, onset, drop, T0, "p"))
    out = {"delay": None, "false": 0, "message": "", "before": None, "after": None}
    for a in alerts:
        if a.status != "firing":
            continue
        j = round(parse_timestamp(a.event_time) - T0 - LAG)
        if a.kind in KINDS and onset is not None and j >= onset:
            if out["delay"] is None:
                out.update(delay=j - onset, message=a.message)
                out.update(before=a.statistics.get("before"), after=a.statistics.get("after"))
        else:
            out["false"] += 1
    return out


def report(seeds: int, quick: bool) -> None:
    """Print the delay (labels) and false alarms of the performance cases."""
    n = 25_000
    print()
    print(
        f"Outcome monitoring: a 3-point accuracy drop after {n} stationary labelled "
        f"predictions, {n} after it, every prediction labelled {LAG} events later; baseline "
        f"of {n} labelled training predictions (or none: warm-up reference); {seeds} seeds"
    )
    for train, what in ((n, "baseline with labels"), (0, "no baseline")):
        for drop in (0.03, 0.02, 0.0):
            res = [run_case(s, train=train, pre=n, post=n, drop=drop) for s in range(seeds)]
            delays = [r["delay"] for r in res if r["delay"] is not None]
            fa = sum(r["false"] for r in res)
            med = f"{np.median(delays):.0f}" if delays else "-"
            mx = f"{max(delays)}" if delays else "-"
            within = sum(d <= 5000 for d in delays)
            tag = f"drop {drop:.0%}" if drop else "stationary"
            print(
                f"  {what:<21} {tag:<10} detected {len(delays)}/{len(res)}, within 5,000 "
                f"labels {within}/{len(res)}, median delay {med} labels (max {mx}), "
                f"false alarms {fa} in {len(res) * 2 * n} events"
            )
            if delays and drop == 0.03 and train:
                print(f"    e.g. {next(r['message'] for r in res if r['delay'] is not None)}")
