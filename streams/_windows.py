"""Per-model tumbling event-time windows of operational counts, for the ``/status`` view.

An operator looking at a model wants to see what its recent stream looked like, window by
window: how many predictions, feature rows and labels arrived, how many messages were
dead-lettered, how many labels found their prediction, which alerts fired or resolved. This
module keeps, per model, the last ``keep`` tumbling windows of ``seconds`` of *event time*
(the events' own ``timestamp``, never the worker's clock: a replayed backlog lands in the
windows it belongs to), each holding:

- ``events``: valid events by kind (``prediction``, ``feature``, ``label``);
- ``invalid``: messages naming the model that were dead-lettered (contract errors, detector
  failures). A dead message has no trustworthy event time, so it is counted in the model's
  newest window, i.e. where the model's stream was when it arrived;
- ``labels_joined``: labels that found their prediction (read from the monitor's cumulative
  join counter after each batch with labels, counted in the window of the batch's newest
  label of the model: a batch spans far less event time than a window);
- ``outcomes``: the labelled predictions judged in the window and what they measure
  (``accuracy`` for classifiers, ``mae`` and ``rmse`` for regression), read like
  ``labels_joined`` from the monitor's cumulative totals (an outcome counts once its block
  of ``outcome_block`` labels is processed, in the window of that batch's newest label);
- ``alerts``: alerts by kind and status (``{"data_drift": {"firing": 1}}``), in the window of
  the alert's ``event_time``;
- ``late``: events whose window is older than the oldest window kept, counted in the newest
  window when they arrive (their own window is gone).

Messages that name no model this worker has state for (not JSON, no ``model``, a model with
no valid event yet) are counted per shard as ``unattributed``, in the window of the shard's
newest event time (the worker's clock only before the shard's first valid event: there is
no event time yet). Per-feature summaries are deliberately absent: counting ``missing`` and
a mean per feature and event in Python would cost about as much as routing the event, and
the monitor's own ``/status`` summary already gives each feature's current-window
statistics. Nor is there a Prometheus metric of the windows: the counters of ``/metrics``
(events by kind, dead letters, alerts) are already what Prometheus windows itself with
``rate()``/``increase()``, on its own clock; a gauge of a partial event-time window would
only be a confusing second version of them.

Why not Faust's windowed table
------------------------------
Faust's ``Table.tumbling(...)`` assigns a write to the window of the *current Faust event*
(``relative_to_stream``/``relative_to_field``), but one message of the shard topic carries
hundreds of raw events spanning any event time, so the window must be chosen per event,
not per message. Its keys are ``(key, (start, end))`` tuples (no raw codec, hence no bytes
keys like the rest of the state), reading "the last N windows of a model" needs
``key_index=True`` and a second table, and expiry and ``on_window_close`` run from per
partition timestamps that are not restored with the table (design.md: unreliable with
several partitions). Instead the windows are a small JSON document kept *inside the model's
checkpoint header* in the existing changelog-backed state table:

- no extra changelog record at all: the header is written anyway, once per model and
  checkpoint, never per event (events are tallied in memory, per batch, with C-level
  ``Counter`` over ``zip`` of attribute maps, no Python step per event);
- atomic with the source watermarks in the same record, so after a crash or a rebalance the
  redelivered events that the watermarks skip are not counted twice, and the ones after the
  checkpoint are counted exactly once when processed again (dead letters of a model advance
  the model's watermark too, for the same reason);
- restored with the model's detector state (lazily, on the model's first event after a
  restart or a rebalance), bounded by ``keep`` windows per model of a few bounded counters.

The shard's unattributed windows are one small record per shard (key ``0xfe`` + shard
number), written at most once per checkpoint and only when they changed; a redelivered
stretch after a crash can count an unattributed dead letter twice (at least once, like the
dead-letter topic itself).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any

import orjson

from driftline.detectors import OutcomeTotals
from driftline.schemas import format_timestamp, parse_timestamp

__all__ = ["ModelWindows", "WindowBook", "shard_windows_key"]

log = logging.getLogger(__name__)

_MODEL = attrgetter("model")
_KIND = attrgetter("kind")
_TIME = attrgetter("timestamp")
#: Bounds the alert keys of one window (``kind`` is an open set in the contract).
_MAX_ALERT_KINDS = 32
_FORMAT = 1
_NO_OUTCOMES = OutcomeTotals(None, 0, 0.0, 0.0)


def shard_windows_key(shard: int) -> bytes:
    """Table key of a shard's unattributed windows. ``0xfe`` never starts UTF-8 (models)."""
    return b"\xfe%d" % shard


