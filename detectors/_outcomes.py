"""Concept drift and performance: predictions joined with their delayed labels.

Labels arrive late and some never. A model stream remembers its predictions that carry a
``prediction_id`` (time, output, segment) for ``label_ttl`` seconds of event time, at most
``max_pending_labels`` of them (the oldest are dropped first and counted as evicted); a label
joins its prediction by id, a label older than the time-to-live or without a prediction is
counted, not used. Memory is therefore bounded by the configuration.

Each joined pair becomes an *outcome* with a loss: for classification the 0/1 error (a score
is thresholded at 0.5 against 0/1 or boolean labels), for regression the absolute error. The
losses of ``outcome_block`` outcomes at a time feed a numeric feature state named ``error``
with the same detectors as the inputs (``_numeric``): rank CUSUMs with budget-derived
thresholds, confirmed by a two-sample test of the error rates (reference against the
outcomes after the change point) - the Bernoulli CUSUM is the optimal detector of a change of
error rate, and on 0/1 losses it plays the part of ADWIN/DDM with a calibrated false-alarm
rate - and a windowed test on the last ``window_blocks`` outcome blocks. A CUSUM alarm whose
error rose is a ``concept_drift``; a windowed one a ``performance`` alarm. Falls of the error
are not alarms. Windowed metrics (accuracy, precision, recall, F1; MAE, RMSE) of the
reference and of the current window explain each alert and feed the status view.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from ._numeric import NumericFeature, update_numeric
from ._policy import FeaturePolicy
from .exceptions import StateError

__all__ = ["LabelJoin", "Outcomes"]

_NUM = (int, float)
# aggregate columns per outcome block
_N, _TP, _FP, _FN, _TN, _ABS, _SQ = range(7)


class LabelJoin:
    """Predictions waiting for their labels, bounded in time-to-live and in count."""

    __slots__ = ("cap", "counts", "order", "table", "ttl")

    def __init__(self, ttl: float, cap: int) -> None:
        self.ttl = ttl
        self.cap = cap
        self.table: dict[str, tuple] = {}
        self.order: deque = deque()
        self.counts = {"remembered": 0, "joined": 0, "expired": 0, "evicted": 0}

    def add(self, pid: str, time: float, prediction: Any, segment: Any) -> None:
        table = self.table
        table[pid] = (time, prediction, segment)
        self.order.append((time, pid))
        self.counts["remembered"] += 1
        if len(self.order) > self.cap:
            self._evict()

    def add_many(self, pids: list, times: list, predictions: list, segments: list) -> None:
        """:meth:`add` for a run of predictions (``None`` ids are skipped), in bulk where
        that leaves exactly the state of adding one by one.

        In bulk means C-level dict and deque updates, then evicting the oldest entries that
        exceed the cap. That is exact for the whole run when every queued entry is a distinct
        waiting id (no entry left behind by a joined, expired or re-sent id, which must be
        passed over in order) and the run's ids are new and distinct: the queue is then
        first in, first out, and each add evicts its oldest entry. Otherwise the part of
        the run that fits below the cap goes in bulk (nothing is evicted, repeated ids are
        exact) and the rest one by one.
        """
        table, order, cap = self.table, self.order, self.cap
        n = len(pids)
        if None in pids:
            m = 0
        elif len(order) == len(table) and len(set(pids)) == n and table.keys().isdisjoint(pids):
            m = n
        else:
            m = max(0, min(cap - len(table), 2 * cap - len(order), n))
        if m:
            head = pids if m == n else pids[:m]
            table.update(zip(head, zip(times, predictions, segments, strict=True), strict=False))
            order.extend(zip(times, head, strict=False))
            self.counts["remembered"] += m
            over = len(table) - cap
            if over > 0:
                popleft = order.popleft
                for pid in [popleft()[1] for _ in range(over)]:
                    del table[pid]
                self.counts["evicted"] += over
        add = self.add
        for i in range(m, n):
            if pids[i] is not None:
                add(pids[i], times[i], predictions[i], segments[i])

    def _evict(self) -> None:
        order, table = self.order, self.table
        while len(table) > self.cap and order:
            _, pid = order.popleft()
            if table.pop(pid, None) is not None:
                self.counts["evicted"] += 1
        while len(order) > 2 * self.cap and order:  # joined ids left in the queue
            t, pid = order.popleft()
            if pid in table:
                order.appendleft((t, pid))
                break

    def expire(self, now: float) -> None:
        """Forget predictions older than the time-to-live at event time ``now``."""
        cutoff = now - self.ttl
        order, table = self.order, self.table
        while order and order[0][0] < cutoff:
            _, pid = order.popleft()
            entry = table.get(pid)
            if entry is not None and entry[0] < cutoff:
                del table[pid]
                self.counts["expired"] += 1

    def take(self, pid: str, time: float) -> tuple | None:
        """The prediction a label at ``time`` joins (removed), or None."""
        entry = self.table.pop(pid, None)
        if entry is None:
            return None
        if time - entry[0] > self.ttl:
            self.counts["expired"] += 1
            return None
        self.counts["joined"] += 1
        return entry

    def to_state(self) -> dict:
        pids = list(self.table)
        return {
            "pids": pids,
            "times": np.array([self.table[p][0] for p in pids], dtype=np.float64),
            "predictions": [self.table[p][1] for p in pids],
            "segments": [self.table[p][2] for p in pids],
            "order": [p for _, p in self.order],
            "order_times": np.array([t for t, _ in self.order], dtype=np.float64),
            "counts": self.counts,
        }

    @classmethod
    def from_state(cls, s: dict, ttl: float, cap: int) -> LabelJoin:
        j = cls(ttl, cap)
        times = s["times"].tolist()
        j.table = {
            p: (t, pr, sg)
            for p, t, pr, sg in zip(s["pids"], times, s["predictions"], s["segments"], strict=True)
        }
        j.order = deque(zip(s["order_times"].tolist(), s["order"], strict=True))
        j.counts = {"remembered": 0, **s["counts"]}
        return j


def _truth(v: Any) -> bool | None:
    if v is True or v is False:
        return v
    if v.__class__ in _NUM and v in (0, 1):
        return bool(v)
    if v.__class__ is str and v.lower() in ("0", "1", "true", "false"):
        return v.lower() in ("1", "true")
    return None


class Outcomes:
    """Error stream, windowed metrics and the incident state of one model stream's labels."""

    def __init__(self) -> None:
        self.task: str | None = None  # "binary", "classification" or "regression"
        self.error = NumericFeature("error")
        self.policy = FeaturePolicy()
        self.buf: list[tuple[float, Any, Any]] = []
        self.seq = 0
        self.blocks = 0
        self.skipped = 0
        self.ref = np.zeros(7)
        self.window: np.ndarray | None = None
        self.pos = 0
        self.collecting = True  # the error stream's reference is being collected

    # ------------------------------------------------------------------ losses
    def _decide(self, pred: Any, label: Any) -> str:
        lt = _truth(label)
        if label.__class__ is str and lt is None:
            return "classification"
        if lt is not None and (
            pred is True
            or pred is False
            or (pred.__class__ in _NUM and 0.0 <= pred <= 1.0)
            or _truth(pred) is not None
        ):
            return "binary"
        if label.__class__ is int and pred.__class__ is int:
            return "classification"
        return "regression"

    def losses(self, rows: list[tuple[float, Any, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """Loss per outcome (nan when unusable) and the block's metric aggregates."""
        agg = np.zeros(7)
        loss = np.full(len(rows), np.nan)
        task = self.task
        for i, (_, pred, label) in enumerate(rows):
            if pred is None or label is None:
                continue
            if task is None:
                task = self.task = self._decide(pred, label)
            if task == "binary":
                truth = _truth(label)
                guess = pred >= 0.5 if pred.__class__ in _NUM else _truth(pred)
                if truth is None or guess is None:
                    continue
                loss[i] = float(guess != truth)
                agg[_TP + (0 if guess and truth else 1 if guess else 2 if truth else 3)] += 1
            elif task == "classification":
                loss[i] = float(str(pred) != str(label))
            else:
                if pred.__class__ not in _NUM or label.__class__ not in _NUM:
                    continue
                e = float(pred) - float(label)
                if not math.isfinite(e):
                    continue
                loss[i] = abs(e)
                agg[_SQ] += e * e
        ok = np.isfinite(loss)
        agg[_N] = ok.sum()
        agg[_ABS] = loss[ok].sum()
        self.skipped += int(len(rows) - agg[_N])
        return loss, agg

    # ------------------------------------------------------------------ metrics
    def metrics(self, agg: np.ndarray) -> dict:
        """Accuracy, precision, recall, F1 (classification) or MAE, RMSE (regression)."""
        agg = [float(v) for v in agg]
        n = agg[_N]
        if n <= 0:
            return {"count": 0}
        out: dict[str, Any] = {"count": int(n)}
        if self.task == "regression":
            out["mae"] = agg[_ABS] / n
            out["rmse"] = math.sqrt(agg[_SQ] / n)
            return out
        out["accuracy"] = 1.0 - agg[_ABS] / n
        if self.task == "binary":
            tp, fp, fn = agg[_TP], agg[_FP], agg[_FN]
            prec = tp / (tp + fp) if tp + fp else None
            rec = tp / (tp + fn) if tp + fn else None
            out["precision"] = prec
            out["recall"] = rec
            out["f1"] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
        return out

    def current(self) -> np.ndarray:
        return np.zeros(7) if self.window is None else self.window.sum(axis=0)

    # ------------------------------------------------------------------ processing
    def run(self, settings: Any, rate: float) -> list:
        """Process the buffered outcomes as one block; return the error feature's signals."""
        rows, self.buf = self.buf, []
        if self.window is None:
            self.window = np.zeros((settings.window_blocks, 7))
        loss, agg = self.losses(rows)
        times = np.array([r[0] for r in rows], dtype=np.float64)
        was_live = self.error.live
        (signals,) = update_numeric(
            [self.error], loss[None, :], times, self.seq, settings, rate, [("mean", "shape")]
        )
        if not was_live:  # a (new) reference: its metrics are the "before" of the alerts
            if not self.collecting:
                self.ref = np.zeros(7)
                self.collecting = True
            self.ref += agg
        else:
            self.collecting = False
            self.window[self.pos % len(self.window)] = agg
            self.pos += 1
        self.seq += len(rows)
        self.blocks += 1
        ref_m, cur_m = self.metrics(self.ref), self.metrics(self.current())
        kept = []
        for s in signals:
            st = s.statistics
            before = st.get("reference_mean", st.get("before"))
            after = st.get("current_mean", st.get("after"))
            if not after > before:
                continue  # the model got better: not an alarm
            s.extra["kind"] = "concept_drift" if s.detector in ("mean", "scale") else "performance"
            s.extra["detector"] = "error_rate" if s.detector != "shape" else "window_metrics"
            st["reference_metrics"] = ref_m
            st["current_metrics"] = cur_m
            st["task"] = self.task
            s.message = self._message(s, before, after, ref_m, cur_m)
            kept.append(s)
        return kept

    def _message(self, s, before, after, ref_m, cur_m) -> str:
        if self.task == "regression":
            what = f"mean absolute error rose from {before:.4g} to {after:.4g}"
            extra = ""
            if "rmse" in cur_m and "rmse" in ref_m:
                extra = f" (RMSE {ref_m['rmse']:.4g} -> {cur_m['rmse']:.4g} in the window)"
        else:
            what = f"error rate rose from {before:.1%} to {after:.1%}"
            extra = ""
            if ref_m.get("f1") is not None and cur_m.get("f1") is not None:
                extra = f" (F1 {ref_m['f1']:.3f} -> {cur_m['f1']:.3f} in the window)"
        n = s.window["current"]["count"]
        if s.extra["kind"] == "concept_drift":
            head = "Concept drift"
            how = (
                f"CUSUM {s.statistics['score']:.1f} over threshold {s.statistics['threshold']:.1f}"
            )
        else:
            head = "Performance drop"
            how = f"windowed test p={s.statistics['p_value']:.2g}"
        return f"{head}: the model's {what} over the last {n} labelled predictions{extra}; {how}."

    def summary(self) -> dict:
        return {
            "task": self.task,
            "outcomes": self.seq,
            "buffered": len(self.buf),
            "skipped": self.skipped,
            "reference": self.metrics(self.ref),
            "window": self.metrics(self.current()),
            "alert": self.policy.active,
        }

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict:
        return {
            "task": self.task,
            "error": self.error.to_state(),
            "policy": self.policy.to_state(),
            "buf_times": np.array([r[0] for r in self.buf], dtype=np.float64),
            "buf": [[r[1], r[2]] for r in self.buf],
            "counts": np.array(
                [self.seq, self.blocks, self.skipped, self.pos, self.collecting], dtype=np.int64
            ),
            "ref": self.ref,
            "window": self.window,
        }

    @classmethod
    def from_state(cls, s: dict) -> Outcomes:
        o = cls()
        o.task = s["task"]
        if s["error"]["kind"] != "numeric":
            raise StateError("state: bad error stream state")
        o.error = NumericFeature.from_state(s["error"])
        o.policy = FeaturePolicy.from_state(s["policy"])
        o.buf = [(t, p, lab) for t, (p, lab) in zip(s["buf_times"].tolist(), s["buf"], strict=True)]
        o.seq, o.blocks, o.skipped, o.pos, collecting = (int(v) for v in s["counts"])
        o.collecting = bool(collecting)
        o.ref = s["ref"]
        o.window = s["window"]
        return o
