"""The output of driftline: one alert per message on the alerts topic, schema version 1."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import orjson

from ._errors import ContractError, describe
from ._errors import show as _show
from ._timestamp import match_rfc3339_utc

__all__ = ["ALERT_SEVERITIES", "ALERT_STATUSES", "Alert"]

_DUMP_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY

#: ``firing`` opens an incident, ``resolved`` closes the one with the same subject.
ALERT_STATUSES = ("firing", "resolved")
#: ``critical`` pages a person; ``warning`` goes to a dashboard or a ticket.
ALERT_SEVERITIES = ("warning", "critical")


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """An anomaly that downstream responders act on (paging, retraining, canary rollback).

    Frozen, because an alert is a fact about the stream: the detector that raised it, the
    alerts topic and a replay must all see the same value. Keyword-only, because fourteen
    positional fields would invite silent mix-ups. Construction validates the fields that
    consumers branch on (status, severity, kind, event time), so a detector bug fails at the
    source rather than in somebody's pager integration.

    ``kind`` is an open set: the contract names ``data_drift``, ``prediction_drift``,
    ``concept_drift``, ``performance``, ``estimated_performance`` (a drop of the accuracy
    estimated from calibrated scores before the labels arrive), ``data_quality``, ``schema``
    and ``latency``, and consumers must tolerate others. ``window`` describes the reference
    and current data that were compared (event-time start and end, and counts),
    ``statistics`` the numbers that justify the alert (before, after, score, threshold,
    p-value where one applies). Unknown fields read by :meth:`from_json` are kept in
    ``extra`` and written back by :meth:`to_json`.

    In JSON, non-finite floats inside ``window`` and ``statistics`` become ``null`` (JSON
    has no NaN), so an infinite divergence does not stop an alert from being published.
    """

    KNOWN_KINDS: ClassVar[tuple[str, ...]] = (
        "data_drift",
        "prediction_drift",
        "concept_drift",
        "performance",
        "estimated_performance",
        "data_quality",
        "schema",
        "latency",
    )

    schema_version: int = 1
    alert_id: str
    status: str
    kind: str
    severity: str
    model: str
    model_version: str | None
    segment: dict[str, str] | None
    feature: str | None
    detector: str
    event_time: str
    window: dict[str, Any]
    statistics: dict[str, Any]
    message: str
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self)

    def __hash__(self) -> int:
        # The generated hash would hash the dict fields and fail; these fields identify an
        # alert (equal alerts share them), so alerts can go in sets for deduplication.
        return hash((self.alert_id, self.status, self.kind, self.event_time, self.message))

    def to_dict(self) -> dict[str, Any]:
        """The alert as a JSON-able dict; ``extra`` fields are merged in at the top level.

        The nested dicts (``segment``, ``window``, ``statistics``) are the alert's own, not
        copies: treat them as read-only.
        """
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        if self.extra:
            data.update(self.extra)
        return data

    def to_json(self) -> bytes:
        """Serialize deterministically: keys sorted at every level, compact separators.

        The same alert always gives the same bytes, so downstream deduplication can compare
        payloads as well as ids. numpy scalars and arrays in ``window``/``statistics`` (what
        the detectors compute with) are written as plain JSON numbers and arrays.
        """
        return orjson.dumps(self.to_dict(), option=_DUMP_OPTIONS)

    @classmethod
    def from_dict(cls, data: object) -> Alert:
        """Validate a decoded alert object; raise :class:`ContractError` naming the field."""
        if type(data) is not dict:
            raise ContractError("<message>", f"expected a JSON object, got {describe(data)}")
        known = {}
        extra = {}
        for key, value in data.items():
            if type(key) is not str:
                raise ContractError("<message>", f"keys must be strings, got {describe(key)}")
            if key in _FIELD_NAMES:
                known[key] = value
            else:
                extra[key] = value
        missing = [name for name in _REQUIRED if name not in known]
        if missing:
            raise ContractError(missing[0], "required field is missing")
        try:
            return cls(**known, extra=extra)
        except TypeError as exc:  # pragma: no cover - guarded by the checks above
            raise ContractError("<message>", str(exc)) from None

    @classmethod
    def from_json(cls, data: bytes | bytearray | memoryview | str) -> Alert:
        """Decode and validate one alert message (the inverse of :meth:`to_json`)."""
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ContractError("<message>", f"not valid JSON: {exc}") from None
        return cls.from_dict(obj)


_FIELD_NAMES = frozenset(f.name for f in fields(Alert)) - {"extra"}
_REQUIRED = tuple(f.name for f in fields(Alert) if f.name != "extra")
_OPTIONAL_STRINGS = ("model_version", "feature")
_STRINGS = ("alert_id", "kind", "model", "detector", "message")


def _check(alert: Alert) -> None:
    """Validate an alert's fields; the JSON Schema ``alert.schema.json`` says the same."""
    version = alert.schema_version
    # 1.0 is accepted as 1 because JSON (and JSON Schema's "const") does not tell them apart.
    if (type(version) is not int and type(version) is not float) or version != 1:
        raise ContractError("schema_version", f"expected 1, got {_show(version)}")
    for name in _STRINGS:
        value = getattr(alert, name)
        if type(value) is not str or not value:
            raise ContractError(name, f"expected a non-empty string, got {_show(value)}")
    for name in _OPTIONAL_STRINGS:
        value = getattr(alert, name)
        if value is not None and (type(value) is not str or not value):
            raise ContractError(name, f"expected a non-empty string or null, got {_show(value)}")
    if alert.status not in ALERT_STATUSES:
        raise ContractError("status", f'expected "firing" or "resolved", got {_show(alert.status)}')
    if alert.severity not in ALERT_SEVERITIES:
        raise ContractError(
            "severity", f'expected "warning" or "critical", got {_show(alert.severity)}'
        )
    segment = alert.segment
    if segment is not None:
        if type(segment) is not dict:
            raise ContractError("segment", f"expected an object or null, got {describe(segment)}")
        for key, value in segment.items():
            if type(key) is not str:
                raise ContractError("segment", f"keys must be strings, got {describe(key)}")
            if type(value) is not str:
                raise ContractError(f"segment.{key}", f"expected a string, got {describe(value)}")
    event_time = alert.event_time
    if type(event_time) is not str or match_rfc3339_utc(event_time) is None:
        raise ContractError(
            "event_time", f"expected an RFC 3339 UTC string ending in Z, got {_show(event_time)}"
        )
    for name in ("window", "statistics"):
        value = getattr(alert, name)
        if type(value) is not dict:
            raise ContractError(name, f"expected an object, got {describe(value)}")
        for key in value:
            if type(key) is not str:
                raise ContractError(name, f"keys must be strings, got {describe(key)}")
