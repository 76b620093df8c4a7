"""The frozen reference of a numeric feature and the rank scores measured against it.

Every value is mapped to its mid-distribution function under the reference,
``u = F_ref(x-) / 2 + F_ref(x) / 2`` (the probability integral transform, with ties split
in the middle so integer features are handled). Under no drift ``u`` is uniform for any
continuous feature - normal, lognormal, bimodal or bounded alike - so the detectors and their
thresholds need no distributional assumption. Two standardised scores feed the CUSUMs:
``u - 1/2`` (location; a Wilcoxon-type score) and ``(u - 1/2)^2`` (spread; a Mood-type
score), and ``u`` itself falls into equiprobable bins for the windowed shape test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._cusum import lundberg_theta

__all__ = ["GRID_POINTS", "NumericReference"]

#: Points of the stored reference distribution function (memory: 16 bytes a point).
GRID_POINTS = 513
#: Floors of the two scores' standard deviations (location, spread). A constant or nearly
#: constant reference has (almost) none; with the floors, a value never seen in the
#: reference scores at most 5 standard deviations, so one rare value cannot raise an alert on
#: its own while a new value that keeps coming does within tens of events. Continuous
#: features (0.289 and 0.0745) are not affected.
_SD_FLOOR = np.array([0.1, 0.05])


@dataclass(slots=True)
class NumericReference:
    """Reference distribution of one numeric feature (frozen after the warm-up).

    Attributes
    ----------
    grid_x, grid_p : ndarray
        Increasing support points and their mid-distribution values; ``np.interp`` between
        them is the transform ``x -> u`` (0 below, 1 above the reference range).
    n : int
        Values in the reference; ``start``/``end`` their first and last event times.
    mean, sd : float
        Raw-scale mean and standard deviation (for messages and effect sizes).
    centre, spread : ndarray, shape (2,)
        Mean and standard deviation of the two scores on the reference itself.
    theta : ndarray, shape (4,)
        CUSUM exponents (``lundberg_theta``) for location up/down and spread up/down.
    bins : ndarray, shape (K,)
        Reference counts per bin of ``u``.
    quantiles : ndarray, shape (5,)
        Reference 1%, 25%, 50%, 75% and 99% quantiles.
    """

    grid_x: np.ndarray
    grid_p: np.ndarray
    n: int
    start: float
    end: float
    mean: float
    sd: float
    centre: np.ndarray
    spread: np.ndarray
    theta: np.ndarray
    bins: np.ndarray
    quantiles: np.ndarray

    @classmethod
    def build(
        cls, values: np.ndarray, start: float, end: float, *, k: float, nbins: int
    ) -> NumericReference:
        """Freeze a reference from the warm-up ``values`` (finite floats)."""
        vals = np.sort(np.asarray(values, dtype=np.float64))
        n = len(vals)
        uniq, counts = np.unique(vals, return_counts=True)
        cum = np.cumsum(counts)
        mid = (cum - 0.5 * counts) / n
        if len(uniq) > GRID_POINTS:
            pick = np.unique(np.round(np.linspace(0, len(uniq) - 1, GRID_POINTS)).astype(int))
            uniq, mid = uniq[pick], mid[pick]
        ref = cls(
            grid_x=uniq,
            grid_p=mid,
            n=n,
            start=float(start),
            end=float(end),
            mean=float(vals.mean()),
            sd=float(vals.std()),
            centre=np.zeros(2),
            spread=np.ones(2),
            theta=np.zeros(4),
            bins=np.zeros(nbins, dtype=np.int64),
            quantiles=np.quantile(vals, [0.01, 0.25, 0.5, 0.75, 0.99]),
        )
        u = ref.transform(vals)
        raw = ref.raw_scores(u)
        ref.centre = raw.mean(axis=0)
        ref.spread = np.maximum(raw.std(axis=0), _SD_FLOOR)
        z = (raw - ref.centre) / ref.spread
        ref.theta = lundberg_theta(np.concatenate([z, -z], axis=1)[:, [0, 2, 1, 3]], k)
        ref.bins = np.bincount(ref.bin_of(u), minlength=nbins).astype(np.int64)
        return ref

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Mid-distribution value ``u`` of each ``x`` under the reference (nan stays nan)."""
        return np.interp(x, self.grid_x, self.grid_p, left=0.0, right=1.0)

    @staticmethod
    def transform_rows(refs: list[NumericReference], X: np.ndarray) -> np.ndarray:
        """:meth:`transform` of each row of ``X`` (L, B) under its reference in ``refs``.

        The rows are sorted first and the results put back in place: ``np.interp`` searches
        each value's grid interval starting from the previous one, which on sorted input is
        a short, predictable walk instead of a full binary search with mispredicted branches
        per value (about half the cost for a block). Each value is still mapped by itself,
        so the result is exactly that of :meth:`transform` row by row.
        """
        order = np.argsort(X, axis=1)
        xs = np.take_along_axis(X, order, axis=1)
        for j, ref in enumerate(refs):
            xs[j] = np.interp(xs[j], ref.grid_x, ref.grid_p, left=0.0, right=1.0)
        U = np.empty_like(xs)
        np.put_along_axis(U, order, xs, axis=1)
        return U

    @staticmethod
    def raw_scores(u: np.ndarray) -> np.ndarray:
        """Unstandardised location and spread scores, shape (n, 2)."""
        d = u - 0.5
        return np.stack([d, d * d], axis=1)

    def bin_of(self, u: np.ndarray) -> np.ndarray:
        """Equiprobable bin index of each (finite) ``u``."""
        k = len(self.bins)
        return np.minimum((u * k).astype(np.int64), k - 1)

    def to_state(self) -> dict:
        return {
            "grid_x": self.grid_x,
            "grid_p": self.grid_p,
            "n": self.n,
            "time": np.array([self.start, self.end, self.mean, self.sd]),
            "centre": self.centre,
            "spread": self.spread,
            "theta": self.theta,
            "bins": self.bins,
            "quantiles": self.quantiles,
        }

    @classmethod
    def from_state(cls, s: dict) -> NumericReference:
        start, end, mean, sd = (float(v) for v in s["time"])
        return cls(
            grid_x=s["grid_x"],
            grid_p=s["grid_p"],
            n=int(s["n"]),
            start=start,
            end=end,
            mean=mean,
            sd=sd,
            centre=s["centre"],
            spread=s["spread"],
            theta=s["theta"],
            bins=s["bins"],
            quantiles=s["quantiles"],
        )
