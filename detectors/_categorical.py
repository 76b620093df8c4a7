"""Categorical and boolean feature state: heavy hitters, cardinality, frequency-shift test.

Memory is bounded whatever the number of distinct values: category counts live in a
space-saving table of ``heavy_hitters`` entries (Metwally et al. 2005: every category more
frequent than ``n / capacity`` is kept, counts overestimated by at most the smallest count),
the number of distinct values in an HLL sketch, and the ``frequency`` test compares the
reference's most frequent categories (the rest pooled into "other") between the reference and
the last ``window_blocks`` blocks with a chi-square test, once per block.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
from datasketches import hll_sketch

from ._heavy_hitters import HeavyHitters
from ._homogeneity import chi2_homogeneity, psi
from ._policy import window_alpha
from ._signal import Signal
from ._window import BlockRing
from .exceptions import StateError

__all__ = ["CategoricalFeature", "category_key"]

#: HLL precision: 2^10 registers, about 3% relative error, ~1 KiB.
HLL_LG_K = 10
#: Smallest expected count per cell in the current window for a category to get its own cell
#: (chi-square tail accuracy); rarer ones are pooled into "other".
_MIN_EXPECTED = 5.0
OTHER = "<other>"


def category_key(value: Any) -> str:
    """The category a value stands for: strings as is, booleans ``true``/``false``.

    Examples
    --------
    >>> category_key(True), category_key("DE"), category_key(3)
    ('true', 'DE', '3')
    """
    if value.__class__ is str:
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


class CategoricalFeature:
    """State and frequency test of one categorical (or boolean) feature."""

    kind = "categorical"

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.n = 0
        self.missing = 0
        self.heavy = HeavyHitters(capacity)
        self.hll = hll_sketch(HLL_LG_K)
        self._reset_live()

    def _reset_live(self) -> None:
        self.warm: dict[str, int] = {}
        self.warm_n = 0
        self.warm_span = [math.nan, math.nan]
        self.categories: list[str] | None = None
        self.ref_counts: np.ndarray | None = None
        self.ref_n = 0
        self.ref_span = [math.nan, math.nan]
        self.ring: BlockRing | None = None
        self._index: dict[str, int] = {}

    def restart_reference(self) -> None:
        """Forget the reference; the next ``warmup`` values form a new one."""
        self._reset_live()

    @property
    def live(self) -> bool:
        return self.categories is not None

    def update(
        self,
        col: tuple,
        times: np.ndarray,
        seq0: int,
        settings: Any,
        rate: float,
        detector_mask: Any,
        counter: Counter | None = None,
    ) -> list[Signal]:
        """Consume one block of raw values (``None`` = missing); return alarms.

        ``counter``, ``Counter(col)`` when the caller has it already (the stream counts each
        categorical column once per block for the data-quality tests too), is not modified.
        """
        raw = Counter(col) if counter is None else counter
        nmiss = raw.get(None, 0)
        self.missing += nmiss
        counts: dict[str, int] = {}
        for value, c in raw.items():
            if value is None:
                continue
            key = category_key(value)
            counts[key] = counts.get(key, 0) + c
        nf = len(col) - nmiss
        self.n += nf
        for key in counts:
            self.hll.update(key)
        self.heavy.update(counts)
        if self.categories is None:
            if nf:
                for key, c in counts.items():
                    self.warm[key] = self.warm.get(key, 0) + c
                if len(self.warm) > 4 * self.heavy.capacity:  # bounded during warm-up too
                    keep = sorted(self.warm.items(), key=lambda kv: (-kv[1], kv[0]))
                    self.warm = dict(keep[: self.heavy.capacity])
                self.warm_n += nf
                present = [t for t, v in zip(times, col, strict=True) if v is not None]
                if math.isnan(self.warm_span[0]):
                    self.warm_span[0] = float(present[0])
                self.warm_span[1] = float(present[-1])
            if self.warm_n >= settings.warmup:
                self._freeze(settings, len(col))
            return []
        vec = np.zeros(len(self.categories) + 1, dtype=np.int64)
        index = self._index
        other = len(self.categories)
        for key, c in counts.items():
            vec[index.get(key, other)] += c
        self.ring.push(vec, np.array([nf], dtype=float), float(times[0]), float(times[-1]))
        if "frequency" in detector_mask and self.ring.full:
            stat, p = chi2_homogeneity(self.ref_counts, self.ring.counts())
            alpha = window_alpha(rate, len(col))
            if float(p) < alpha:
                sig = self._signal(float(stat), float(p), alpha, times)
                # the same test without the pooled cell (where unseen categories land): a
                # shift among the reference's own categories (see ``FeaturePolicy``)
                cur = self.ring.counts()
                sig.statistics["p_known"] = float(
                    chi2_homogeneity(self.ref_counts[:-1], cur[:-1])[1]
                )
                return [sig]
        return []

    def _freeze(self, settings: Any, block: int) -> None:
        window = settings.window_blocks * block
        ranked = sorted(self.warm.items(), key=lambda kv: (-kv[1], kv[0]))
        total = self.warm_n
        cats = [
            k
            for k, c in ranked[: settings.max_categories - 1]
            if c / total * window >= _MIN_EXPECTED
        ]
        self.categories = cats
        self._index = {k: i for i, k in enumerate(cats)}
        counts = [self.warm[k] for k in cats]
        self.ref_counts = np.array([*counts, total - sum(counts)], dtype=np.int64)
        self.ref_n = total
        self.ref_span = list(self.warm_span)
        self.warm = {}
        self.ring = BlockRing(settings.window_blocks, len(cats) + 1, 1)

    def _signal(self, stat: float, p: float, alpha: float, times: np.ndarray) -> Signal:
        from ._timefmt import rfc3339

        cur = self.ring.counts()
        n = int(cur.sum())
        pr = self.ref_counts / max(self.ref_n, 1)
        pc = cur / max(n, 1)
        j = int(np.argmax(np.abs(pc - pr)))
        names = [*self.categories, OTHER]
        index = float(psi(self.ref_counts, cur))
        msg = (
            f"Category frequencies of '{self.name}' shifted (chi-square p={p:.2g}, "
            f"PSI {index:.2f}): '{names[j]}' went from {pr[j]:.1%} to {pc[j]:.1%} of values "
            f"over the last {n} values."
        )
        stats = {
            "statistic": "chi2_frequencies",
            "categories": names,
            "before": pr.round(6).tolist(),
            "after": pc.round(6).tolist(),
            "score": stat,
            "threshold_p": alpha,
            "p_value": p,
            "effect": index,
            "psi": index,
            "most_changed": names[j],
        }
        window = {
            "reference": {
                "start": rfc3339(self.ref_span[0]),
                "end": rfc3339(self.ref_span[1]),
                "count": self.ref_n,
            },
            "current": {
                "start": rfc3339(self.ring.start()),
                "end": rfc3339(float(times[-1])),
                "count": n,
            },
        }
        return Signal(
            detector="frequency",
            index=len(times) - 1,
            severity="critical" if index >= 0.25 else "warning",
            statistics=stats,
            window=window,
            message=msg,
        )

    def reference_span(self) -> tuple[float, float, int] | None:
        """Event-time start, end and size of the reference (None during a warm-up)."""
        if self.categories is None:
            return None
        return self.ref_span[0], self.ref_span[1], self.ref_n

    def window_pvalues(self) -> tuple[float, float] | None:
        """P-value of the full current window against the reference (twice, for symmetry)."""
        if self.ring is None or not self.ring.full:
            return None
        _, p = chi2_homogeneity(self.ref_counts, self.ring.counts())
        return float(p), float(p)

    def summary(self) -> dict:
        top = self.heavy.top(10)
        return {
            "kind": "categorical",
            "count": self.n,
            "missing": self.missing,
            "cardinality": round(self.hll.get_estimate()),
            "top": [{"value": k, "count": c, "error": self.heavy.errors.get(k, 0)} for k, c in top],
            "reference": None
            if self.categories is None
            else {"count": self.ref_n, "categories": len(self.categories)},
        }

    def to_state(self) -> dict:
        return {
            "kind": "categorical",
            "name": self.name,
            "counts": np.array([self.n, self.missing, self.warm_n, self.ref_n], dtype=np.int64),
            "heavy": self.heavy.to_state(),
            "hll": self.hll.serialize_compact(),
            "warm": [sorted(self.warm), [self.warm[k] for k in sorted(self.warm)]],
            "spans": np.array([*self.warm_span, *self.ref_span]),
            "categories": self.categories,
            "ref_counts": self.ref_counts,
            "ring": None if self.ring is None else self.ring.to_state(),
        }

    @classmethod
    def from_state(cls, s: dict) -> CategoricalFeature:
        f = cls.__new__(cls)
        f.name = s["name"]
        f.n, f.missing, f.warm_n, f.ref_n = (int(v) for v in s["counts"])
        f.heavy = HeavyHitters.from_state(s["heavy"])
        try:
            f.hll = hll_sketch.deserialize(bytes(s["hll"]))
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as exc:
            raise StateError(f"state: corrupt cardinality sketch ({exc})") from None
        f.warm = dict(zip(*s["warm"], strict=True))
        spans = [float(v) for v in s["spans"]]
        f.warm_span, f.ref_span = spans[:2], spans[2:]
        f.categories = s["categories"]
        f._index = {} if f.categories is None else {k: i for i, k in enumerate(f.categories)}
        f.ref_counts = s["ref_counts"]
        f.ring = None if s["ring"] is None else BlockRing.from_state(s["ring"])
        return f
