"""Schema skew and data quality of every feature of a stream: one table, tested per block.

Per feature and block the table counts events, absent keys, nulls, and values by type
(number, non-empty string, empty string, boolean), plus values tested against the reference
range (numeric: beyond the reference minimum or maximum; categorical: a category never seen in
the reference) and how many of them fell outside. The reference is the stream's first
``warmup`` events (or a baseline profile); a feature first seen after it is a *new* feature,
whose reference is "absent in every reference event".

Three rate tests per feature run on the last ``window_blocks`` blocks, each a budgeted unit
(``_rates``: beta-binomial against the reference counts, so a short reference cannot cause
alarms by itself):

- ``missing``: the rate of absent-or-null values, two-sided. A feature absent from every
  event of the last block is reported as ``schema``/``vanished``; one that was absent from
  the reference and now arrives as ``schema``/``new_feature``; otherwise
  ``data_quality``/``missing_rate``.
- ``type``: the rate of values of each type that was rare in the reference (below 5% of its
  values), e.g. numbers arriving as strings or empty strings where nulls were:
  ``schema``/``type_change`` (Bonferroni over the types tested).
- ``range``: values beyond the reference range (``BetaBinom(m, 2, n - 1)``, exact for
  exchangeable data) or categories unseen in the reference (Good-Turing: the reference's
  singletons estimate the unseen mass): ``data_quality``/``out_of_range`` or
  ``unseen_categories``.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from ._categorical import category_key
from ._policy import window_alpha
from ._rates import rate_pvalues
from ._signal import Signal
from ._timefmt import rfc3339

__all__ = ["CLASSES", "QualityTable", "column_classes"]

#: Count columns per feature and block.
CLASSES = ("events", "absent", "null", "number", "string", "empty", "bool", "tested", "out")
_EV, _ABS, _NULL, _NUM, _STR, _EMPTY, _BOOL, _TESTED, _OUT = range(9)
_TYPES = [_NUM, _STR, _EMPTY, _BOOL]
_TYPE_NAMES = {_NUM: "number", _STR: "string", _EMPTY: "empty string", _BOOL: "boolean"}
_NUMERIC = frozenset({int, float})
_NONE = type(None)
_PLAIN = frozenset({int, float, _NONE})
#: A type below this share of a feature's reference values is "foreign" (tested for a rise).
_RARE = 0.05
#: Distinct reference categories kept for the unseen-category test (beyond: not tested).
MAX_SEEN = 1024
#: Fewest events in a window for the tests to run (rates of a handful of events say little;
#: this keeps the univariate change-point mode, one-event blocks, to the drift detectors).
MIN_WINDOW = 64
#: Tests per feature, each a unit of the false-alarm budget.
UNITS = 3


#: Screen of ``pvalues`` in standard deviations: below the exact test's own screen, so a pooled
#: foreign-type count cannot hide a significant single type.
_BUSY = 3.0


def _zscore(k: np.ndarray, m: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Standardised count under ``BetaBinom(m, a, b)`` (its mean and variance)."""
    s = a + b
    mean = m * a / s
    var = m * a * b * (s + m) / (s * s * (s + 1.0))
    return (k - mean) / np.sqrt(np.maximum(var, 1e-12))


