"""How close each feature is to firing, and what it looks like: the data behind the pictures.

The live page of a worker and the HTML report of a replay draw the same things: per feature,
its drift statistic against the threshold that would fire it, the reference and current
distributions, and the statistic over time. Both read them here, from the detectors' own
state, so the picture cannot disagree with the alerts: the threshold drawn is the one the
detector uses.

One number per feature, ``score``, puts detectors of different scales on one axis: the
largest, over the feature's enabled drift detectors, of

- ``cusum / h`` for the location and spread CUSUMs (``h`` from the calibrated false-alarm
  rate, ``_cusum.cusum_threshold``), and
- ``log(p) / log(alpha)`` for the windowed chi-square tests (shape, category frequencies),
  with ``alpha`` the per-block significance of ``_policy.window_alpha``. The page computes it
  from the window's blocks so far, also before the window is full (the detector waits for a
  full window): after a CUSUM fires and restarts, a persisting change stays visible here.

``score >= 1`` is where the detector fires (a CUSUM that fires restarts at 0, so a firing
feature is seen by its incident state, ``state == "firing"``). Schema and data-quality tests
are not scored (their alerts show as the incident). Reading the state costs a few vectorised
numpy calls per stream; nothing here runs on the hot path.

:class:`ScoreHistory` keeps a bounded series of scores (and realized label metrics) per
stream, fed by the caller at times of its choosing (event time, not the wall clock): a
sliding window for a worker, or a whole log compacted by merging neighbours for a replay.
It is plain floats in memory, never pickled and not part of the detector state.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._categorical import OTHER
from ._cusum import cusum_threshold
from ._homogeneity import chi2_homogeneity
from ._policy import window_alpha

__all__ = [
    "ScoreHistory",
    "alert_row",
    "detail_document",
    "feature_detail",
    "firing_count",
    "history_key",
    "history_values",
    "record_model",
    "stream_label",
    "stream_rows",
]

_CUSUM_NAMES = ("mean_up", "mean_down", "scale_up", "scale_down")
_CUSUM_MASK = ("mean", "mean", "scale", "scale")
_NUMERIC_DEFAULT = ("mean", "scale", "shape")
_TINY = 1e-300
#: Bars of a categorical distribution shown (the rest are pooled in the reference's OTHER).
_MAX_CATEGORIES = 24


def stream_label(version: str | None, segment: dict | None) -> str:
    """A stable, readable key of one model stream: ``v3`` or ``v3 region=eu``."""
    parts = [version if version is not None else "-"]
    if segment:
        parts += [f"{k}={v}" for k, v in sorted(segment.items())]
    return " ".join(parts)


def _columns(st: Any) -> list[tuple[str, str, Any, Any, tuple[str, ...]]]:
    """(name, role, state, policy, enabled detectors) of every scored column of a stream."""
    out = []
    settings = st.settings
    for name in sorted(set(st.features) | set(st.policies)):
        f = st.features.get(name)
        mask: tuple[str, ...] = ()
        if f is not None:
            mask = _NUMERIC_DEFAULT if f.kind == "numeric" else ("frequency",)
            chosen = settings.feature(name).detectors
            if chosen is not None:
                mask = tuple(d for d in mask if d in chosen)
        out.append((name, "feature", f, st.policies.get(name), mask))
    for name, f in sorted(st.outputs.items()):
        mask = _NUMERIC_DEFAULT if f.kind == "numeric" else ("frequency",)
        out.append((name, "output", f, st.out_policies.get(name), mask))
    oc = st.outcomes
    if oc.error.n:
        out.append(("label_error", "labels", oc.error, oc.policy, ("mean", "shape")))
    return out


def _chi2_pvalues(pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[float]:
    """P-values of many (reference, current) count vectors in one call (zero-padded: cells
    empty in both are dropped by the test, so the padding changes nothing)."""
    width = max(len(r) for r, _ in pairs)
    ref = np.zeros((len(pairs), width))
    cur = np.zeros((len(pairs), width))
    for j, (r, c) in enumerate(pairs):
        ref[j, : len(r)] = r
        cur[j, : len(c)] = c
    return np.atleast_1d(chi2_homogeneity(ref, cur)[1]).tolist()


def _scores(cols: list[tuple], rate: float, block: int) -> dict[int, tuple]:
    """(score, detector, value, threshold) of every live column, vectorised per stream."""
    live = [i for i, c in enumerate(cols) if c[2] is not None and c[2].live]
    num = [i for i in live if cols[i][2].kind == "numeric"]
    out: dict[int, tuple] = {}
    if num:
        feats = [cols[i][2] for i in num]
        cus = np.array([f.cusum for f in feats], dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            h = cusum_threshold(np.array([f.reference.theta for f in feats]), rate / 2.0)
            ratio = np.where(np.isfinite(h) & (h > 0), cus / h, 0.0)
        on = np.array([[d in cols[i][4] for d in _CUSUM_MASK] for i in num], dtype=bool)
        ratio = np.where(on, ratio, 0.0)
        best = ratio.argmax(axis=1).tolist()
        for j, i in enumerate(num):
            k = best[j]
            out[i] = (float(ratio[j, k]), _CUSUM_NAMES[k], float(cus[j, k]), float(h[j, k]))
    tested = []  # windowed chi-square tests: numeric shape, categorical frequencies
    for i in live:
        f, mask = cols[i][2], cols[i][4]
        name = "shape" if f.kind == "numeric" else "frequency"
        if name in mask and f.ring.filled:
            ref = f.reference.bins if f.kind == "numeric" else f.ref_counts
            tested.append((i, name, ref, f.ring.counts()))
        elif i not in out:
            out[i] = (0.0, name, None, None)
    if tested:
        alpha = window_alpha(rate, block)
        log_alpha = math.log(alpha)
        pvalues = _chi2_pvalues([(r, c) for _, _, r, c in tested])
        for (i, name, _, _), p in zip(tested, pvalues, strict=True):
            score = math.log(max(p, _TINY)) / log_alpha
            if i not in out or score > out[i][0]:
                out[i] = (score, name, p, alpha)
    return out


def firing_count(st: Any) -> int:
    """Columns of a stream with an incident (what :func:`stream_rows` marks ``firing``)."""
    return sum(1 for c in _columns(st) if c[3] is not None and c[3].active)


def stream_rows(st: Any) -> list[dict]:
    """One row per scored column of a model stream (features, outputs, the label error).

    Each row: ``name``, ``role`` (feature, output, labels), ``kind`` (numeric, categorical or
    None while unknown), ``score`` (see the module notes; None during the warm-up),
    ``detector``, ``value`` and ``threshold`` of the detector closest to firing (for the
    chi-square tests the p-value and the significance), ``state`` (``warmup``, ``ok``,
    ``firing``), ``alert`` (the firing alert's id) and ``severity``.
    """
    cols = _columns(st)
    scores = _scores(cols, st.rate_per_unit(), st.settings.block)
    rows = []
    for i, (name, role, f, pol, _) in enumerate(cols):
        sc = scores.get(i)
        active = pol.active if pol is not None else None
        rows.append(
            {
                "name": name,
                "role": role,
                "kind": None if f is None else f.kind,
                "score": None if sc is None else round(sc[0], 4),
                "detector": None if sc is None else sc[1],
                "value": None if sc is None else sc[2],
                "threshold": None if sc is None else sc[3],
                "state": "firing" if active else ("ok" if sc is not None else "warmup"),
                "alert": active,
                "severity": (pol.severity or None) if active else None,
            }
        )
    return rows


def _column(st: Any, name: str) -> Any:
    if name == "label_error" and st.outcomes.error.n:
        return st.outcomes.error
    return st.features.get(name) or st.outputs.get(name)


def feature_detail(st: Any, name: str) -> dict | None:
    """Reference and current distribution of one column (None if the stream has no such one).

    Numeric: ``edges`` are the reference's quantiles at the equiprobable bin boundaries the
    shape test uses, ``reference`` and ``current`` the fractions of values per bin (the
    reference's by construction about ``1 / bins`` each; ``current`` is the detectors' window
    of the last blocks). Categorical: ``categories`` (the reference's, then OTHER), with the
    same two fraction lists. Before the reference is complete only the summary is given.
    """
    f = _column(st, name)
    if f is None:
        return None
    out: dict[str, Any] = {"name": name, "kind": f.kind, "summary": f.summary()}
    if not f.live or f.ring is None:
        return out
    cur = f.ring.counts().astype(np.float64)
    n_cur = float(cur.sum())
    if f.kind == "numeric":
        ref = f.reference
        k = len(ref.bins)
        edges = np.interp(np.linspace(0.0, 1.0, k + 1), ref.grid_p, ref.grid_x)
        rb = ref.bins.astype(np.float64)
        out["edges"] = edges.tolist()
        out["reference"] = (rb / max(rb.sum(), 1.0)).tolist()
    else:
        rb = f.ref_counts.astype(np.float64)
        names = [*f.categories, OTHER]
        order = np.argsort(-(rb + cur), kind="stable")[:_MAX_CATEGORIES]
        out["categories"] = [names[i] for i in order.tolist()]
        out["reference"] = (rb[order] / max(rb.sum(), 1.0)).tolist()
        cur = cur[order]
    out["current"] = (cur / max(n_cur, 1.0)).tolist()
    out["current_count"] = int(n_cur)
    return out


def _merge(name: str, old: float | None, new: float | None) -> float | None:
    """Two values of one series in one point: scores keep the larger (a near miss stays
    visible), ``metric:`` series (realized label metrics) the later."""
    if new is None:
        return old
    if old is None or name.startswith("metric:"):
        return new
    return new if new > old else old


def history_values(stream: dict) -> dict[str, float | None]:
    """The point a stream's view (``Monitor.page_view``) adds to its history: each row's
    score, and each realized label metric of the current window as ``metric:NAME``."""
    out: dict[str, float | None] = {r["name"]: r["score"] for r in stream["rows"]}
    for name, v in (stream.get("metrics") or {}).items():
        if name != "count" and isinstance(v, (int, float)):
            out["metric:" + name] = round(float(v), 4)
    return out


class ScoreHistory:
    """Bounded series of named values per stream, on one shared time axis per stream.

    ``record(key, t, values)`` adds a point at time ``t`` (seconds; the caller's event time).
    Points closer than ``step`` seconds to the last one are merged into it (the larger value
    is kept: a bar that nearly fired stays visible). With ``compact=False`` (a worker) the
    oldest points drop once ``points`` are kept; with ``compact=True`` (a whole replay) the
    step doubles and neighbours merge, so the series always covers the whole log.
    """

    def __init__(self, points: int = 240, step: float = 1.0, *, compact: bool = False) -> None:
        if points < 2 or not step > 0:
            raise ValueError("history: points >= 2 and step > 0")
        self.points = points
        self.step = float(step)
        self.compact = compact
        self._series: dict[str, tuple[list[float], dict[str, list]]] = {}

    def record(self, key: str, t: float, values: dict[str, float | None]) -> None:
        times, series = self._series.setdefault(key, ([], {}))
        if times and t - times[-1] < self.step:
            i = len(times) - 1
            for name, v in values.items():
                col = series.get(name)
                if col is None:
                    col = series[name] = [None] * len(times)
                col[i] = _merge(name, col[i], v)
            return
        times.append(float(t))
        n = len(times)
        for name, col in series.items():
            col.append(values.get(name))
        for name, v in values.items():
            if name not in series:
                series[name] = [None] * (n - 1) + [v]
        if n > self.points:
            if self.compact:
                self._halve()
            else:
                del times[0]
                for col in series.values():
                    del col[0]

    def _halve(self) -> None:
        """Double the step and merge neighbouring points of every series (a replay)."""
        self.step *= 2.0
        for times, series in self._series.values():
            times[:] = times[::2]
            for name, col in series.items():
                later = col[1::2] + [None] * (len(col) % 2)
                series[name] = [_merge(name, a, b) for a, b in zip(col[::2], later, strict=True)]

    def forget(self, prefix: str) -> None:
        """Drop every series whose key starts with ``prefix`` (a model revoked)."""
        for key in [k for k in self._series if k.startswith(prefix)]:
            del self._series[key]

    def view(self, key: str, names: list[str] | None = None) -> dict:
        """``{"t": [...], "series": {name: [...]}}`` of one stream (``names``: only those)."""
        times, series = self._series.get(key, ([], {}))
        picked = series if names is None else {n: series[n] for n in names if n in series}
        return {"t": list(times), "series": {n: list(c) for n, c in picked.items()}}


def history_key(model: str, stream: str) -> str:
    """Key of a model stream's series in a :class:`ScoreHistory`."""
    return f"{model}\x1f{stream}"


#: Alert kinds about the label error (they name no feature): the page's ``label_error`` row.
_LABEL_KINDS = frozenset({"concept_drift", "performance"})


def alert_row(alert: Any) -> dict:
    """The fields of an alert the page shows (not its statistics: they can be long), and
    ``column``: the row of :func:`stream_rows` it belongs to (its feature, ``label_error``
    for the label-error kinds, else its kind)."""
    column = alert.feature
    if column is None:
        column = "label_error" if alert.kind in _LABEL_KINDS else alert.kind
    return {
        "column": column,
        "alert_id": alert.alert_id,
        "status": alert.status,
        "kind": alert.kind,
        "severity": alert.severity,
        "model": alert.model,
        "model_version": alert.model_version,
        "segment": alert.segment,
        "feature": alert.feature,
        "detector": alert.detector,
        "event_time": alert.event_time,
        "message": alert.message,
    }


def record_model(history: ScoreHistory, model: str, streams: list[dict], t: float) -> None:
    """Add one point per stream of ``streams`` (``Monitor.page_view(model)``) at time ``t``."""
    for st in streams:
        history.record(history_key(model, st["key"]), t, history_values(st))


def detail_document(
    monitor: Any,
    history: ScoreHistory | None,
    model: str,
    stream: str,
    name: str,
    alerts: list[dict],
) -> dict | None:
    """What the page shows for one column: its distributions (``Monitor.feature_detail``),
    its statistic's history with the stream's label metrics (unless ``history`` is None: a
    report keeps one history per stream), and its alerts (``alerts``: :func:`alert_row`
    dicts of the model, oldest first). None when there is no such column."""
    detail = monitor.feature_detail(model, stream, name)
    if detail is None:
        return None
    mine = [
        a
        for a in alerts
        if a["column"] == name and stream_label(a["model_version"], a["segment"]) == stream
    ]
    out = {"detail": detail, "alerts": mine}
    if history is not None:
        key = history_key(model, stream)
        names = [name, *[n for n in history.view(key)["series"] if n.startswith("metric:")]]
        out["history"] = history.view(key, names)
    return out
