"""A classifier's error rate against its reference: a bank of Bernoulli CUSUMs.

Why not the rank CUSUMs of the features: their allowance (``cusum_k`` = 0.25 sd of the score)
is tuned to find shifts of half a standard deviation. A drop of accuracy from 94% to 91% moves
the 0/1 error by 0.12 of its standard deviation, so a rank CUSUM on the errors never builds up.
The optimal detector of a change of a Bernoulli rate from ``p0`` to ``p1`` is the CUSUM of the
log-likelihood ratio ``e log(p1/p0) + (1-e) log((1-p1)/(1-p0))`` of each 0/1 error ``e``
(Page 1954; Reynolds & Stoumbos 1999 for monitoring a proportion). The size of a real change
is unknown, so several CUSUMs run side by side, one per odds ratio in :data:`ODDS_RATIOS`.

Calibration. Under ``p0`` every likelihood-ratio CUSUM has ``E[exp(step)] = 1``, so Wald's
bound gives at most ``exp(-h)`` false alarms per outcome for threshold ``h``, with no fitted
constant; with ``m`` CUSUMs sharing the rate ``r``, ``h = log(m / r)`` (a union bound). The
rate per outcome is at most the rate per event (a model stream has at most one outcome per
prediction), so the stream's budget holds.

The reference rate is an estimate. When the true stationary rate is above the estimate, every
CUSUM drifts up more slowly than designed but its false-alarm exponent falls; so the CUSUMs
are centred on the upper confidence bound ``p0 + MARGIN * se(p0)`` of the reference rate, and
each alarm is confirmed by a two-sample test of the reference errors against the errors since
the change point (the policy's ``confirm_alpha``), whose variance includes the reference's
sampling error. A baseline built with labels (25,000 of them, say) makes ``se`` small.

Evidence is exact: cumulative counts (outcomes, TP, FP, FN, TN, errors) are kept at the start
of each CUSUM's current excursion, so the metrics "since the change" of an alert are computed
from exactly the outcomes after the estimated change point.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.special import ndtr

from ._cusum import cusum_path

__all__ = ["MARGIN", "ODDS_RATIOS", "ErrorRateCusum", "RateCrossing", "confirm_pvalue"]

#: Odds ratios of the alternative error rates (error odds multiplied by these): 1.2 is about
#: a 1-point drop at 94% accuracy, 4.0 a collapse; neighbours are within a factor 1.6, where
#: a CUSUM designed for one still has most of its power for the other.
ODDS_RATIOS = (1.2, 1.45, 1.8, 2.5, 4.0)
#: Standard errors of the reference rate added to it as the CUSUMs' centre (see notes).
MARGIN = 1.0
#: Columns of the aggregate rows (shared with ``_outcomes``).
N_AGG = 7
_N, _ABS = 0, 5


class RateCrossing(NamedTuple):
    """A CUSUM of the bank crossing its threshold, with the data since its change point."""

    index: int  # position in the block of the outcome where it crossed
    ratio: float  # the odds ratio of the CUSUM that crossed first
    score: float
    threshold: float
    change_seq: int  # outcome sequence number of the first outcome after the change point
    change_time: float  # its event time
    since: np.ndarray  # aggregates (N_AGG) of the outcomes since the change point
    p_value: float  # the confirming two-sample test


def _design(p0: float, n0: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Step weights (on an error, on a success) per CUSUM and the centre rate."""
    se = math.sqrt(max(p0 * (1.0 - p0), 1.0 / max(n0, 1)) / max(n0, 1))
    floor = 0.5 / max(n0, 1)
    centre = min(max(p0 + MARGIN * se, floor), 1.0 - floor)
    odds = centre / (1.0 - centre) * np.array(ODDS_RATIOS)
    p1 = odds / (1.0 + odds)
    on_error = np.log(p1 / centre)
    on_success = np.log((1.0 - p1) / (1.0 - centre))
    return on_error, on_success, centre


def confirm_pvalue(p0: float, n0: int, errors: float, n: float) -> float:
    """One-sided two-sample test that the error rate of ``n`` outcomes exceeds the
    reference's ``p0`` (of ``n0``), pooled variance.

    Examples
    --------
    >>> confirm_pvalue(0.05, 20000, 80, 1000) < 1e-4  # 8% against 5%
    True
    >>> confirm_pvalue(0.05, 20000, 50, 1000)  # exactly the reference rate
    0.5
    """
    if n <= 0 or n0 <= 0:
        return 1.0
    p1 = errors / n
    pooled = (p0 * n0 + errors) / (n0 + n)
    var = pooled * (1.0 - pooled) * (1.0 / n + 1.0 / n0)
    if var <= 0:
        return 1.0 if p1 <= p0 else 0.0
    return float(ndtr(-(p1 - p0) / math.sqrt(var)))


