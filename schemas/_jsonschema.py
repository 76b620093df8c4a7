"""JSON Schema (draft 2020-12) documents of the contract, for producers in any language.

The documents are generated from this module, which takes its constants (the timestamp
pattern and ranges, the largest finite number, the field names) from the Python validation,
and are shipped as package data (``prediction.schema.json`` and so on) so that they can be
served or copied without importing driftline. A test checks that the shipped files equal
what this module generates, and that the schemas and the Python validation give the same
verdict on one corpus of valid and invalid events. To regenerate after a contract change::

    .venv/bin/python -c "from driftline.schemas._jsonschema import write_schemas; write_schemas()"

What a JSON Schema cannot say, and each document states in its description: the text is
UTF-8 without a byte order mark, numbers are IEEE 754 doubles (I-JSON, RFC 7493), and nesting
is at most 64 levels deep (``_depth.py``).
"""

from __future__ import annotations

import sys
from dataclasses import fields
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from ._alert import ALERT_SEVERITIES, ALERT_STATUSES, Alert
from ._depth import MAX_DEPTH
from ._events import EVENT_KINDS
from ._timestamp import (
    MAX_EPOCH_MS,
    MAX_EPOCH_S,
    MIN_EPOCH_MS,
    RFC3339_PATTERN,
    RFC3339_UTC_PATTERN,
)

__all__ = ["SCHEMA_NAMES", "build_schema", "json_schema", "render", "write_schemas"]

#: The documents shipped: the three input kinds, ``event`` (any input, kind inferred as in
#: a mixed file) and ``alert`` (the output).
SCHEMA_NAMES = (*EVENT_KINDS, "event", "alert")

_DRAFT = "https://json-schema.org/draft/2020-12/schema"
_BASE = "https://driftline.dev/schemas/v1/"
_MAX = sys.float_info.max

_DEFS: dict[str, Any] = {
    "identifier": {"type": "string", "minLength": 1},
    "optional_identifier": {
        "description": "A non-empty string; null is the same as absent.",
        "type": ["string", "null"],
        "minLength": 1,
    },
    "finite_number": {
        "description": "A number that converts to a finite double (JSON has no NaN).",
        "type": "number",
        "minimum": -_MAX,
        "maximum": _MAX,
    },
    "scalar": {
        "description": "A feature value or model output; null means missing.",
        "anyOf": [{"$ref": "#/$defs/finite_number"}, {"type": ["string", "boolean", "null"]}],
    },
    "timestamp": {
        "description": (
            "Event time: an RFC 3339 date-time with a zone, years 1970..2200; or epoch "
            f"seconds in [0, {MAX_EPOCH_S}); or epoch milliseconds (a number above "
            f"{MIN_EPOCH_MS}) below {MAX_EPOCH_MS}."
        ),
        "anyOf": [
            {"type": "string", "format": "date-time", "pattern": RFC3339_PATTERN},
            {"type": "number", "minimum": 0, "exclusiveMaximum": MAX_EPOCH_S},
            {"type": "number", "exclusiveMinimum": MIN_EPOCH_MS, "exclusiveMaximum": MAX_EPOCH_MS},
        ],
    },
    "segment": {
        "description": "The slices to monitor: string keys to string values; null or {} is none.",
        "type": ["object", "null"],
        "propertyNames": {"type": "string"},
        "additionalProperties": {"type": "string"},
    },
    "features": {
        "description": "Feature name to value; an absent key and null both mean missing.",
        "type": "object",
        "propertyNames": {"type": "string"},
        "additionalProperties": {"$ref": "#/$defs/scalar"},
    },
    "prediction": {
        "description": (
            "The model output: a scalar (null: no output), or an object whose score, else "
            "label, else value carries it; other keys are allowed."
        ),
        "anyOf": [
            {"$ref": "#/$defs/scalar"},
            {
                "type": "object",
                "properties": {
                    "score": {"$ref": "#/$defs/scalar"},
                    "label": {"$ref": "#/$defs/scalar"},
                    "value": {"$ref": "#/$defs/scalar"},
                },
                "anyOf": [
                    {"required": ["score"]},
                    {"required": ["label"]},
                    {"required": ["value"]},
                ],
            },
        ],
    },
    "label": {
        "description": "A ground-truth label.",
        "anyOf": [{"$ref": "#/$defs/finite_number"}, {"type": ["string", "boolean"]}],
    },
}