class _Window:
    """Counts of one window of one model."""

    __slots__ = ("alerts", "events", "invalid", "joined", "late", "outcomes", "task")

    def __init__(self) -> None:
        self.events: dict[str, int] = {}
        self.alerts: dict[str, dict[str, int]] = {}
        self.invalid = 0
        self.joined = 0
        self.late = 0
        self.outcomes = [0, 0.0, 0.0]  # judged, summed loss, summed squared error
        self.task: str | None = None

    def to_doc(self) -> dict:
        return {
            "events": self.events,
            "invalid": self.invalid,
            "late": self.late,
            "labels_joined": self.joined,
            "outcomes": _outcome_doc(self.task, *self.outcomes),
            "alerts": self.alerts,
        }

    @classmethod
    def from_doc(cls, doc: dict) -> _Window:
        w = cls()
        w.events = {str(k): int(v) for k, v in doc["events"].items()}
        w.alerts = {
            str(kind): {str(s): int(n) for s, n in statuses.items()}
            for kind, statuses in list(doc["alerts"].items())[:_MAX_ALERT_KINDS]
        }
        w.invalid = int(doc["invalid"])
        w.late = int(doc["late"])
        w.joined = int(doc["labels_joined"])
        o = doc.get("outcomes") or {}  # absent in headers written before outcome metrics
        w.outcomes = [int(o.get("count", 0)), float(o.get("loss", 0.0)), float(o.get("sq", 0.0))]
        w.task = o.get("task")
        return w


def _outcome_doc(task: str | None, n: int, loss: float, sq: float) -> dict:
    """A window's outcomes: the sums (to restore them) and the metrics they give."""
    doc: dict[str, Any] = {"count": n, "task": task, "loss": loss, "sq": sq}
    if n:
        if task == "regression":
            doc["mae"], doc["rmse"] = loss / n, math.sqrt(sq / n)
        elif task is not None:
            doc["accuracy"] = 1.0 - loss / n
    return doc


class ModelWindows:
    """The last ``keep`` tumbling windows of one model (or of a shard's unattributed messages).

    A window is identified by its index ``floor(event_time / seconds)``; only windows that
    counted something exist, so a quiet model holds nothing for its quiet stretches. The
    newest window bounds the rest: opening window ``i`` drops every window at or before
    ``i - keep``.
    """

    __slots__ = ("keep", "newest", "slots")

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.slots: dict[int, _Window] = {}
        self.newest: int | None = None

    def window(self, index: int) -> _Window | None:
        """Window ``index``, opened if needed; ``None`` when it is older than those kept."""
        newest = self.newest
        slots = self.slots
        if newest is None or index > newest:
            self.newest = index
            cutoff = index - self.keep
            for old in [i for i in slots if i <= cutoff]:
                del slots[old]
        elif index <= newest - self.keep:
            return None
        w = slots.get(index)
        if w is None:
            w = slots[index] = _Window()
        return w

    def latest(self) -> _Window | None:
        """The newest window, ``None`` before the first count."""
        return None if self.newest is None else self.window(self.newest)

    def add_events(self, index: int, kind: str, n: int) -> None:
        w = self.window(index)
        if w is None:
            self.latest().late += n  # type: ignore[union-attr]  # newest exists: index is old
            return
        w.events[kind] = w.events.get(kind, 0) + n

    def add_alert(self, index: int, kind: str, status: str) -> None:
        w = self.window(index)
        if w is None:
            w = self.latest()
        assert w is not None
        statuses = w.alerts.get(kind)
        if statuses is None:
            if len(w.alerts) >= _MAX_ALERT_KINDS:
                kind = "other"
            statuses = w.alerts.setdefault(kind, {})
        statuses[status] = statuses.get(status, 0) + 1

    def to_doc(self) -> list:
        return [[i, self.slots[i].to_doc()] for i in sorted(self.slots)]

    @classmethod
    def from_doc(cls, doc: list, keep: int) -> ModelWindows:
        mw = cls(keep)
        for index, body in sorted(doc, key=lambda item: int(item[0]))[-keep:]:
            mw.slots[int(index)] = _Window.from_doc(body)
        mw.newest = max(mw.slots) if mw.slots else None
        return mw

    def view(self, seconds: float) -> list[dict]:
        """Windows oldest first (newest last), with RFC 3339 start and end."""
        out = []
        for index in sorted(self.slots):
            start = index * seconds
            out.append(
                {
                    "start": format_timestamp(start),
                    "end": format_timestamp(start + seconds),
                    **self.slots[index].to_doc(),
                }
            )
        return out


