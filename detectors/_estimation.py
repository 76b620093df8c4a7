"""Model performance before the labels arrive: confidence-based estimation on the stream.

Why: labels come days or weeks late, or never. With scores calibrated on the baseline's
labelled predictions (``_calibration``), a prediction in calibration bin ``b`` is a positive
with probability ``p_b``; judged positive it is right with probability ``p_b``, judged
negative with ``1 - p_b``. So the expected confusion matrix of any set of predictions is a
sum over bins of its counts, and accuracy, precision, recall, F1 and ROC AUC follow from the
scores alone (what NannyML's CBPE does in batch chunks), per block of predictions.

State: per prediction block, the counts of predictions per (bin, predicted class) (``2 K``
small integers); a window is the last ``window_blocks`` blocks, as for the features and the
realized metrics. Counts are summed, so windows and totals merge by addition, the state is
a few arrays (no pickle), and it depends only on the predictions, never on batching.

Intervals: the estimate of a window's metric has two errors, the outcomes themselves
(Bernoulli around the calibrated probabilities) and the calibration (each bin's rate learnt
from ``rows_b`` labelled predictions). Accuracy and precision combine both exactly to first
order; recall, F1 (binomial on their expected denominators) and ROC AUC (Hanley and McNeil
1982 on the expected class counts) are normal approximations. Each is a 95% interval.

The alert (``estimated_performance``, detector ``estimated_accuracy``): the window's
estimated accuracy below the reference's (the same estimate over the baseline's labelled
predictions, so binning bias cancels). The estimate of a window is the mean of bounded
per-prediction terms ``c_i`` (the probability of being right), so its lower tail is bounded
by Bernstein's inequality, ``P(mean <= mu - t) <= exp(-n t^2 / (2 (v + t / 3)))`` with ``v``
the variance of ``c`` over the reference, inflated by ``1 + n / N`` for the reference's own
sampling error. No normal approximation in the far tail, where the checks are made: one
check per prediction block at the per-check significance of every windowed test
(``window_alpha``), on one budget unit of the stream. It resolves when the window's p-value
is back above ``resolve_alpha``, or when labels have caught up (a full window of outcomes
has been judged since it fired: the realized metrics of ``performance`` and
``concept_drift`` take over).

When labels arrive (:class:`CalibrationCheck`), each judged outcome whose prediction was a
float score is compared with what the calibration expected of it: over the last
:data:`CHECK_BLOCKS` outcome blocks, the realized number of right predictions against the
sum of their calibrated probabilities of being right. Under a calibration that still holds,
their difference is a sum of independent centred bounded terms (Bernstein again, with the
variance of the outcomes plus that of the map's bin rates); a persistent shortfall is the
concept drifting in a way the scores cannot see: a ``concept_drift`` alert on the feature
``calibration`` (detector ``calibration``), with its own incident and one budget unit.

Left out: multiclass (one-vs-rest needs per-class scores the event does not carry today),
regression, slices (estimation runs on the model-wide stream), and the calibration check of
predictions that carry a predicted class (the label join keeps the class, not the score).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.special import ndtri

from ._calibration import Calibration
from ._outcomes import as_truth, judged_output
from ._policy import FeaturePolicy, window_alpha
from ._signal import Signal
from ._timefmt import rfc3339
from .exceptions import StateError

__all__ = [
    "CHECK_BLOCKS",
    "ESTIMATED_KIND",
    "CalibrationCheck",
    "EstimateView",
    "Estimator",
    "estimated_metrics",
    "predicted_classes",
    "unavailable",
]

#: Alert kind of the estimate's alarms.
ESTIMATED_KIND = "estimated_performance"
_Z = float(ndtri(0.975))
#: An estimated drop of accuracy at least this large is ``critical``.
_CRITICAL = 0.05
#: Outcome blocks the calibration check looks back over (2,048 outcomes by default).
CHECK_BLOCKS = 16


def _bernstein(n: float, t: float, v: float) -> float:
    """One-sided tail bound of a mean of ``n`` terms in [0, 1] with variance ``v`` falling
    ``t`` below its expectation."""
    if n <= 0 or t <= 0:
        return 1.0
    return min(1.0, math.exp(-n * t * t / (2.0 * (v + t / 3.0))))


def unavailable(profile: dict | None, segment: dict | None = None) -> dict:
    """The ``/status`` entry of a stream without an estimate, saying why."""
    if segment is not None:
        cause = "slice"
        why = "the estimate runs on the model-wide stream, not per segment slice"
    elif profile is None:
        cause = "no_baseline"
        why = (
            "no baseline profile: the score calibration is learnt from a baseline's "
            "labelled predictions (driftline baseline build)"
        )
    else:
        cause = "no_calibration"
        why = (
            "the baseline has no score calibration: it needs at least 1,000 labelled "
            "predictions of a binary classifier with float scores"
        )
    return {"available": False, "cause": cause, "reason": why}


def predicted_classes(
    raws: list, scores: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """The scores (nan where the prediction cannot be counted) and the predicted class (1,
    0) of each prediction: its ``label`` when the prediction object carries one
    (``judged_output``; one that is not binary makes the prediction uncountable), else
    ``score >= threshold``."""
    guess = (scores >= threshold).view(np.int8).astype(np.int64)  # nan scores: skipped
    if raws.count(None) == len(raws) or dict not in set(map(type, raws)):
        return scores, guess
    scores = scores.copy()
    for i, raw in enumerate(raws):
        if raw.__class__ is dict and raw.get("label") is not None:
            t = as_truth(judged_output(raw, None))
            if t is None:
                scores[i] = np.nan
            else:
                guess[i] = int(t)
    return scores, guess


def _interval(value: float | None, se: float) -> list[float] | None:
    if value is None or not math.isfinite(se):
        return None
    return [max(0.0, value - _Z * se), min(1.0, value + _Z * se)]


def estimated_metrics(counts: np.ndarray, cal: Calibration) -> dict[str, Any]:
    """Expected accuracy, precision, recall, F1 and ROC AUC of the predictions counted in
    ``counts`` (bins x [judged negative, judged positive]), each with a 95% interval.

    Examples
    --------
    >>> cal = Calibration((0.0, 0.5), (0.1, 0.9), (1000, 1000), ((1000, 0), (0, 1000)))
    >>> m = estimated_metrics(np.array([[500, 0], [0, 500]]), cal)
    >>> round(m["accuracy"], 3), round(m["roc_auc"], 3)
    (0.9, 0.9)
    """
    counts = np.asarray(counts, dtype=np.float64)
    n = float(counts.sum())
    if n <= 0:
        return {"count": 0}
    p = np.asarray(cal.positive_rate)
    rows = np.asarray(cal.rows, dtype=np.float64)
    c0, c1 = counts[:, 0], counts[:, 1]
    bern = p * (1.0 - p)
    tp, fp, fn, tn = (float(v) for v in (c1 @ p, c1 @ (1 - p), c0 @ p, c0 @ (1 - p)))
    out: dict[str, Any] = {"count": int(n)}
    acc = (tp + tn) / n
    se = math.sqrt((counts.sum(axis=1) @ bern) / n**2 + (((c1 - c0) / n) ** 2 * bern / rows).sum())
    out["accuracy"], out["accuracy_interval"] = acc, _interval(acc, se)
    npos = float(c1.sum())
    if npos > 0:
        prec = tp / npos
        se = math.sqrt((c1 @ bern) / npos**2 + ((c1 / npos) ** 2 * bern / rows).sum())
        out["precision"], out["precision_interval"] = prec, _interval(prec, se)
    else:
        out["precision"] = out["precision_interval"] = None
    rec = tp / (tp + fn) if tp + fn > 0 else None
    out["recall"] = rec
    out["recall_interval"] = None if rec is None else _interval(rec, _binom(rec, tp + fn))
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else None
    out["f1"] = f1
    out["f1_interval"] = None if f1 is None else _interval(f1, _binom(f1, tp + (fp + fn) / 2))
    auc, auc_se = _auc(counts.sum(axis=1), p)
    out["roc_auc"], out["roc_auc_interval"] = auc, _interval(auc, auc_se)
    return out


def _binom(value: float, n: float) -> float:
    return math.sqrt(value * (1.0 - value) / n) if n > 0 else math.inf


def _auc(nb: np.ndarray, p: np.ndarray) -> tuple[float | None, float]:
    """Expected ROC AUC of bins ordered by score (ties within a bin count half) and its
    Hanley-McNeil standard error on the expected class counts."""
    pos, neg = nb * p, nb * (1.0 - p)
    P, N = float(pos.sum()), float(neg.sum())
    if P <= 0 or N <= 0:
        return None, math.inf
    above = np.cumsum(pos[::-1])[::-1] - pos  # positives in higher bins
    a = float((neg * (above + 0.5 * pos)).sum() / (P * N))
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (P - 1) * (q1 - a * a) + (N - 1) * (q2 - a * a)) / (P * N)
    return a, math.sqrt(max(var, 0.0))


class Estimator:
    """The estimated performance of one model stream's predictions, per window of blocks."""

    __slots__ = (
        "_cflat",
        "_correct",
        "_edges",
        "_refstats",
        "blocks",
        "cal",
        "check",
        "fired_outcomes",
        "policy",
        "ref",
        "ref_span",
        "remembered",
        "resolve_reason",
        "ring",
        "spans",
        "total",
        "unidentified",
        "window",
    )

    def __init__(self, cal: Calibration, window_blocks: int, ref_span: tuple[float, float]):
        self.cal = cal
        k = len(cal.starts)
        self._edges = np.asarray(cal.starts[1:])
        p = np.asarray(cal.positive_rate)
        self._correct = np.stack([1.0 - p, p], axis=1)  # P(right) per (bin, judged class)
        self._cflat = self._correct.ravel().copy()
        self.ref = np.array(cal.guessed, dtype=np.float64)  # (K, 2) reference counts
        self.ref_span = (float(ref_span[0]), float(ref_span[1]))
        self._refstats = self._reference_stats()
        self.ring = np.zeros((window_blocks, k, 2))  # counts per block of the window
        self.window = np.zeros((k, 2))  # their sum (exact: integer counts in floats)
        self.spans = np.full((window_blocks, 2), np.nan)  # event-time span per block
        self.unidentified = np.zeros(window_blocks)  # predictions without an id, per block
        self.total = np.zeros((k, 2))  # every prediction counted
        self.blocks = 0
        self.remembered = 0  # the label join's count of remembered predictions, last block
        self.policy = FeaturePolicy()
        self.fired_outcomes = -1  # outcomes judged when the open incident fired
        self.resolve_reason = "returned_to_reference"
        self.check = CalibrationCheck(self)

    # ------------------------------------------------------------------ processing
    def observe(self, scores: np.ndarray, guess: np.ndarray, times: np.ndarray, no_id: int):
        """Count one block of predictions: float ``scores`` (nan: skipped) and their
        predicted class ``guess`` (0/1 integers)."""
        k = len(self.cal.starts)
        code = np.searchsorted(self._edges, scores, side="right")
        code += code + guess
        ok = scores == scores
        if not ok.all():
            code = code[ok]
        counts = np.bincount(code, minlength=2 * k).reshape(k, 2)
        slot = self.blocks % len(self.ring)
        self.window += counts - self.ring[slot]
        self.ring[slot] = counts
        self.spans[slot] = (times[0], times[-1])
        self.unidentified[slot] = no_id
        self.total += counts
        self.blocks += 1

    def full(self) -> bool:
        return self.blocks >= len(self.ring)

    def _reference_stats(self) -> tuple[float, float, float]:
        """(reference predictions, their estimated accuracy, the variance of the
        per-prediction probability of being right)."""
        c = self._correct
        big_n = float(self.ref.sum())
        mu0 = float((self.ref * c).sum() / big_n)
        return big_n, mu0, max(float((self.ref * c * c).sum() / big_n) - mu0 * mu0, 0.0)

    def set_reference(self, counts: np.ndarray, span: tuple[float, float]) -> None:
        """Judge the estimate against ``counts`` (bins x judged class) from now on."""
        self.ref = np.asarray(counts, dtype=np.float64).copy()
        self.ref_span = (float(span[0]), float(span[1]))
        self._refstats = self._reference_stats()

    def test(self, counts: np.ndarray) -> tuple[float, float, float]:
        """(reference accuracy, window accuracy, one-sided Bernstein p-value of a drop)."""
        big_n, mu0, var = self._refstats
        n = float(counts.sum())
        if n <= 0:
            return mu0, math.nan, 1.0
        acc = float(counts.ravel() @ self._cflat) / n
        t = mu0 - acc
        if t <= 0:
            return mu0, acc, 1.0
        return mu0, acc, _bernstein(n, t, var * (1.0 + n / big_n))

    def signals(self, settings: Any, rate: float, joins: Any) -> list[Signal]:
        """The window's alarm, checked once per block at ``window_alpha``, or nothing
        (``joins``: the stream's label join, for the count of unlabelled predictions)."""
        if not self.full():
            return []
        window = self.window
        mu0, acc, p = self.test(window)
        alpha = window_alpha(rate, settings.block)
        if not p < alpha:
            return []
        est = estimated_metrics(window, self.cal)
        ref = estimated_metrics(self.ref, self.cal)
        unlabelled = self.unlabelled(len(joins))
        n = int(window.sum())
        lo, hi = est["accuracy_interval"]
        stats = {
            "statistic": "bernstein_mean",
            "metric": "accuracy",
            "before": mu0,
            "after": acc,
            "effect": acc - mu0,
            "interval": [lo, hi],
            "p_value": p,
            "threshold_p": alpha,
            "unlabelled": unlabelled,
            "estimated_metrics": est,
            "reference_metrics": ref,
            "calibration_bins": len(self.cal.starts),
        }
        msg = (
            f"Estimated performance drop: the model's accuracy estimated from its calibrated "
            f"scores fell from {mu0:.1%} (reference) to {acc:.1%} (95% interval "
            f"{lo:.1%} to {hi:.1%}) over the last {n:,} predictions, {unlabelled:,} of them "
            f"still unlabelled; one-sided Bernstein p={p:.2g} < {alpha:.2g}."
        )
        return [
            Signal(
                detector="estimated_accuracy",
                index=0,
                severity="critical" if mu0 - acc >= _CRITICAL else "warning",
                statistics=stats,
                window={"reference": self._ref_window(), "current": self._window(n)},
                message=msg,
                extra={"kind": ESTIMATED_KIND, "detector": "estimated_accuracy"},
            )
        ]

    def unlabelled(self, awaiting: int) -> int:
        """Predictions of the window not labelled yet: at most those without an id plus
        every prediction still awaiting its label."""
        n = int(self.ring.sum())
        return min(n, int(self.unidentified.sum()) + awaiting)

    def _ref_window(self) -> dict:
        a, b = self.ref_span
        return {"start": rfc3339(a), "end": rfc3339(b), "count": int(self.ref.sum())}

    def _window(self, n: int) -> dict:
        spans = self.spans[np.isfinite(self.spans[:, 0])]
        return {
            "start": rfc3339(float(spans[:, 0].min())),
            "end": rfc3339(float(spans[:, 1].max())),
            "count": n,
        }

    # ------------------------------------------------------------------ views
    def expected_counts(self) -> dict[str, float]:
        """Expected TP, FP, FN, TN of every prediction counted so far, and their count.

        Examples
        --------
        >>> cal = Calibration((0.0, 0.5), (0.1, 0.9), (100, 100), ((100, 0), (0, 100)))
        >>> e = Estimator(cal, 4, (0.0, 1.0))
        >>> e.observe(np.array([0.2, 0.7]), np.array([0, 1]), np.array([1.0, 2.0]), 0)
        >>> {k: round(v, 2) for k, v in e.expected_counts().items()}
        {'count': 2.0, 'tp': 0.9, 'fp': 0.1, 'fn': 0.1, 'tn': 0.9}
        """
        p = np.asarray(self.cal.positive_rate)
        c0, c1 = self.total[:, 0], self.total[:, 1]
        return {
            "count": float(self.total.sum()),
            "tp": float(c1 @ p),
            "fp": float(c1 @ (1 - p)),
            "fn": float(c0 @ p),
            "tn": float(c0 @ (1 - p)),
        }

    def summary(self) -> dict:
        window = self.ring.sum(axis=0)
        return {
            "available": True,
            "method": "confidence-based (isotonic calibration from the baseline)",
            "calibration_bins": len(self.cal.starts),
            "reference": estimated_metrics(self.ref, self.cal),
            "window": estimated_metrics(window, self.cal),
            "total": estimated_metrics(self.total, self.cal),
            "alert": self.policy.active,
            "calibration_check": self.check.summary(),
        }

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict:
        return {
            "calibration": self.cal.to_profile(),
            "ref_span": np.array(self.ref_span),
            "ref": self.ref,
            "ring": self.ring,
            "spans": self.spans,
            "unidentified": self.unidentified,
            "total": self.total,
            "counts": np.array([self.blocks, self.fired_outcomes, self.remembered], dtype=np.int64),
            "policy": self.policy.to_state(),
            "check": self.check.to_state(),
        }

    @classmethod
    def from_state(cls, s: dict, window_blocks: int) -> Estimator:
        try:
            cal = Calibration.from_profile(s["calibration"], "state: calibration")
        except ValueError as exc:
            raise StateError(str(exc)) from None
        e = cls(cal, window_blocks, tuple(float(v) for v in s["ref_span"]))
        ring = np.asarray(s["ring"], dtype=np.float64)
        if ring.shape[1:] != e.ring.shape[1:]:
            raise StateError("state: estimator window and calibration disagree")
        e.total = np.asarray(s["total"], dtype=np.float64)
        e.blocks, e.fired_outcomes, e.remembered = (int(v) for v in s["counts"])
        e.policy = FeaturePolicy.from_state(s["policy"])
        ref = np.asarray(s.get("ref", e.ref), dtype=np.float64)
        if ref.shape != e.ref.shape:
            raise StateError("state: estimator reference and calibration disagree")
        e.set_reference(ref, e.ref_span)
        if "check" in s:
            e.check.load(s["check"])
        if ring.shape[0] == window_blocks:
            e.ring = ring
            e.window = ring.sum(axis=0)
            e.spans = np.asarray(s["spans"], dtype=np.float64)
            e.unidentified = np.asarray(s["unidentified"], dtype=np.float64)
        else:  # the window option changed: the window restarts
            e.blocks = 0
        return e


