"""What ``driftline alerts forward`` sends, and when: incidents, Alertmanager alerts, webhooks.

Pure logic, no I/O, so that the rules that decide what a responder sees are unit-tested alone.

Why an incident book. The worker publishes each alert keyed by its ``alert_id``, and the
``firing`` and the ``resolved`` alert of one incident have different ids, so they usually sit
in different partitions of the alerts topic and a consumer may read them in either order
(after a backlog, or a restart that re-reads one partition but not the other). Alertmanager
has no notion of "this firing is older than that resolution": a firing alert sent after the
resolution re-opens the incident. :class:`IncidentBook` therefore keys every alert by its
incident (the firing alert's id; a resolved alert names it in
``statistics.fired_alert_id``) and refuses a firing alert whose resolution was already
delivered. It also lists the open incidents, which must be re-sent before their ``endsAt``
so that a long incident stays active (Alertmanager keeps alerts in memory only: after its
restart the re-sending is what restores them).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

__all__ = [
    "SIGNATURE_HEADER",
    "Decision",
    "IncidentBook",
    "alertmanager_alert",
    "incident_of",
    "signature",
    "slack_body",
    "sort_for_delivery",
]

#: Header of a signed webhook request: ``sha256=<hex HMAC-SHA256 of the exact body>``.
SIGNATURE_HEADER = "X-Driftline-Signature"

_LABEL_NAME = re.compile(r"[^a-zA-Z0-9_]")
#: Statistics copied into annotations when present (numbers, rendered compactly).
_STAT_ANNOTATIONS = ("before", "after", "effect", "score", "threshold", "p_value", "reason")


def incident_of(alert: dict[str, Any]) -> str:
    """The incident an alert belongs to: the firing alert's id.

    A resolved alert names the alert it ends in ``statistics.fired_alert_id``; one that does
    not (an older producer) is its own incident.
    """
    if alert.get("status") == "resolved":
        fired = (alert.get("statistics") or {}).get("fired_alert_id")
        if isinstance(fired, str) and fired:
            return fired
    return str(alert["alert_id"])


class _Incident:
    __slots__ = ("firing", "firing_sent", "resolved_sent")

    def __init__(self) -> None:
        self.firing: dict[str, Any] | None = None
        self.firing_sent = False
        self.resolved_sent = False


class Decision(NamedTuple):
    """What to send for one alert read from the topic (possibly nothing)."""

    send: tuple[dict[str, Any], ...]
    reason: str  # "new", "stale_firing", "repeat"


class IncidentBook:
    """Open and recently closed incidents, and what each new alert means for a responder.

    ``capacity`` bounds the closed incidents remembered (the oldest are forgotten first);
    open incidents are bounded by the detectors' one-incident-per-feature rule.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self._open: dict[str, _Incident] = {}
        self._closed: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def _close(self, key: str) -> None:
        self._open.pop(key, None)
        self._closed[key] = None
        self._closed.move_to_end(key)
        if len(self._closed) > self._capacity:
            self._closed.popitem(last=False)

    def remember(self, alert: dict[str, Any]) -> None:
        """Record an alert that was already delivered (read again on start-up)."""
        key = incident_of(alert)
        if alert.get("status") == "resolved":
            self._close(key)
        elif key not in self._closed:
            incident = self._open.setdefault(key, _Incident())
            incident.firing, incident.firing_sent = alert, True

    def decide(self, alert: dict[str, Any]) -> Decision:
        """Record a new alert and return what must be sent, in order.

        - firing, incident unknown: send it; the incident is open.
        - firing, incident already resolved and the resolution sent: send nothing (a late
          firing would re-open a closed incident).
        - resolved: send it, and close the incident.
        """
        key = incident_of(alert)
        if alert.get("status") == "resolved":
            if key in self._closed:
                return Decision((), "repeat")
            self._close(key)
            return Decision((alert,), "new")
        if key in self._closed:
            return Decision((), "stale_firing")
        incident = self._open.setdefault(key, _Incident())
        if incident.firing_sent:
            return Decision((), "repeat")
        incident.firing, incident.firing_sent = alert, True
        return Decision((alert,), "new")

    def open_alerts(self) -> list[dict[str, Any]]:
        """The firing alerts of the open incidents (to re-send before they expire)."""
        return [i.firing for i in self._open.values() if i.firing is not None]

    def __len__(self) -> int:
        return len(self._open)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _event_time(alert: dict[str, Any], now: datetime) -> datetime:
    """The alert's event time, never later than ``now`` (Alertmanager works in wall time)."""
    try:
        text = str(alert["event_time"]).replace("Z", "+00:00")
        when = datetime.fromisoformat(text)
    except (KeyError, ValueError):
        return now
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(when, now)


