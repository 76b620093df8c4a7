"""Concept drift and performance: predictions joined with their delayed labels.

Labels arrive late and some never. A model stream remembers its predictions that carry a
``prediction_id`` (time, output, segment) for ``label_ttl`` seconds of event time, and while
it is among its ``max_pending_labels`` latest predictions (older ones are dropped an eighth of
that at a time and counted as evicted); a label joins its prediction by id, a label older than
the time-to-live or without a prediction is counted, not used. Memory is therefore bounded by
the configuration.

Each joined pair becomes an *outcome* with a loss: for classification the 0/1 error (the
predicted class is the prediction's ``label`` when it has one, else a score is a positive at
``decision_threshold``, 0.5 by default), for regression the absolute error. Outcomes are
processed ``outcome_block`` at a time. Classification errors feed a bank of Bernoulli
CUSUMs against the reference error rate (``_errorrate``: likelihood-ratio steps, threshold
``log(m / rate)`` from the budget, each alarm confirmed by a two-sample test of the
reference errors against those since the change point): a ``concept_drift``. Regression
errors feed the rank CUSUMs of a numeric feature state named ``error`` (``_numeric``). Both
also run the windowed test on the last ``window_blocks`` outcome blocks: a ``performance``
alarm. Falls of the error are not alarms. The reference is the labelled outcomes of the
baseline profile when it has them, else the first ``warmup`` outcomes of the live stream.
Metrics (accuracy, precision, recall, F1; MAE, RMSE) of the reference, of the outcomes since
the change point and of the current window explain each alert and feed the status view.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from itertools import accumulate, chain, compress, pairwise, repeat
from typing import Any

import numpy as np

from ._errorrate import ErrorRateCusum, RateCrossing, confirm_pvalue
from ._numeric import NumericFeature, update_numeric
from ._policy import FeaturePolicy
from ._signal import Signal
from .exceptions import StateError

__all__ = [
    "AGGREGATES",
    "EXPIRED",
    "RESOLVE_BLOCKS",
    "UNITS",
    "ErrorView",
    "LabelJoin",
    "Outcomes",
    "as_truth",
    "judged_output",
    "outcome_metrics",
]

#: What :meth:`LabelJoin.take` returns for a label later than the time-to-live.
EXPIRED = object()

_NUM = (int, float)
# aggregate columns per outcome block
_N, _TP, _FP, _FN, _TN, _ABS, _SQ = range(7)
#: Their names, as a baseline profile stores them.
AGGREGATES = ("count", "tp", "fp", "fn", "tn", "loss", "squared_error")
#: Reference outcomes rebuilt from a baseline's error rate (as for features, ``_baseline``).
_PSEUDO = 20_000


#: Positions 0, 1, 2, ... as int objects shared by every generation's index (grown on demand),
#: so that an index holds no int of its own. Grown without a lock: a process drives its
#: monitors from one thread (a worker's event loop, replay's loop).
_POSITIONS: list[int] = []


class _Generation:
    """Predictions remembered one after another, in columns, with an id index built on demand.

    Why columns, and why the index waits: a join holds up to 100,000 predictions at a time,
    and every small object it keeps alive for that long (an id string, a tuple, a float)
    leaves a hole in the allocator's pools when it goes, so that the next events' values land
    in cold memory. Measured in replay, keeping the ids as strings in a dict cost about
    0.8 us per event. So times and float outputs are ``array('d')`` columns, the ids one
    concatenated string per run (with their lengths), and the dict from id to position is
    built the first time a label looks in this generation: predictions that never see a
    label are never indexed. Segments are coded: each distinct segment is kept once per
    generation, and a position holds its code (keeping every event's segment dict cost
    another 1 us per event in replay). Only outputs other than floats (class names, ints,
    booleans, None) are kept as objects, by position.

    A position is waiting until a label takes it. The index maps an id to its last position
    while that one is not taken, so a re-sent id supersedes its earlier copy, which still
    counts as waiting (and then as evicted or expired): every prediction remembered ends up
    counted exactly once, as joined, expired or evicted.
    """

    __slots__ = (
        "_index",
        "_lengths",
        "_text",
        "latest",
        "other",
        "predictions",
        "seg_codes",
        "seg_index",
        "seg_values",
        "start",
        "taken",
        "times",
    )

    def __init__(self, start: int) -> None:
        self.start = start  # index of its first prediction among all remembered
        self.latest = -math.inf  # its latest event time
        self._text: list[str] = []  # the ids of each run, concatenated
        self._lengths = array("q")  # the length of each id
        self._index: dict[str, int] | None = None  # id -> last position, once a label looks
        self.taken = bytearray()  # 1 at the positions a label took (sized with the index)
        self.times = array("d")
        self.predictions = array("d")  # float outputs (nan where ``other`` has the output)
        self.other: dict[int, Any] = {}  # position -> an output that is not a float
        self.seg_codes: array | None = None  # per position, -1 for none; None: none so far
        self.seg_index: dict[Any, int] = {None: -1}  # a segment's items (or id) -> its code
        self.seg_values: list[dict] = []  # code -> segment

    def __len__(self) -> int:
        """Positions not taken (copies superseded by a re-sent id included)."""
        return len(self.times) - self.taken.count(1)

    def extend(self, pids: list, times: list, predictions: list, segments: list) -> None:
        a = len(self.times)
        b = a + len(pids)
        if len(_POSITIONS) < b:
            _POSITIONS.extend(range(len(_POSITIONS), 2 * b))
        try:
            self._text.append("".join(pids))
        except TypeError:  # an id that is not a string (outside the contract): its str
            pids = list(map(str, pids))
            self._text.append("".join(pids))
        self._lengths.extend(map(len, pids))
        if self._index is not None:
            self._index.update(zip(pids, _POSITIONS[a:b], strict=True))
            self.taken += bytes(b - a)
        self.times.extend(times)
        if predictions[0].__class__ is float and len(set(map(type, predictions))) == 1:
            self.predictions.extend(predictions)
        else:
            self.other.update(
                (i, p) for i, p in enumerate(predictions, a) if p.__class__ is not float
            )
            self.predictions.extend([p if p.__class__ is float else math.nan for p in predictions])
        if segments.count(None) != len(segments):
            self._code_segments(a, segments)
        elif self.seg_codes is not None:
            self.seg_codes.extend(repeat(-1, b - a))
        last = max(times)
        if last != last:  # a nan time (outside the contract) must not hide the others
            last = max([t for t in times if t == t], default=-math.inf)
        self.latest = max(self.latest, last)

    def _code_segments(self, a: int, segments: list) -> None:
        if self.seg_codes is None:
            self.seg_codes = array("i", [-1]) * a
        present = [sg for sg in segments if sg is not None]
        if (
            set(map(type, present)) == {dict}
            and set(map(type, chain.from_iterable(map(dict.keys, present)))) == {str}
            and set(map(type, chain.from_iterable(map(dict.values, present)))) == {str}
        ):  # the contract's segments: equal ones share one code
            keys = [None if sg is None else tuple(sg.items()) for sg in segments]
        else:  # other values (1, True and "1" must stay apart): one code per object
            keys = [None if sg is None else id(sg) for sg in segments]
        distinct = dict(zip(keys, segments, strict=True))
        index = self.seg_index
        for key, sg in distinct.items():
            if key not in index:
                index[key] = len(self.seg_values)
                self.seg_values.append(sg)
        self.seg_codes.extend(map(index.__getitem__, keys))

    def segment(self, pos: int) -> dict | None:
        code = -1 if self.seg_codes is None else self.seg_codes[pos]
        return None if code < 0 else self.seg_values[code]

    def ids(self) -> list[str]:
        """The id of every position."""
        text = "".join(self._text)
        ends = list(accumulate(self._lengths))
        return list(map(text.__getitem__, map(slice, [0, *ends[:-1]], ends)))

    def index(self, taken: bytes | None = None) -> dict[str, int]:
        """The id index, built on first use (with ``taken``: as it is once those positions
        were taken)."""
        if self._index is None:
            ids = self.ids()
            self._index = dict(zip(ids, _POSITIONS, strict=False))
            self.taken = bytearray(taken or len(ids))
            for pos in compress(range(len(ids)), self.taken):
                if self._index.get(ids[pos]) == pos:
                    del self._index[ids[pos]]
        return self._index

    def pop(self, pid: str) -> tuple | None:
        pos = self.index().pop(pid, None)
        if pos is None:
            return None
        self.taken[pos] = 1
        pred = self.other.pop(pos) if pos in self.other else self.predictions[pos]
        return self.times[pos], pred, self.segment(pos)

    def columns(self) -> tuple[list, list, list, list]:
        """Every position as columns (ids, times, outputs, segments)."""
        other = self.other
        preds = [other.get(p, f) for p, f in enumerate(self.predictions)]
        segs = list(map(self.segment, range(len(self.times))))
        return self.ids(), self.times.tolist(), preds, segs


class LabelJoin:
    """Predictions waiting for their labels, bounded in time-to-live and in count.

    The waiting predictions are kept in *generations*: each prediction remembered whose
    count from zero is a multiple of ``span`` (``cap // 8``, at least 1) starts a generation
    (so does the first one after all were forgotten), and a generation is forgotten whole as
    soon as its first prediction
    is no longer among the last ``cap`` remembered (its waiting predictions are counted as
    evicted) or its latest one is older than the time-to-live (counted as expired). So at
    most ``cap`` predictions wait, and the last ``cap - span`` do unless joined or expired.

    Why generations rather than one table with an arrival queue: at the default cap of
    100,000, one dict of tuples missed the caches on every insert and every one-by-one
    eviction and cost replay 1.5-2.5 us per event, a sixth to a quarter of its budget; now
    0.3 us. A generation is a few flat columns, a run of predictions goes in with a few
    C-level calls, and eviction drops a whole generation. Everything depends on the count of
    predictions remembered and on event time only, never on how the events were batched, so
    replay and the workers keep agreeing.

    A label looks its id up from the newest generation to the oldest, so a re-sent id joins
    its latest copy (the copies it superseded wait on, unreachable within their generation; a
    later label with the same id can still join a copy in an older generation). A label later
    than the time-to-live after its prediction is refused at lookup, exactly, even while the
    prediction's generation is still kept.
    """

    __slots__ = ("cap", "counts", "gens", "span", "ttl")

    #: Generations per cap: the granularity of eviction (more evict in finer steps but make
    #: a label look in more dicts).
    GENERATIONS = 8

    def __init__(self, ttl: float, cap: int) -> None:
        self.ttl = ttl
        self.cap = cap
        self.span = max(1, cap // self.GENERATIONS)
        self.gens: deque[_Generation] = deque()  # oldest first
        self.counts = {"remembered": 0, "joined": 0, "expired": 0, "evicted": 0}

    def __len__(self) -> int:
        """Predictions waiting (expired ones included until their generation goes)."""
        return sum(map(len, self.gens))

    def add(self, pid: str, time: float, prediction: Any, segment: Any) -> None:
        self.add_many([pid], [time], [prediction], [segment])

    def add_many(self, pids: list, times: list, predictions: list, segments: list) -> None:
        """Remember a run of predictions in order (``None`` ids are skipped)."""
        if None in pids:
            keep = [p is not None for p in pids]
            pids, times = list(compress(pids, keep)), list(compress(times, keep))
            predictions = list(compress(predictions, keep))
            segments = list(compress(segments, keep))
        counts, span, gens = self.counts, self.span, self.gens
        n, i = len(pids), 0
        while i < n:
            r = counts["remembered"]
            if not gens or r % span == 0:
                gens.append(_Generation(r))
            j = min(n, i + span - r % span)
            gens[-1].extend(pids[i:j], times[i:j], predictions[i:j], segments[i:j])
            counts["remembered"] = r + j - i
            i = j
        self._evict()

    def _evict(self) -> None:
        """Forget the generations whose first prediction left the latest ``cap``."""
        oldest = self.counts["remembered"] - self.cap
        gens = self.gens
        while gens and gens[0].start < oldest:
            self.counts["evicted"] += len(gens.popleft())

    def expire(self, now: float) -> None:
        """Forget the oldest generations while every prediction in them is older than the
        time-to-live at event time ``now``."""
        cutoff = now - self.ttl
        gens = self.gens
        while gens and gens[0].latest < cutoff:
            self.counts["expired"] += len(gens.popleft())

    def take(self, pid: str, time: float) -> Any:
        """The (time, prediction, segment) a label at ``time`` joins, removed; :data:`EXPIRED`
        when the prediction waited longer than the time-to-live; None for an id not held."""
        if pid.__class__ is not str:
            pid = str(pid)  # as add_many keeps it
        for gen in reversed(self.gens):
            entry = gen.pop(pid)
            if entry is not None:
                break
        else:
            return None
        if time - entry[0] > self.ttl:
            self.counts["expired"] += 1
            return EXPIRED
        self.counts["joined"] += 1
        return entry

    def to_state(self) -> dict:
        pids, times, predictions, segments, taken = [], [], [], [], bytearray()
        for g in self.gens:
            p, t, pr, sg = g.columns()
            pids += p
            times += t
            predictions += pr
            segments += sg
            taken += g.taken or bytes(len(p))
        return {
            "pids": pids,
            "times": np.array(times, dtype=np.float64),
            "predictions": predictions,
            "segments": segments,
            "generations": {
                "starts": np.array([g.start for g in self.gens], dtype=np.int64),
                "sizes": np.array([len(g.times) for g in self.gens], dtype=np.int64),
                "latest": np.array([g.latest for g in self.gens], dtype=np.float64),
                "taken": np.frombuffer(bytes(taken), dtype=np.uint8),
            },
            "counts": self.counts,
        }

    @classmethod
    def from_state(cls, s: dict, ttl: float, cap: int) -> LabelJoin:
        j = cls(ttl, cap)
        j.counts = {"remembered": 0, **s["counts"]}
        pids, times = s["pids"], s["times"].tolist()
        predictions, segments = s["predictions"], s["segments"]
        n = len(pids)
        if not n == len(times) == len(predictions) == len(segments):
            raise StateError("state: label join columns disagree")
        g = s.get("generations")
        if g is None:  # one table, as earlier versions wrote it: cut into generations
            if "remembered" not in s["counts"]:  # older still: what it must at least have been
                j.counts["remembered"] = n + sum(s["counts"].values())
            first = j.counts["remembered"] - n  # the table's entries were the latest
            cuts = [0, *range(-first % j.span or j.span, n, j.span), n] if n else []
            starts = [first + c for c in cuts[:-1]]
            sizes = [b - a for a, b in pairwise(cuts)]
            latest = [max(times[a:b]) for a, b in pairwise(cuts)]
            taken = bytes(n)
        else:
            starts, sizes, latest = g["starts"].tolist(), g["sizes"].tolist(), g["latest"].tolist()
            taken = g["taken"].astype(np.uint8).tobytes()
        if sum(sizes) != n or len(taken) != n:
            raise StateError("state: label join generations and entries disagree")
        a = 0
        for start, size, last in zip(starts, sizes, latest, strict=True):
            if not size:
                continue
            gen = _Generation(int(start))
            b = a + size
            gen.extend(pids[a:b], times[a:b], predictions[a:b], segments[a:b])
            gen.latest = last
            if any(taken[a:b]):
                gen.index(taken[a:b])
            j.gens.append(gen)
            a = b
        j._evict()  # the cap may be smaller than when the state was written
        return j


def _truth(v: Any) -> bool | None:
    if v is True or v is False:
        return v
    if v.__class__ in _NUM and v in (0, 1):
        return bool(v)
    if v.__class__ is str and v.lower() in ("0", "1", "true", "false"):
        return v.lower() in ("1", "true")
    return None


#: A label's (or a predicted class's) binary truth value: True/False, or None when it is not
#: a 0/1, true/false value.
as_truth = _truth


def judged_output(raw: Any, output: Any) -> Any:
    """The output a label is judged against: the predicted class ``raw["label"]`` when the
    prediction object carries one (whatever its score), else the output itself.

    Examples
    --------
    >>> judged_output({"score": 0.3, "label": "fraud"}, 0.3), judged_output(0.7, 0.7)
    ('fraud', 0.7)
    """
    if raw.__class__ is dict:
        label = raw.get("label")
        if label is not None:
            return label
    return output


#: Outcome blocks an error-rate incident looks back over before it resolves (2,048 outcomes
#: by default): the detection window (512) is too short to tell a model that recovered from
#: one whose error rate is a few points up, and its incidents flapped.
RESOLVE_BLOCKS = 16

#: Budget units of the error stream: the error-rate CUSUM bank gets ``UNITS - 1`` of them (it
#: is the signal that sends a team back to retraining), the windowed test one.
UNITS = 5


class Outcomes:
    """Error stream, windowed metrics and the incident state of one model stream's labels.

    Classification (``binary`` and multiclass ``classification``): the 0/1 errors feed the
    Bernoulli CUSUM bank of ``_errorrate`` (``concept_drift``, detector ``error_rate``) and
    the windowed test of the error feature (``performance``). Regression: the absolute
    errors feed the error feature's rank CUSUMs (``concept_drift``) and windowed test. The
    reference is the baseline's labelled outcomes when the profile has them (:meth:`seed`),
    else the first ``warmup`` outcomes of the live stream.
    """

    def __init__(self) -> None:
        self.task: str | None = None  # "binary", "classification" or "regression"
        self.error = NumericFeature("error")
        self.policy = FeaturePolicy()
        self.buf: list[tuple[float, Any, Any]] = []
        self.seq = 0
        self.blocks = 0
        self.skipped = 0
        self.ref = np.zeros(7)
        self.ref_span = [math.nan, math.nan]  # event times of the reference outcomes
        self.window: np.ndarray | None = None
        self.pos = 0
        self.collecting = True  # the error stream's reference is being collected
        self.bank: ErrorRateCusum | None = None
        self.source = "live"  # where the reference came from: "live" or "baseline"
        self.total = np.zeros(7)  # aggregates of every outcome processed
        # aggregates of the last RESOLVE_BLOCKS live blocks: when an incident may resolve
        self.recent = np.zeros((RESOLVE_BLOCKS, 7))

    # ------------------------------------------------------------------ reference
    def seed(self, prof: dict, settings: Any, span: tuple[float, float]) -> None:
        """Freeze the reference from a baseline's ``outcomes`` profile (see ``_baseline``)."""
        from ._baseline import numeric_feature, numeric_values

        agg = np.array([float(prof["aggregates"][k]) for k in AGGREGATES])
        n = int(agg[_N])
        if n <= 0 or prof.get("task") not in ("binary", "classification", "regression"):
            return
        self.task = prof["task"]
        if self.task == "regression":
            values = numeric_values(prof.get("error") or {})
            if values is None:
                return
        else:
            m = min(n, _PSEUDO)
            values = np.zeros(m)
            values[: round(m * agg[_ABS] / n)] = 1.0
        self.error = numeric_feature("error", values, span, settings, n)
        self.ref = agg
        self.ref_span = [float(span[0]), float(span[1])]
        self.collecting = False
        self.source = "baseline"
        if self.task != "regression":
            self.bank = ErrorRateCusum(agg[_ABS] / n, n)

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

    def losses(self, rows: list, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        """Loss per outcome (nan when unusable) and its aggregate row (count, TP, FP, FN,
        TN, loss, squared error) per outcome, shape (len(rows), 7).

        A binary score (a float) is a positive when ``score >= threshold``; a predicted class
        (see :func:`judged_output`) is compared as it is.
        """
        per = np.zeros((len(rows), 7))
        loss = np.full(len(rows), np.nan)
        task = self.task
        for i, (_, pred, label) in enumerate(rows):
            if pred is None or label is None:
                continue
            if task is None:
                task = self.task = self._decide(pred, label)
            if task == "binary":
                truth = _truth(label)
                guess = pred >= threshold if pred.__class__ is float else _truth(pred)
                if truth is None or guess is None:
                    continue
                loss[i] = float(guess != truth)
                per[i, _TP + (0 if guess and truth else 1 if guess else 2 if truth else 3)] = 1
            elif task == "classification":
                loss[i] = float(str(pred) != str(label))
            else:
                if pred.__class__ not in _NUM or label.__class__ not in _NUM:
                    continue
                e = float(pred) - float(label)
                if not math.isfinite(e):
                    continue
                loss[i] = abs(e)
                per[i, _SQ] = e * e
        ok = np.isfinite(loss)
        per[:, _N] = ok
        per[:, _ABS] = np.where(ok, loss, 0.0)
        self.skipped += int(len(rows) - ok.sum())
        return loss, per

    # ------------------------------------------------------------------ metrics
    def metrics(self, agg: np.ndarray) -> dict:
        """Accuracy, precision, recall, F1 (classification) or MAE, RMSE (regression)."""
        return outcome_metrics(self.task, agg)

    def current(self) -> np.ndarray:
        return np.zeros(7) if self.window is None else self.window.sum(axis=0)

    def view(self) -> ErrorView:
        """What the alert policy steps: the error feature, resolved by :class:`ErrorView`."""
        return ErrorView(self)

    # ------------------------------------------------------------------ processing
    def run(self, settings: Any, rate: float) -> list:
        """Process the buffered outcomes as one block; return the error stream's signals.

        ``rate`` is the false-alarm rate of one budget unit (the stream has :data:`UNITS`).
        """
        rows, self.buf = self.buf, []
        if self.window is None:
            self.window = np.zeros((settings.window_blocks, 7))
        loss, per = self.losses(rows, settings.decision_threshold)
        agg = per.sum(axis=0)
        self.total += agg
        times = np.array([r[0] for r in rows], dtype=np.float64)
        was_live = self.error.live
        mask = ("mean", "shape") if self.task == "regression" else ("shape",)
        (signals,) = update_numeric(
            [self.error], loss[None, :], times, self.seq, settings, rate, [mask]
        )
        if not was_live:  # a (new) reference: its metrics are the "before" of the alerts
            if not self.collecting:
                self.ref = np.zeros(7)
                self.ref_span = [math.nan, math.nan]
                self.bank = None
                self.collecting = True
                self.source = "live"
            self.ref += agg
            if math.isnan(self.ref_span[0]):
                self.ref_span[0] = float(times[0])
            self.ref_span[1] = float(times[-1])
            if self.error.live and self.task in ("binary", "classification") and self.ref[_N]:
                self.bank = ErrorRateCusum(self.ref[_ABS] / self.ref[_N], int(self.ref[_N]))
                self.bank.start(self.seq + len(rows), float(times[-1]))
        else:
            self.collecting = False
            self.window[self.pos % len(self.window)] = agg
            self.recent[self.pos % RESOLVE_BLOCKS] = agg
            self.pos += 1
            if self.bank is not None:
                hit = self.bank.update(loss, per, times, self.seq, rate * (UNITS - 1))
                if hit is not None:
                    signals.append(self._rate_signal(hit, times))
        self.seq += len(rows)
        self.blocks += 1
        return self._explain(signals)

    def _explain(self, signals: list) -> list:
        ref_m, cur_m = self.metrics(self.ref), self.metrics(self.current())
        kept = []
        for s in signals:
            st = s.statistics
            if s.extra.get("detector") == "error_rate":
                kept.append(s)
                continue
            before = st.get("reference_mean", st.get("before"))
            after = st.get("current_mean", st.get("after"))
            if not after > before:
                continue  # the model got better: not an alarm
            s.extra["kind"] = "concept_drift" if s.detector in ("mean", "scale") else "performance"
            s.extra["detector"] = "error_rate" if s.detector != "shape" else "window_metrics"
            if s.detector == "shape":  # the error rates, not the error's bins, before/after
                st["before"], st["after"] = before, after
            st["reference_metrics"] = ref_m
            st["current_metrics"] = cur_m
            st["window_metrics"] = cur_m
            st["task"] = self.task
            st["reference_source"] = self.source
            s.window["reference"] = self._ref_window()
            s.message = self._message(s, before, after, ref_m, cur_m)
            kept.append(s)
        return kept

    def _ref_window(self) -> dict:
        from ._timefmt import rfc3339

        a, b = self.ref_span
        if a != a:
            return {"count": int(self.ref[_N])}
        return {"start": rfc3339(a), "end": rfc3339(b), "count": int(self.ref[_N])}

    def _rate_signal(self, hit: RateCrossing, times: np.ndarray) -> Signal:
        """A crossing of the error-rate CUSUM bank, described by the outcomes since its
        change point (``concept_drift``)."""
        from ._timefmt import rfc3339

        bank = self.bank
        n = int(hit.since[_N])
        after = float(hit.since[_ABS]) / max(n, 1)
        before = bank.p0
        ref_m, since_m = self.metrics(self.ref), self.metrics(hit.since)
        critical = after >= 2.0 * before or after - before >= 0.05
        stats = {
            "statistic": "bernoulli_cusum",
            "before": before,
            "after": after,
            "score": hit.score,
            "threshold": hit.threshold,
            "p_value": hit.p_value,
            "effect": after - before,
            "odds_ratio": hit.ratio,
            "centre": bank.centre,
            "change_seq": hit.change_seq,
            "values_since_change": n,
            "reference_metrics": ref_m,
            "current_metrics": since_m,
            "window_metrics": self.metrics(self.current()),
            "task": self.task,
            "reference_source": self.source,
        }
        window = {
            "reference": self._ref_window(),
            "current": {
                "start": rfc3339(hit.change_time),
                "end": rfc3339(float(times[hit.index])),
                "count": n,
            },
        }
        extra = ""
        if ref_m.get("f1") is not None and since_m.get("f1") is not None:
            extra = f", F1 {ref_m['f1']:.3f} -> {since_m['f1']:.3f}"
        message = (
            f"Concept drift: the model's error rate rose from {before:.1%} to {after:.1%} "
            f"(accuracy {1 - before:.1%} -> {1 - after:.1%}{extra}) over the {n} labelled "
            f"predictions since the estimated change point; error-rate CUSUM "
            f"{hit.score:.1f} crossed its threshold {hit.threshold:.1f} "
            f"(odds ratio {hit.ratio:g}), two-sample p={hit.p_value:.2g}."
        )
        return Signal(
            detector="mean",
            index=hit.index,
            severity="critical" if critical else "warning",
            statistics=stats,
            window=window,
            message=message,
            extra={"kind": "concept_drift", "detector": "error_rate"},
        )

    def _message(self, s, before, after, ref_m, cur_m) -> str:
        if self.task == "regression":
            what = f"mean absolute error rose from {before:.4g} to {after:.4g}"
            extra = ""
            if "rmse" in cur_m and "rmse" in ref_m:
                extra = f" (RMSE {ref_m['rmse']:.4g} -> {cur_m['rmse']:.4g} in the last window)"
        else:
            what = f"error rate rose from {before:.1%} to {after:.1%}"
            extra = ""
            if ref_m.get("f1") is not None and cur_m.get("f1") is not None:
                extra = f" (F1 {ref_m['f1']:.3f} -> {cur_m['f1']:.3f} in the last window)"
        n = s.window["current"]["count"]
        if s.extra["kind"] == "concept_drift":
            head, over = "Concept drift", f"the {n} labelled predictions since the change point"
            how = (
                f"CUSUM {s.statistics['score']:.1f} over threshold {s.statistics['threshold']:.1f}"
            )
        else:
            head, over = "Performance drop", f"the last {n} labelled predictions"
            how = f"windowed test p={s.statistics['p_value']:.2g}"
        return f"{head}: the model's {what} over {over}{extra}; {how}."

    def summary(self) -> dict:
        out = {
            "task": self.task,
            "outcomes": self.seq,
            "buffered": len(self.buf),
            "skipped": self.skipped,
            "reference_source": self.source,
            "reference": self.metrics(self.ref),
            "window": self.metrics(self.current()),
            "alert": self.policy.active,
        }
        if self.bank is not None:
            out["error_rate_cusum"] = {
                "reference_rate": self.bank.p0,
                "centre": self.bank.centre,
                "score": float(self.bank.cusum.max()),
            }
        return out

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
            "ref_span": np.array(self.ref_span),
            "window": self.window,
            "bank": None if self.bank is None else self.bank.to_state(),
            "source": self.source,
            "total": self.total,
            "recent": self.recent,
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
        if "ref_span" in s:  # absent in states written before the error-rate bank
            o.ref_span = [float(v) for v in s["ref_span"]]
        bank = s.get("bank")
        o.bank = None if bank is None else ErrorRateCusum.from_state(bank)
        o.source = s.get("source", "live")
        o.total = np.asarray(s.get("total", np.zeros(7)), dtype=np.float64)
        if "recent" in s:
            o.recent = np.asarray(s["recent"], dtype=np.float64)
        return o


class ErrorView:
    """The error stream as the alert policy sees it: the error feature's reference and
    re-adoption, and for classifiers a resolution test of their own.

    A classifier's incident resolves when the error rate of the last ``RESOLVE_BLOCKS``
    outcome blocks is no longer significantly above the reference rate (one-sided
    two-sample test at ``resolve_alpha``), not when the 512-outcome detection window happens
    to look like the reference: a drift of a few points of accuracy makes that window look
    normal often enough for an incident to flap.
    """

    __slots__ = ("outcomes",)

    kind = "numeric"
    name = "error"

    def __init__(self, outcomes: Outcomes) -> None:
        self.outcomes = outcomes

    @property
    def live(self) -> bool:
        return self.outcomes.error.live

    def restart_reference(self) -> None:
        self.outcomes.error.restart_reference()

    def reference_span(self) -> tuple[float, float, int] | None:
        return self.outcomes.error.reference_span()

    def window_pvalues(self) -> tuple[float, ...] | None:
        o = self.outcomes
        if o.bank is None:
            return o.error.window_pvalues()
        if o.pos < RESOLVE_BLOCKS:
            return None
        n, _, _, _, _, errors, _ = o.recent.sum(axis=0)
        return (confirm_pvalue(o.bank.p0, o.bank.n0, float(errors), float(n)),)


def outcome_metrics(task: str | None, agg: np.ndarray) -> dict:
    """Accuracy, precision, recall, F1 (classification) or MAE, RMSE (regression) of the
    aggregates ``agg`` (count, TP, FP, FN, TN, loss sum, squared-error sum)."""
    agg = [float(v) for v in agg]
    n = agg[_N]
    if n <= 0:
        return {"count": 0}
    out: dict[str, Any] = {"count": int(n)}
    if task == "regression":
        out["mae"] = agg[_ABS] / n
        out["rmse"] = math.sqrt(agg[_SQ] / n)
        return out
    out["accuracy"] = 1.0 - agg[_ABS] / n
    if task == "binary":
        tp, fp, fn = agg[_TP], agg[_FP], agg[_FN]
        out["precision"] = tp / (tp + fp) if tp + fp else None
        out["recall"] = tp / (tp + fn) if tp + fn else None
        out["f1"] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return out