_COMMON_PROPERTIES = {
    "model": {"$ref": "#/$defs/identifier"},
    "model_version": {"$ref": "#/$defs/optional_identifier"},
    "timestamp": {"$ref": "#/$defs/timestamp"},
    "event_id": {"$ref": "#/$defs/optional_identifier"},
    "segment": {"$ref": "#/$defs/segment"},
}

_KIND_PROPERTIES: dict[str, dict[str, Any]] = {
    "prediction": {
        "features": {"$ref": "#/$defs/features"},
        "prediction": {"$ref": "#/$defs/prediction"},
        "prediction_id": {"$ref": "#/$defs/optional_identifier"},
        "latency_ms": {"type": ["number", "null"], "minimum": 0, "maximum": _MAX},
    },
    "feature": {
        "features": {"$ref": "#/$defs/features"},
        "entity_id": {"$ref": "#/$defs/optional_identifier"},
    },
    "label": {
        "prediction_id": {"$ref": "#/$defs/identifier"},
        "label": {"$ref": "#/$defs/label"},
    },
}

_REQUIRED: dict[str, list[str]] = {
    "prediction": ["model", "timestamp", "features", "prediction"],
    "feature": ["model", "timestamp", "features"],
    "label": ["model", "timestamp", "prediction_id", "label"],
}

_WIRE = (
    "One JSON object per Kafka message or per line of a replay file. Beyond this schema: "
    "UTF-8 without a byte order mark; numbers are IEEE 754 doubles (I-JSON, RFC 7493); "
    f"nesting at most {MAX_DEPTH} levels, the event itself counting as one. Fields not "
    "listed here are allowed and kept."
)

_TITLES = {
    "prediction": "driftline prediction event (contract v1): one model output and its features",
    "feature": "driftline feature event (contract v1): one row from a feature pipeline",
    "label": "driftline label event (contract v1): a ground-truth label joined by prediction_id",
}


def _event_body(kind: str) -> dict[str, Any]:
    """The schema of one input kind, without the document header."""
    return {
        "title": _TITLES[kind],
        "description": _WIRE,
        "type": "object",
        "propertyNames": {"type": "string"},
        "required": _REQUIRED[kind],
        "properties": {
            "type": {
                "description": "Optional on a source of one kind; must not contradict it.",
                "enum": [kind, None],
            },
            **_COMMON_PROPERTIES,
            **_KIND_PROPERTIES[kind],
        },
        "additionalProperties": True,
    }