def column_classes(
    col: tuple, absent: int, counter: Counter | None = None, nulls: int | None = None
) -> np.ndarray:
    """Counts per class (``CLASSES`` without ``tested``/``out``) of one block's column.

    ``col`` holds ``None`` for both null and absent values; ``absent`` says how many were
    absent. ``counter`` (``Counter(col)``), given for categorical columns, skips the
    numbers-only fast path. ``nulls``, the missing values when known (the nan count of a
    numeric column: cheaper than counting ``None`` in the tuple), is used when the column
    holds only numbers.

    Examples
    --------
    >>> column_classes((1.0, None, "2", "", True, 1), absent=0).tolist()
    [6, 0, 1, 2, 1, 1, 1, 0, 0]
    """
    out = np.zeros(len(CLASSES), dtype=np.int64)
    B = len(col)
    out[_EV] = B
    out[_ABS] = absent
    if counter is None:
        types = set(map(type, col))
        if types <= _PLAIN:
            if nulls is None:
                nulls = col.count(None) if type(None) in types else 0
            out[_NULL] = nulls - absent
            out[_NUM] = B - nulls
            return out
    # by type, not by value: a value Counter would merge True with 1 and 1.0 (equal hashes)
    nulls = 0
    for t, c in Counter(map(type, col)).items():
        if t is _NONE:
            nulls += c
        elif t is bool:
            out[_BOOL] += c
        elif t in _NUMERIC:
            out[_NUM] += c
        elif t is str:
            empty = col.count("")
            out[_EMPTY] += empty
            out[_STR] += c - empty
        else:
            out[_STR] += c
    out[_NULL] = nulls - absent
    return out


