"""One model stream (model, model version): the event buffer and every signal's state.

Events are buffered and processed in blocks cut at fixed event counts of the stream
(``settings.block``), never at the caller's batch boundaries; a dump in the middle of a block
saves the buffered events too. That is what makes the alerts independent of batching and of
dump/load: the same events always form the same blocks. Per block the stream runs

- feature drift (``_numeric``, ``_categorical``) and schema/data quality (``_quality``) of
  every feature, one incident per feature (``_policy``);
- the model's outputs: the prediction as a pseudo-feature (``prediction_drift``: its
  distribution and null/type/range rates) and ``latency_ms`` (``latency``). A new model
  version starts with the outputs of the model's busiest other version as its reference, so
  a canary is judged against the stable model from its first block;
- segments (top level only): the events of each tracked segment value go to a child stream
  of their own (the same signals, alerts carrying ``segment``).

Labels (``_outcomes``) join the predictions remembered by the stream and are processed in
blocks of ``outcome_block`` outcomes, cut at fixed outcome counts.

The false-alarm budget of the stream is split over all its units (drift detectors, three
quality tests per feature, the outputs' detectors, the error stream's two); with ``K``
segment keys tracked, the stream and each key's slices get ``1 / (1 + K)`` of it (the slices
of one key see each event once between them, so their alarms add up to that share).
"""

from __future__ import annotations

from collections import Counter
from itertools import compress
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np

from ._calibration import Calibration
from ._categorical import CategoricalFeature
from ._config import StreamSettings
from ._estimation import EstimateView, Estimator, predicted_classes, unavailable
from ._limits import cap_features, feature_limit_alert
from ._numeric import NumericFeature, update_numeric
from ._outcomes import UNITS as OUTCOME_UNITS
from ._outcomes import LabelJoin, Outcomes
from ._policy import FeaturePolicy
from ._quality import CLASSES, MIN_WINDOW, UNITS, QualityTable, column_classes
from .exceptions import StateError

__all__ = ["ModelStream"]

_NUMERIC_TYPES = frozenset({int, float})
_NONE = type(None)
_PLAIN = frozenset({int, float, _NONE})
_CAT_TYPES = frozenset({str, bool})
_FEATURES, _KIND, _SEGMENT = attrgetter("features"), attrgetter("kind"), attrgetter("segment")
_PREDICTION, _LATENCY = attrgetter("prediction"), attrgetter("latency_ms")
_RAW = attrgetter("prediction_raw")
_TIME = attrgetter("timestamp")
#: Stride of the type screen of numeric columns (see ``run_block``).
_STRIDE = 4
_ALL = ("mean", "scale", "shape", "frequency")
_APPLIES = {"numeric": ("mean", "scale", "shape", "adwin"), "categorical": ("frequency",)}
_OUT_MASK = {"numeric": ("mean", "scale", "shape"), "categorical": ("frequency",)}
_OUT_KIND = {"prediction": "prediction_drift", "latency_ms": "latency"}
_TESTED, _OUTSIDE = CLASSES.index("tested"), CLASSES.index("out")
#: How much further a slice's window must have moved than the model-wide window for the
#: slice to report a change the model-wide stream already reports (see ``_explained``).
_CONFINED = 2.0
#: Schema and data-quality detectors: a slice never repeats them while the model-wide stream
#: has an incident on the column (pipeline faults are rarely confined to a slice).
_QUALITY_DETECTORS = frozenset(
    {
        "type_change",
        "vanished",
        "new_feature",
        "missing_rate",
        "unseen_categories",
        "out_of_range",
        "null_rate",
    }
)


def _location(f: Any) -> float | None:
    """Mean standardised location score of a numeric state's current window."""
    if f is None or f.kind != "numeric" or f.ring is None:
        return None
    n, _, _, zsum = f.ring.aggregates()
    return None if n <= 0 else float(zsum / n)


class _Column:
    """What the alert policy sees for one monitored column: drift state plus quality tests."""

    __slots__ = ("drift", "name", "quality")

    def __init__(self, name: str, drift: Any, quality: QualityTable) -> None:
        self.name, self.drift, self.quality = name, drift, quality

    @property
    def live(self) -> bool:
        return (self.drift is None or self.drift.live) and self.quality.live(self.name)

    def restart_reference(self) -> None:
        if self.drift is not None:
            self.drift.restart_reference()
        self.quality.restart(self.name)

    def window_pvalues(self) -> tuple[float, ...] | None:
        ps: list[float] = []
        if self.drift is not None:
            ps.extend(self.drift.window_pvalues() or ())
        q = self.quality.resolve_pvalue(self.name)
        if q is not None:
            ps.append(q)
        return tuple(ps) if ps else None

    def reference_span(self) -> tuple[float, float, int] | None:
        span = self.drift.reference_span() if self.drift is not None else None
        if span is None:
            s = self.quality.ref_span.get(self.name)
            if s is None or s[0] != s[0]:
                return None
            return s[0], s[1], int(self.quality.ref[self.quality.index[self.name], 0])
        return span


