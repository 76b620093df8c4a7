"""Bayesian online change-point detection (Adams & MacKay 2007) for short univariate series.

Why a second kind of detector: the rank CUSUMs compare every value with a frozen reference,
which is right for a production feature (a drift away from training data is the news) but
wrong for a short series with trends and several levels (monthly passengers, a price): after
each change the reference is stale, and a trend looks like one long change. BOCPD keeps a
posterior over the *run length* (values since the last change), each run with its own
Normal-Gamma posterior of mean and variance (Student-t predictive), so every new segment is
judged against itself. A change is reported when the most probable run length falls back by
more than ``min_gap`` values (the maximum a posteriori segmentation started a new run), at the
position where that run began.

Values are standardised with the mean and standard deviation of the feature's first reference
(its warm-up), so the prior (mean 0, ``kappa`` 1, ``alpha`` 1, ``beta`` 1: the textbook
default, not fitted to any data set) is on a known scale. The run-length posterior is
truncated to ``max_run`` values, so state and time per value are bounded. Opt-in (the
``changepoint`` preset turns it on with ``bocpd_hazard``): it costs a few microseconds per
value, and its alarm rate is set by the hazard, not by the false-alarm budget.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln

__all__ = ["BocpdDetector"]

#: Longest run length kept (older runs are merged into it): bounds memory and time per value.
MAX_RUN = 400
#: A change is reported when the most probable run length drops by more than this, and at
#: least this many values after the previous reported change.
MIN_GAP = 5
_PRIOR = (0.0, 1.0, 1.0, 1.0)  # mu, kappa, alpha, beta
#: Latest values whose sequence number and event time are kept, to describe a new segment.
RECENT = 64


class BocpdDetector:
    """Run-length posterior of one feature's standardised values (see the module notes)."""

    __slots__ = ("centre", "hazard", "last", "post", "prev_map", "recent", "scale", "seen")

    def __init__(self, hazard: float, centre: float, scale: float) -> None:
        self.hazard = float(hazard)
        self.centre = float(centre)
        self.scale = float(scale) if scale > 0 and math.isfinite(scale) else 1.0
        # rows: log posterior, mu, kappa, alpha, beta; one column per run length
        self.post = np.array([[0.0], [_PRIOR[0]], [_PRIOR[1]], [_PRIOR[2]], [_PRIOR[3]]])
        self.prev_map = 0
        self.last = -(10**9)  # seq of the last reported change
        self.seen = 0  # values fed
        self.recent = np.zeros((2, 0))  # seq and event time of the latest RECENT values

    def since(self, begin: int, end: int) -> tuple[int, float] | None:
        """Values fed with sequence numbers in ``[begin, end]`` and the event time of the
        first, if ``begin`` is among the latest :data:`RECENT` values (else None)."""
        seqs = self.recent[0]
        if not len(seqs) or seqs[0] > begin:
            return None
        keep = (seqs >= begin) & (seqs <= end)
        if not keep.any():
            return None
        return int(keep.sum()), float(self.recent[1][keep][0])

    def feed(
        self, values: list[float], seqs: list[int], times: list[float] | None = None
    ) -> list[tuple[int, int]]:
        """Feed values (finite, in order) with their stream sequence numbers (and event
        times); return ``(position in values, seq where the new run began)`` for each
        reported change."""
        out = []
        lh, l1h = math.log(self.hazard), math.log1p(-self.hazard)
        logr, mu, kap, al, be = self.post
        for i, raw in enumerate(values):
            x = (raw - self.centre) / self.scale
            df = 2.0 * al
            s2 = be * (kap + 1.0) / (al * kap)
            logp = (
                gammaln((df + 1.0) / 2.0)
                - gammaln(df / 2.0)
                - 0.5 * np.log(np.pi * df * s2)
                - (df + 1.0) / 2.0 * np.log1p((x - mu) ** 2 / (df * s2))
            )
            joint = logr + logp
            new = np.concatenate(([np.logaddexp.reduce(joint + lh)], joint + l1h))
            new -= np.logaddexp.reduce(new)
            be = np.concatenate(([_PRIOR[3]], be + kap * (x - mu) ** 2 / (2.0 * (kap + 1.0))))
            mu = np.concatenate(([_PRIOR[0]], (kap * mu + x) / (kap + 1.0)))
            kap = np.concatenate(([_PRIOR[1]], kap + 1.0))
            al = np.concatenate(([_PRIOR[2]], al + 0.5))
            logr = new
            if len(logr) > MAX_RUN:  # merge the longest runs' mass into the last kept one
                logr[MAX_RUN - 1] = np.logaddexp.reduce(logr[MAX_RUN - 1 :])
                logr, mu, kap, al, be = (a[:MAX_RUN] for a in (logr, mu, kap, al, be))
            m = int(np.argmax(logr))
            begin = seqs[i] - m
            if m < self.prev_map - MIN_GAP and begin - self.last > MIN_GAP:
                out.append((i, begin))
                self.last = begin
            self.prev_map = m
        self.post = np.stack([logr, mu, kap, al, be])
        self.seen += len(values)
        if times is not None:
            block = np.array([seqs[-RECENT:], times[-RECENT:]], dtype=np.float64)
            self.recent = np.concatenate([self.recent, block], axis=1)[:, -RECENT:]
        return out

    def to_state(self) -> dict:
        return {
            "scalars": np.array([self.hazard, self.centre, self.scale]),
            "counts": np.array([self.prev_map, self.last, self.seen], dtype=np.int64),
            "post": self.post,
            "recent": self.recent,
        }

    @classmethod
    def from_state(cls, s: dict) -> BocpdDetector:
        hazard, centre, scale = (float(v) for v in s["scalars"])
        d = cls(hazard, centre, scale)
        d.prev_map, d.last, d.seen = (int(v) for v in s["counts"])
        d.post = np.asarray(s["post"], dtype=np.float64)
        d.recent = np.asarray(s["recent"], dtype=np.float64).reshape(2, -1)
        return d
