"""The three input event types of the contract, as typed, slotted dataclasses.

They are plain data: building one directly does not validate it (the parsers in
``_parse.py`` do, once, at the edge), so detectors and tests can construct events cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "EVENT_KINDS",
    "KNOWN_FIELDS",
    "Event",
    "FeatureEvent",
    "LabelEvent",
    "PredictionEvent",
    "Scalar",
]

#: The kinds of input event, in the order the contract lists them.
EVENT_KINDS: tuple[str, str, str] = ("prediction", "feature", "label")

_COMMON_FIELDS = frozenset({"type", "model", "model_version", "timestamp", "event_id", "segment"})
#: The fields each kind knows; any other field of an event goes to its ``extra``.
KNOWN_FIELDS: dict[str, frozenset[str]] = {
    "prediction": _COMMON_FIELDS | {"features", "prediction", "prediction_id", "latency_ms"},
    "feature": _COMMON_FIELDS | {"features", "entity_id"},
    "label": _COMMON_FIELDS | {"prediction_id", "label"},
}

#: A feature value, a prediction output or a label: what the detectors can sketch.
Scalar = float | int | str | bool | None


@dataclass(slots=True)
class PredictionEvent:
    """One model output, with the features the model saw.

    ``prediction`` is the output the detectors watch: the value itself, or for an object the
    first of its ``score``, ``label`` or ``value`` keys that is present; ``prediction_raw``
    keeps what was sent. A ``None`` in ``features`` or ``prediction`` means missing.
    """

    kind: ClassVar[str] = "prediction"

    model: str
    timestamp: float
    features: dict[str, Scalar]
    prediction: Scalar
    model_version: str | None = None
    event_id: str | None = None
    segment: dict[str, str] | None = None
    prediction_raw: Any = None
    prediction_id: str | None = None
    latency_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class FeatureEvent:
    """One row of features from a feature pipeline, without a model output."""

    kind: ClassVar[str] = "feature"

    model: str
    timestamp: float
    features: dict[str, Scalar]
    model_version: str | None = None
    event_id: str | None = None
    segment: dict[str, str] | None = None
    entity_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class LabelEvent:
    """A ground-truth label that arrives later and joins its prediction by ``prediction_id``."""

    kind: ClassVar[str] = "label"

    model: str
    timestamp: float
    prediction_id: str
    label: float | int | str | bool
    model_version: str | None = None
    event_id: str | None = None
    segment: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


#: Any input event.
Event = PredictionEvent | FeatureEvent | LabelEvent