def _labels(alert: dict[str, Any]) -> dict[str, str]:
    kind = str(alert.get("kind") or "unknown")
    labels = {
        "alertname": "Driftline" + "".join(p.capitalize() for p in kind.split("_")),
        "model": str(alert.get("model")),
        "kind": kind,
        "severity": str(alert.get("severity")),
        "detector": str(alert.get("detector")),
        "incident": incident_of(alert),
    }
    if alert.get("model_version"):
        labels["model_version"] = str(alert["model_version"])
    if alert.get("feature"):
        labels["feature"] = str(alert["feature"])
    for key, value in sorted((alert.get("segment") or {}).items()):
        labels["segment_" + _LABEL_NAME.sub("_", str(key))] = str(value)
    return labels


def _annotations(alert: dict[str, Any]) -> dict[str, str]:
    stats = alert.get("statistics") or {}
    subject = alert.get("feature") or "the prediction"
    notes = {
        "summary": f"{str(alert.get('kind', '')).replace('_', ' ')} on {alert.get('model')} "
        f"{subject}",
        "description": str(alert.get("message", "")),
        "alert_id": str(alert.get("alert_id")),
        "event_time": str(alert.get("event_time")),
        "statistics": orjson.dumps(stats, option=orjson.OPT_SORT_KEYS).decode(),
    }
    for name in _STAT_ANNOTATIONS:
        if stats.get(name) is not None:
            value = stats[name]
            notes[name] = f"{value:.6g}" if isinstance(value, float) else str(value)
    return notes


def alertmanager_alert(
    alert: dict[str, Any], *, now: datetime, hold_seconds: float
) -> dict[str, Any]:
    """The Alertmanager v2 ``postableAlert`` for a driftline alert.

    A firing alert starts at its event time and stays active until ``now + hold_seconds``
    unless re-sent (the forwarder re-sends open incidents well before that, as Prometheus
    does); a resolved alert ends at its event time. Event times are clamped to ``now``, so a
    producer clock ahead of the forwarder's cannot keep a resolved alert active. Labels are
    the same for the firing and the resolved alert, so Alertmanager ends the one it holds.
    """
    labels = _labels(alert)
    when = _event_time(alert, now)
    body: dict[str, Any] = {"labels": labels, "annotations": _annotations(alert)}
    if alert.get("status") == "resolved":
        body["endsAt"] = _iso(when)
    else:
        body["startsAt"] = _iso(when)
        body["endsAt"] = _iso(datetime.fromtimestamp(now.timestamp() + hold_seconds, UTC))
    return body


def slack_body(alert: dict[str, Any]) -> dict[str, str]:
    """A Slack-compatible incoming-webhook body (``{"text": ...}``) for one alert."""
    from driftline.streams._tail import format_alert

    state = "RESOLVED" if alert.get("status") == "resolved" else "FIRING"
    return {"text": f"[{state}] driftline\n```\n{format_alert(alert)}\n```"}


def signature(secret: bytes, body: bytes) -> str:
    """The :data:`SIGNATURE_HEADER` value: ``sha256=`` and the hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def sort_for_delivery(alerts: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alerts in event-time order, a firing alert before a resolution at the same time."""
    return sorted(
        alerts,
        key=lambda a: (str(a.get("event_time", "")), a.get("status") == "resolved"),
    )
