"""Numeric feature state: summary statistics, a KLL sketch and three drift detectors.

Per block of events (a column of floats, nan = missing) a feature updates count, missing
count, mean and variance (Chan's parallel formula), min, max and a KLL quantile sketch; after
its warm-up it transforms values to reference ranks (see ``_reference``) and runs

- ``mean``: two CUSUMs (up, down) on the standardised location score;
- ``scale``: two CUSUMs on the standardised spread score (variance up, down);
- ``shape``: a chi-square test of the last ``window_blocks`` blocks against the reference in
  equiprobable bins, checked once per block (catches shape changes with unchanged mean and
  variance, e.g. unimodal to bimodal);
- ``adwin``: river's ADWIN on means of ``adwin_sub`` location scores (see ``_adwin``).

Everything is vectorised over the block; the only per-event Python work in the whole core is
extracting the value from the event's dict.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from datasketches import kll_doubles_sketch
from scipy.special import ndtr

from ._adwin import AdwinDetector, adwin_delta, adwin_inputs
from ._bocpd import BocpdDetector
from ._cusum import cusum_path, cusum_threshold
from ._homogeneity import chi2_homogeneity, psi
from ._policy import window_alpha
from ._reference import NumericReference
from ._signal import Signal
from ._window import BlockRing
from .exceptions import StateError

__all__ = ["KLL_K", "NumericFeature", "update_numeric"]

#: KLL accuracy parameter: about 1.3% rank error, a few KiB per feature.
KLL_K = 200
_STATS = ("mean", "mean", "scale", "scale")
_SIDE = ("up", "down", "up", "down")


def _guarded_kll(data: bytes) -> kll_doubles_sketch:
    try:
        return kll_doubles_sketch.deserialize(bytes(data))
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # the C++ binding may raise anything on corrupt bytes
        raise StateError(f"state: corrupt quantile sketch ({exc})") from None


class NumericFeature:
    """State and detectors of one numeric feature of one model stream.

    The detection math runs for all numeric features of a stream at once, in
    :func:`update_numeric`.
    """

    kind = "numeric"

    def __init__(self, name: str) -> None:
        self.name = name
        self.n = 0
        self.missing = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.sketch = kll_doubles_sketch(KLL_K)
        self.reference: NumericReference | None = None
        self.bocpd: BocpdDetector | None = None  # opt-in; kept across new references
        self._reset_live()

    def _reset_live(self) -> None:
        self.warm: list[np.ndarray] = []
        self.warm_n = 0
        self.warm_span = [math.nan, math.nan]
        self.cusum = np.zeros(4)
        # where each CUSUM excursion began (event seq and time): the change-point estimate
        self.zero_seq = np.zeros(4, dtype=np.int64)
        self.zero_time = np.zeros(4)
        # running (count, sum, sum of squares, location-score sum) of the live values, and
        # its value where each CUSUM's excursion began: the data since a change point, exactly
        self.cum = np.zeros(4)
        self.zero_cum = np.zeros((4, 4))
        self.ring: BlockRing | None = None
        self.adwin: AdwinDetector | None = None

    def restart_reference(self) -> None:
        """Forget the reference; the next ``warmup`` values form a new one."""
        self.reference = None
        self._reset_live()

    @property
    def live(self) -> bool:
        return self.reference is not None

    # ------------------------------------------------------------------ update
    def absorb(
        self,
        row: np.ndarray,
        fin: np.ndarray,
        nf: int,
        block_stats: tuple,
        times: np.ndarray,
        seq0: int,
        settings: Any,
    ) -> bool:
        """Update summaries (and the warm-up) with one block; return True if it is live.

        ``block_stats`` is (mean, sum of squared deviations, min, max) of the block's finite
        values, computed for all features at once by :func:`update_numeric`.
        """
        B = len(row)
        self.missing += B - nf
        if nf:
            bm, bm2, bmin, bmax = block_stats
            n = self.n + nf
            d = bm - self.mean
            self.mean += d * nf / n
            self.m2 += bm2 + d * d * self.n * nf / n
            self.n = n
            if bmin < self.min:
                self.min = bmin
            if bmax > self.max:
                self.max = bmax
            xv = row if nf == B else row[fin]
            self.sketch.update(xv)
        if self.reference is not None:
            return True
        if nf:
            self.warm.append(xv.copy())
            self.warm_n += nf
            ft = times if nf == B else times[fin]
            if math.isnan(self.warm_span[0]):
                self.warm_span[0] = float(ft[0])
            self.warm_span[1] = float(ft[-1])
        if self.warm_n >= settings.warmup:
            self.reference = NumericReference.build(
                np.concatenate(self.warm),
                self.warm_span[0],
                self.warm_span[1],
                k=settings.cusum_k,
                nbins=settings.bins,
            )
            self.warm = []
            self.ring = BlockRing(settings.window_blocks, settings.bins, 4)
            self.zero_seq[:] = seq0 + B
            self.zero_time[:] = times[-1]
        return False

    # ------------------------------------------------------------------ evidence
    def _window(self, start: float, end: float, count: int) -> dict:
        from ._timefmt import rfc3339

        ref = self.reference
        return {
            "reference": {"start": rfc3339(ref.start), "end": rfc3339(ref.end), "count": ref.n},
            "current": {"start": rfc3339(start), "end": rfc3339(end), "count": int(count)},
        }

    def _cusum_signal(self, c, t, path, prefix, times, seq0, h, settings, via=None) -> Signal:
        """Evidence of CUSUM ``c`` crossing at block index ``t``.

        ``path`` (4, B) is the feature's CUSUM path in this block and ``prefix`` (4, B) the
        running count, sum, sum of squares and location-score sum of its values. When the
        excursion began in an earlier block, the data since then are described by the whole
        blocks kept in the window ring (so "after" may include up to ``block - 1`` values just
        before the change point; the CUSUM score and change point themselves are exact).

        A location shift also moves the spread score (values pile up at one end of the
        reference), so when the spread CUSUM crosses first but the data after the change point
        show a significant location shift (rank test), the alert is attributed to ``mean``.

        ``via`` (a sentence) marks an alarm raised by another detector (ADWIN) that uses this
        CUSUM's excursion as its change point and evidence; the alert is attributed to it.
        """
        ref = self.reference
        B = path.shape[1]
        in_block = path[c, :t] <= 0.0
        if in_block.any():  # the excursion began in this block
            j = int(t - 1 - in_block[::-1].argmax())
            cnt, s1, s2, zs = prefix[:, t] - prefix[:, j]
            start_time = float(times[min(j + 1, t)])
            change_seq = seq0 + j + 1
        else:
            change_seq = int(self.zero_seq[c])
            start_time = float(self.zero_time[c])
            if np.isfinite(self.zero_cum[c, 0]):
                cnt, s1, s2, zs = self.cum + prefix[:, t] - self.zero_cum[c]
            else:  # a state written before exact accounting: whole blocks of the ring
                back = -(-(seq0 - change_seq) // B)
                earlier, _ = self.ring.recent(back)
                cnt, s1, s2, zs = earlier + prefix[:, t]
        n_after = max(int(cnt), 1)
        cnt = max(int(cnt), 1)
        after = s1 / cnt
        after_sd = math.sqrt(max(s2 / cnt - after * after, 0.0))
        score = float(path[c, t])
        # confirmation: reference vs data after the change point, two-sample test on the
        # standardised score (the reference's own sampling error enters the variance)
        k = settings.cusum_k
        shift = (score + k * n_after) / n_after  # mean score since the change point
        se = math.sqrt(1.0 / n_after + 1.0 / ref.n)
        p = float(ndtr(-shift / se))
        detector = _STATS[c]
        side = _SIDE[c]
        crossed = f"CUSUM {score:.1f} crossed its threshold {h[c]:.1f}" if via is None else via
        if detector == "scale":
            z_loc = (zs / cnt) / math.sqrt(1.0 / cnt + 1.0 / ref.n)
            if float(ndtr(-abs(z_loc))) * 2 < settings.confirm_alpha:
                detector, side = "mean", ("up" if z_loc > 0 else "down")
                crossed = f"spread CUSUM {score:.1f} crossed its threshold {h[c]:.1f}"
        ref_sd = ref.sd if ref.sd > 0 else math.nan
        if detector == "mean":
            effect = (after - ref.mean) / ref_sd if ref.sd > 0 else math.copysign(math.inf, 1)
            critical = not abs(effect) < 1.0
            msg = (
                f"Mean of '{self.name}' moved {side} from {ref.mean:.4g} to {after:.4g} "
                f"({effect:+.2f} reference standard deviations) over the {cnt} values since "
                f"the estimated change point; {crossed}."
            )
            before_v, after_v = ref.mean, after
        else:
            effect = after_sd / ref.sd if ref.sd > 0 else math.inf
            critical = not 0.5 < effect < 2.0
            word = "increased" if side == "up" else "decreased"
            msg = (
                f"Spread of '{self.name}' {word}: standard deviation {ref.sd:.4g} -> "
                f"{after_sd:.4g} (ratio {effect:.2f}) over the {cnt} values since the "
                f"estimated change point; {crossed}."
            )
            before_v, after_v = ref.sd, after_sd
        stats = {
            "statistic": f"cusum_{_STATS[c]}_{_SIDE[c]}",
            "before": before_v,
            "after": after_v,
            "score": score,
            "threshold": float(h[c]),
            "p_value": p,
            "effect": effect,
            "change_seq": int(change_seq),
            "values_since_change": n_after,
            "reference_mean": ref.mean,
            "reference_sd": ref.sd,
            "current_mean": after,
            "current_sd": after_sd,
        }
        if via is not None:
            detector, stats["statistic"] = "adwin", "adwin_mean"
        return Signal(
            detector=detector,
            index=t,
            severity="critical" if critical else "warning",
            statistics=stats,
            window=self._window(start_time, float(times[t]), cnt),
            message=msg,
        )

    def _shape_signal(self, stat, p, alpha, times, B) -> Signal:
        ref = self.reference
        cur = self.ring.counts()
        n, s1, s2 = self.ring.aggregates()[:3]
        n = max(n, 1.0)
        after = s1 / n
        after_sd = math.sqrt(max(s2 / n - after * after, 0.0))
        index = float(psi(ref.bins, cur))
        msg = (
            f"Distribution of '{self.name}' differs from its reference "
            f"(chi-square p={p:.2g}, PSI {index:.2f}): mean {ref.mean:.4g} -> {after:.4g}, "
            f"standard deviation {ref.sd:.4g} -> {after_sd:.4g} over the last {int(n)} values."
        )
        stats = {
            "statistic": "chi2_bins",
            "before": ref.bins.tolist(),
            "after": cur.tolist(),
            "score": stat,
            "threshold_p": alpha,
            "p_value": p,
            "effect": index,
            "psi": index,
            "reference_mean": ref.mean,
            "reference_sd": ref.sd,
            "current_mean": after,
            "current_sd": after_sd,
        }
        return Signal(
            detector="shape",
            index=B - 1,
            severity="critical" if index >= 0.25 else "warning",
            statistics=stats,
            window=self._window(self.ring.start(), float(times[-1]), int(n)),
            message=msg,
        )

    def merge_summary(self, other: NumericFeature) -> None:
        """Fold another shard's summaries of the same feature into this one.

        Count, missing count, mean and variance (Chan et al.), min, max and the KLL sketch are
        mergeable; detector state is not (it is sequential by nature) and is left alone.
        """
        if other.n:
            n = self.n + other.n
            d = other.mean - self.mean
            self.mean += d * other.n / n
            self.m2 += other.m2 + d * d * self.n * other.n / n
            self.n = n
            self.min = min(self.min, other.min)
            self.max = max(self.max, other.max)
            self.sketch.merge(other.sketch)
        self.missing += other.missing

    def reference_span(self) -> tuple[float, float, int] | None:
        """Event-time start, end and size of the reference (None during a warm-up)."""
        r = self.reference
        return None if r is None else (r.start, r.end, r.n)

    def window_pvalues(self) -> tuple[float, float] | None:
        """P-values (shape, location) of the full current window against the reference."""
        if self.reference is None or self.ring is None or not self.ring.full:
            return None
        ref = self.reference
        _, p_shape = chi2_homogeneity(ref.bins, self.ring.counts())
        n, _, _, zsum = self.ring.aggregates()
        if n <= 0:
            return None
        p_loc = float(2.0 * ndtr(-abs(zsum / n) / math.sqrt(1.0 / n + 1.0 / ref.n)))
        return float(p_shape), p_loc

    # ------------------------------------------------------------------ summaries
    def summary(self) -> dict:
        """JSON-able description for status views."""
        sd = math.sqrt(self.m2 / self.n) if self.n else None
        out: dict[str, Any] = {
            "kind": "numeric",
            "count": self.n,
            "missing": self.missing,
            "mean": self.mean if self.n else None,
            "sd": sd,
            "min": self.min if self.n else None,
            "max": self.max if self.n else None,
            "quantiles": None,
            "reference": None,
        }
        if self.n:
            qs = self.sketch.get_quantiles([0.01, 0.25, 0.5, 0.75, 0.99])
            out["quantiles"] = dict(zip(("p01", "p25", "p50", "p75", "p99"), qs, strict=True))
        if self.reference is not None:
            r = self.reference
            out["reference"] = {"count": r.n, "mean": r.mean, "sd": r.sd}
            if self.ring is not None:
                # The window the detectors compare with the reference (the last blocks).
                n, s1, s2 = self.ring.aggregates()[:3]
                if n:
                    mean = float(s1 / n)
                    out["current"] = {
                        "count": int(n),
                        "mean": mean,
                        "sd": math.sqrt(max(s2 / n - mean * mean, 0.0)),
                    }
        else:
            out["warmup_values"] = self.warm_n
        return out

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict:
        return {
            "kind": "numeric",
            "name": self.name,
            "scalars": np.array([self.mean, self.m2, self.min, self.max]),
            "counts": np.array([self.n, self.missing, self.warm_n], dtype=np.int64),
            "sketch": self.sketch.serialize(),
            "reference": None if self.reference is None else self.reference.to_state(),
            "warm": np.concatenate(self.warm) if self.warm else np.zeros(0),
            "warm_span": np.array(self.warm_span),
            "cusum": self.cusum,
            "zero_seq": self.zero_seq,
            "zero_time": self.zero_time,
            "cum": self.cum,
            "zero_cum": self.zero_cum,
            "ring": None if self.ring is None else self.ring.to_state(),
            "adwin": None if self.adwin is None else self.adwin.to_state(),
            "bocpd": None if self.bocpd is None else self.bocpd.to_state(),
        }

    @classmethod
    def from_state(cls, s: dict) -> NumericFeature:
        f = cls.__new__(cls)
        f.name = s["name"]
        f.mean, f.m2, f.min, f.max = (float(v) for v in s["scalars"])
        f.n, f.missing, f.warm_n = (int(v) for v in s["counts"])
        f.sketch = _guarded_kll(s["sketch"])
        f.reference = (
            None if s["reference"] is None else NumericReference.from_state(s["reference"])
        )
        f.warm = [s["warm"]] if len(s["warm"]) else []
        f.warm_span = [float(v) for v in s["warm_span"]]
        f.cusum = s["cusum"]
        f.zero_seq = s["zero_seq"]
        f.zero_time = s["zero_time"]
        f.cum = s.get("cum", np.zeros(4))
        f.zero_cum = s.get("zero_cum", np.full((4, 4), np.nan))  # nan: not kept (older state)
        f.ring = None if s["ring"] is None else BlockRing.from_state(s["ring"])
        ad = s.get("adwin")
        f.adwin = None if ad is None else AdwinDetector.from_state(ad)
        bo = s.get("bocpd")
        f.bocpd = None if bo is None else BocpdDetector.from_state(bo)
        return f


#: Events per chunk of the CUSUM crossing bound (see ``_path_bound``).
_CHUNK = 16


def _path_bound(C: np.ndarray) -> np.ndarray:
    """Upper bound on ``max_t S_t`` over a block, without a running minimum per event.

    With ``S_t = C_t - min(0, min_{j<=t} C_j)``: inside chunk ``q`` of the block, ``C_t`` is at
    most the chunk's maximum and the running minimum is at least the minimum over chunks
    ``<= q``. The bound exceeds the true maximum by at most one chunk's range, so the exact
    path (a running minimum per event) is computed only for the few statistics near their
    threshold.
    """
    L, S, B = C.shape
    if B % _CHUNK:
        return C.max(axis=2) - np.minimum(C.min(axis=2), 0.0)
    q = B // _CHUNK
    # chunk maxima and minima as element-wise reductions over the rows of the transposed
    # (chunk position x chunk) copy: numpy reduces a short contiguous last axis slowly
    cols = np.ascontiguousarray(C.reshape(L * S * q, _CHUNK).T)
    run_min = np.minimum.accumulate(cols.min(axis=0).reshape(L, S, q), axis=2)
    np.minimum(run_min, 0.0, out=run_min)
    return (cols.max(axis=0).reshape(L, S, q) - run_min).max(axis=2)


def _exact_path(start: np.ndarray, z: np.ndarray, k: float, fin: np.ndarray | None) -> np.ndarray:
    """One feature's four CUSUMs event by event, shape (4, B): up and down on the location
    and on the spread score ``z`` (2, B), from ``start``; a missing value (``fin`` False)
    is no step. Only for the few features whose :func:`_path_bound` nears the threshold."""
    steps = np.empty((4, z.shape[1]))
    steps[0::2] = z
    steps[1::2] = -z
    steps -= k
    if fin is not None:
        steps *= fin
    return cusum_path(start, steps)


def _evidence_prefix(fin: np.ndarray, x: np.ndarray, zloc: np.ndarray) -> np.ndarray:
    """Running count, sum, sum of squares and location-score sum of one feature's block:
    the ``prefix`` that :meth:`NumericFeature._cusum_signal` describes the change with."""
    return np.cumsum(np.stack([fin.astype(np.float64), x, x * x, zloc]), axis=1)


def update_numeric(
    features: list[NumericFeature],
    X: np.ndarray,
    times: np.ndarray,
    seq0: int,
    settings: Any,
    rate: float,
    masks: list[tuple[str, ...]],
) -> list[list[Signal]]:
    """Consume one block for all numeric features of a stream at once.

    Parameters
    ----------
    features : list of NumericFeature
        The stream's numeric features, in a fixed (sorted) order.
    X : ndarray of float64, shape (F, B)
        Their values in the block; nan where missing.
    times : ndarray, shape (B,)
        Event times.
    seq0 : int
        Stream sequence number of the block's first event.
    settings : StreamSettings
    rate : float
        False-alarm rate per event allotted to each detector of each feature.
    masks : list of tuple of str
        Enabled detectors per feature.

    Returns
    -------
    list of list of Signal
        The alarms per feature (most blocks: all empty).

    Examples
    --------
    >>> import numpy as np
    >>> from driftline.detectors._config import DetectionConfig
    >>> s = DetectionConfig(warmup=1000, block=500).for_model("m")
    >>> f = NumericFeature("x")
    >>> rng = np.random.default_rng(1)
    >>> t = np.arange(500.0)
    >>> on = [("mean", "scale", "shape")]
    >>> sigs = [update_numeric([f], rng.normal(size=(1, 500)), t, 500 * i, s, 1e-8, on)
    ...         for i in range(4)]
    >>> f.reference.n, sum(len(x[0]) for x in sigs)
    (1000, 0)
    >>> shifted = rng.normal(loc=1.0, size=(1, 500))
    >>> [sig.detector for sig in update_numeric([f], shifted, t, 2000, s, 1e-8, on)[0]]
    ['mean']

    Notes
    -----
    Per feature only the rank transform (``np.interp`` on its own reference grid, on the
    sorted row) and the sketch update are separate calls; statistics, CUSUMs, change-point
    bookkeeping, binning and the windowed tests run on (features x events) matrices.
    """
    F, B = X.shape
    out: list[list[Signal]] = [[] for _ in range(F)]
    if F == 0:
        return out
    fin = np.isfinite(X)
    nf = fin.sum(axis=1)
    all_fin = bool(nf.min() == B)
    Xz = X if all_fin else np.where(fin, X, 0.0)
    bmean = Xz.sum(axis=1) / np.maximum(nf, 1)
    dev = Xz - bmean[:, None]
    if not all_fin:
        dev[~fin] = 0.0
    bm2 = np.einsum("ij,ij->i", dev, dev)
    if all_fin:
        bmin, bmax = X.min(axis=1), X.max(axis=1)
    else:
        bmin = np.where(fin, X, np.inf).min(axis=1)
        bmax = np.where(fin, X, -np.inf).max(axis=1)
    stats = np.stack([bmean, bm2, bmin, bmax], axis=1).tolist()
    nfl = nf.tolist()
    live = []
    for i, f in enumerate(features):
        if f.absorb(X[i], fin[i], nfl[i], stats[i], times, seq0, settings):
            live.append(i)
    if settings.bocpd_hazard > 0:
        _run_bocpd(features, X, fin, times, seq0, settings, out)
    if not live:
        return out
    L = len(live)
    sub = features if L == F else [features[i] for i in live]
    Xl = X if L == F else X[live]
    finl = fin if L == F else fin[live]
    refs = [f.reference for f in sub]
    U = NumericReference.transform_rows(refs, Xl)
    centre = np.array([r.centre for r in refs])[:, :, None]
    spread = np.array([r.spread for r in refs])[:, :, None]
    d = U - 0.5
    z = np.stack([d, d * d], axis=1)
    z -= centre
    z /= spread  # (L, 2, B): standardised location and spread scores
    if not all_fin:
        np.copyto(z, 0.0, where=~finl[:, None, :])  # a missing value is no step
    k = settings.cusum_k
    # CUSUM of s - k (up) and -s - k (down) for both scores, from two cumulative sums: with
    # C = S0 + cumsum(step), S_t = C_t - min(0, min_{j<=t} C_j). The final value, the last
    # zero (last position of the block minimum, if <= 0) and an upper bound on the block
    # maximum need no running minimum; the exact path is computed only where the bound
    # reaches the threshold (rare).
    cz = np.cumsum(z, axis=2)
    if all_fin:
        kn = k * np.arange(1, B + 1, dtype=np.float64)
    else:
        kn = k * np.cumsum(finl, axis=1, dtype=np.float64)[:, None, :]
    C = np.empty((L, 4, B))
    C[:, 0::2, :] = cz
    np.negative(cz, out=C[:, 1::2, :])
    C -= kn
    start = np.array([f.cusum for f in sub])
    C += start[:, :, None]
    cmin = C.min(axis=2)
    low = np.minimum(cmin, 0.0)  # (L, 4)
    bound = _path_bound(C)
    theta = np.array([r.theta for r in refs])
    h = cusum_threshold(theta, rate / 2.0)  # (L, 4); the two sides share the rate
    enabled = np.array(
        [[("mean" in masks[i])] * 2 + [("scale" in masks[i])] * 2 for i in live], dtype=bool
    )
    maybe = np.flatnonzero(((bound >= h) & enabled).any(axis=1))
    fired = np.zeros((L, 4), dtype=bool)
    for j in maybe.tolist():
        path = _exact_path(start[j], z[j], k, None if all_fin else finl[j])
        hits = (path.max(axis=1) >= h[j]) & enabled[j]
        if not hits.any():
            continue
        cols = np.flatnonzero(hits)
        first = (path[cols] >= h[j, cols, None]).argmax(axis=1)
        m = int(first.argmin())
        prefix = _evidence_prefix(finl[j], Xz[live[j]], z[j, 0])
        out[live[j]].append(
            sub[j]._cusum_signal(
                int(cols[m]), int(first[m]), path, prefix, times, seq0, h[j], settings
            )
        )
        fired[j, cols] = True
    # where the current excursions began: the last zero of each CUSUM in this block
    has = cmin <= 0.0
    last = B - 1 - C[:, :, ::-1].argmin(axis=2)  # (L, 4)
    next_time = times[np.minimum(last + 1, B - 1)]
    zero_seq = np.array([f.zero_seq for f in sub])
    zero_time = np.array([f.zero_time for f in sub])
    zero_seq = np.where(has, seq0 + last + 1, zero_seq)
    zero_time = np.where(has, next_time, zero_time)
    # running aggregates at each new zero and at the block's end (see ``NumericFeature.cum``)
    xzl = Xz if L == F else Xz[live]
    cum0 = np.array([f.cum for f in sub])  # (L, 4) before the block
    # count, sum, sum of squares and location-score sum of the block's values up to each
    # CUSUM's last zero (gathered per (feature, CUSUM), no (L, B, 4) copy) and in total
    sums = np.cumsum(np.stack([xzl, xzl * xzl]), axis=2)  # (2, L, B)
    if all_fin:
        n_at = (last + 1).astype(np.float64)
        n_all = np.full(L, float(B))
    else:
        cnt = np.cumsum(finl, axis=1, dtype=np.float64)
        n_at, n_all = np.take_along_axis(cnt, last, axis=1), cnt[:, -1]
    at_last = np.stack(
        [
            n_at,
            np.take_along_axis(sums[0], last, axis=1),
            np.take_along_axis(sums[1], last, axis=1),
            np.take_along_axis(cz[:, 0, :], last, axis=1),
        ],
        axis=2,
    )  # (L, 4 CUSUMs, 4 aggregates)
    totals = np.stack([n_all, sums[0, :, -1], sums[1, :, -1], cz[:, 0, -1]], axis=1)  # (L, 4)
    zero_cum = np.array([f.zero_cum for f in sub])
    zero_cum = np.where(has[:, :, None], cum0[:, None, :] + at_last, zero_cum)
    cum1 = cum0 + totals
    cus = C[:, :, -1] - low
    if fired.any():  # restart the CUSUMs that fired
        cus[fired] = 0.0
        zero_seq[fired] = seq0 + B
        zero_time[fired] = times[-1]
        zero_cum[fired] = np.broadcast_to(cum1[:, None, :], zero_cum.shape)[fired]
    _run_adwin(sub, live, z, finl, all_fin, Xz, times, seq0, settings, rate, masks, h, out)
    # windowed shape test on equiprobable reference bins
    nbins = settings.bins
    Uf = U if all_fin else np.where(finl, U, 0.0)
    bins = np.minimum((Uf * nbins).astype(np.int64), nbins - 1)
    bins += (np.arange(L) * nbins)[:, None]
    counts = np.bincount(bins[finl], minlength=L * nbins).reshape(L, nbins)
    agg = totals
    t0, t1 = float(times[0]), float(times[-1])
    check = []
    for j, f in enumerate(sub):
        f.cusum = cus[j]
        f.zero_seq = zero_seq[j]
        f.zero_time = zero_time[j]
        f.zero_cum = zero_cum[j]
        f.cum = cum1[j]
        f.ring.push(counts[j], agg[j], t0, t1)
        if f.ring.full and "shape" in masks[live[j]]:
            check.append(j)
    if check:
        ref_bins = np.array([sub[j].reference.bins for j in check])
        cur_bins = np.array([sub[j].ring.counts() for j in check])
        stat, p = chi2_homogeneity(ref_bins, cur_bins)
        alpha = window_alpha(rate, B)
        for m in np.flatnonzero(p < alpha).tolist():
            j = check[m]
            out[live[j]].append(sub[j]._shape_signal(float(stat[m]), float(p[m]), alpha, times, B))
    return out


def _run_adwin(sub, live, z, finl, all_fin, Xz, times, seq0, settings, rate, masks, h, out):
    """Feed each enabled feature's ADWIN its sub-block means of this block (see ``_adwin``).

    A cut is turned into a ``mean``-type signal whose change point and evidence are those of
    the location CUSUM pointing the same way (the start of its current excursion, a
    maximum-likelihood change-point estimate): ADWIN's own window after the cut can reach far
    back before the change (it drops old buckets only while a split stays significant), which
    would dilute the confirming two-sample test. Runs before the CUSUM state and the window
    ring take this block, so both still describe the data before it.
    """
    S = settings.adwin_sub
    on = [j for j, i in enumerate(live) if "adwin" in masks[i]]
    if not on or S <= 0:
        return
    dets = []
    for j in on:
        f = sub[j]
        if f.adwin is None:
            f.adwin = AdwinDetector(adwin_delta(rate, S), S)
        dets.append(f.adwin)
    batches = adwin_inputs(dets, z[on, 0, :], None if all_fin else finl[on])
    k = settings.cusum_k
    for j, d, (vals, ends) in zip(on, dets, batches, strict=True):
        if not vals:
            continue
        hits = d.feed(vals)
        if not hits:
            continue
        pos, width, zmean = hits[0]
        t = int(ends[pos])
        f = sub[j]
        path = _exact_path(f.cusum, z[j], k, None if all_fin else finl[j])
        c = 0 if path[0, t] >= path[1, t] else 1
        prefix = _evidence_prefix(finl[j], Xz[live[j]], z[j, 0])
        via = (
            f"ADWIN (delta {d.delta:.2g}) cut its window of sub-block means, "
            f"change point from the location CUSUM ({path[c, t]:.1f})"
        )
        sig = f._cusum_signal(c, t, path, prefix, times, seq0, h[j], settings, via=via)
        sig.statistics["adwin_delta"] = d.delta
        sig.statistics["adwin_width"] = int(width)
        sig.statistics["adwin_window_mean"] = zmean
        out[live[j]].append(sig)


def _run_bocpd(features, X, fin, times, seq0, settings, out) -> None:
    """Feed each feature's BOCPD (``_bocpd``) this block's values, live or not: it judges each
    segment against itself, so it keeps running while a new reference is collected. It is
    created with the feature's first reference (whose mean and sd standardise its input)."""
    for i, f in enumerate(features):
        if f.bocpd is None:
            ref = f.reference
            if ref is None or not settings.enabled(f.name, "bocpd"):
                continue
            f.bocpd = BocpdDetector(settings.bocpd_hazard, ref.mean, ref.sd)
        pos = np.flatnonzero(fin[i])
        if not len(pos):
            continue
        vals = X[i, pos].tolist()
        hits = f.bocpd.feed(vals, (seq0 + pos).tolist(), times[pos].tolist())
        if hits:
            j, begin = hits[0]
            out[i].append(_bocpd_signal(f, X[i], fin[i], times, seq0, int(pos[j]), begin))


