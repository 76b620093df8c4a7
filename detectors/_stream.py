"""One model stream (model, model version): the event buffer and its feature states.

Events are buffered and processed in blocks cut at fixed event counts of the stream
(``settings.block``), never at the caller's batch boundaries; a dump in the middle of a block
saves the buffered events too. That is what makes the alerts independent of batching and of
dump/load: the same events always form the same blocks.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

import numpy as np

from ._categorical import CategoricalFeature
from ._config import StreamSettings
from ._numeric import NumericFeature, update_numeric
from ._policy import FeaturePolicy
from .exceptions import StateError

__all__ = ["ModelStream"]

_NUMERIC_TYPES = frozenset({int, float})
_NONE = type(None)
_ALL = ("mean", "scale", "shape", "frequency")
_APPLIES = {"numeric": ("mean", "scale", "shape"), "categorical": ("frequency",)}


class ModelStream:
    """Buffer, features and incident states of one (model, version)."""

    def __init__(self, model: str, version: str | None, settings: StreamSettings) -> None:
        self.model = model
        self.version = version
        self.settings = settings
        self.seq = 0  # events in completed blocks
        self.blocks = 0
        self.pending: list[dict] = []
        self.ptimes: list[float] = []
        self.features: dict[str, Any] = {}
        self.policies: dict[str, FeaturePolicy] = {}
        self.invalid: dict[str, int] = {}
        self.counters = {"unconfirmed": 0, "suppressed": 0}
        self._order: list[str] = []  # feature names of the last block (cache)
        self._order_stale = True
        self._nkeys = 0

    # ------------------------------------------------------------------ helpers
    def _mask(self, name: str, kind: str) -> tuple[str, ...]:
        chosen = self.settings.feature(name).detectors or _ALL
        return tuple(d for d in _APPLIES[kind] if d in chosen)

    def rate_per_unit(self) -> float:
        """False-alarm rate per event allotted to each detector unit of this stream."""
        units = sum(len(self._mask(n, f.kind)) for n, f in self.features.items())
        return self.settings.false_alarms_per_million / 1e6 / max(units, 1)

    def _create(self, name: str, col: tuple) -> None:
        kind = self.settings.feature(name).kind
        if kind is None:
            types = set(map(type, col))
            types.discard(_NONE)
            if not types:
                return  # only missing values so far: decide later
            kind = "numeric" if types <= _NUMERIC_TYPES else "categorical"
        if kind == "numeric":
            self.features[name] = NumericFeature(name)
        else:
            self.features[name] = CategoricalFeature(name, self.settings.heavy_hitters)
        self.policies[name] = FeaturePolicy()

    # ------------------------------------------------------------------ processing
    def run_block(self) -> list[tuple[int, str, Any]]:
        """Process the buffered block; return ``(seq, feature, alert)`` triples."""
        feats = self.pending
        times = np.array(self.ptimes, dtype=np.float64)
        self.pending, self.ptimes = [], []
        B = len(feats)
        seq0 = self.seq
        ignore = self.settings.ignore
        order = self._order
        cols: list[tuple] | None = None
        # fast path: every event has the known keys and no others (checked by key counts)
        if not self._order_stale and order and sum(map(len, feats)) == self._nkeys * B:
            try:
                rows = list(map(itemgetter(*order), feats))
                cols = list(zip(*rows, strict=True)) if len(order) > 1 else [tuple(rows)]
            except KeyError:
                cols = None
        if cols is None:
            names = set().union(*feats)
            self._nkeys = len(names) if sum(map(len, feats)) == len(names) * B else -1
            names.update(self.features)
            order = sorted(n for n in names if n not in ignore)
            cols = [tuple([f.get(n) for f in feats]) for n in order]
        for name, col in zip(order, cols, strict=True):
            if name not in self.features:
                self._create(name, col)
        self._order = order
        self._order_stale = any(n not in self.features for n in order)
        live = [(n, c) for n, c in zip(order, cols, strict=True) if n in self.features]
        numeric = [(n, c) for n, c in live if self.features[n].kind == "numeric"]
        matrix = self._numeric_matrix(numeric, B)
        rate = self.rate_per_unit()
        ctx = {
            "model": self.model,
            "version": self.version,
            "settings": self.settings,
            "seq0": seq0,
            "times": times,
            "block": self.blocks,
        }
        out: list[tuple[int, str, Any]] = []
        num_signals = update_numeric(
            [self.features[n] for n, _ in numeric],
            matrix,
            times,
            seq0,
            self.settings,
            rate,
            [self._mask(n, "numeric") for n, _ in numeric],
        )
        by_name = dict(zip((n for n, _ in numeric), num_signals, strict=True))
        for name, col in live:
            feature = self.features[name]
            if feature.kind == "numeric":
                signals = by_name[name]
            else:
                mask = self._mask(name, feature.kind)
                signals = feature.update(col, times, seq0, self.settings, rate, mask)
            for seq, alert in self.policies[name].step(
                feature, signals, ctx=ctx, counters=self.counters
            ):
                out.append((seq, name, alert))
        self.seq += B
        self.blocks += 1
        out.sort(key=lambda t: (t[0], t[1], t[2].status))
        return out

    def _numeric_matrix(self, numeric: list[tuple[str, tuple]], B: int) -> np.ndarray:
        if not numeric:
            return np.zeros((0, B))
        try:
            return np.array([c for _, c in numeric], dtype=np.float64)
        except (TypeError, ValueError):
            pass
        out = np.empty((len(numeric), B))
        for i, (name, col) in enumerate(numeric):
            try:
                out[i] = np.array(col, dtype=np.float64)
            except (TypeError, ValueError):
                clean = [v if v.__class__ in _NUMERIC_TYPES else None for v in col]
                bad = sum(1 for v in col if v is not None and v.__class__ not in _NUMERIC_TYPES)
                self.invalid[name] = self.invalid.get(name, 0) + bad
                out[i] = np.array(clean, dtype=np.float64)
        return out

    # ------------------------------------------------------------------ views
    def status(self) -> dict:
        return {
            "model_version": self.version,
            "events": self.seq + len(self.pending),
            "buffered": len(self.pending),
            "false_alarm_rate_per_detector": self.rate_per_unit(),
            "counters": dict(self.counters),
            "invalid_values": dict(self.invalid),
            "features": {
                n: {**f.summary(), "alert": self.policies[n].active}
                for n, f in sorted(self.features.items())
            },
        }

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict:
        return {
            "version": self.version,
            "seq": self.seq,
            "blocks": self.blocks,
            "pending": self.pending,
            "ptimes": np.array(self.ptimes, dtype=np.float64),
            "features": [f.to_state() for _, f in sorted(self.features.items())],
            "policies": {n: p.to_state() for n, p in sorted(self.policies.items())},
            "invalid": self.invalid,
            "counters": self.counters,
        }

    @classmethod
    def from_state(cls, model: str, s: dict, settings: StreamSettings) -> ModelStream:
        st = cls(model, s["version"], settings)
        st.seq, st.blocks = int(s["seq"]), int(s["blocks"])
        st.pending = list(s["pending"])
        st.ptimes = s["ptimes"].tolist()
        if len(st.pending) != len(st.ptimes):
            raise StateError("state: buffered events and times disagree")
        for fs in s["features"]:
            if fs["kind"] == "numeric":
                f = NumericFeature.from_state(fs)
            elif fs["kind"] == "categorical":
                f = CategoricalFeature.from_state(fs)
            else:
                raise StateError(f"state: unknown feature kind {fs['kind']!r}")
            st.features[f.name] = f
        st.policies = {n: FeaturePolicy.from_state(p) for n, p in s["policies"].items()}
        st.invalid = dict(s["invalid"])
        st.counters = dict(s["counters"])
        return st
