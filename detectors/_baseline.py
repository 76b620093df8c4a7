"""Reference profiles from training data: built once, plain JSON, the reference from event one.

A :class:`Baseline` holds one profile per (model, model version) of the training or
validation events it was built from: per feature its type, counts by schema class (absent,
null, number, string, empty string, boolean), mean, standard deviation, minimum, maximum and a
quantile grid (numeric) or category counts (categorical); the same for the model's output
(``prediction``) and ``latency_ms``. ``Monitor(config, baseline=...)`` turns each profile into
frozen references when the model stream starts, so feature drift, schema skew (against the
training schema: a feature the training data never had is new from the first block) and data
quality are measured against training data from the first event, without a warm-up.

The numeric reference is rebuilt from the quantile grid: ``min(count, 20000)`` values at the
mid-quantiles ``(i + 1/2) / m`` (rounded for integer features), which the detectors treat as
the reference sample (their rank transform only needs the distribution function).

Building is vectorised per column and chunk of events (numpy for numbers, ``Counter`` for
categories), so a million 20-feature rows take seconds; numeric values are kept for exact
quantiles, decimated deterministically beyond ``max_values`` per feature.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from operator import itemgetter
from typing import Any

import numpy as np
import orjson

from ._calibration import Calibration, calibration_from_rows
from ._categorical import CategoricalFeature, category_key
from ._config import DetectionConfig
from ._numeric import NumericFeature
from ._outcomes import AGGREGATES, Outcomes, judged_output
from ._quality import CLASSES, column_classes
from ._reference import NumericReference
from ._window import BlockRing
from .exceptions import ConfigError

__all__ = ["FORMAT", "Baseline", "BaselineBuilder", "build_baseline"]

FORMAT = "driftline.baseline"
FORMAT_VERSION = 1
#: Probabilities of the stored quantile grid: every half percent plus the 0.1% tails.
QUANTILE_PROBS = np.unique(
    np.round(np.concatenate([np.linspace(0.0, 1.0, 201), [0.001, 0.999]]), 4)
)
#: The few quantiles printed first in a numeric profile, for people.
_SUMMARY = {"p1": 0.01, "p5": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95, "p99": 0.99}
#: Reference values rebuilt from a quantile grid.
_PSEUDO = 20_000
#: Distinct categories counted per feature (beyond: the rarest are dropped, the profile says
#: its category list is incomplete and unseen categories are not tested against it).
MAX_CATEGORIES = 10_000
_CHUNK = 65_536
#: Distinct values up to which a numeric profile keeps its exact value table (see ``_ties``).
MAX_VALUES = 1024
_PLAIN = (int, float)


class _Column:
    """Accumulator of one column (feature or output) of one profile."""

    __slots__ = ("cats", "classes", "m2", "max", "mean", "min", "n", "stride", "values")

    def __init__(self) -> None:
        self.classes = np.zeros(len(CLASSES), dtype=np.int64)
        self.values: list[np.ndarray] = []
        self.stride = 1
        self.cats: Counter = Counter()
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, col: list, absent: int, max_values: int) -> None:
        counts = column_classes(tuple(col), absent)
        self.classes += counts
        plain = counts[CLASSES.index("number")] + counts[CLASSES.index("null")] + absent == len(col)
        if plain:
            x = np.array(col, dtype=np.float64)
        else:
            x = np.array([v if v.__class__ in _PLAIN else None for v in col], dtype=np.float64)
            for v, c in Counter(col).items():
                if v is not None and v.__class__ not in _PLAIN:
                    self.cats[category_key(v)] += c
            if len(self.cats) > MAX_CATEGORIES:
                self.cats = Counter(dict(self.cats.most_common(MAX_CATEGORIES // 2)))
                self.cats["\x00truncated"] = 0
        x = x[np.isfinite(x)]
        if not len(x):
            return
        n = self.n + len(x)
        bm = float(x.mean())
        d = bm - self.mean
        self.mean += d * len(x) / n
        self.m2 += float(((x - bm) ** 2).sum()) + d * d * self.n * len(x) / n
        self.n = n
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))
        self.values.append(x[:: self.stride].copy())
        if sum(map(len, self.values)) > max_values:  # deterministic decimation
            self.values = [np.concatenate(self.values)[::2]]
            self.stride *= 2

    def profile(self, forced: str | None) -> dict:
        c = {name: int(v) for name, v in zip(CLASSES[:7], self.classes[:7].tolist(), strict=True)}
        events = c["events"]
        present = c["number"] + c["string"] + c["empty"] + c["bool"]
        kind = forced or ("numeric" if c["number"] * 2 >= max(present, 1) else "categorical")
        out: dict[str, Any] = {
            "type": kind,
            "count": present,
            "missing_rate": (c["absent"] + c["null"]) / events if events else None,
            "counts": c,
        }
        if kind == "numeric":
            vals = np.sort(np.concatenate(self.values)) if self.values else np.zeros(0)
            if len(vals):
                sd = math.sqrt(self.m2 / self.n) if self.n else 0.0
                integer = bool(np.all(vals == np.round(vals)))
                q = np.quantile(vals, QUANTILE_PROBS)
                out.update(_ties(vals))
                summary = np.quantile(vals, list(_SUMMARY.values()))
                out.update(
                    percentiles=dict(zip(_SUMMARY, summary.tolist(), strict=True)),
                    mean=self.mean,
                    sd=sd,
                    min=self.min,
                    max=self.max,
                    integer=integer,
                    quantiles={"p": QUANTILE_PROBS.tolist(), "x": q.tolist()},
                )
        else:
            cats = Counter(self.cats)
            if c["number"]:
                cats["\x00numbers"] = c["number"]  # numbers among categories: not enumerated
            complete = not any(k.startswith("\x00") for k in cats)
            top = {k: v for k, v in cats.most_common() if not k.startswith("\x00")}
            out.update(
                distinct=len(top),
                categories=dict(sorted(top.items())),
                categories_complete=complete,
            )
        return out


class _Profile:
    __slots__ = (
        "columns",
        "end",
        "events",
        "outcomes",
        "outputs",
        "predictions",
        "scored",
        "start",
    )

    def __init__(self) -> None:
        self.outcomes: list[tuple[float, Any, Any]] = []  # (time, output, label)
        self.scored: list[tuple[Any, Any, Any]] = []  # (score, output, label): calibration
        self.events = 0
        self.predictions = 0
        self.start = math.inf
        self.end = -math.inf
        self.columns: dict[str, _Column] = {}
        self.outputs: dict[str, _Column] = {}


class BaselineBuilder:
    """Incremental builder of a :class:`Baseline` (feed events in chunks, then ``build``).

    Parameters
    ----------
    config : DetectionConfig, optional
        Ignored features are left out; forced feature kinds are respected.
    max_values : int
        Numeric values kept per feature for exact quantiles (beyond: decimated).
    """

    def __init__(self, config: DetectionConfig | None = None, *, max_values: int = 4_000_000):
        self.config = config if config is not None else DetectionConfig()
        self.max_values = max_values
        self._profiles: dict[tuple[str, str | None], _Profile] = {}
        self.labels = 0
        self._labels: dict[tuple[str, str], Any] = {}  # (model, prediction_id) -> label
        self._awaiting: dict[tuple[str, str], tuple] = {}  # (model, id) -> (key, output)

    def add(self, events: Iterable[Any]) -> None:
        """Add events. A label event is joined to the prediction with its ``prediction_id``
        (either may come first); a prediction with a top-level ``label`` field carries its
        own ground truth."""
        groups: dict[tuple[str, str | None], list] = {}
        for ev in events:
            if ev.kind == "label":
                self.labels += 1
                self._labels[(ev.model, str(ev.prediction_id))] = ev.label
                continue
            key = (ev.model, ev.model_version)
            g = groups.get(key)
            if g is None:
                g = groups[key] = []
            g.append(ev)
            if len(g) >= _CHUNK:
                self._add_chunk(key, g)
                groups[key] = []
        for key, g in groups.items():
            if g:
                self._add_chunk(key, g)

    def _add_chunk(self, key: tuple[str, str | None], evs: list) -> None:
        prof = self._profiles.get(key)
        if prof is None:
            prof = self._profiles[key] = _Profile()
        settings = self.config.for_model(key[0])
        B = len(evs)
        feats = [e.features for e in evs]
        times = np.array([e.timestamp for e in evs], dtype=np.float64)
        prof.start = min(prof.start, float(times.min()))
        prof.end = max(prof.end, float(times.max()))
        names = set().union(*feats) | set(prof.columns)
        same = sum(map(len, feats)) == len(names) * B
        order = sorted(n for n in names if n not in settings.ignore)
        cols = None
        if same and order:  # every event has every key: columns in one C-level pass
            try:
                rows = list(map(itemgetter(*order), feats))
                cols = list(zip(*rows, strict=True)) if len(order) > 1 else [tuple(rows)]
            except KeyError:
                cols = None
        for j, name in enumerate(order):
            if cols is not None:
                col, absent = list(cols[j]), 0
            else:
                col = [f.get(name) for f in feats]
                absent = B - sum(1 for f in feats if name in f)
            column = prof.columns.get(name)
            if column is None:
                column = prof.columns[name] = _Column()
                if prof.events:  # absent from the earlier events
                    column.classes[0] += prof.events
                    column.classes[1] += prof.events
            column.add(col, absent, self.max_values)
        prof.events += B
        preds = [e for e in evs if e.kind == "prediction"]
        prof.predictions += len(preds)
        for e in preds:
            output = judged_output(e.prediction_raw, e.prediction)
            if e.extra.get("label") is not None:
                prof.outcomes.append((e.timestamp, output, e.extra["label"]))
                prof.scored.append((e.prediction, output, e.extra["label"]))
            elif e.prediction_id is not None:
                self._awaiting[(key[0], e.prediction_id)] = (key, e.timestamp, output, e.prediction)
        if preds:
            for name in ("prediction", "latency_ms"):
                col = [getattr(e, name) for e in preds]
                column = prof.outputs.get(name)
                if column is None:
                    column = prof.outputs[name] = _Column()
                column.add(col, 0, self.max_values)

    def _join_labels(self) -> None:
        """Move the predictions whose label has arrived to their profile's outcomes."""
        labels = self._labels
        for pk in [pk for pk in self._awaiting if pk in labels]:
            key, time, output, score = self._awaiting.pop(pk)
            label = labels.pop(pk)
            self._profiles[key].outcomes.append((time, output, label))
            self._profiles[key].scored.append((score, output, label))

    def build(self) -> Baseline:
        """The profiles of everything added so far."""
        self._join_labels()
        profiles = []
        for (model, version), prof in sorted(
            self._profiles.items(), key=lambda kv: (kv[0][0], kv[0][1] is not None, kv[0][1] or "")
        ):
            settings = self.config.for_model(model)
            features = {
                n: c.profile(settings.feature(n).kind) for n, c in sorted(prof.columns.items())
            }
            entry: dict[str, Any] = {
                "model": model,
                "model_version": version,
                "events": prof.events,
                "predictions": prof.predictions,
                "start": prof.start if prof.events else None,
                "end": prof.end if prof.events else None,
                "features": features,
            }
            for name in ("prediction", "latency_ms"):
                c = prof.outputs.get(name)
                usable = c is not None and (c.n or c.cats)
                entry[name] = (
                    c.profile("numeric" if name == "latency_ms" else None) if usable else None
                )
            entry["outcomes"] = _outcomes_profile(prof.outcomes, settings, self.max_values)
            if entry["outcomes"] is not None and entry["outcomes"]["task"] == "binary":
                cal = calibration_from_rows(prof.scored, settings.decision_threshold)
                if cal is not None:
                    entry["outcomes"]["calibration"] = cal.to_profile()
            profiles.append(entry)
        return Baseline(profiles, labels=self.labels)