class EstimateView:
    """The estimate as the alert policy sees it (live reference, resolution test)."""

    __slots__ = ("est", "judged")

    kind = "estimate"
    name = "estimated accuracy"

    def __init__(self, est: Estimator, judged: int) -> None:
        self.est = est
        self.judged = judged  # outcomes judged so far by the stream

    live = True

    def restart_reference(self) -> None:
        """Adopt the current window as the reference (the policy's re-adoption)."""
        est = self.est
        window = est.ring.sum(axis=0)
        if window.sum() > 0:
            span = (float(np.nanmin(est.spans[:, 0])), float(np.nanmax(est.spans[:, 1])))
            est.set_reference(window, span)

    def reference_span(self) -> tuple[float, float, int]:
        a, b = self.est.ref_span
        return a, b, int(self.est.ref.sum())

    @property
    def resolve_reason(self) -> str:
        """Why the incident resolves when :meth:`window_pvalues` lets it (``_policy``)."""
        return self.est.resolve_reason

    def window_pvalues(self) -> tuple[float, ...] | None:
        """The window's p-value of a drop; 1.0 once labels have caught up (a full window
        of outcomes judged since the incident fired)."""
        est = self.est
        if est.fired_outcomes >= 0 and self.judged - est.fired_outcomes >= int(est.ring.sum()):
            est.resolve_reason = "labels_caught_up"
            return (1.0,)
        est.resolve_reason = "returned_to_reference"
        return (est.test(est.ring.sum(axis=0))[2],)


