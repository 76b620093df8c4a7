"""The one interface the streaming workers and the replay tool drive: events in, alerts out."""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter
from typing import Any

from ._config import DetectionConfig
from ._state import decode_state, encode_state
from ._stream import ModelStream
from .exceptions import StateError

__all__ = ["Monitor"]

_STATE_KIND = "driftline.detectors.model"
_KIND = attrgetter("kind")
_MODEL = attrgetter("model")
_VERSION = attrgetter("model_version")
_PID = attrgetter("prediction_id")
_TIME = attrgetter("timestamp")


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
        if events and self._run_uniform(events, out):
            return self._tally(out)
        models = self._models
        counts = self._events
        last_model: Any = None
        last_version: Any = None
        st: ModelStream | None = None
        pending = ptimes = None
        block = 0
        span = 0.0
        for ev in events:
            kind = ev.kind
            counts[kind] += 1
            if kind == "label":
                out.extend(self._label(ev))
                continue
            if st is None or ev.model != last_model or ev.model_version != last_version:
                last_model, last_version = ev.model, ev.model_version
                versions = models.get(last_model)
                if versions is None:
                    versions = models[last_model] = {}
                st = versions.get(last_version)
                if st is None:
                    st = versions[last_version] = self._new_stream(last_model, last_version)
                pending, ptimes, block = st.pending, st.ptimes, st.settings.block
                span = st.settings.block_seconds
            if span and ptimes and ev.timestamp - ptimes[0] >= span:
                out.extend(st.run_block())  # event-time limit: close the block first
                pending, ptimes = st.pending, st.ptimes
            if kind == "prediction" and ev.prediction_id is not None:
                st.joins.add(ev.prediction_id, ev.timestamp, ev.prediction, ev.segment)
            pending.append(ev)
            ptimes.append(ev.timestamp)
            if len(pending) >= block:
                out.extend(st.run_block())
                pending, ptimes = st.pending, st.ptimes
        return self._tally(out)

    def _run_uniform(self, events: list[Any], out: list[tuple]) -> bool:
        """Fast path of :meth:`process` for a batch of one model stream and one event kind.

        The common batch (predictions or feature rows of one model version, no
        ``block_seconds``) is cut into block-sized slices with C-level attribute scans
        instead of a Python step per event; the blocks, and so the alerts, are the same as
        the general loop's. Returns False (nothing done) for any other batch.
        """
        n = len(events)
        first = events[0]
        kind = first.kind
        if kind == "label" or list(map(_KIND, events)).count(kind) != n:
            return False
        model, version = first.model, first.model_version
        if list(map(_MODEL, events)).count(model) != n:
            return False
        if list(map(_VERSION, events)).count(version) != n:
            return False
        versions = self._models.get(model)
        st = None if versions is None else versions.get(version)
        if st is not None and st.settings.block_seconds:
            return False
        if st is None:
            if self.config.for_model(model).block_seconds:
                return False
            if versions is None:
                versions = self._models[model] = {}
            st = versions[version] = self._new_stream(model, version)
        ids = kind == "prediction" and list(map(_PID, events)).count(None) != n
        self._events[kind] += n
        block = st.settings.block
        i = 0
        while i < n:
            j = min(n, i + max(block - len(st.pending), 1))
            chunk = events[i:j]
            if ids:
                add = st.joins.add
                for ev in chunk:
                    if ev.prediction_id is not None:
                        add(ev.prediction_id, ev.timestamp, ev.prediction, ev.segment)
            st.pending.extend(chunk)
            st.ptimes.extend(map(_TIME, chunk))
            if len(st.pending) >= block:
                out.extend(st.run_block())
            i = j
        return True

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
        """Join a label with its prediction (see ``_outcomes``); unmatched ones are counted."""
        versions = self._models.get(ev.model)
        if versions:
            first = versions.get(ev.model_version) if ev.model_version is not None else None
            cands = [first] if first is not None else []
            cands += [v for k, v in sorted(versions.items(), key=_version_key) if v is not first]
            for st in cands:
                if ev.prediction_id in st.joins.table:
                    entry = st.joins.take(ev.prediction_id, ev.timestamp)
                    if entry is None:
                        return []
                    return st.add_outcome(entry, ev.label, ev.timestamp)
        self._unmatched += 1
        return []

    # ------------------------------------------------------------------ models
    def models(self) -> list[str]:
        """Models with state, sorted."""
        return sorted(self._models)

    def drop_model(self, model: str) -> None:
        """Forget a model's state (its partition was revoked)."""
        self._models.pop(model, None)

    def dump_model(self, model: str) -> bytes:
        """Versioned, pickle-free bytes of one model's state (all its versions)."""
        versions = self._models.get(model, {})
        streams = [
            versions[v].to_state() for v in sorted(versions, key=lambda v: (v is not None, v or ""))
        ]
        return encode_state({"kind": _STATE_KIND, "model": model, "streams": streams})

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
        except StateError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise StateError(f"state: malformed model state ({exc!r})") from exc
        self._models[model] = versions

    # ------------------------------------------------------------------ views
    def status(self, model: str) -> dict:
        """JSON-able summary of a model's streams and features (for the /status view)."""
        versions = self._models.get(model, {})
        return {
            "model": model,
            "streams": [
                versions[v].status()
                for v in sorted(versions, key=lambda v: (v is not None, v or ""))
            ],
        }

    @property
    def stats(self) -> dict:
        """Counters of this monitor: events by kind, alerts by kind and by status."""
        return {
            "events": dict(self._events),
            "alerts": dict(self._alerts),
            "alerts_by_status": dict(self._status),
            "labels_unmatched": self._unmatched,
            "models": len(self._models),
        }