def build_baseline(events: Iterable[Any], config: DetectionConfig | None = None) -> Baseline:
    """Build a :class:`Baseline` from training or validation events.

    Examples
    --------
    >>> from driftline.schemas import FeatureEvent
    >>> evs = [FeatureEvent(model="m", timestamp=1.7e9 + i,
    ...                     features={"x": float(i % 10), "c": "ab"[i % 2]}) for i in range(1000)]
    >>> b = build_baseline(evs)
    >>> p = b.profile("m", None)
    >>> p["features"]["x"]["type"], p["features"]["c"]["categories"]
    ('numeric', {'a': 500, 'b': 500})
    >>> Baseline.from_json(b.to_json()).to_json() == b.to_json()
    True
    """
    builder = BaselineBuilder(config)
    batch: list = []
    for ev in events:
        batch.append(ev)
        if len(batch) >= _CHUNK:
            builder.add(batch)
            batch = []
    builder.add(batch)
    return builder.build()


def _outcomes_profile(rows: list, settings: Any, max_values: int) -> dict | None:
    """The labelled outcomes of a profile: task, aggregates and metrics (the error-rate
    reference of ``_outcomes``); for regression also the absolute errors' distribution."""
    if not rows:
        return None
    rows = sorted(rows, key=itemgetter(0))
    judge = Outcomes()
    loss, per = judge.losses(rows, settings.decision_threshold)
    agg = per.sum(axis=0)
    if judge.task is None or not agg[0]:
        return None
    out: dict[str, Any] = {
        "task": judge.task,
        "aggregates": {
            k: int(v) if k not in ("loss", "squared_error") else v
            for k, v in zip(AGGREGATES, agg.tolist(), strict=True)
        },
        "metrics": judge.metrics(agg),
        "unusable": judge.skipped,
        "start": rows[0][0],
        "end": rows[-1][0],
    }
    if judge.task == "regression":
        col = _Column()
        col.add(loss[np.isfinite(loss)].tolist(), 0, max_values)
        out["error"] = col.profile("numeric")
    return out