def _bocpd_signal(f, row, fin, times, seq0, t, begin) -> Signal:
    """A BOCPD change at block position ``t`` whose new run began at event ``begin``:
    before/after are the posterior means of the previous and the new run (raw scale)."""
    d = f.bocpd
    logr, mu = d.post[0], d.post[1]
    m = int(np.argmax(logr))
    after = float(mu[m]) * d.scale + d.centre
    older = logr.copy()
    older[: m + 1] = -np.inf
    prev = int(np.argmax(older)) if np.isfinite(older).any() else m
    before = float(mu[prev]) * d.scale + d.centre
    from ._timefmt import rfc3339

    known = d.since(begin, seq0 + t)
    if known is not None:
        n, start = known
    else:  # began before the values kept: the run length says how many
        n, start = m + 1, float(times[0])
    msg = (
        f"Level of '{f.name}' changed from about {before:.4g} to {after:.4g}: Bayesian "
        f"online change-point detection started a new segment {n} values ago "
        f"(hazard {d.hazard:g})."
    )
    span = f.reference_span()
    reference = (
        {"count": 0}
        if span is None
        else {"start": rfc3339(span[0]), "end": rfc3339(span[1]), "count": span[2]}
    )
    return Signal(
        detector="bocpd",
        index=t,
        severity="warning",
        statistics={
            "statistic": "bocpd_map_run_length",
            "before": before,
            "after": after,
            "change_seq": int(begin),
            "values_since_change": n,
            "run_length": m,
            "hazard": d.hazard,
            "p_value": None,
        },
        window={
            "reference": reference,
            "current": {"start": rfc3339(start), "end": rfc3339(float(times[t])), "count": n},
        },
        message=msg,
    )
