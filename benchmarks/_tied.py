"""Stationary streams of tied and discrete features for ``quality.py`` (issue 12, case 3).

Twenty features of the kinds production data are full of: model scores rounded to 0.01 (most
near 0, as a credit model's are), integer counts, zero-inflated amounts in cents, a
few-valued code, percentages (101 values), prices in cents (thousands of values on a grid),
a zero-heavy reading rounded to 0.1 and a boolean-like 0/1 flag, plus the score itself as the
prediction. Nothing changes: every alert is a false alarm. Each model is run twice: with the
live warm-up reference, and against a baseline profile built from another stationary stream of
the same generator (the case where ties used to be lost).
"""

from __future__ import annotations

import numpy as np

from driftline.detectors import Baseline, DetectionConfig, Monitor, build_baseline
from driftline.schemas import PredictionEvent

__all__ = ["events", "run"]

T0 = 1_700_000_000.0


def _columns(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {}
    for j in range(3):
        cols[f"rounded{j}"] = np.round(rng.beta(0.4 + 0.3 * j, 6.0, n), 2)
        cols[f"count{j}"] = rng.poisson(0.5 + 2 * j, n).astype(float)
        zero = rng.random(n) < 0.5 + 0.15 * j
        cols[f"zero_inflated{j}"] = np.where(zero, 0.0, np.round(rng.lognormal(3, 1, n), 2))
        cols[f"few{j}"] = rng.choice(3 + j, n, p=np.arange(3 + j, 0, -1) / sum(range(1, 4 + j)))
        cols[f"pct{j}"] = np.round(rng.uniform(0, 100, n))
    cols["price"] = np.round(rng.lognormal(4.0, 1.5, n), 2)
    cols["rain"] = np.round(rng.gamma(0.3, 2.0, n), 1)
    cols["flag"] = (rng.random(n) < 0.1).astype(float)
    cols["score"] = np.round(rng.beta(0.5, 8.0, n), 2)
    return cols


def events(seed: int, n: int, t0: float) -> list[PredictionEvent]:
    cols = _columns(np.random.default_rng(seed), n)
    score = cols.pop("score")
    names = sorted(cols)
    rows = zip(*(cols[k].tolist() for k in names), strict=True)
    return [
        PredictionEvent(
            model=f"tied-{seed}",
            timestamp=t0 + i,
            features=dict(zip(names, row, strict=True)),
            prediction=float(score[i]),
        )
        for i, row in enumerate(rows)
    ]


def run(models: int, n: int, cfg: DetectionConfig) -> tuple[int, int, list[str]]:
    """(false alarms, stationary events, examples) over ``models`` x 2 references."""
    fa, total, examples = 0, 0, []
    for m in range(models):
        serving = events(20_000 + m, n, T0)
        train = build_baseline(events(30_000 + m, 50_000, T0 - 1e6))
        for baseline in (None, Baseline.from_json(train.to_json())):
            for e in serving:  # same model name as the baseline's
                e.model = train.models()[0]
            alerts = Monitor(cfg, baseline=baseline).process(serving)
            alerts = [a for a in alerts if a.status == "firing"]
            fa += len(alerts)
            total += n
            where = "baseline" if baseline is not None else "warm-up"
            examples += [f"{where}: {a.kind}/{a.feature} {a.detector}: {a.message}" for a in alerts]
    return fa, total, examples