def _ties(vals: np.ndarray) -> dict:
    """What keeps a rebuilt reference tied as the data are: the exact table of values and
    counts when there are at most :data:`MAX_VALUES` distinct ones (counts, flags, rounded
    scores), else the decimal resolution all values are multiples of (prices in cents)."""
    uniq, counts = np.unique(vals, return_counts=True)
    if len(uniq) <= MAX_VALUES:
        return {"values": {"x": uniq.tolist(), "n": counts.tolist()}}
    for digits in range(0, 7):
        scaled = vals * 10.0**digits
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-9 * np.maximum(1.0, np.abs(scaled))):
            return {"resolution": 10.0**-digits}
    return {}


def _finite(obj: Any) -> Any:
    """JSON-safe copy: non-finite floats become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


class Baseline:
    """Reference profiles per (model, model version); see the module notes.

    Parameters
    ----------
    profiles : list of dict
        One per (model, version), as :meth:`to_json` writes them.
    labels : int
        Label events seen while building (informational).
    """

    def __init__(self, profiles: list[dict], *, labels: int = 0) -> None:
        self.profiles = profiles
        self.labels = labels
        self._index = {(p["model"], p["model_version"]): p for p in profiles}

    def profile(self, model: str, version: str | None) -> dict | None:
        """The profile of ``(model, version)``; else the model's unversioned one, else its
        largest; None for a model the baseline does not know."""
        p = self._index.get((model, version))
        if p is None:
            p = self._index.get((model, None))
        if p is None:
            same = [q for q in self.profiles if q["model"] == model]
            p = max(same, key=lambda q: q["events"]) if same else None
        return p

    def models(self) -> list[str]:
        return sorted({p["model"] for p in self.profiles})

    def to_json(self) -> bytes:
        """Plain, indented, key-sorted JSON (a person can read and diff it)."""
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "labels": self.labels,
            "profiles": _finite(self.profiles),
        }
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"

    @classmethod
    def from_json(cls, data: bytes | str) -> Baseline:
        """Read :meth:`to_json` output.

        Raises
        ------
        ConfigError
            Not JSON, not a driftline baseline, an unsupported version or a malformed
            profile (the message says which).
        """
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"baseline: not JSON ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ConfigError("baseline: not a driftline baseline profile (format field)")
        if doc.get("format_version") != FORMAT_VERSION:
            raise ConfigError(
                f"baseline: unsupported format_version {doc.get('format_version')!r} "
                f"(this build reads {FORMAT_VERSION})"
            )
        profiles = doc.get("profiles")
        if not isinstance(profiles, list):
            raise ConfigError("baseline.profiles: expected a list")
        for i, p in enumerate(profiles):
            where = f"baseline.profiles[{i}]"
            if not isinstance(p, dict) or not isinstance(p.get("model"), str):
                raise ConfigError(f"{where}.model: expected a string")
            if not isinstance(p.get("events"), int) or not isinstance(p.get("features"), dict):
                raise ConfigError(f"{where}: expected 'events' (integer) and 'features' (table)")
            for name, fp in p["features"].items():
                _check_feature(fp, f"{where}.features.{name}")
            for name in ("prediction", "latency_ms"):
                if p.get(name) is not None:
                    _check_feature(p[name], f"{where}.{name}")
            if p.get("outcomes") is not None:
                _check_outcomes(p["outcomes"], f"{where}.outcomes")
        return cls(profiles, labels=int(doc.get("labels") or 0))


def _check_feature(fp: Any, where: str) -> None:
    if not isinstance(fp, dict) or fp.get("type") not in ("numeric", "categorical"):
        raise ConfigError(f"{where}.type: expected 'numeric' or 'categorical'")
    counts = fp.get("counts")
    if not isinstance(counts, dict) or not all(isinstance(counts.get(c), int) for c in CLASSES[:7]):
        raise ConfigError(f"{where}.counts: expected integer counts of {list(CLASSES[:7])}")
    if fp["type"] == "numeric" and "quantiles" in fp:
        q = fp["quantiles"]
        ok = (
            isinstance(q, dict)
            and isinstance(q.get("p"), list)
            and isinstance(q.get("x"), list)
            and len(q["p"]) == len(q["x"]) >= 2
            and all(isinstance(v, (int, float)) for v in q["p"] + q["x"])
        )
        if not ok:
            raise ConfigError(f"{where}.quantiles: expected lists 'p' and 'x' of equal length")
    if fp["type"] == "categorical":
        cats = fp.get("categories")
        if not isinstance(cats, dict) or not all(isinstance(v, int) for v in cats.values()):
            raise ConfigError(f"{where}.categories: expected a table of counts")


def _check_outcomes(op: Any, where: str) -> None:
    if not isinstance(op, dict) or op.get("task") not in ("binary", "classification", "regression"):
        raise ConfigError(f"{where}.task: expected 'binary', 'classification' or 'regression'")
    agg = op.get("aggregates")
    if not isinstance(agg, dict) or not all(
        isinstance(agg.get(k), (int, float)) and agg[k] >= 0 for k in AGGREGATES
    ):
        raise ConfigError(f"{where}.aggregates: expected numbers >= 0 for {list(AGGREGATES)}")
    if op.get("error") is not None:
        _check_feature(op["error"], f"{where}.error")
    if op.get("calibration") is not None:
        Calibration.from_profile(op["calibration"], f"{where}.calibration")


# --------------------------------------------------------------------------- to detector state
def numeric_values(fp: dict) -> np.ndarray | None:
    """Reference values rebuilt from a numeric profile (None if it has none).

    The exact value table when the profile has one (scaled to at most ``_PSEUDO`` values,
    every value kept), else ``min(count, _PSEUDO)`` values at the mid-quantiles of the grid,
    rounded to the profile's resolution (or to integers): tied data stay tied, so the rank
    transform and the bins see the same ties in the reference as in the stream.
    """
    table = fp.get("values")
    if table:
        x = np.array(table["x"], dtype=float)
        c = np.array(table["n"], dtype=float)
        total = c.sum()
        if total <= 0:
            return None
        if total > _PSEUDO:
            c = np.maximum(np.round(c * _PSEUDO / total), 1.0)
        return np.repeat(x, c.astype(np.int64))
    q = fp.get("quantiles")
    if not q or not fp.get("count"):
        return None
    n = int(min(fp["count"], _PSEUDO))
    probs = (np.arange(n) + 0.5) / n
    values = np.interp(probs, np.array(q["p"], dtype=float), np.array(q["x"], dtype=float))
    step = fp.get("resolution") or (1.0 if fp.get("integer") else None)
    if step:
        values = np.round(values / step) * step
    return values


def numeric_feature(
    name: str, values: np.ndarray, span: tuple, settings: Any, count: int | None = None
) -> NumericFeature:
    """A live numeric feature state whose frozen reference is ``values`` (event-time span
    ``span`` = (start, end) of the data they describe; ``count`` the size of the data they
    stand for, when ``values`` is a rebuilt sample of it)."""
    f = NumericFeature(name)
    f.reference = NumericReference.build(
        values, span[0], span[1], k=settings.cusum_k, nbins=settings.bins
    )
    if count is not None:
        f.reference.n = int(count)
    f.ring = BlockRing(settings.window_blocks, settings.bins, 4)
    return f


def feature_from_profile(name: str, fp: dict, settings: Any, forced: str | None) -> Any:
    """A live feature state whose frozen reference is the profile (None if unusable).

    ``fp["start"]`` and ``fp["end"]`` (the profile's event-time span) become the reference
    window's span in alerts.
    """
    kind = fp["type"]
    if forced is not None and forced != kind:
        return None
    start = fp.get("start") or 0.0
    end = fp.get("end") or start
    if kind == "numeric":
        values = numeric_values(fp)
        if values is None:
            return None
        return numeric_feature(name, values, (start, end), settings, int(fp["count"]))
    cats = fp.get("categories") or {}
    total = int(fp.get("count") or 0)
    if not total:
        return None
    f = CategoricalFeature(name, settings.heavy_hitters)
    f.warm = dict(cats)
    f.warm_n = total
    f.warm_span = [start, end]
    f._freeze(settings, settings.block)
    return f


def copy_reference(src: Any, settings: Any) -> Any:
    """A fresh feature state with the frozen reference of ``src`` (a model version's outputs)."""
    if src.kind == "numeric":
        f = NumericFeature(src.name)
        f.reference = NumericReference.from_state(src.reference.to_state())
        f.ring = BlockRing(settings.window_blocks, settings.bins, 4)
        return f
    f = CategoricalFeature(src.name, settings.heavy_hitters)
    f.warm = dict(zip(src.categories, src.ref_counts[:-1].tolist(), strict=True))
    f.warm_n = int(src.ref_n)
    f.warm_span = list(src.ref_span)
    f._freeze(settings, settings.block)
    return f