class ErrorRateCusum:
    """The CUSUM bank of one model stream's 0/1 errors against a frozen reference rate."""

    __slots__ = ("centre", "cum", "cusum", "n0", "on_error", "on_success", "p0", "zero")

    def __init__(self, p0: float, n0: int) -> None:
        self.p0 = float(p0)
        self.n0 = int(n0)
        self.on_error, self.on_success, self.centre = _design(self.p0, self.n0)
        m = len(ODDS_RATIOS)
        self.cusum = np.zeros(m)
        self.cum = np.zeros(N_AGG)  # aggregates of every outcome seen live
        # per CUSUM: outcome seq and time of its excursion's start, and ``cum`` there
        self.zero = np.zeros((m, 2 + N_AGG))

    def start(self, seq: int, time: float) -> None:
        """Mark outcome ``seq`` at event ``time`` as where every excursion starts."""
        self.zero[:, 0] = seq
        self.zero[:, 1] = time
        self.zero[:, 2:] = self.cum

    def threshold(self, rate: float) -> float:
        """``log(m / rate)``: at most ``rate`` false alarms per outcome for the bank."""
        return math.log(len(ODDS_RATIOS) / rate)

    def update(
        self, loss: np.ndarray, rows: np.ndarray, times: np.ndarray, seq0: int, rate: float
    ) -> RateCrossing | None:
        """Feed one block of 0/1 ``loss`` (nan: unusable) with its aggregate ``rows``
        (B, N_AGG); return the first crossing (the bank then restarts) or None."""
        ok = np.isfinite(loss)
        e = np.where(ok, loss, 0.0)
        steps = np.where(ok, e * self.on_error[:, None] + (1 - e) * self.on_success[:, None], 0.0)
        path = cusum_path(self.cusum, steps)  # (m, B)
        prefix = self.cum + np.cumsum(rows, axis=0)  # (B, N_AGG): cum after each outcome
        h = self.threshold(rate)
        hit = path >= h
        crossing = None
        if hit.any():
            first = np.where(hit.any(axis=1), hit.argmax(axis=1), len(loss))
            c = int(first.argmin())
            t = int(first[c])
            crossing = self._crossing(c, t, path, prefix, times, seq0, h)
        # the start of each CUSUM's current excursion: after its last zero in the block
        B = len(loss)
        for c in range(len(ODDS_RATIOS)):
            zeros = np.flatnonzero(path[c] <= 0.0)
            if len(zeros):
                j = int(zeros[-1])
                nxt = min(j + 1, B - 1)
                self.zero[c, 0] = seq0 + j + 1
                self.zero[c, 1] = times[nxt]
                self.zero[c, 2:] = prefix[j]
        self.cusum = path[:, -1].copy()
        self.cum = prefix[-1].copy()
        if crossing is not None:
            self.cusum[:] = 0.0
            self.start(seq0 + B, float(times[-1]))
        return crossing

    def _crossing(self, c, t, path, prefix, times, seq0, h) -> RateCrossing:
        before = path[c, :t] <= 0.0
        if before.any():  # the excursion began in this block
            j = int(t - 1 - before[::-1].argmax())
            change_seq, start = seq0 + j + 1, float(times[min(j + 1, t)])
            at_zero = prefix[j]
        else:
            change_seq, start = int(self.zero[c, 0]), float(self.zero[c, 1])
            at_zero = self.zero[c, 2:]
        since = prefix[t] - at_zero
        p = confirm_pvalue(self.p0, self.n0, float(since[_ABS]), float(since[_N]))
        return RateCrossing(
            index=t,
            ratio=ODDS_RATIOS[c],
            score=float(path[c, t]),
            threshold=h,
            change_seq=int(change_seq),
            change_time=start,
            since=since,
            p_value=p,
        )

    def to_state(self) -> dict:
        return {
            "rate": np.array([self.p0, float(self.n0)]),
            "cusum": self.cusum,
            "cum": self.cum,
            "zero": self.zero,
        }

    @classmethod
    def from_state(cls, s: dict) -> ErrorRateCusum:
        p0, n0 = (float(v) for v in s["rate"])
        b = cls(p0, int(n0))
        b.cusum = np.asarray(s["cusum"], dtype=np.float64)
        b.cum = np.asarray(s["cum"], dtype=np.float64)
        b.zero = np.asarray(s["zero"], dtype=np.float64)
        return b