class QualityTable:
    """Reference and windowed counts of every monitored column of one stream.

    Parameters
    ----------
    window : int
        Blocks in the current window.
    warmup : int
        Events of a column's reference.
    """

    def __init__(self, window: int, warmup: int) -> None:
        self.window = window
        self.warmup = warmup
        self.names: list[str] = []
        self.index: dict[str, int] = {}
        self.ref = np.zeros((0, len(CLASSES)), dtype=np.int64)
        self.collect = np.zeros(0, dtype=np.int64)  # reference events still to collect
        self.ring = np.zeros((window, 0, len(CLASSES)), dtype=np.int64)
        self.age = np.zeros(0, dtype=np.int64)  # live blocks in the ring per column
        self.span = np.zeros((window, 2))
        self.pos = 0
        self.ref_span: dict[str, list[float]] = {}
        self.seen: dict[str, dict[str, int] | None] = {}  # categorical reference categories
        self.events = 0  # events seen by the table (for new columns' synthetic reference)
        self._cache: tuple | None = None  # reference-derived arrays of ``pvalues``
        self.new_events = 0  # reference size of a new column (0: ``warmup``)

    # ------------------------------------------------------------------ columns
    def add(self, name: str, *, new: bool) -> int:
        """Add a column; ``new`` (seen only after the reference) gets an all-absent one."""
        i = len(self.names)
        self.names.append(name)
        self.index[name] = i
        row = np.zeros((1, len(CLASSES)), dtype=np.int64)
        if new:
            n = self.new_events or max(self.warmup, 1)
            row[0, _EV] = row[0, _ABS] = n
            collect = 0
        else:  # absent so far in this stream's reference period
            row[0, _EV] = row[0, _ABS] = self.events
            collect = max(self.warmup - self.events, 0)
        self.ref = np.concatenate([self.ref, row])
        self._cache = None
        self.collect = np.append(self.collect, collect)
        self.ring = np.concatenate(
            [self.ring, np.zeros((self.window, 1, len(CLASSES)), dtype=np.int64)], axis=1
        )
        self.age = np.append(self.age, 0)
        self.ref_span[name] = [math.nan, math.nan]
        return i

    def seed(
        self,
        name: str,
        counts: dict[str, int],
        seen: dict[str, int] | None,
        span: tuple[float, float] | None = None,
    ) -> None:
        """Use profile counts (a baseline, whose data span event times ``span``) as the
        column's frozen reference."""
        i = self.index[name] if name in self.index else self.add(name, new=False)
        self.ref[i] = [int(counts.get(c, 0)) for c in CLASSES]
        if span is not None and span[0] is not None:
            self.ref_span[name] = [
                float(span[0]),
                float(span[1] if span[1] is not None else span[0]),
            ]
        self._cache = None
        self.collect[i] = 0
        self.seen[name] = None if seen is None else dict(seen)

    def restart(self, name: str) -> None:
        """Collect a new reference for a column (its drift was adopted)."""
        i = self.index.get(name)
        if i is None:
            return
        self.ref[i] = 0
        self.collect[i] = self.warmup
        self._cache = None
        self.ring[:, i] = 0
        self.age[i] = 0
        self.ref_span[name] = [math.nan, math.nan]
        if name in self.seen:
            self.seen[name] = {}

    def live(self, name: str) -> bool:
        i = self.index.get(name)
        return i is not None and self.collect[i] <= 0

    # ------------------------------------------------------------------ per block
    def observe(self, counts: np.ndarray, cats: dict[str, Counter], t0: float, t1: float) -> None:
        """Add one block: ``counts`` (columns x classes) in ``self.names`` order."""
        B = counts[:, _EV]
        coll = self.collect > 0
        if coll.any():
            idx = np.flatnonzero(coll)
            self.ref[idx] += counts[idx]
            self._cache = None
            for i in idx.tolist():
                name = self.names[i]
                span = self.ref_span[name]
                if math.isnan(span[0]):
                    span[0] = t0
                span[1] = t1
                c = cats.get(name)
                if c is not None:
                    seen = self.seen.get(name, {})
                    if seen is not None:
                        for v, n in c.items():
                            if v is not None:
                                key = category_key(v)
                                seen[key] = seen.get(key, 0) + n
                        if len(seen) > MAX_SEEN:
                            seen = None
                    self.seen[name] = seen
            self.collect[idx] = np.maximum(self.collect[idx] - B[idx], 0)
            counts = counts.copy()
            counts[idx] = 0  # reference blocks do not enter the window
        self.ring[self.pos] = counts
        self.span[self.pos] = (t0, t1)
        self.pos = (self.pos + 1) % self.window
        self.age = np.where(coll, 0, np.minimum(self.age + 1, self.window))
        self.events += int(B.max()) if len(B) else 0

    def unseen(self, name: str, counter: Counter) -> tuple[int, int]:
        """(tested, unseen) values of a categorical column's block against its reference."""
        seen = self.seen.get(name)
        if seen is None or not self.live(name) or not seen:
            return 0, 0
        tested = out = 0
        for v, n in counter.items():
            if v is None:
                continue
            tested += n
            if category_key(v) not in seen:
                out += n
        return tested, out

    def range_prior(self, name: str) -> tuple[float, float]:
        """Beta parameters of the rate of unseen categories (Good-Turing from singletons)."""
        seen = self.seen.get(name) or {}
        n = sum(seen.values())
        singles = sum(1 for c in seen.values() if c == 1)
        return singles + 0.5, max(n - singles, 0) + 0.5

    def window_counts(self) -> np.ndarray:
        return self.ring.sum(axis=0)

    # ------------------------------------------------------------------ tests
    def pvalues(self, range_ab: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
        """P-values (missing, type, range) per column over the window; nan where untested.

        All rates of all columns go through one screened call (``_rates``); columns with
        nothing unusual (no missing, foreign-type or out-of-range value in the window and none
        missing in the reference) are not tested at all.
        """
        F = len(self.names)
        nan = np.full(F, np.nan)
        worst = np.full(F, -1)
        cur = self.window_counts()
        ref = self.ref
        full = (self.collect <= 0) & (cur[:, _EV] >= MIN_WINDOW)
        if not full.any():
            return nan, nan, nan, worst
        c = self._cache
        if c is None or len(c[0]) != F:
            r_miss = ref[:, _ABS] + ref[:, _NULL]
            present_ref = ref[:, _TYPES].sum(axis=1)
            shares = ref[:, _TYPES] / np.maximum(present_ref, 1)[:, None]
            rare = (shares < _RARE) & (present_ref > 0)[:, None]
            r_foreign = (ref[:, _TYPES] * rare).sum(axis=1)
            c = self._cache = (r_miss, present_ref, rare, r_foreign)
        r_miss, present_ref, rare, r_foreign = c
        miss = cur[:, _ABS] + cur[:, _NULL]
        foreign = (cur[:, _TYPES] * rare).sum(axis=1)
        # screen (normal bound of the beta-binomial, all columns at once): only columns whose
        # missing, foreign-type or out-of-range count is far from its expectation are tested
        z = _zscore(
            np.stack([miss, foreign, cur[:, _OUT]]),
            np.stack([cur[:, _EV], cur[:, _TYPES].sum(axis=1), cur[:, _TESTED]]),
            np.stack([r_miss + 0.5, r_foreign + 0.5, range_ab[:, 0] + 1e-9]),
            np.stack(
                [ref[:, _EV] - r_miss + 0.5, present_ref - r_foreign + 0.5, range_ab[:, 1] + 1e-9]
            ),
        )
        z[0] = np.abs(z[0])
        busy = full & (z.max(axis=0) > _BUSY)
        if not busy.any():
            p_miss = np.where(full & (ref[:, _EV] > 0), 1.0, np.nan)
            return p_miss, nan, nan, worst
        T = len(_TYPES)
        m = cur[:, _EV].astype(np.float64)
        r_ev = ref[:, _EV].astype(np.float64)
        present_cur = cur[:, _TYPES].sum(axis=1).astype(np.float64)
        tested = cur[:, _TESTED].astype(np.float64)
        rt = ref[:, _TYPES].astype(np.float64)
        k = np.concatenate([miss, cur[:, _TYPES].ravel(), cur[:, _OUT]]).astype(np.float64)
        mm = np.concatenate([m, np.repeat(present_cur, T), tested])
        a = np.concatenate([r_miss + 0.5, (rt + 0.5).ravel(), range_ab[:, 0]])
        b = np.concatenate(
            [
                r_ev - r_miss + 0.5,
                (present_ref[:, None] - rt + 0.5).ravel(),
                np.maximum(range_ab[:, 1], 1e-9),
            ]
        )
        two = np.zeros(len(k), dtype=bool)
        two[:F] = True
        sel = np.concatenate([busy, np.repeat(busy, T), busy])
        p = np.ones(len(k))
        p[sel] = rate_pvalues(k[sel], mm[sel], a[sel], b[sel], two_sided=two[sel])
        p_miss = np.where(full & (r_ev > 0), p[:F], np.nan)
        ntested = rare.sum(axis=1)
        pt = p[F : F + F * T].reshape(F, T)
        pt = np.where(rare, pt * np.maximum(ntested, 1)[:, None], np.inf)
        worst = np.where(ntested > 0, pt.argmin(axis=1), -1)
        p_type = np.where(full & (ntested > 0), np.minimum(pt.min(axis=1), 1.0), np.nan)
        ok = full & (tested > 0) & (range_ab[:, 1] > 0)
        p_range = np.where(ok, p[F + F * T :], np.nan)
        return p_miss, p_type, p_range, worst

    def signals(
        self,
        rate: float,
        block: int,
        times: np.ndarray,
        range_ab: np.ndarray,
        kinds: dict[str, str],
        last_absent: np.ndarray,
        *,
        output: bool = False,
    ) -> dict[str, list[Signal]]:
        """Alarms of the three tests after a block, by column name.

        ``kinds`` maps a column to its feature state (for the range test's name),
        ``last_absent`` is 1 where the column was absent from the last ``MIN_WINDOW`` events
        of the block (a vanished feature), else 0.
        ``output`` marks the prediction column: its alarms are ``prediction_drift``.
        """
        out: dict[str, list[Signal]] = {}
        self.ab = range_ab
        p_miss, p_type, p_range, worst = self.pvalues(range_ab)
        alpha = window_alpha(rate, block)
        hits = (p_miss < alpha) | (p_type < alpha) | (p_range < alpha)
        if not hits.any():
            return out
        cur = self.window_counts()
        for i in np.flatnonzero(hits).tolist():
            name = self.names[i]
            sigs = []
            r, c = self.ref[i], cur[i]
            if p_type[i] < alpha:
                sigs.append(self._type_signal(name, r, c, int(worst[i]), p_type[i], alpha, times))
            if p_miss[i] < alpha:
                sigs.append(
                    self._missing_signal(name, r, c, p_miss[i], alpha, times, last_absent[i])
                )
            if p_range[i] < alpha:
                sigs.append(
                    self._range_signal(
                        name,
                        c,
                        range_ab[i],
                        getattr(kinds.get(name), "kind", None),
                        p_range[i],
                        alpha,
                        times,
                    )
                )
            if output:
                for s in sigs:
                    s.extra["kind"] = "prediction_drift"
                    s.detector = {"missing_rate": "null_rate"}.get(s.detector, s.detector)
            out[name] = sigs
        return out

    # ------------------------------------------------------------------ evidence
    def _window(self, name: str, times: np.ndarray, count: int) -> dict:
        span = self.ref_span.get(name, [math.nan, math.nan])
        oldest = self.pos  # the ring is full when tests run
        return {
            "reference": {
                "start": None if math.isnan(span[0]) else rfc3339(span[0]),
                "end": None if math.isnan(span[1]) else rfc3339(span[1]),
                "count": int(self.ref[self.index[name], _EV]),
            },
            "current": {
                "start": rfc3339(float(self.span[oldest, 0])),
                "end": rfc3339(float(times[-1])),
                "count": int(count),
            },
        }

    @staticmethod
    def _stats(statistic, before, after, p, alpha, effect, **more) -> dict:
        return {
            "statistic": statistic,
            "before": before,
            "after": after,
            "score": after - before,
            "threshold_p": alpha,
            "p_value": float(p),
            "effect": effect,
            **more,
        }

    def _type_signal(self, name, r, c, j, p, alpha, times) -> Signal:
        col = _TYPES[j]
        pr = r[col] / max(r[_TYPES].sum(), 1)
        pc = c[col] / max(c[_TYPES].sum(), 1)
        dominant = _TYPE_NAMES[_TYPES[int(np.argmax(r[list(_TYPES)]))]]
        tname = _TYPE_NAMES[col]
        was = "null" if col == _EMPTY and r[_NULL] > 0 else dominant
        msg = (
            f"Schema skew on '{name}': {tname} values make up {pc:.1%} of its values "
            f"(reference {pr:.2%}, where it was {was}); binomial p={p:.2g}."
        )
        stats = self._stats(
            "type_rate",
            float(pr),
            float(pc),
            p,
            alpha,
            float(pc - pr),
            type=tname,
            expected=dominant,
        )
        return Signal(
            "type_change",
            len(times) - 1,
            "critical",
            stats,
            self._window(name, times, c[_EV]),
            msg,
            {"kind": "schema"},
        )

    def _missing_signal(self, name, r, c, p, alpha, times, last_absent) -> Signal:
        pr = (r[_ABS] + r[_NULL]) / max(r[_EV], 1)
        pc = (c[_ABS] + c[_NULL]) / max(c[_EV], 1)
        ref_absent = r[_ABS] / max(r[_EV], 1)
        if last_absent and ref_absent < 0.5 and c[_ABS] / max(c[_EV], 1) > ref_absent:
            detector, kind = "vanished", "schema"
            msg = (
                f"Schema skew: feature '{name}' vanished (absent from the latest events; "
                f"absent in {ref_absent:.2%} of reference events); p={p:.2g}."
            )
        elif ref_absent >= 0.99 and pc < pr:
            detector, kind = "new_feature", "schema"
            msg = (
                f"Schema skew: new feature '{name}' appears in {1 - pc:.1%} of events; it was "
                f"absent from the reference; p={p:.2g}."
            )
        else:
            detector, kind = "missing_rate", "data_quality"
            word = "rose" if pc > pr else "fell"
            msg = (
                f"Missing-value rate of '{name}' {word} from {pr:.2%} to {pc:.2%} over the last "
                f"{int(c[_EV])} events; binomial p={p:.2g}."
            )
        effect = float(pc - pr)
        stats = self._stats(
            "missing_rate",
            float(pr),
            float(pc),
            p,
            alpha,
            effect,
            absent=int(c[_ABS]),
            null=int(c[_NULL]),
        )
        severity = "critical" if kind == "schema" or abs(effect) >= 0.1 else "warning"
        return Signal(
            detector,
            len(times) - 1,
            severity,
            stats,
            self._window(name, times, c[_EV]),
            msg,
            {"kind": kind},
        )

    def _range_signal(self, name, c, ab, kind, p, alpha, times) -> Signal:
        tested = max(int(c[_TESTED]), 1)
        pr = float(ab[0] / (ab[0] + ab[1]))
        pc = c[_OUT] / tested
        if kind == "categorical":
            detector = "unseen_categories"
            msg = (
                f"Categories never seen in the reference make up {pc:.1%} of '{name}' values "
                f"over the last {tested} values (expected {pr:.2%}); p={p:.2g}."
            )
        else:
            detector = "out_of_range"
            msg = (
                f"{pc:.1%} of '{name}' values fall outside the reference range over the last "
                f"{tested} values (expected {pr:.2%}); p={p:.2g}."
            )
        stats = self._stats(detector, pr, float(pc), p, alpha, float(pc - pr), count=int(c[_OUT]))
        severity = "critical" if pc >= 0.05 else "warning"
        return Signal(
            detector,
            len(times) - 1,
            severity,
            stats,
            self._window(name, times, c[_EV]),
            msg,
            {"kind": "data_quality"},
        )

    def resolve_pvalue(self, name: str) -> float | None:
        """Smallest p-value of the column's three tests over the window (None if untested)."""
        i = self.index.get(name)
        if i is None:
            return None
        ab = getattr(self, "ab", None)
        if ab is None or len(ab) != len(self.names):
            ab = np.zeros((len(self.names), 2))
        ps = [x[i] for x in self.pvalues(ab)[:3]]
        ps = [float(x) for x in ps if not math.isnan(x)]
        return min(ps) if ps else None

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict:
        return {
            "names": self.names,
            "ref": self.ref,
            "collect": self.collect,
            "ring": self.ring,
            "age": self.age,
            "span": self.span,
            "pos": self.pos,
            "events": self.events,
            "new_events": self.new_events,
            "ref_span": [self.ref_span[n] for n in self.names],
            "seen": {
                n: None if s is None else [sorted(s), [s[k] for k in sorted(s)]]
                for n, s in sorted(self.seen.items())
            },
        }

    @classmethod
    def from_state(cls, s: dict, window: int, warmup: int) -> QualityTable:
        t = cls(window, warmup)
        t.names = list(s["names"])
        t.index = {n: i for i, n in enumerate(t.names)}
        t.ref, t.collect, t.ring, t.age = s["ref"], s["collect"], s["ring"], s["age"]
        t.span, t.pos, t.events = s["span"], int(s["pos"]), int(s["events"])
        t.new_events = int(s["new_events"])
        if t.ring.shape[0] != window:  # the window option changed: start a new window
            t.ring = np.zeros((window, len(t.names), len(CLASSES)), dtype=np.int64)
            t.span = np.zeros((window, 2))
            t.age[:] = 0
            t.pos = 0
        t.ref_span = {
            n: [float(x) for x in sp] for n, sp in zip(t.names, s["ref_span"], strict=True)
        }
        t.seen = {
            n: None if v is None else dict(zip(v[0], v[1], strict=True))
            for n, v in s["seen"].items()
        }
        return t
