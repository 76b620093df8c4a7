"""Estimated performance cases of ``quality.py`` (issue 17): quality drops with no labels.

A binary classifier whose score is the true probability of the positive class (calibrated:
``p = sigmoid(2.5 x1 + 0.5 x2)``), its predicted class ``score >= 0.5``, with two more
features. Training data: ``train`` predictions carrying their ground truth (a top-level
``label``), from which ``build_baseline`` learns the isotonic calibration. Serving: ``pre``
stationary predictions, then ``post`` predictions after a covariate shift that moves traffic
towards the decision boundary (``x1``'s spread shrinks from 1.0 to ``spread``), where the
model is less sure and less accurate; the scores stay calibrated. No label is ever sent.

Reported: the predictions from the shift to the first ``estimated_performance`` alert, any
alert of any kind before the shift (false alarms; none expected), the realized accuracy
drop (from labels drawn but withheld), and the estimate's error against the realized
accuracy per window (the monitor's window of ``window_blocks * block`` predictions, and
windows of 5,000), from the monitor's cumulative estimate (``Monitor.status``).
"""

from __future__ import annotations

import numpy as np

from driftline.detectors import DetectionConfig, Monitor, build_baseline
from driftline.schemas import LabelEvent, PredictionEvent, parse_timestamp

T0 = 1_700_000_000.0
KIND = "estimated_performance"
LAG = 300


def _draw(rng: np.random.Generator, n: int, spread: np.ndarray) -> tuple[list, np.ndarray]:
    x1 = rng.normal(0.0, 1.0, n) * spread
    x2 = rng.normal(0.0, 1.0, n)
    code = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    p = 1.0 / (1.0 + np.exp(-(2.5 * x1 + 0.5 * x2)))
    y = (rng.random(n) < p).astype(int)
    rows = [
        {"x1": float(a), "x2": float(b), "code": str(c)}
        for a, b, c in zip(x1, x2, code, strict=True)
    ]
    return [rows, p], y


def events(seed: int, n: int, onset: int | None, spread: float, t0: float, labels: bool):
    """Predictions (with a ``label`` field in training data) and the withheld truth."""
    rng = np.random.default_rng(seed)
    s = np.ones(n)
    if onset is not None:
        s[onset:] = spread
    (rows, p), y = _draw(rng, n, s)
    out = []
    for i in range(n):
        extra = {"label": int(y[i])} if labels else {}
        out.append(
            PredictionEvent(
                model="m",
                timestamp=t0 + i,
                features=rows[i],
                prediction=float(p[i]),
                extra=extra,
            )
        )
    guess = (p >= 0.5).astype(int)
    return out, y, guess, np.where(guess == 1, p, 1.0 - p)


def run_case(seed: int, *, train: int, pre: int, post: int, spread: float) -> dict:
    """One case: delay, false alarms, realized drop and the per-window estimate errors."""
    base, _, _, _ = events(seed + 50_000, train, None, 1.0, T0 - 2 * train, True)
    mon = Monitor(DetectionConfig(), baseline=build_baseline(base))
    onset = pre if spread != 1.0 else None
    evs, y, guess, expected = events(seed, pre + post, onset, spread, T0, False)
    right = (y == guess).astype(float)
    window = 0
    res: dict = {"delay": None, "false": 0, "message": "", "errors": [], "errors5k": []}
    res.update(expected=[], covered=[])
    prev = (0, 0.0)  # (count, estimated right) of the cumulative estimate
    step = 1024
    for a in range(0, len(evs), step):
        for al in mon.process(evs[a : a + step]):
            j = round(parse_timestamp(al.event_time) - T0)
            if al.status != "firing":
                continue
            if al.kind == KIND and onset is not None and j >= onset and res["delay"] is None:
                res.update(delay=j - onset, message=al.message)
            elif onset is None or j < onset:
                res["false"] += 1
        est = mon.status("m")["streams"][0]["estimated_performance"]
        if window == 0:
            window = est["window"]["count"] if est["window"]["count"] else 0
        tot = est["total"]
        n, correct = tot["count"], tot["accuracy"] * tot["count"]
        if n - prev[0] >= 5000:
            real = right[prev[0] : n].mean()
            res["errors5k"].append(abs((correct - prev[1]) / (n - prev[0]) - real))
            prev = (n, correct)
        w = est["window"]
        if w["count"] and a % 2048 == 0:
            real = right[n - w["count"] : n].mean()
            res["errors"].append(abs(w["accuracy"] - real))
            res["expected"].append(abs(w["accuracy"] - expected[n - w["count"] : n].mean()))
            lo, hi = w["accuracy_interval"]
            res["covered"].append(lo <= real <= hi)
    res["drop"] = float(right[:pre].mean() - right[pre:].mean()) if onset is not None else 0.0
    return res


