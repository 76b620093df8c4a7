"""What the worker's live page (``/``) shows: its models' state, sampled history, alerts.

A person who wants to know what a worker sees should look, not read ``/status``. The page
(``driftline.schemas.page_html``, the same renderer as the replay report) polls two JSON
documents built here:

- ``page/data.json?model=M``: per model this worker owns, per stream (version, slice):
  events, labels joined, columns firing, the model's recent alerts; and for model ``M`` (the
  one on screen) every column's drift statistic against its threshold and incident state
  (``Monitor.page_view``);
- ``page/feature.json?model=&stream=&name=``: one column's reference and current
  distribution, its statistic's recent history and the stream's realized label metrics.

The history is sampled after a batch of a model, at most every ``sample_seconds`` of wall
clock per model (the page is for people), and less often when sampling every model would take
more than 1% of the worker's time (a sample reads every column of the model: a fraction of a
millisecond per 20 features), at the batch's newest event time, and kept in memory only:
``points`` per stream, the oldest dropped. It is not checkpointed: after a restart or a
rebalance the chart starts again (the detector state, and so the current statistics, are
restored). Alerts are kept per model, the newest ``max_alerts``.
"""

from __future__ import annotations

import time
from collections import deque
from operator import attrgetter
from typing import Any

__all__ = ["LivePage"]

_TIME = attrgetter("timestamp")
_MODEL = attrgetter("model")


class LivePage:
    """The live page's state in one worker (fed by the shard processor after each batch)."""

    def __init__(
        self,
        monitor: Any,
        *,
        points: int = 240,
        sample_seconds: float = 1.0,
        max_alerts: int = 200,
        worker: str = "",
        budget: float | None = 0.01,
    ) -> None:
        from driftline.detectors import ScoreHistory

        self.monitor = monitor
        self.history = ScoreHistory(points, 1e-9)
        self.sample_seconds = sample_seconds
        #: Share of the worker's time the history may take (None: no limit): a model is
        #: sampled at most every ``cost of its last sample x models / budget`` seconds.
        self.budget = budget
        self.max_alerts = max_alerts
        self.worker = worker
        self._alerts: dict[str, deque] = {}
        self._sampled: dict[str, float] = {}  # model -> monotonic time of its last sample
        self._cost: dict[str, float] = {}  # model -> seconds its last sample took

    def observe(self, events: list[Any], alerts: list[Any]) -> None:
        """After one processed batch: keep its alerts, sample the history of its models."""
        if alerts:
            from driftline.detectors import alert_row

            for a in alerts:
                box = self._alerts.get(a.model)
                if box is None:
                    box = self._alerts[a.model] = deque(maxlen=self.max_alerts)
                box.append(alert_row(a))
        if not events:
            return
        models = list(map(_MODEL, events))
        if models.count(models[0]) == len(models):  # the usual batch: one model
            newest = {models[0]: max(map(_TIME, events))}
        else:
            newest = {}
            for m, t in zip(models, map(_TIME, events), strict=True):
                if t > newest.get(m, -1e300):
                    newest[m] = t
        now = time.monotonic()
        share = self.budget / len(self._cost) if self.budget and self._cost else None
        for model, t in newest.items():
            wait = self.sample_seconds
            if share is not None:
                wait = max(wait, self._cost.get(model, 0.0) / share)
            if now - self._sampled.get(model, -1e300) >= wait or alerts:
                self._sample(model, t, now)

    def _sample(self, model: str, t: float, now: float) -> None:
        from driftline.detectors import record_model

        self._sampled[model] = now
        record_model(self.history, model, self.monitor.page_view(model), t)
        self._cost[model] = time.monotonic() - now

    def _prune(self, models: list[str]) -> None:
        """Forget the history and alerts of models this worker no longer owns."""
        owned = set(models)
        for model in [m for m in self._alerts if m not in owned]:
            del self._alerts[model]
        for model in [m for m in self._sampled if m not in owned]:
            del self._sampled[model]
            self._cost.pop(model, None)
            self.history.forget(model + "\x1f")

    def document(self, selected: str | None = None) -> dict:
        """``page/data.json``: every model this worker owns with its streams and alerts; the
        columns (``rows``) only of the ``selected`` model (by default the one with the most
        firing columns), so a poll stays small and cheap with many models."""
        models = self.monitor.models()
        self._prune(models)
        views = {m: self.monitor.page_view(m, rows=False) for m in models}
        if selected not in views:
            firing = {m: sum(s["firing"] for s in v) for m, v in views.items()}
            selected = max(models, key=lambda m: (firing[m], m == models[0])) if models else None
        if selected is not None:
            views[selected] = self.monitor.page_view(selected)
        return {
            "mode": "live",
            "generated": time.time(),
            "worker": self.worker,
            "selected": selected,
            "models": [
                {"model": m, "streams": views[m], "alerts": list(self._alerts.get(m, ()))}
                for m in models
            ],
        }

    def detail(self, model: str, stream: str, name: str) -> dict | None:
        """``page/feature.json``: one column of one stream (None: no such column)."""
        from driftline.detectors import detail_document

        alerts = list(self._alerts.get(model, ()))
        return detail_document(self.monitor, self.history, model, stream, name, alerts)
