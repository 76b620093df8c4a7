"""Labels that arrive before their prediction wait, in order, for a bounded time.

Why: a worker that works through a backlog (after a restart, a takeover, or when producers
publish fast) reads the labels topic and the predictions topic at their own paces, so a
label is often read *before* its prediction. Dropping such a label as unmatched made
concept-drift alerts depend on read order (one 13.6 s restart dropped 437 of 4,013 labels
and missed a drift episode). Replay reads a log in order and never sees this.

So a label whose prediction is not (yet) remembered waits here, per model, and joins when
the prediction comes. Labels leave in the order they arrived: a label whose prediction is
already there still waits behind an earlier one, because the error stream's detectors see
outcomes in label order and their alerts (and ``alert_id``s) depend on that order, exactly
as in replay. The head of the queue gives up (counted ``expired``, i.e. unmatched) at the
first block boundary of the model whose events are more than ``early_label_wait`` seconds
of event time past the label's own time: predictions precede their labels in event time,
so by then its prediction is not coming. Block boundaries are cut at fixed event counts, so
the decision does not depend on batching. At most ``max_early_labels`` wait per model; a
label beyond that pushes the oldest out (counted ``evicted``, also unmatched).

The queue is plain columns (ids, times, labels, versions) and serialises with the model's
state (``to_state``/``from_state``, no pickle); a state written before this existed has none.
"""

from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

import numpy as np

from .exceptions import StateError

__all__ = ["EarlyLabel", "EarlyLabels"]


class EarlyLabel(NamedTuple):
    """What a waiting label keeps of its event (the fields the join reads)."""

    prediction_id: str
    timestamp: float
    label: Any
    model_version: str | None


class EarlyLabels:
    """A model's labels waiting for their predictions, oldest first.

    Counts (``counts``): ``early`` labels that had to wait, ``joined`` of those that found
    their prediction later, ``expired`` that gave up after ``wait`` seconds of event time,
    ``evicted`` pushed out by the ``cap``. ``early - joined - expired - evicted`` wait now
    (a label that waited and then found its prediction too late for ``label_ttl`` is in
    ``joined`` here and counted as expired by the join, as in replay).
    """

    __slots__ = ("cap", "counts", "queue", "wait")

    def __init__(self, wait: float, cap: int) -> None:
        self.wait = wait
        self.cap = cap
        self.queue: deque[EarlyLabel] = deque()
        self.counts = {"early": 0, "joined": 0, "expired": 0, "evicted": 0}

    def __len__(self) -> int:
        return len(self.queue)

    def hold(self, label: EarlyLabel) -> int:
        """Queue a label behind the waiting ones; the oldest goes if the cap is exceeded.
        Returns how many went (0 or 1)."""
        self.queue.append(label)
        self.counts["early"] += 1
        if len(self.queue) <= self.cap:
            return 0
        self.queue.popleft()
        self.counts["evicted"] += 1
        return 1

    def head(self) -> EarlyLabel | None:
        return self.queue[0] if self.queue else None

    def joined(self) -> None:
        """The head found its prediction."""
        self.queue.popleft()
        self.counts["joined"] += 1

    def overdue(self, event_time: float) -> bool:
        """Whether the head has waited past ``wait`` at a block ending at ``event_time``."""
        return bool(self.queue) and event_time - self.queue[0].timestamp > self.wait

    def expire_head(self) -> None:
        self.queue.popleft()
        self.counts["expired"] += 1

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict:
        q = self.queue
        return {
            "pids": [e.prediction_id for e in q],
            "times": np.array([e.timestamp for e in q], dtype=np.float64),
            "labels": [e.label for e in q],
            "versions": [e.model_version for e in q],
            "counts": dict(self.counts),
        }

    @classmethod
    def from_state(cls, s: dict, wait: float, cap: int) -> EarlyLabels:
        """Restore; :class:`StateError` when the columns disagree or counts are not counts."""
        e = cls(wait, cap)
        times = s["times"]
        if not isinstance(times, np.ndarray) or times.ndim != 1:
            raise StateError("state: early labels' times are not a column")
        pids, labels, versions = s["pids"], s["labels"], s["versions"]
        if not (len(pids) == len(times) == len(labels) == len(versions)):
            raise StateError("state: early label columns disagree")
        counts = s["counts"]
        if set(counts) != set(e.counts) or not all(
            isinstance(v, int) and v >= 0 for v in counts.values()
        ):
            raise StateError("state: bad early label counts")
        e.counts = dict(counts)
        for row in zip(pids, times.tolist(), labels, versions, strict=True):
            if not isinstance(row[0], str) or not (row[3] is None or isinstance(row[3], str)):
                raise StateError("state: bad early label")
            e.queue.append(EarlyLabel(*row))
        while len(e.queue) > cap:  # the cap may be smaller than when the state was written
            e.queue.popleft()
            e.counts["evicted"] += 1
        return e
