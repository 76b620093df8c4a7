"""``driftline replay --report report.html``: the replayed log as one self-contained page.

The report is the worker's live page (``driftline.schemas.page_html``) with its document
embedded instead of polled, so both draw the same things the same way: per feature the drift
statistic over event time against its threshold with the alerts on that axis, the reference
against the end-of-log distribution, the realized label metrics, the alert list and the bad
lines. It needs no network to open.

Cost and size are bounded whatever the log's length: the statistics are sampled every
``every`` events (doubling whenever the history halves, see ``ScoreHistory(compact=True)``),
and never while the sampling so far has taken more than ``BUDGET`` of the run's time (a
sample reads every column of every model: about a millisecond per 20 features), and the
alert list keeps the first ``MAX_ALERTS`` alerts (the count of the rest is shown).
"""

from __future__ import annotations

import os
import time
from typing import Any

__all__ = ["ReportBuilder"]

#: Alerts listed in a report (each with its message); the rest are counted.
MAX_ALERTS = 5000
#: Share of the replay's time the sampling may take.
BUDGET = 0.04


class ReportBuilder:
    """Samples a monitor during a replay and writes the report at the end.

    Parameters
    ----------
    monitor
        The replay's :class:`~driftline.detectors.Monitor`.
    points
        History points kept per stream.
    every
        Events between samples at the start (doubles as the history compacts).
    """

    def __init__(self, monitor: Any, *, points: int = 240, every: int = 256) -> None:
        from driftline.detectors import ScoreHistory

        self.monitor = monitor
        self.history = ScoreHistory(points, 1e-9, compact=True)
        self.every = every
        self._since = 0
        self._step = self.history.step
        self._alerts: dict[str, list[dict]] = {}
        self.alerts_total = 0
        self._last_time: float | None = None
        #: Seconds spent building the report (sampling, the document, writing it).
        self.seconds = 0.0
        self._began = time.perf_counter()

    def observe(self, events: list[Any], alerts: list[Any]) -> None:
        """After each ``Monitor.process`` batch: keep its alerts, sample every so often."""
        started = time.perf_counter()
        if alerts:
            from driftline.detectors import alert_row

            for a in alerts:
                self.alerts_total += 1
                if self.alerts_total <= MAX_ALERTS:
                    self._alerts.setdefault(a.model, []).append(alert_row(a))
        if not events:
            self.seconds += time.perf_counter() - started
            return
        self._last_time = events[-1].timestamp
        self._since += len(events)
        if self._since >= self.every and self.seconds <= BUDGET * (started - self._began):
            self._sample(self._last_time)
        self.seconds += time.perf_counter() - started

    def _sample(self, t: float) -> None:
        from driftline.detectors import record_model

        self._since = 0
        for model in self.monitor.models():
            record_model(self.history, model, self.monitor.page_view(model), t)
        if self.history.step != self._step:  # compacted: sample half as often from now on
            self._step = self.history.step
            self.every *= 2

    def document(self, summary: Any) -> dict:
        """The report's document (the page's JSON) at the end of the replay."""
        from driftline.detectors import detail_document

        if self._last_time is not None:
            self._sample(self._last_time)  # the end-of-log point
        models, details, histories = [], {}, {}
        for model in self.monitor.models():
            streams = self.monitor.page_view(model)
            alerts = self._alerts.get(model, [])
            models.append({"model": model, "streams": streams, "alerts": alerts})
            for st in streams:
                key = f"{model}\x1f{st['key']}"
                histories[key] = self.history.view(key)  # one time axis per stream
                for row in st["rows"]:
                    det = detail_document(self.monitor, None, model, st["key"], row["name"], alerts)
                    if det is not None:
                        details[f"{key}\x1f{row['name']}"] = det
        return {
            "mode": "report",
            "generated": time.time(),
            "inputs": list(summary.inputs),
            "summary": {
                "events_by_kind": summary.events_by_kind,
                "invalid_lines": summary.invalid_lines,
                "invalid_by_reason": summary.invalid_by_reason,
                "first_invalid": [str(b) for b in summary.first_invalid],
                "alerts": self.alerts_total,
                "alerts_listed": min(self.alerts_total, MAX_ALERTS),
                "elapsed_seconds": summary.elapsed_seconds,
            },
            "models": models,
            "details": details,
            "histories": histories,
        }

    def write(self, path: str | os.PathLike[str], summary: Any) -> int:
        """Write the report to ``path`` (atomically); return its size in bytes."""
        from driftline.replay._replay import open_output
        from driftline.schemas import page_html

        started = time.perf_counter()
        data = page_html(self.document(summary))
        with open_output(path) as fh:
            fh.write(data)
        self.seconds += time.perf_counter() - started
        return len(data)