class CalibrationCheck:
    """Realized against expected right predictions of the judged outcomes (module notes).

    Per outcome block: the outcomes counted per (bin, predicted class) and how many were
    right; the window is the last :data:`CHECK_BLOCKS` blocks.
    """

    __slots__ = ("blocks", "est", "policy", "right", "ring", "spans")

    kind = "numeric"
    name = "calibration"
    live = True

    def __init__(self, est: Estimator) -> None:
        self.est = est
        k = len(est.cal.starts)
        self.ring = np.zeros((CHECK_BLOCKS, k, 2))
        self.right = np.zeros(CHECK_BLOCKS)
        self.spans = np.full((CHECK_BLOCKS, 2), np.nan)
        self.blocks = 0
        self.policy = FeaturePolicy()

    def observe(self, rows: list, threshold: float) -> None:
        """Count one outcome block ``(time, judged output, label)``: rows whose output is a
        float score and whose label is binary."""
        scores, guess, truth = [], [], []
        for _, pred, label in rows:
            t = as_truth(label) if pred.__class__ is float else None
            if t is not None and math.isfinite(pred):
                scores.append(pred)
                guess.append(pred >= threshold)
                truth.append(t)
        est = self.est
        k = len(est.cal.starts)
        g = np.array(guess, dtype=np.int64)
        code = np.searchsorted(est._edges, np.array(scores), side="right") * 2 + g
        slot = self.blocks % CHECK_BLOCKS
        self.ring[slot] = np.bincount(code, minlength=2 * k).reshape(k, 2)
        self.right[slot] = float((g == np.array(truth, dtype=np.int64)).sum())
        times = [r[0] for r in rows]
        self.spans[slot] = (min(times), max(times))
        self.blocks += 1

    def test(self) -> tuple[float, float, float, float]:
        """(outcomes, expected accuracy, realized accuracy, one-sided p-value of a
        shortfall) over the window."""
        est = self.est
        counts = self.ring.sum(axis=0)
        n = float(counts.sum())
        if n <= 0:
            return 0.0, math.nan, math.nan, 1.0
        c = est._correct
        expected = float((counts * c).sum() / n)
        realized = float(self.right.sum() / n)
        p = np.asarray(est.cal.positive_rate)
        bern = p * (1.0 - p)
        v_out = float((counts.sum(axis=1) * bern).sum() / n)
        rows = np.asarray(est.cal.rows, dtype=np.float64)
        v_map = float((((counts[:, 1] - counts[:, 0]) / n) ** 2 * bern / rows).sum())
        return n, expected, realized, _bernstein(n, expected - realized, v_out + n * v_map)

    def signals(self, settings: Any, rate: float) -> list[Signal]:
        if self.blocks < CHECK_BLOCKS:
            return []
        n, expected, realized, p = self.test()
        alpha = window_alpha(rate, settings.outcome_block)
        if not p < alpha:
            return []
        spans = self.spans
        stats = {
            "statistic": "bernstein_mean",
            "metric": "accuracy",
            "before": expected,
            "after": realized,
            "effect": realized - expected,
            "p_value": p,
            "threshold_p": alpha,
            "estimated_metrics": estimated_metrics(self.ring.sum(axis=0), self.est.cal),
        }
        msg = (
            f"Calibration drift: over the last {int(n):,} labelled predictions the model was "
            f"right {realized:.1%} of the time where its calibrated scores expected "
            f"{expected:.1%}: the relation between scores and outcomes has changed, so "
            f"estimates from scores overstate its quality; one-sided Bernstein p={p:.2g} < "
            f"{alpha:.2g}."
        )
        window = {
            "reference": self.est._ref_window(),
            "current": {
                "start": rfc3339(float(np.nanmin(spans[:, 0]))),
                "end": rfc3339(float(np.nanmax(spans[:, 1]))),
                "count": int(n),
            },
        }
        return [
            Signal(
                detector="calibration",
                index=0,
                severity="critical" if expected - realized >= _CRITICAL else "warning",
                statistics=stats,
                window=window,
                message=msg,
                extra={"kind": "concept_drift", "detector": "calibration"},
            )
        ]

    # the policy's view (resolution, re-adoption)
    def restart_reference(self) -> None:
        """Nothing to adopt without new labelled scores: the window starts over."""
        self.blocks = 0
        self.ring[:] = 0.0
        self.right[:] = 0.0

    def reference_span(self) -> tuple[float, float, int]:
        a, b = self.est.ref_span
        return a, b, int(self.est.ref.sum())

    def window_pvalues(self) -> tuple[float, ...] | None:
        return (self.test()[3],) if self.blocks >= CHECK_BLOCKS else None

    def summary(self) -> dict:
        n, expected, realized, p = self.test()
        return {
            "outcomes": int(n),
            "expected_accuracy": None if n <= 0 else expected,
            "realized_accuracy": None if n <= 0 else realized,
            "p_value": p,
            "alert": self.policy.active,
        }

    def to_state(self) -> dict:
        return {
            "ring": self.ring,
            "right": self.right,
            "spans": self.spans,
            "blocks": self.blocks,
            "policy": self.policy.to_state(),
        }

    def load(self, s: dict) -> None:
        ring = np.asarray(s["ring"], dtype=np.float64)
        if ring.shape != self.ring.shape:
            raise StateError("state: calibration check and calibration disagree")
        self.ring = ring
        self.right = np.asarray(s["right"], dtype=np.float64)
        self.spans = np.asarray(s["spans"], dtype=np.float64)
        self.blocks = int(s["blocks"])
        self.policy = FeaturePolicy.from_state(s["policy"])