class WindowBook:
    """The windows of every model (and shard) this worker owns.

    Parameters
    ----------
    seconds
        Window size in seconds of event time.
    keep
        Windows kept per model; older ones are dropped when a newer one opens.
    joined
        ``model -> labels joined so far`` (cumulative, from the monitor); called only for
        batches that contain labels of that model.
    outcomes
        ``model -> OutcomeTotals`` (task, count, loss, squared_error) so far (cumulative,
        the monitor's ``outcome_totals``), read like ``joined``; None: not kept.
    """

    def __init__(
        self,
        seconds: float,
        keep: int,
        joined: Callable[[str], int],
        outcomes: Callable[[str], OutcomeTotals] | None = None,
    ) -> None:
        if not (seconds > 0 and math.isfinite(seconds)) or keep < 1:
            raise ValueError("windows: seconds > 0 and keep >= 1")
        self.seconds = float(seconds)
        self.keep = keep
        self._joined_of = joined
        self.models: dict[str, ModelWindows] = {}
        self.shards: dict[int, ModelWindows] = {}
        self.shard_dirty: set[int] = set()
        self._joined: dict[str, int] = {}  # last cumulative join count read, per model
        self._outcomes_of = outcomes
        self._judged: dict[str, OutcomeTotals] = {}  # last totals read, per model

    # -- the hot path: once per batch ------------------------------------------------------

    def _model(self, model: str) -> ModelWindows:
        mw = self.models.get(model)
        if mw is None:
            mw = self.models[model] = ModelWindows(self.keep)
        return mw

    def labels_before(self, events: list[Any]) -> dict[str, float]:
        """Before a batch with labels: per labelled model, its newest label's event time.

        Also reads the model's join counter if it is not known yet, so that
        :meth:`count` can attribute the batch's joins.
        """
        newest: dict[str, float] = {}
        for ev in events:
            if ev.kind == "label":
                t = newest.get(ev.model)
                if t is None or ev.timestamp > t:
                    newest[ev.model] = ev.timestamp
        for model in newest:
            if model not in self._joined:
                self._joined[model] = self._joined_of(model)
            if self._outcomes_of is not None and model not in self._judged:
                self._judged[model] = self._outcomes_of(model)
        return newest

    def count(
        self, events: list[Any], alerts: Iterable[Any], labelled: dict[str, float] | None
    ) -> None:
        """Tally one processed batch: its valid events, its alerts and its label joins."""
        if events:
            self._count_events(events)
        self._count_rest(alerts, labelled)

    def _count_events(self, events: list[Any]) -> None:
        """Events by model, kind and window, with C-level scans (no Python step per event)."""
        seconds = self.seconds
        times = list(map(_TIME, events))
        first = min(times) // seconds
        if first != max(times) // seconds:  # the batch straddles windows
            tally = Counter(
                zip(
                    map(_MODEL, events),
                    map(_KIND, events),
                    map(seconds.__rfloordiv__, times),
                    strict=True,
                )
            )
            for (model, kind, index), n in sorted(tally.items(), key=_by_window):
                self._model(model).add_events(int(index), kind, n)
            return
        models, kinds = list(map(_MODEL, events)), list(map(_KIND, events))
        n = len(models)
        if models.count(models[0]) == n and kinds.count(kinds[0]) == n:  # the usual batch
            self._model(models[0]).add_events(int(first), kinds[0], n)
            return
        for (model, kind), k in Counter(zip(models, kinds, strict=True)).items():
            self._model(model).add_events(int(first), kind, k)

    def _count_rest(self, alerts: Iterable[Any], labelled: dict[str, float] | None) -> None:
        """The alerts and label joins of a batch (:meth:`count`)."""
        for alert in alerts:
            try:
                index = int(parse_timestamp(alert.event_time, "event_time") // self.seconds)
            except Exception:  # an alert is validated on construction; never fail on it
                continue
            self._model(alert.model).add_alert(index, alert.kind, alert.status)
        if labelled:
            for model, t in labelled.items():
                before = self._joined.get(model, 0)
                now = self._joined[model] = self._joined_of(model)
                if now > before:
                    w = self._model(model).window(int(t // self.seconds))
                    if w is None:
                        w = self._model(model).latest()
                    w.joined += now - before  # type: ignore[union-attr]
                if self._outcomes_of is not None:
                    self._count_outcomes(model, t)

    def _count_outcomes(self, model: str, t: float) -> None:
        """The outcomes a batch of ``model``'s labels completed, in the window of time ``t``."""
        last = self._judged.get(model, _NO_OUTCOMES)
        now = self._judged[model] = self._outcomes_of(model)  # type: ignore[misc]
        if now.count > last.count:
            w = self._model(model).window(int(t // self.seconds)) or self._model(model).latest()
            w.outcomes[0] += now.count - last.count  # type: ignore[union-attr]
            w.outcomes[1] += now.loss - last.loss  # type: ignore[union-attr]
            w.outcomes[2] += now.squared_error - last.squared_error  # type: ignore[union-attr]
            w.task = now.task  # type: ignore[union-attr]

    def has_time(self, model: str) -> bool:
        """Whether ``model`` has a window (an event time) to count a dead letter in."""
        mw = self.models.get(model)
        return mw is not None and mw.newest is not None

    def count_invalid(self, model: str) -> None:
        """A dead-lettered message of ``model``, in the model's newest window.

        The model must have one (:meth:`has_time`): a dead letter has no trustworthy event
        time of its own, so it is counted where the model's stream was when it arrived.
        """
        self.models[model].latest().invalid += 1  # type: ignore[union-attr]

    def count_unattributed(
        self, shard: int, models: Iterable[str], fallback: float, n: int = 1
    ) -> None:
        """``n`` dead letters naming no model with state: in the shard's newest window.

        The shard's event time is the newest window of its ``models`` (or of its own
        unattributed windows); ``fallback`` (epoch seconds) only when it has none.
        """
        bucket = self.shards.get(shard)
        if bucket is None:
            bucket = self.shards[shard] = ModelWindows(self.keep)
        indexes = [mw.newest for m in models if (mw := self.models.get(m)) is not None]
        indexes = [i for i in indexes if i is not None]
        if bucket.newest is not None:
            indexes.append(bucket.newest)
        index = max(indexes) if indexes else int(fallback // self.seconds)
        w = bucket.window(index)
        if w is None:
            w = bucket.latest()
        w.invalid += n  # type: ignore[union-attr]
        self.shard_dirty.add(shard)

    # -- state ----------------------------------------------------------------------------

    def drop(self, model: str) -> None:
        """Forget a model's windows (revoked, or about to be restored)."""
        self.models.pop(model, None)
        self._joined.pop(model, None)
        self._judged.pop(model, None)

    def drop_shard(self, shard: int) -> None:
        self.shards.pop(shard, None)
        self.shard_dirty.discard(shard)

    def dump(self, model: str) -> dict | None:
        """The JSON-able document of a model's windows (stored in its checkpoint header)."""
        mw = self.models.get(model)
        if mw is None:
            return None
        return {"format": _FORMAT, "seconds": self.seconds, "windows": mw.to_doc()}

    def dump_shard(self, shard: int) -> dict:
        bucket = self.shards.get(shard) or ModelWindows(self.keep)
        return {"format": _FORMAT, "seconds": self.seconds, "windows": bucket.to_doc()}

    def _decode(self, doc: Any, what: str) -> ModelWindows:
        """Windows from a stored document; empty (and logged) if unusable or resized."""
        if doc is None:
            return ModelWindows(self.keep)
        try:
            if doc["format"] != _FORMAT or float(doc["seconds"]) != self.seconds:
                log.info("windows of %s were kept at another size: starting afresh", what)
                return ModelWindows(self.keep)
            return ModelWindows.from_doc(doc["windows"], self.keep)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            log.warning("windows of %s unreadable, starting afresh: %r", what, exc)
            return ModelWindows(self.keep)

    def load(self, model: str, doc: Any) -> None:
        """Restore a model's windows from :meth:`dump`'s document (``None``: none yet)."""
        self._joined.pop(model, None)  # the monitor's counters were just restored too
        self._judged.pop(model, None)
        self.models[model] = self._decode(doc, f"model {model!r}")

    def load_shard(self, shard: int, stored: bytes | None) -> None:
        """Restore a shard's unattributed windows from its table record (JSON bytes)."""
        try:
            doc = orjson.loads(stored) if stored is not None else None
        except orjson.JSONDecodeError:
            doc = {}  # logged as unreadable by _decode
        self.shards[shard] = self._decode(doc, f"shard {shard}")

    # -- views ----------------------------------------------------------------------------

    def view(self, model: str) -> list[dict]:
        mw = self.models.get(model)
        return mw.view(self.seconds) if mw is not None else []

    def view_shard(self, shard: int) -> list[dict]:
        bucket = self.shards.get(shard)
        return bucket.view(self.seconds) if bucket is not None else []


def _by_window(item: tuple) -> float:
    return item[0][2]
