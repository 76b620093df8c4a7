"""The one interface the streaming workers and the replay tool drive: events in, alerts out."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import groupby
from operator import attrgetter
from typing import Any

from ._config import DetectionConfig
from ._early import EarlyLabel, EarlyLabels
from ._outcomes import EXPIRED, OutcomeTotals, judged_output
from ._state import decode_state, encode_state
from ._stream import _KIND, _PREDICTION, _SEGMENT, _TIME, ModelStream
from ._view import feature_detail, firing_count, stream_label, stream_rows
from .exceptions import StateError

__all__ = ["Monitor"]

_STATE_KIND = "driftline.detectors.model"
_MODEL = attrgetter("model")
_VERSION = attrgetter("model_version")
_PID = attrgetter("prediction_id")
_RAW = attrgetter("prediction_raw")


def _judged(chunk: list[Any]) -> list[Any]:
    """The outputs the labels of these predictions are judged against: the predicted class
    where a prediction object carries one (``judged_output``), else the output."""
    raws = list(map(_RAW, chunk))
    if dict not in set(map(type, raws)):
        return list(map(_PREDICTION, chunk))
    return list(map(judged_output, raws, map(_PREDICTION, chunk)))


def _block_edge(st: ModelStream, ev: Any) -> float | None:
    """The latest event time of the block that ``ev`` closes (before or with it), if any."""
    span = st.settings.block_seconds
    if span and st.ptimes and ev.timestamp - st.ptimes[0] >= span:
        return max(st.ptimes)  # the event-time limit closes the block before ``ev``
    if len(st.pending) + 1 >= st.settings.block:
        return max(max(st.ptimes, default=ev.timestamp), ev.timestamp)
    return None


def _version_key(item: tuple) -> tuple:
    return (item[0] is not None, item[0] or "")


class Monitor:
    """Drift detection for any number of models (one instance per shard).

    Parameters
    ----------
    config : DetectionConfig, optional
        Options; the default needs no file.
    baseline : Baseline, optional
        Reference profiles built from training data (:func:`build_baseline`): a model stream
        it covers starts with frozen references (features, schema, outputs), so skew is
        measured from the first event; ``None`` uses a warm-up window of the live stream.

    Notes
    -----
    State is kept per model stream (model, model version) and per feature. Events are
    processed in blocks cut at fixed event counts of each model stream, so
    ``process([a, b, c])`` and ``process([a]); process([b, c])`` give the same alerts, and so
    does a :meth:`dump_model` / :meth:`load_model` round trip in between. Nothing reads the
    wall clock.

    Examples
    --------
    >>> import random
    >>> from driftline.schemas import FeatureEvent
    >>> rnd = random.Random(7)
    >>> mon = Monitor(DetectionConfig(warmup=1000, block=250))
    >>> events = [FeatureEvent(model="m", timestamp=1.7e9 + i,
    ...                        features={"x": rnd.gauss(0.0 if i < 3000 else 1.0, 1.0)})
    ...           for i in range(4000)]
    >>> alerts = mon.process(events)
    >>> [(a.status, a.feature, a.detector) for a in alerts]
    [('firing', 'x', 'mean')]
    """

    def __init__(self, config: DetectionConfig | None = None, baseline: Any = None) -> None:
        self.config = config if config is not None else DetectionConfig()
        self.baseline = baseline
        self._models: dict[str, dict[str | None, ModelStream]] = {}
        self._events = {"prediction": 0, "feature": 0, "label": 0}
        self._alerts: dict[str, int] = {}
        self._status: dict[str, int] = {"firing": 0, "resolved": 0}
        self._unmatched = 0
        self._late = 0  # labels that found their prediction after label_ttl
        self._early_total = 0  # labels that had to wait for their prediction
        self._early_joined = 0  # of those, joined later
        # per model, labels read before their prediction, waiting in order (``_early``)
        self._early: dict[str, EarlyLabels] = {}

    # ------------------------------------------------------------------ processing
    def process(self, events: Iterable[Any]) -> list[Any]:
        """Consume a batch of events in stream order; return the alerts they complete.

        A label event joins the prediction with its ``prediction_id`` (remembered by the
        model stream for ``label_ttl`` seconds of event time, see ``_outcomes``) and feeds
        the concept-drift and performance detectors. Events of a model stream are buffered
        until a block of ``block`` events is complete or, with
        ``block_seconds`` set, until an event arrives ``block_seconds`` of event time after
        the block's first one (so a quiet model's alerts do not wait for ``block`` events);
        both rules depend on the events only, never on batches or the wall clock.
        """
        if not isinstance(events, list):
            events = list(events)
        out: list[tuple] = []
        if not events:
            return out
        counts = self._events
        # runs of consecutive events of one kind and one model stream, found by C-level scans
        # (one Python step per run, not per event); labels are joined one by one
        n = len(events)
        kinds, models = list(map(_KIND, events)), list(map(_MODEL, events))
        versions = list(map(_VERSION, events))
        first = (kinds[0], models[0], versions[0])
        if kinds.count(first[0]) == models.count(first[1]) == versions.count(first[2]) == n:
            runs = [(first, n)]  # the usual batch: one stream, one kind
        else:
            keys = zip(kinds, models, versions, strict=True)
            runs = [(key, len(list(run))) for key, run in groupby(keys)]
        pos = 0
        for (kind, model, version), m in runs:
            part = events[pos : pos + m]
            pos += m
            if kind == "label":
                for ev in part:
                    counts["label"] += 1
                    out.extend(self._label(ev))
                continue
            counts[kind] += m
            streams = self._models.get(model)
            if streams is None:
                streams = self._models[model] = {}
            st = streams.get(version)
            if st is None:
                st = streams[version] = self._new_stream(model, version)
            pids = list(map(_PID, part)) if kind == "prediction" else None
            if pids is not None and pids.count(None) == m:
                pids = None  # nothing for the label join
            early = self._early.get(model)
            if early:  # labels wait: release them as predictions come (``_run_waiting``)
                self._run_waiting(st, part, pids, out, early)
            elif st.settings.block_seconds:
                self._run_timed(st, part, pids, out)
            else:
                self._run_counted(st, part, pids, out)
        return self._tally(out)

    def _run_waiting(
        self, st: ModelStream, part: list[Any], pids: list | None, out: list[tuple], early: Any
    ) -> None:
        """A run of events while labels of the model wait, event by event: a label joins as
        soon as its prediction is remembered, and gives up only at a block boundary (both
        independent of batching). Slower, but only while labels wait."""
        run = self._run_timed if st.settings.block_seconds else self._run_counted
        for i, ev in enumerate(part):
            if not early:
                run(st, part[i:], None if pids is None else pids[i:], out)
                return
            edge = _block_edge(st, ev)
            run(st, [ev], None if pids is None else [pids[i]], out)
            self._release(st.model, out, edge)

    def _release(self, model: str, out: list[tuple], block_end: float | None) -> None:
        """Join waiting labels, oldest first, while the oldest finds its prediction; at a
        block ending at event time ``block_end``, the oldest gives up once overdue."""
        early = self._early[model]
        while early:
            head = early.head()
            joined = self._join(model, head)
            if joined is not None:
                early.joined()
                self._early_joined += 1
                out.extend(joined)
            elif block_end is not None and early.overdue(block_end):
                early.expire_head()
                self._unmatched += 1
            else:
                return

    @staticmethod
    def _run_counted(st: ModelStream, part: list[Any], pids: list | None, out: list[tuple]) -> None:
        """Buffer a run of one stream's events in block-sized slices (blocks cut by count).

        With ``pids`` (the run's ``prediction_id``s, some not None), each slice's predictions
        are remembered for their labels before the block holding them is processed, as the
        event-by-event order would.
        """
        block = st.settings.block
        n = len(part)
        i = 0
        while i < n:
            j = min(n, i + max(block - len(st.pending), 1))
            chunk = part[i:j]
            times = list(map(_TIME, chunk))
            if pids is not None:
                st.joins.add_many(
                    pids[i:j],
                    times,
                    _judged(chunk),
                    list(map(_SEGMENT, chunk)),
                )
            st.pending.extend(chunk)
            st.ptimes.extend(times)
            if len(st.pending) >= block:
                out.extend(st.run_block())
            i = j

    @staticmethod
    def _run_timed(st: ModelStream, part: list[Any], pids: list | None, out: list[tuple]) -> None:
        """Event by event, for a stream whose blocks are also cut by ``block_seconds``."""
        block, span = st.settings.block, st.settings.block_seconds
        for ev in part:
            if st.ptimes and ev.timestamp - st.ptimes[0] >= span:
                out.extend(st.run_block())  # event-time limit: close the block first
            if pids is not None and ev.prediction_id is not None:
                output = judged_output(ev.prediction_raw, ev.prediction)
                st.joins.add(ev.prediction_id, ev.timestamp, output, ev.segment)
            st.pending.append(ev)
            st.ptimes.append(ev.timestamp)
            if len(st.pending) >= block:
                out.extend(st.run_block())

    def _tally(self, out: list[tuple]) -> list[Any]:
        alerts = [a for _, _, a in out]
        for a in alerts:
            self._alerts[a.kind] = self._alerts.get(a.kind, 0) + 1
            self._status[a.status] = self._status.get(a.status, 0) + 1
        return alerts

    def _new_stream(self, model: str, version: str | None) -> ModelStream:
        """A model stream, seeded from the baseline or (a new version) from its siblings."""
        settings = self.config.for_model(model)
        profile = None if self.baseline is None else self.baseline.profile(model, version)
        sibling = None
        others = [s for s in self._models.get(model, {}).values() if s.version != version]
        if others:
            sibling = max(others, key=lambda s: (s.out_seq, s.version or ""))
        return ModelStream(model, version, settings, profile=profile, sibling=sibling)

    def _label(self, ev: Any) -> list[tuple]:
        """Join a label with its prediction (see ``_outcomes``), or queue it until the
        prediction comes (``_early``: behind any label already waiting, to keep the order)."""
        early = self._early.get(ev.model)
        if not early:
            joined = self._join(ev.model, ev)
            if joined is not None:
                return joined
            if early is None:
                settings = self.config.for_model(ev.model)
                early = self._early[ev.model] = EarlyLabels(
                    settings.early_label_wait, settings.max_early_labels
                )
        pid = ev.prediction_id
        pid = pid if pid.__class__ is str else str(pid)
        self._unmatched += early.hold(EarlyLabel(pid, ev.timestamp, ev.label, ev.model_version))
        self._early_total += 1
        return []

    def _join(self, model: str, ev: Any) -> list[tuple] | None:
        """The outcome of a label joined now; ``[]`` if its prediction came too long before
        it (expired), ``None`` if its prediction is not remembered."""
        versions = self._models.get(model)
        if versions:
            if len(versions) == 1:
                cands = list(versions.values())
            else:  # the label's own version first, then the others in a fixed order
                first = versions.get(ev.model_version) if ev.model_version is not None else None
                cands = [first] if first is not None else []
                cands += [
                    v for _, v in sorted(versions.items(), key=_version_key) if v is not first
                ]
            for st in cands:
                entry = st.joins.take(ev.prediction_id, ev.timestamp)
                if entry is EXPIRED:
                    self._late += 1
                    return []
                if entry is not None:
                    return st.add_outcome(entry, ev.label, ev.timestamp)
        return None

    # ------------------------------------------------------------------ models
    def models(self) -> list[str]:
        """Models with state, sorted."""
        return sorted(self._models)

    def drop_model(self, model: str) -> None:
        """Forget a model's state (its partition was revoked)."""
        self._models.pop(model, None)
        self._early.pop(model, None)

    def dump_model(self, model: str) -> bytes:
        """Versioned, pickle-free bytes of one model's state (all its versions)."""
        versions = self._models.get(model, {})
        streams = [
            versions[v].to_state() for v in sorted(versions, key=lambda v: (v is not None, v or ""))
        ]
        state = {"kind": _STATE_KIND, "model": model, "streams": streams}
        early = self._early.get(model)
        if early is not None:
            state["early_labels"] = early.to_state()
        return encode_state(state)

    def load_model(self, model: str, data: bytes) -> None:
        """Restore one model's state from :meth:`dump_model` bytes.

        Raises
        ------
        StateError
            Corrupt, truncated or foreign bytes, or state of another model.
        """
        state = decode_state(data)
        try:
            if not isinstance(state, dict) or state.get("kind") != _STATE_KIND:
                raise StateError("state: not a driftline model state")
            if state["model"] != model:
                raise StateError(f"state: belongs to model {state['model']!r}, not {model!r}")
            settings = self.config.for_model(model)
            versions = {}
            for s in state["streams"]:
                st = ModelStream.from_state(model, s, settings)
                versions[st.version] = st
            early = None
            if "early_labels" in state:  # absent in states written before it existed
                early = EarlyLabels.from_state(
                    state["early_labels"], settings.early_label_wait, settings.max_early_labels
                )
        except StateError:
            raise
        except (
            KeyError,
            TypeError,
            ValueError,
            IndexError,
            AttributeError,
            MemoryError,
            OverflowError,
            RecursionError,
        ) as exc:
            raise StateError(f"state: malformed model state ({exc!r})") from exc
        self._models[model] = versions
        if early is not None:
            self._early[model] = early
        else:
            self._early.pop(model, None)

    # ------------------------------------------------------------------ views
    def status(self, model: str) -> dict:
        """JSON-able summary of a model's streams and features (for the /status view)."""
        versions = self._models.get(model, {})
        out = {
            "model": model,
            "streams": [
                versions[v].status()
                for v in sorted(versions, key=lambda v: (v is not None, v or ""))
            ],
        }
        early = self._early.get(model)
        if early is not None:
            out["early_labels"] = {**early.counts, "waiting": len(early)}
        return out

    def _streams_of(self, model: str) -> list[ModelStream]:
        """A model's streams: each version, then its tracked slices, in a fixed order."""
        versions = self._models.get(model, {})
        out = []
        for v in sorted(versions, key=lambda v: (v is not None, v or "")):
            st = versions[v]
            out.append(st)
            out.extend(child for _, child in sorted(st.slices.items()))
        return out

    def page_view(self, model: str, *, rows: bool = True) -> list[dict]:
        """Per stream of a model (versions, then slices): what the live page and the report
        show (see ``_view``): ``key`` (:func:`stream_label`), ``version``, ``segment``,
        ``events``, ``labels_joined``, ``firing`` (columns with an incident), ``metrics``
        (realized label metrics of the current window, or None) and, with ``rows``, ``rows``
        (one per feature, output and the label error: statistic against threshold, incident
        state). Reads state only: a few numpy calls per stream with ``rows``, a few dict
        lookups without."""
        out = []
        for st in self._streams_of(model):
            oc = st.outcomes
            doc = {
                "key": stream_label(st.version, st.segment),
                "version": st.version,
                "segment": st.segment,
                "events": st.seq + len(st.pending),
                "labels_joined": st.joins.counts["joined"],
                "metrics": oc.metrics(oc.current()) if oc.task is not None else None,
            }
            if rows:
                doc["rows"] = stream_rows(st)
                doc["firing"] = sum(1 for r in doc["rows"] if r["state"] == "firing")
            else:
                doc["firing"] = firing_count(st)
            out.append(doc)
        return out

    def feature_detail(self, model: str, stream: str, name: str) -> dict | None:
        """Reference and current distribution of column ``name`` of the stream whose
        :meth:`page_view` key is ``stream`` (None when there is no such column)."""
        for st in self._streams_of(model):
            if stream_label(st.version, st.segment) == stream:
                return feature_detail(st, name)
        return None

    def labels_joined(self, model: str) -> int:
        """Labels joined to their prediction so far in a model's streams (a cheap counter,
        for views that follow it batch by batch; :meth:`status` has it too, at a cost)."""
        return sum(st.joins.counts["joined"] for st in self._models.get(model, {}).values())

    def outcome_totals(self, model: str) -> OutcomeTotals:
        """The outcomes judged so far in a model's streams (task, count, summed loss, summed
        squared error): cumulative, cheap, for views that follow it batch by batch (an
        outcome counts once its block of ``outcome_block`` is processed)."""
        task, n, loss, sq = None, 0, 0.0, 0.0
        for st in self._models.get(model, {}).values():
            t = st.outcomes.totals()
            task = task or t.task
            n += t.count
            loss += t.loss
            sq += t.squared_error
        return OutcomeTotals(task, n, loss, sq)

    def estimate_totals(self, model: str) -> dict[str, float] | None:
        """Expected confusion counts of every prediction counted by the estimates of a
        model's streams (``_estimation``: from calibrated scores, before any label), or None
        when no stream has an estimate. Cumulative and cheap, like :meth:`outcome_totals`:
        a view per time window takes differences (accuracy = (tp + tn) / count)."""
        total = None
        for st in self._models.get(model, {}).values():
            if st.estimator is not None:
                t = st.estimator.expected_counts()
                total = t if total is None else {k: total[k] + t[k] for k in t}
        return total

    @property
    def stats(self) -> dict:
        """Counters of this monitor: events by kind, alerts by kind and by status, labels.

        Labels: ``labels_unmatched`` never found their prediction (gave up waiting or pushed
        out of the early-label buffer), ``labels_expired`` found it after ``label_ttl``,
        ``labels_early`` were read before their prediction and waited (``_early``), of which
        ``labels_early_joined`` joined later and ``labels_waiting`` wait now. All but the
        last only grow (a revoked model's counts stay), like Prometheus counters.
        """
        return {
            "events": dict(self._events),
            "alerts": dict(self._alerts),
            "alerts_by_status": dict(self._status),
            "labels_unmatched": self._unmatched,
            "labels_expired": self._late,
            "labels_early": self._early_total,
            "labels_early_joined": self._early_joined,
            "labels_waiting": sum(map(len, self._early.values())),
            "models": len(self._models),
        }