def _infer(col: tuple, forced: str | None) -> str | None:
    if forced is not None:
        return forced
    types = set(map(type, col))
    types.discard(_NONE)
    if not types:
        return None  # only missing values so far: decide later
    return "numeric" if types <= _NUMERIC_TYPES else "categorical"


def _floats(col: tuple) -> np.ndarray:
    try:
        return np.array(col, dtype=np.float64)
    except (TypeError, ValueError):
        return np.array(
            [v if v.__class__ in _NUMERIC_TYPES else None for v in col], dtype=np.float64
        )


class ModelStream:
    """Buffer, features, outputs, labels, slices and incident states of one (model, version)."""

    def __init__(
        self,
        model: str,
        version: str | None,
        settings: StreamSettings,
        *,
        segment: dict[str, str] | None = None,
        profile: dict | None = None,
        sibling: ModelStream | None = None,
    ) -> None:
        self.model = model
        self.version = version
        self.settings = settings
        self.segment = segment
        self.seq = 0  # events in completed blocks
        self.blocks = 0
        self.pending: list[Any] = []  # events
        self.ptimes: list[float] = []
        self.features: dict[str, Any] = {}
        self.policies: dict[str, FeaturePolicy] = {}
        self.invalid: dict[str, int] = {}
        self.counters = {"unconfirmed": 0, "suppressed": 0}
        self.quality = QualityTable(settings.window_blocks, settings.warmup)
        self.frozen_schema = False
        self.outputs: dict[str, Any] = {}
        self.out_quality = QualityTable(settings.window_blocks, settings.warmup)
        self.out_policies: dict[str, FeaturePolicy] = {}
        self.out_seq = 0
        self.out_blocks = 0
        self.ref_version: str | None = None
        self.joins = LabelJoin(settings.label_ttl, settings.max_pending_labels)
        self.outcomes = Outcomes()
        self.estimator: Estimator | None = None  # scores' estimated performance (baseline)
        self.no_estimate = unavailable(profile, segment)  # why there is none (for /status)
        self.share = 1.0
        self.slices: dict[tuple[str, str], ModelStream] = {}
        self.seg_counts: dict[str, dict[str, int]] = {}
        self.parent: ModelStream | None = None  # a slice's model-wide stream
        self._masks: dict[tuple[str, str], tuple[str, ...]] = {}  # (cache)
        self._order: list[str] = []  # feature names of the last block (cache)
        self._order_stale = True
        self._nkeys = 0
        if profile is not None:
            self._seed(profile)
        if sibling is not None:
            self._inherit(sibling)

    # ------------------------------------------------------------------ helpers
    def _mask(self, name: str, kind: str) -> tuple[str, ...]:
        key = (name, kind)
        mask = self._masks.get(key)
        if mask is None:
            s = self.settings
            chosen = s.feature(name).detectors or s.detectors or _ALL
            mask = self._masks[key] = tuple(d for d in _APPLIES[kind] if d in chosen)
        return mask

    def _context(self, seq0: int, times: np.ndarray, block: int) -> dict[str, Any]:
        """What the alert policy needs of a processed block (see ``FeaturePolicy.step``)."""
        return {
            "model": self.model,
            "version": self.version,
            "settings": self.settings,
            "seq0": seq0,
            "times": times,
            "block": block,
            "segment": self.segment,
        }

    def rate_per_unit(self) -> float:
        """False-alarm rate per event allotted to each detector unit of this stream."""
        units = sum(len(self._mask(n, f.kind)) for n, f in self.features.items())
        units += UNITS * (len(self.quality.names) + len(self.out_quality.names))
        units += sum(len(_OUT_MASK[f.kind]) for f in self.outputs.values())
        # the error stream's units count from the first prediction that labels can join,
        # not from the first label: labels come from their own topic, and a share that
        # changed when the first one arrived would make the features' thresholds depend on
        # how a consumer interleaves the topics (a slice goes by its model-wide stream)
        units += OUTCOME_UNITS if (self.parent or self).joins.counts["remembered"] else 0
        # the estimated accuracy and the calibration check (``_estimation``)
        units += 2 * (self.estimator is not None)
        return self.settings.false_alarms_per_million * self.share / 1e6 / max(units, 1)

    def _new_feature(self, name: str, kind: str) -> Any:
        if kind == "numeric":
            return NumericFeature(name)
        return CategoricalFeature(name, self.settings.heavy_hitters)

    def _seed(self, profile: dict) -> None:
        """Frozen references from a baseline profile (see ``_baseline``)."""
        from ._baseline import feature_from_profile

        s = self.settings
        self.frozen_schema = True
        self.quality.new_events = self.out_quality.new_events = int(profile["events"])
        span = {"start": profile.get("start"), "end": profile.get("end")}
        for name, fp in sorted(profile["features"].items()):
            if name in s.ignore:
                continue
            seen = fp.get("categories") if fp.get("categories_complete") else None
            self.quality.seed(name, fp["counts"], seen, (span["start"], span["end"]))
            self.policies[name] = FeaturePolicy()
            f = feature_from_profile(name, {**fp, **span}, s, s.feature(name).kind)
            if f is not None:
                self.features[name] = f
        for name in ("prediction", "latency_ms"):
            fp = profile.get(name)
            if not fp:
                continue
            f = feature_from_profile(name, {**fp, **span}, s, None)
            if f is None:
                continue
            self.outputs[name] = f
            self.out_policies[name] = FeaturePolicy()
            if name == "prediction":
                seen = fp.get("categories") if fp.get("categories_complete") else None
                self.out_quality.seed(name, fp["counts"], seen, (span["start"], span["end"]))
        op = profile.get("outcomes")
        if op:
            self.outcomes.seed(op, s, (op.get("start") or 0.0, op.get("end") or 0.0))
        if op and op.get("calibration") and self.segment is None:
            cal = Calibration.from_profile(op["calibration"])
            span = (op.get("start") or 0.0, op.get("end") or 0.0)
            self.estimator = Estimator(cal, s.window_blocks, span)

    def _inherit(self, other: ModelStream) -> None:
        """A new version: the outputs of ``other`` (the stable version) as the reference."""
        from ._baseline import copy_reference

        src = other.outputs.get("prediction")
        if src is None or not src.live or "prediction" in self.outputs:
            return
        self.outputs["prediction"] = copy_reference(src, self.settings)
        self.out_policies["prediction"] = FeaturePolicy()
        q = other.out_quality
        if q.live("prediction"):
            i = q.index["prediction"]
            self.out_quality.seed(
                "prediction",
                dict(zip(CLASSES, q.ref[i].tolist(), strict=True)),
                q.seen.get("prediction"),
            )
        self.ref_version = other.version if other.version is not None else "(unversioned)"

    # ------------------------------------------------------------------ processing
    def run_block(self) -> list[tuple[int, str, Any]]:
        """Process the buffered block; return ``(seq, feature, alert)`` triples."""
        events = self.pending
        times = np.array(self.ptimes, dtype=np.float64)
        self.pending, self.ptimes = [], []
        B = len(events)
        seq0 = self.seq
        settings = self.settings
        ignore = settings.ignore
        feats = list(map(_FEATURES, events))
        order = self._order
        cols: list[tuple] | None = None
        absent: dict[str, int] = {}
        trailing: set[str] = set()  # absent from the block's last events
        limited: list[tuple[int, str, Any]] = []  # the one feature-limit alert (_limits)
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
            names.update(self.quality.index)
            if len(names) > settings.max_features:  # maybe over the limit: never sort them all
                order, limited = self._cap_features(names, feats, times, seq0)
            else:
                order = sorted(n for n in names if n not in ignore)
            cols = [tuple([f.get(n) for f in feats]) for n in order]
            tail = min(MIN_WINDOW, B)
            for n in order:
                present = sum(1 for f in feats if n in f)
                if present != B:
                    absent[n] = B - present
                    if not any(n in f for f in feats[B - tail :]):
                        trailing.add(n)
        quality = self.quality
        new = self.frozen_schema or self.seq >= settings.warmup
        for name, col in zip(order, cols, strict=True):
            if name not in quality.index:
                quality.add(name, new=new)
                self.policies[name] = FeaturePolicy()
            if name not in self.features:
                kind = _infer(col, settings.feature(name).kind)
                if kind is not None:
                    self.features[name] = self._new_feature(name, kind)
        self._order = order
        self._order_stale = any(n not in self.features for n in order)
        live = [(n, c) for n, c in zip(order, cols, strict=True) if n in self.features]
        numeric = [(n, c) for n, c in live if self.features[n].kind == "numeric"]
        matrix = self._numeric_matrix(numeric, B)
        rate = self.rate_per_unit()
        ctx = self._context(seq0, times, self.blocks)
        # quality counts of every column (before the references move in this block)
        F = len(quality.names)
        rows9: list = []  # per column: the CLASSES counts (one array built at the end)
        ab = np.zeros((F, 2))
        cats: dict[str, Counter] = {}
        col_of = dict(zip(order, cols, strict=True))
        nans = dict(
            zip((n for n, _ in numeric), np.isnan(matrix).sum(axis=1).tolist(), strict=True)
        )
        for i, name in enumerate(quality.names):
            col = col_of.get(name)
            if col is None:
                rows9.append([B, B, 0, 0, 0, 0, 0, 0, 0])  # every event lacks it (ignored)
                continue
            a = absent.get(name, 0)
            f = self.features.get(name)
            if f is not None and f.kind == "categorical":
                c = cats[name] = Counter(col)
                types = set(map(type, col[::_STRIDE]))
                types.discard(_NONE)
                tested, unseen = quality.unseen(name, c)
                ab[i] = quality.range_prior(name)
                if len(types) == 1 and types <= _CAT_TYPES:
                    # one type in the sample (str or bool): counts from the value Counter
                    # (a mix with numbers, where True == 1 would merge, is counted exactly)
                    nulls = c.get(None, 0)
                    empty = c.get("", 0)
                    rest = B - nulls - empty
                    if str in types:
                        rows9.append([B, a, nulls - a, 0, rest, empty, 0, tested, unseen])
                    else:
                        rows9.append([B, a, nulls - a, 0, 0, empty, rest, tested, unseen])
                else:
                    row = column_classes(col, a, c).tolist()
                    row[_TESTED], row[_OUTSIDE] = tested, unseen
                    rows9.append(row)
            else:
                nulls = nans.get(name)
                if nulls is not None and set(map(type, col[::_STRIDE])) <= _PLAIN:
                    # a numeric column whose sampled values are all numbers: counts from the
                    # matrix (a foreign type in a block shows in the sample with near
                    # certainty above a few percent; then the block is counted exactly)
                    rows9.append([B, a, nulls - a, B - nulls, 0, 0, 0, 0, 0])
                else:
                    rows9.append(column_classes(col, a, None, nulls).tolist())
        counts = np.array(rows9, dtype=np.int64).reshape(F, len(CLASSES))
        if numeric:
            idx = [j for j, (n, _) in enumerate(numeric) if self.features[n].live]
            if idx:
                refs = [self.features[numeric[j][0]].reference for j in idx]
                lo = np.array([r.grid_x[0] for r in refs])[:, None]
                hi = np.array([r.grid_x[-1] for r in refs])[:, None]
                sub = matrix[idx]
                outside = ((sub < lo) | (sub > hi)).sum(axis=1)
                tested = np.isfinite(sub).sum(axis=1)
                rows_q = [quality.index[numeric[j][0]] for j in idx]
                counts[rows_q, _TESTED] = tested
                counts[rows_q, _OUTSIDE] = outside
                ab[rows_q, 0] = 2.0
                ab[rows_q, 1] = [max(r.n - 1, 1) for r in refs]
        quality.observe(counts, cats, float(times[0]), float(times[-1]))
        last_absent = np.array([n in trailing for n in quality.names], dtype=np.float64)
        qsig = quality.signals(rate, B, times, ab, self.features, last_absent)
        # outputs: combined with the features' numeric pass when the stream is all predictions
        kinds = list(map(_KIND, events))
        preds = (
            events
            if kinds.count("prediction") == B
            else [e for e, k in zip(events, kinds, strict=True) if k == "prediction"]
        )
        out_cols = self._output_columns(preds)
        combined = [
            n
            for n in ("prediction", "latency_ms")
            if n in out_cols
            and self.outputs[n].kind == "numeric"
            and len(preds) == B
            and self.out_seq == self.seq
        ]
        extra_rows = [out_cols[n][1] for n in combined]
        if extra_rows:
            matrix = (
                np.concatenate([matrix, np.array(extra_rows)]) if numeric else np.array(extra_rows)
            )
        num_feats = [self.features[n] for n, _ in numeric] + [self.outputs[n] for n in combined]
        masks = [self._mask(n, "numeric") for n, _ in numeric] + [_OUT_MASK["numeric"]] * len(
            combined
        )
        num_signals = update_numeric(
            num_feats,
            matrix.reshape(len(num_feats), B),
            times,
            seq0,
            settings,
            rate,
            masks,
        )
        by_name = dict(zip((n for n, _ in numeric), num_signals, strict=False))
        out_signals = {n: s for n, s in zip(combined, num_signals[len(numeric) :], strict=True)}
        out: list[tuple[int, str, Any]] = []
        for name in quality.names:
            feature = self.features.get(name)
            if feature is None:
                signals = []
            elif feature.kind == "numeric":
                signals = by_name.get(name, [])
            elif name not in col_of:
                signals = []
            else:
                mask = self._mask(name, feature.kind)
                signals = feature.update(
                    col_of[name], times, seq0, settings, rate, mask, cats.get(name)
                )
            signals = signals + qsig.get(name, [])
            if signals and self.parent is not None:
                signals = self._unexplained(name, "features", signals)
            view = _Column(name, feature, quality)
            for seq, alert in self.policies[name].step(
                view, signals, ctx=ctx, counters=self.counters
            ):
                out.append((seq, name, alert))
        if preds:
            same = times if len(preds) == B else None  # all predictions: the block's times
            out.extend(self._run_outputs(preds, out_cols, out_signals, rate, same))
        if self.joins.gens:
            self.joins.expire(float(times[-1]))
        self.seq += B
        self.blocks += 1
        if self.segment is None:
            segs = list(map(_SEGMENT, events))
            if any(segs):
                out.extend(self._route(events, segs))
        out.extend(limited)
        out.sort(key=lambda t: (t[0], t[1], t[2].status))
        return out

    def _cap_features(
        self, names: set[str], feats: list[dict], times: Any, seq0: int
    ) -> tuple[list[str], list]:
        """The names kept under ``max_features`` (``_limits``), sorted, and the alert of the
        first refusal of the stream (none later)."""
        cap = self.settings.max_features
        first = not self.counters.get("features_over_limit")
        kept, refused, values = cap_features(
            names, self.quality.index, self.settings.ignore, cap, feats, show=first
        )
        self._nkeys = -1  # refused names keep the block on this (counting) path
        if not values:
            return kept, []
        self.counters["features_over_limit"] = self.counters.get("features_over_limit", 0) + values
        if not first:
            return kept, []
        seq = seq0 + len(feats) - 1
        return kept, [feature_limit_alert(self, refused, cap, float(times[-1]), seq)]

    def _output_columns(self, preds: list) -> dict[str, tuple[tuple, np.ndarray | None]]:
        """Raw and (numeric) float columns of the outputs; creates their states."""
        out: dict[str, tuple[tuple, np.ndarray | None]] = {}
        if not preds:
            return out
        raw = {
            "prediction": tuple(map(_PREDICTION, preds)),
            "latency_ms": tuple(map(_LATENCY, preds)),
        }
        for name, col in raw.items():
            f = self.outputs.get(name)
            if f is None:
                if col[0] is None and col.count(None) == len(col):
                    continue  # only missing values so far: decide later
                kind = _infer(col, "numeric" if name == "latency_ms" else None)
                if kind is None:
                    continue
                f = self.outputs[name] = self._new_feature(name, kind)
                self.out_policies[name] = FeaturePolicy()
            out[name] = (col, _floats(col) if f.kind == "numeric" else None)
        return out

    def _run_outputs(self, preds, out_cols, done, rate, times=None) -> list[tuple[int, str, Any]]:
        settings = self.settings
        P = len(preds)
        if times is None:
            times = np.array(list(map(_TIME, preds)), dtype=np.float64)
        seq0 = self.out_seq
        signals: dict[str, list] = dict(done)
        rest = [n for n in out_cols if n not in done and self.outputs[n].kind == "numeric"]
        if rest:
            res = update_numeric(
                [self.outputs[n] for n in rest],
                np.array([out_cols[n][1] for n in rest]),
                times,
                seq0,
                settings,
                rate,
                [_OUT_MASK["numeric"]] * len(rest),
            )
            signals.update(zip(rest, res, strict=True))
        pf = self.outputs.get("prediction")
        if pf is not None and pf.kind == "categorical" and "prediction" in out_cols:
            signals["prediction"] = pf.update(
                out_cols["prediction"][0], times, seq0, settings, rate, ("frequency",)
            )
        # null, type and range rates of the prediction
        q = self.out_quality
        if "prediction" in out_cols:
            if "prediction" not in q.index:
                q.add("prediction", new=False)
            col, x = out_cols["prediction"]
            counter = Counter(col) if pf.kind == "categorical" else None
            counts = column_classes(col, 0, counter)
            ab = np.zeros((1, 2))
            cats = {"prediction": counter} if counter is not None else {}
            if counter is not None:
                counts[_TESTED], counts[_OUTSIDE] = q.unseen("prediction", counter)
                ab[0] = q.range_prior("prediction")
            elif pf.live:
                r = pf.reference
                counts[_TESTED] = int(np.isfinite(x).sum())
                counts[_OUTSIDE] = int(((x < r.grid_x[0]) | (x > r.grid_x[-1])).sum())
                ab[0] = (2.0, max(r.n - 1, 1))
            q.observe(counts[None, :], cats, float(times[0]), float(times[-1]))
            qs = q.signals(rate, P, times, ab, {"prediction": pf}, np.zeros(1), output=True)
            signals["prediction"] = signals.get("prediction", []) + qs.get("prediction", [])
        ctx = self._context(seq0, times, self.out_blocks)
        out = []
        for name in ("prediction", "latency_ms"):
            f = self.outputs.get(name)
            if f is None or name not in self.out_policies:
                continue
            sigs = signals.get(name, [])
            if sigs and self.parent is not None:
                sigs = self._unexplained(name, "outputs", sigs)
            for s in sigs:
                self._explain_output(name, s, out_cols.get(name))
            policy = self.out_policies[name]
            view = _Column(name, f, q) if name == "prediction" else f
            for seq, alert in policy.step(
                view, sigs, ctx=ctx, counters=self.counters, kind=_OUT_KIND[name], name=None
            ):
                out.append((seq, name, alert))
            if name == "prediction" and policy.adopting:
                self.ref_version = None  # its own outputs become the reference
        if self.estimator is not None and out_cols.get("prediction", (0, None))[1] is not None:
            out.extend(self._run_estimate(preds, out_cols["prediction"][1], times, rate, ctx))
        self.out_seq += P
        self.out_blocks += 1
        return out

    def _explain_output(self, name: str, s: Any, cols: Any) -> None:
        """Name the output (and the reference version, or p50/p99 for latency) in a signal."""
        if s.extra.get("kind") not in (None, "prediction_drift"):
            return
        if name == "prediction":
            s.message = f"Model output drift: {s.message}"
            if self.ref_version is not None:
                s.statistics["reference_version"] = self.ref_version
                s.message = (
                    s.message[:-1] + f" (reference: the outputs of version {self.ref_version})."
                )
            return
        f = self.outputs[name]
        if cols is None or f.reference is None:
            return
        x = cols[1]
        x = x[np.isfinite(x)]
        if not len(x):
            return
        p50, p99 = (float(v) for v in np.quantile(x, [0.5, 0.99]))
        r50, r99 = float(f.reference.quantiles[2]), float(f.reference.quantiles[4])
        s.statistics.update(p50_before=r50, p50_after=p50, p99_before=r99, p99_after=p99)
        s.message = (
            f"Prediction latency shifted: p50 {r50:.4g} ms -> {p50:.4g} ms, p99 {r99:.4g} ms -> "
            f"{p99:.4g} ms (last block); {s.message}"
        )

    def _run_estimate(self, preds, scores, times, rate, ctx) -> list[tuple[int, str, Any]]:
        """Count a block of predictions into the estimate; its alarm through the policy."""
        est = self.estimator
        raws = list(map(_RAW, preds))
        scores, guess = predicted_classes(raws, scores, self.settings.decision_threshold)
        # predictions with an id were remembered by the label join before their block
        remembered = self.joins.counts["remembered"]
        est.observe(scores, guess, times, len(preds) - (remembered - est.remembered))
        est.remembered = remembered
        sigs = est.signals(self.settings, rate, self.joins)
        out = []
        if not sigs and est.policy.active is None:
            return out  # nothing to open or resolve (the policy's step would do nothing)
        view = EstimateView(est, self.outcomes.seq)
        for seq, alert in est.policy.step(
            view, sigs, ctx=ctx, counters=self.counters, kind="estimated_performance", name=None
        ):
            est.fired_outcomes = self.outcomes.seq if alert.status == "firing" else -1
            out.append((seq, "estimate", alert))
        return out

    def _check_calibration(self, rows: list, ctx: dict) -> list[tuple[int, str, Any]]:
        """Judged outcomes against their calibrated expectation (``CalibrationCheck``)."""
        check = self.estimator.check
        check.observe(rows, self.settings.decision_threshold)
        sigs = check.signals(self.settings, self.rate_per_unit())
        return [
            (seq, "calibration", alert)
            for seq, alert in check.policy.step(
                check, sigs, ctx=ctx, counters=self.counters, kind="concept_drift"
            )
        ]

    # ------------------------------------------------------------------ labels
    def add_outcome(self, entry: tuple, label: Any, time: float) -> list[tuple[int, str, Any]]:
        """A label joined to its prediction ``entry`` (time, prediction, segment)."""
        out: list[tuple[int, str, Any]] = []
        o = self.outcomes
        o.buf.append((time, entry[1], label))
        if len(o.buf) >= self.settings.outcome_block:
            rows = o.buf
            times = np.array([r[0] for r in o.buf], dtype=np.float64)
            seq0, block = o.seq, o.blocks
            sigs = o.run(self.settings, self.rate_per_unit())
            if sigs and self.parent is not None:
                sigs = self._unexplained("error", "labels", sigs)
            ctx = self._context(seq0, times, block)
            for seq, alert in o.policy.step(
                o.view(), sigs, ctx=ctx, counters=self.counters, kind="concept_drift", name=None
            ):
                out.append((seq, "error", alert))
            if self.estimator is not None:
                out.extend(self._check_calibration(rows, ctx))
        seg = entry[2]
        if seg and self.slices:
            for k, v in seg.items():
                child = self.slices.get((k, str(v)))
                if child is not None:
                    out.extend(child.add_outcome(entry, label, time))
        return out

    # ------------------------------------------------------------------ segments
    def _unexplained(self, name: str, where: str, signals: list) -> list:
        """A slice's alarms on a column that the model-wide stream does not already explain."""
        if not self._parent_active(name, where):
            return signals
        keep = [
            s
            for s in signals
            if s.detector not in _QUALITY_DETECTORS and not self._explained(name, where)
        ]
        self.counters["suppressed"] += len(signals) - len(keep)
        return keep

    def _parent_active(self, name: str, where: str) -> bool:
        parent = self.parent
        if where == "labels":
            p = parent.outcomes.policy
        else:
            p = (parent.policies if where == "features" else parent.out_policies).get(name)
        return p is not None and p.active is not None

    def _explained(self, name: str, where: str) -> bool:
        """Whether a slice's drift alarm on a column is a model-wide change seen through it.

        The model-wide stream processes each block before its slices, so a change everywhere
        has already opened a model-wide incident on the column when a slice sees it: the
        slice keeps quiet (one alert, not one per slice). A drift confined to the slice is
        still the slice's to report: for numeric states (features, the outputs, the error
        stream) the slice speaks up when its window's mean location score (a standardised
        rank score, comparable across streams) moved at least ``_CONFINED`` times as far as
        the model-wide window's, which a change everywhere does not do and a change in one of
        ``k`` equal slices does (about ``k`` times).
        """
        parent = self.parent
        mine, theirs = self._view(name, where), parent._view(name, where)
        shifts = [_location(getattr(v, "drift", v)) for v in (mine, theirs)]
        if shifts[0] is None or shifts[1] is None:
            return True
        return not abs(shifts[0]) >= _CONFINED * abs(shifts[1])

    def _view(self, name: str, where: str) -> Any:
        if where == "labels":
            return self.outcomes.error
        if where == "outputs":
            f = self.outputs.get(name)
            if f is None:
                return None
            return _Column(name, f, self.out_quality) if name == "prediction" else f
        if name not in self.quality.index:
            return None
        return _Column(name, self.features.get(name), self.quality)

    def _reshare(self) -> None:
        self.share = 1.0 / (1 + len(self.seg_counts))
        for child in self.slices.values():
            child.share = self.share

    def _route(self, events: list, segs: list) -> list[tuple[int, str, Any]]:
        """Feed the events of tracked segment values to their slice streams."""
        routed = self._route_tracked(events, segs)
        if routed is not None:
            return routed
        s = self.settings
        block = s.block
        out: list[tuple[int, str, Any]] = []
        counts_by_key = self.seg_counts
        slices = self.slices
        for ev, seg in zip(events, segs, strict=True):
            if not seg:
                continue
            for k, v in seg.items():
                if v.__class__ is not str:
                    v = str(v)
                counts = counts_by_key.get(k)
                if counts is None:
                    if len(counts_by_key) >= s.max_segment_keys:
                        continue
                    counts = counts_by_key[k] = {}
                    self._reshare()
                c = counts[v] = counts.get(v, 0) + 1
                child = slices.get((k, v))
                if child is None:
                    if c < s.block or sum(1 for kk, _ in self.slices if kk == k) >= s.max_segments:
                        if len(counts) > 16 * s.max_segments:
                            self._prune(k, counts)
                        continue
                    child = self.slices[(k, v)] = ModelStream(
                        self.model, self.version, s, segment={k: v}
                    )
                    child.share = self.share
                    child.parent = self
                pending = child.pending
                pending.append(ev)
                child.ptimes.append(ev.timestamp)
                if len(pending) >= block:
                    out.extend(child.run_block())
        return out

    def _route_tracked(self, events: list, segs: list) -> list[tuple[int, str, Any]] | None:
        """:meth:`_route` for the steady state, one C-level pass per slice, or None.

        It applies when every event has the same single segment key and each value already
        has its slice, so no slice is created, pruned or re-shared. Slices are independent of
        each other, so feeding them one after the other gives the states of feeding them
        event by event; their alerts are put back in the order of the events that completed
        their blocks.
        """
        if segs.count(None) or set(map(len, segs)) != {1}:
            return None
        keys = set(map(next, map(iter, segs)))
        if len(keys) != 1:
            return None
        (key,) = keys
        counts = self.seg_counts.get(key)
        vals = list(map(itemgetter(key), segs))
        values = set(vals)
        if (
            counts is None
            or set(map(type, values)) != {str}
            or any((key, v) not in self.slices for v in values)
        ):
            return None
        block = self.settings.block
        done: list[tuple[int, list]] = []
        for v in sorted(values):
            pos = list(compress(range(len(vals)), map(v.__eq__, vals)))
            counts[v] = counts.get(v, 0) + len(pos)
            child = self.slices[(key, v)]
            i = 0
            while i < len(pos):
                j = min(len(pos), i + block - len(child.pending))
                part = list(map(events.__getitem__, pos[i:j]))
                child.pending.extend(part)
                child.ptimes.extend(map(_TIME, part))
                if len(child.pending) >= block:
                    done.append((pos[j - 1], child.run_block()))
                i = j
        done.sort(key=itemgetter(0))
        return [a for _, alerts in done for a in alerts]

    def _prune(self, key: str, counts: dict[str, int]) -> None:
        keep = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[
            : 4 * self.settings.max_segments
        ]
        kept = dict(keep)
        for k, v in self.slices:
            if k == key and v in counts:
                kept[v] = counts[v]
        self.seg_counts[key] = kept

    # ------------------------------------------------------------------ numeric input
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
        q = self.quality
        features = {}
        for n in sorted(set(self.features) | set(q.index)):
            f = self.features.get(n)
            d = f.summary() if f is not None else {"kind": None}
            d["alert"] = self.policies[n].active if n in self.policies else None
            if n in q.index:
                d["schema_reference"] = dict(
                    zip(CLASSES[:7], q.ref[q.index[n], :7].tolist(), strict=True)
                )
            features[n] = d
        out = {
            "model_version": self.version,
            "segment": self.segment,
            "events": self.seq + len(self.pending),
            "buffered": len(self.pending),
            "false_alarm_rate_per_detector": self.rate_per_unit(),
            "counters": dict(self.counters),
            "invalid_values": dict(self.invalid),
            "features": features,
            "outputs": {
                n: {**f.summary(), "alert": self.out_policies[n].active}
                for n, f in sorted(self.outputs.items())
            },
            "output_reference_version": self.ref_version,
            "labels": {
                **self.joins.counts,
                "awaiting": len(self.joins),
                **self.outcomes.summary(),
            },
            "estimated_performance": (
                self.no_estimate if self.estimator is None else self.estimator.summary()
            ),
        }
        if self.segment is None:
            out["segments"] = [child.status() for _, child in sorted(self.slices.items())]
        return out

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict:
        pend = []
        for e in self.pending:
            if e.kind == "prediction":
                pend.append([1, e.features, e.prediction, e.latency_ms, e.segment])
            else:
                pend.append([0, e.features, None, None, e.segment])
        return {
            "version": self.version,
            "segment": self.segment,
            "seq": self.seq,
            "blocks": self.blocks,
            "pending": pend,
            "ptimes": np.array(self.ptimes, dtype=np.float64),
            "features": [f.to_state() for _, f in sorted(self.features.items())],
            "policies": {n: p.to_state() for n, p in sorted(self.policies.items())},
            "invalid": self.invalid,
            "counters": self.counters,
            "quality": self.quality.to_state(),
            "frozen_schema": self.frozen_schema,
            "outputs": [f.to_state() for _, f in sorted(self.outputs.items())],
            "out_quality": self.out_quality.to_state(),
            "out_policies": {n: p.to_state() for n, p in sorted(self.out_policies.items())},
            "out_counts": [self.out_seq, self.out_blocks],
            "ref_version": self.ref_version,
            "joins": self.joins.to_state(),
            "outcomes": self.outcomes.to_state(),
            "estimator": None if self.estimator is None else self.estimator.to_state(),
            "no_estimate": self.no_estimate,
            "share": self.share,
            "seg_counts": {
                k: [sorted(v), [v[x] for x in sorted(v)]] for k, v in self.seg_counts.items()
            },
            "slices": [c.to_state() for _, c in sorted(self.slices.items())],
        }

    @staticmethod
    def _feature_from_state(fs: dict, settings: StreamSettings) -> Any:
        if fs["kind"] == "numeric":
            f = NumericFeature.from_state(fs)
        elif fs["kind"] == "categorical":
            f = CategoricalFeature.from_state(fs)
        else:
            raise StateError(f"state: unknown feature kind {fs['kind']!r}")
        ring = f.ring
        if ring is not None and (
            ring.size != settings.window_blocks
            or (f.kind == "numeric" and ring.cells.shape[1] != settings.bins)
        ):
            # the window options changed since the state was written: summaries and
            # sketches are kept, the reference is rebuilt under the new options
            f.restart_reference()
        return f

    @classmethod
    def from_state(cls, model: str, s: dict, settings: StreamSettings) -> ModelStream:
        from driftline.schemas import FeatureEvent, PredictionEvent

        st = cls(model, s["version"], settings, segment=s.get("segment"))
        st.seq, st.blocks = int(s["seq"]), int(s["blocks"])
        st.ptimes = s["ptimes"].tolist()
        if len(s["pending"]) != len(st.ptimes):
            raise StateError("state: buffered events and times disagree")
        for p, t in zip(s["pending"], st.ptimes, strict=True):
            if isinstance(p, dict):  # format of the feature-drift core
                p = [0, p, None, None, None]
            is_pred, feats, pred, lat, seg = p
            if is_pred:
                ev = PredictionEvent(
                    model=model,
                    timestamp=t,
                    features=feats,
                    prediction=pred,
                    model_version=st.version,
                    segment=seg,
                    latency_ms=lat,
                )
            else:
                ev = FeatureEvent(
                    model=model,
                    timestamp=t,
                    features=feats,
                    model_version=st.version,
                    segment=seg,
                )
            st.pending.append(ev)
        for fs in s["features"]:
            f = cls._feature_from_state(fs, settings)
            st.features[f.name] = f
        st.policies = {n: FeaturePolicy.from_state(p) for n, p in s["policies"].items()}
        st.invalid = dict(s["invalid"])
        st.counters = dict(s["counters"])
        w, warm = settings.window_blocks, settings.warmup
        if "quality" in s:
            st.quality = QualityTable.from_state(s["quality"], w, warm)
            st.frozen_schema = bool(s["frozen_schema"])
            for fs in s["outputs"]:
                f = cls._feature_from_state(fs, settings)
                st.outputs[f.name] = f
            st.out_quality = QualityTable.from_state(s["out_quality"], w, warm)
            st.out_policies = {n: FeaturePolicy.from_state(p) for n, p in s["out_policies"].items()}
            st.out_seq, st.out_blocks = (int(v) for v in s["out_counts"])
            st.ref_version = s["ref_version"]
            st.joins = LabelJoin.from_state(
                s["joins"], settings.label_ttl, settings.max_pending_labels
            )
            st.outcomes = Outcomes.from_state(s["outcomes"])
            if s.get("estimator") is not None:  # absent in states before the estimate
                st.estimator = Estimator.from_state(s["estimator"], settings.window_blocks)
            st.no_estimate = s.get("no_estimate", st.no_estimate)
            st.share = float(s["share"])
            st.seg_counts = {
                k: dict(zip(v[0], v[1], strict=True)) for k, v in s["seg_counts"].items()
            }
            for cs in s["slices"]:
                child = cls.from_state(model, cs, settings)
                seg = child.segment
                if not isinstance(seg, dict) or len(seg) != 1:
                    raise StateError("state: bad segment slice")
                ((k, v),) = seg.items()
                child.parent = st
                st.slices[(k, v)] = child
        else:  # a state of the feature-drift core: quality restarts from here
            for n in sorted(st.policies):
                st.quality.add(n, new=False)
        return st