def _document(name: str, body: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": _DRAFT, "$id": f"{_BASE}{name}.schema.json", **body, "$defs": defs}


def _event_schema() -> dict[str, Any]:
    """Any input event, its kind taken from ``type`` or inferred as the contract says."""

    def is_type(kind: str) -> dict[str, Any]:
        return {"required": ["type"], "properties": {"type": {"const": kind}}}

    inferred = {
        "if": {"required": ["label"], "not": {"required": ["features"]}},
        "then": {"$ref": "#/$defs/label_event"},
        "else": {
            "if": {"required": ["prediction"]},
            "then": {"$ref": "#/$defs/prediction_event"},
            "else": {"$ref": "#/$defs/feature_event"},
        },
    }
    body = {
        "title": "driftline input event (contract v1): prediction, feature or label",
        "description": (
            "An explicit type wins; without one, an event with label and no features is a "
            "label, one with prediction is a prediction, otherwise a feature event. " + _WIRE
        ),
        "type": "object",
        "properties": {"type": {"enum": [*EVENT_KINDS, None]}},
        "if": is_type("prediction"),
        "then": {"$ref": "#/$defs/prediction_event"},
        "else": {
            "if": is_type("feature"),
            "then": {"$ref": "#/$defs/feature_event"},
            "else": {
                "if": is_type("label"),
                "then": {"$ref": "#/$defs/label_event"},
                "else": inferred,
            },
        },
    }
    defs = dict(_DEFS)
    for kind in EVENT_KINDS:
        defs[f"{kind}_event"] = _event_body(kind)
    return _document("event", body, defs)


def _alert_schema() -> dict[str, Any]:
    text = {"$ref": "#/$defs/identifier"}
    optional = {"type": ["string", "null"], "minLength": 1}
    json_object = {"type": "object", "propertyNames": {"type": "string"}}
    body = {
        "title": "driftline alert (schema version 1): one anomaly for downstream responders",
        "type": "object",
        "propertyNames": {"type": "string"},
        "required": [f.name for f in fields(Alert) if f.name != "extra"],
        "properties": {
            "schema_version": {"const": 1},
            "alert_id": {**text, "description": "Stable: redelivered alerts repeat it."},
            "status": {"enum": list(ALERT_STATUSES)},
            "kind": {
                **text,
                "description": "Open set; known: " + ", ".join(Alert.KNOWN_KINDS) + ".",
            },
            "severity": {"enum": list(ALERT_SEVERITIES)},
            "model": text,
            "model_version": optional,
            "segment": _DEFS["segment"],
            "feature": {**optional, "description": "null for model-level alerts."},
            "detector": text,
            "event_time": {
                "description": "Event time of the event that raised the alert, UTC.",
                "type": "string",
                "format": "date-time",
                "pattern": RFC3339_UTC_PATTERN,
            },
            "window": {
                **json_object,
                "description": "Event-time start, end and counts of the data compared.",
            },
            "statistics": {
                **json_object,
                "description": "The numbers that justify the alert: before, after, score, "
                "threshold, p-value where one applies.",
            },
            "message": text,
        },
        "additionalProperties": True,
    }
    return _document("alert", body, {"identifier": _DEFS["identifier"]})


def build_schema(name: str) -> dict[str, Any]:
    """Generate the schema document ``name`` (one of :data:`SCHEMA_NAMES`)."""
    if name in EVENT_KINDS:
        return _document(name, _event_body(name), dict(_DEFS))
    if name == "event":
        return _event_schema()
    if name == "alert":
        return _alert_schema()
    raise ValueError(f"unknown schema {name!r}; expected one of {SCHEMA_NAMES}")


@cache
def _shipped(name: str) -> bytes:
    return resources.files(__package__).joinpath(f"{name}.schema.json").read_bytes()


def json_schema(kind: str) -> dict[str, Any]:
    """Return the shipped JSON Schema document for ``kind`` as a fresh dict.

    Parameters
    ----------
    kind : {"prediction", "feature", "label", "event", "alert"}

    Returns
    -------
    dict
        A new object on every call, so a caller may modify it.
    """
    if kind not in SCHEMA_NAMES:
        raise ValueError(f"unknown schema {kind!r}; expected one of {SCHEMA_NAMES}")
    return orjson.loads(_shipped(kind))


def render(name: str) -> bytes:
    """The exact bytes of a shipped schema file (indented, keys in a stable order)."""
    return orjson.dumps(build_schema(name), option=orjson.OPT_INDENT_2) + b"\n"


def write_schemas(directory: Path | None = None) -> None:
    """Write every schema file (by default next to this module, i.e. in ``schemas/``)."""
    target = Path(__file__).parent if directory is None else Path(directory)
    for name in SCHEMA_NAMES:
        (target / f"{name}.schema.json").write_bytes(render(name))