def report(seeds: int, quick: bool) -> None:
    """Print delay, false alarms and the estimate's accuracy per window."""
    train, pre, post = 25_000, 25_000, 25_000
    print()
    print(
        f"Estimated performance (issue 17): calibrated binary scores, baseline of {train:,} "
        f"labelled training predictions; {pre:,} stationary predictions then {post:,} after a "
        "covariate shift towards the decision boundary; NO labels; "
        f"{seeds} seeds"
    )
    for spread, tag in ((0.8, "shift"), (0.9, "small shift"), (1.0, "stationary")):
        n, k = (pre, seeds) if spread != 1.0 or quick else (250_000, 2)
        res = [run_case(s, train=train, pre=n, post=n, spread=spread) for s in range(k)]
        delays = [r["delay"] for r in res if r["delay"] is not None]
        fa = sum(r["false"] for r in res)
        errs = np.concatenate([r["errors"] for r in res])
        e5 = np.concatenate([r["errors5k"] for r in res])
        ex = np.concatenate([r["expected"] for r in res])
        cover = np.mean(np.concatenate([r["covered"] for r in res]))
        drop = np.mean([r["drop"] for r in res])
        med = f"{np.median(delays):.0f}" if delays else "-"
        mx = f"{max(delays)}" if delays else "-"
        print(
            f"  {tag:<11} realized accuracy drop {drop:.1%}: alert {len(delays)}/{len(res)}, "
            f"within 5,000 predictions {sum(d <= 5000 for d in delays)}/{len(res)}, median "
            f"delay {med} (max {mx}); false alarms {fa} in {len(res) * 2 * n:,} events; "
            f"|estimated - realized| accuracy per 2,048-prediction window: mean {errs.mean():.2%}"
            f", within 1 point {np.mean(errs <= 0.01):.0%}; per 5,000: mean {e5.mean():.2%}, "
            f"max {e5.max():.2%}, within 1 point {np.mean(e5 <= 0.01):.0%}; realized accuracy "
            f"inside the estimate's 95% interval in {cover:.0%} of windows; |estimated - "
            f"expected| (noise-free, from the true probabilities) per 2,048: mean "
            f"{ex.mean():.2%}, max {ex.max():.2%}"
        )
        if delays and spread == 0.8:
            print(f"    e.g. {next(r['message'] for r in res if r['delay'] is not None)}")
    report_labelled(2 if quick else 4, quick)


def labelled_case(seed: int, *, train: int, n: int, onset: int | None, flip: float) -> dict:
    """Every prediction labelled ``LAG`` events later; after ``onset`` a fraction ``flip`` of
    the labels is flipped (the scores do not move): the calibration check's case."""
    base, _, _, _ = events(seed + 50_000, train, None, 1.0, T0 - 2 * train, True)
    mon = Monitor(DetectionConfig(), baseline=build_baseline(base))
    evs, y, _, _ = events(seed, n, None, 1.0, T0, False)
    if onset is not None:
        rng = np.random.default_rng(seed + 7)
        y = np.where((np.arange(n) >= onset) & (rng.random(n) < flip), 1 - y, y)
    stream = []
    for i in range(n + LAG):
        if i < n:
            evs[i].prediction_id = f"p{i}"
            stream.append(evs[i])
        j = i - LAG
        if j >= 0:
            stream.append(
                LabelEvent(
                    model="m", timestamp=T0 + j + LAG, prediction_id=f"p{j}", label=int(y[j])
                )
            )
    res = {"delay": None, "false": 0, "message": "", "other": set()}
    for al in mon.process(stream):
        if al.status != "firing":
            continue
        j = round(parse_timestamp(al.event_time) - T0 - LAG)
        if onset is not None and j >= onset:
            if al.detector == "calibration" and res["delay"] is None:
                res.update(delay=j - onset, message=al.message)
            elif al.detector != "calibration":
                res["other"].add(f"{al.kind}/{al.detector}")
        else:
            res["false"] += 1
    return res


def report_labelled(seeds: int, quick: bool) -> None:
    """Print the calibration check's delay and false alarms (labels LAG events late)."""
    n = 30_000
    print(
        f"  calibration check, every prediction labelled {LAG} events later, {n:,} predictions "
        f"(+ {n:,} labels) per seed; after {n // 2:,}, 10% of the labels flipped (the concept "
        "moves, the scores do not):"
    )
    for flip, tag in ((0.1, "label flips"), (0.0, "stationary")):
        onset = n // 2 if flip else None
        res = [labelled_case(s, train=25_000, n=n, onset=onset, flip=flip) for s in range(seeds)]
        delays = [r["delay"] for r in res if r["delay"] is not None]
        med = f"{np.median(delays):.0f}" if delays else "-"
        print(
            f"    {tag:<11} calibration alerts {len(delays)}/{len(res) if flip else 0}, median "
            f"delay {med} labels; false alarms (any alert before the change) "
            f"{sum(r['false'] for r in res)} in {len(res) * 2 * n:,} events; after the change "
            f"also: {', '.join(sorted(set().union(*(r['other'] for r in res)))) or 'nothing'}"
        )
        if delays:
            print(f"    e.g. {res[0]['message'] or next(r['message'] for r in res if r['delay'])}")
