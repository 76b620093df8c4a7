"""One corpus of valid and invalid contract messages, judged by both validators.

Each case is either wire bytes (judged by ``decode_event`` and, after a strict I-JSON parse,
by the JSON Schema) or a Python object (judged by ``parse_event`` and by the JSON Schema
directly). The expected verdict is written by hand, so the agreement test checks both
validators against the contract, not merely against each other.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

import orjson

DBL_MAX = sys.float_info.max
T0 = 1_714_564_800  # 2024-05-01T12:00:00Z
MAX_S = 7_289_654_400
MIN_MS = 100_000_000_000


@dataclass(frozen=True)
class Case:
    name: str
    kind: str | None  # "prediction", "feature", "label", None (inferred) or "alert"
    data: Any  # bytes: a wire message; anything else: a decoded object for parse_event
    valid: bool
    field: str | None = None  # for invalid cases: the field the error must name


def prediction(**changes: Any) -> dict:
    event: dict[str, Any] = {
        "type": "prediction",
        "model": "fraud",
        "model_version": "v3",
        "timestamp": "2024-05-01T12:00:00.123Z",
        "event_id": "e-1",
        "segment": {"region": "eu", "device": "ios"},
        "features": {f"f{i}": (i * 1.5 if i % 3 else f"c{i}") for i in range(20)},
        "prediction": {"score": 0.81, "label": "fraud"},
        "prediction_id": "p-1",
        "latency_ms": 12.5,
    }
    event.update(changes)
    return {k: v for k, v in event.items() if v is not _DROP}


def feature(**changes: Any) -> dict:
    event: dict[str, Any] = {"model": "fraud", "timestamp": T0, "features": {"a": 1, "b": "x"}}
    event.update(changes)
    return {k: v for k, v in event.items() if v is not _DROP}


def label(**changes: Any) -> dict:
    event: dict[str, Any] = {"model": "fraud", "timestamp": T0, "prediction_id": "p-1", "label": 1}
    event.update(changes)
    return {k: v for k, v in event.items() if v is not _DROP}


def alert(**changes: Any) -> dict:
    event: dict[str, Any] = {
        "schema_version": 1,
        "alert_id": "a-1",
        "status": "firing",
        "kind": "data_drift",
        "severity": "warning",
        "model": "fraud",
        "model_version": None,
        "segment": None,
        "feature": "f1",
        "detector": "psi",
        "event_time": "2024-05-01T12:00:00Z",
        "window": {"reference": {"count": 100}, "current": {"count": 50}},
        "statistics": {"score": 0.3, "threshold": 0.2},
        "message": "f1 drifted",
    }
    event.update(changes)
    return {k: v for k, v in event.items() if v is not _DROP}


_DROP = object()


def wire(obj: Any) -> bytes:
    return orjson.dumps(obj)


def splice(obj: dict, marker: str, text: bytes) -> bytes:
    """Serialize ``obj`` and replace the string ``marker`` by raw JSON ``text``."""
    data = orjson.dumps(obj)
    needle = orjson.dumps(marker)
    assert data.count(needle) == 1
    return data.replace(needle, text)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def nested_object(depth: int) -> list:
    """A Python list nested ``depth`` deep, built without recursion."""
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def _cases() -> list[Case]:
    c: list[Case] = []

    def ok(name, kind, data):
        c.append(Case(name, kind, data, True))

    def bad(name, kind, data, field=None):
        c.append(Case(name, kind, data, False, field))

    # Valid input events, on the wire and as objects.
    for kind in ("prediction", None):
        ok(f"full prediction [{kind}]", kind, wire(prediction()))
    ok("prediction object", "prediction", prediction())
    ok("no type field", None, wire(prediction(type=_DROP)))
    ok("type null", None, wire(prediction(type=None)))
    ok(
        "minimal prediction",
        None,
        wire({"model": "m", "timestamp": 0, "features": {}, "prediction": 1}),
    )
    ok("prediction null (no output)", None, wire(prediction(prediction=None)))
    ok("prediction string", None, wire(prediction(prediction="fraud")))
    ok("prediction bool", None, wire(prediction(prediction=False)))
    ok(
        "prediction value key, other keys",
        None,
        wire(prediction(prediction={"value": 3, "x": [1]})),
    )
    ok("prediction score null", None, wire(prediction(prediction={"score": None})))
    ok(
        "optional fields null",
        None,
        wire(
            prediction(
                model_version=None, event_id=None, segment=None, prediction_id=None, latency_ms=None
            )
        ),
    )
    ok("latency zero", None, wire(prediction(latency_ms=0)))
    ok("feature event", "feature", wire(feature(entity_id="u-1")))
    ok("feature inferred", None, wire(feature()))
    ok("feature with label but features", None, wire(feature(label=1)))
    ok(
        "feature event carrying prediction on a feature source",
        "feature",
        wire(prediction(type=_DROP)),
    )
    ok("label number", None, wire(label()))
    ok("label string", "label", wire(label(label="fraud")))
    ok("label bool", "label", wire(label(label=True)))
    ok("label explicit type", None, wire(label(type="label")))
    ok("label empty string", "label", wire(label(label="")))
    ok("empty feature value string", None, wire(prediction(features={"a": ""})))
    ok("empty feature name", None, wire(prediction(features={"": 1})))
    ok("empty features", None, wire(prediction(features={})))
    ok("empty segment", None, wire(prediction(segment={})))
    ok("empty segment value", None, wire(prediction(segment={"region": ""})))
    ok(
        "unicode and escapes",
        None,
        wire(
            prediction(model="модель", features={"naïve": '日本\u0000\n"', "emoji": "\U0001f600"})
        ),
    )
    ok(
        "extra fields of every type",
        None,
        wire(prediction(a=None, b=[1, {"c": "d"}], e={"f": 1.5}, g=True, h="")),
    )
    ok(
        "duplicate keys: last wins",
        None,
        b'{"model": 1, "model": "m", "timestamp": 0, "features": {}, "prediction": 1}',
    )
    ok(
        "2**70 integer text",
        None,
        splice(prediction(features={"x": "X"}), "X", str(2**70).encode()),
    )
    ok("2**70 integer object", None, prediction(features={"big": 2**70}))
    ok(
        "largest double",
        None,
        splice(prediction(features={"x": "X"}), "X", b"1.7976931348623157e308"),
    )
    ok(
        "most negative double",
        None,
        splice(prediction(features={"x": "X"}), "X", b"-1.7976931348623157e308"),
    )
    ok(
        "integer text rounding to the largest double",
        None,
        splice(prediction(features={"x": "X"}), "X", str(int(DBL_MAX) + 10**290).encode()),
    )
    ok("underflow to zero", None, splice(prediction(features={"x": "X"}), "X", b"1e-400"))
    ok("exponent forms", None, splice(prediction(features={"x": "X"}), "X", b"-0.0E+0"))
    ok("depth 64 in an extra field", None, splice(prediction(trace="T"), "T", nested(63)))
    ok(
        "depth 64 in a prediction object",
        None,
        splice(prediction(prediction={"score": 1, "x": "T"}), "T", nested(62)),
    )
    ok(
        "one megabyte event",
        None,
        wire(
            prediction(
                features={f"feature_{i:06d}": i * 0.5 for i in range(40_000)}, note="x" * 200_000
            )
        ),
    )
    ok("large extra object", None, prediction(blob={str(i): [i] * 3 for i in range(1000)}))
    # Timestamps.
    for ts in (
        "2024-05-01T12:00:00Z",
        "2024-05-01t12:00:00z",
        "2024-05-01T14:00:00+02:00",
        "2024-05-01T12:00:00.123456789-00:00",
        "2024-02-29T00:00:00Z",
        "2000-02-29T23:59:59.5+23:59",
        "1970-01-01T00:00:00Z",
        "2200-12-31T23:59:59Z",
        "1970-01-01T00:30:00+01:00",
    ):
        ok(f"timestamp {ts}", None, wire(prediction(timestamp=ts)))
    for ts in (
        0,
        0.0,
        T0,
        T0 + 0.5,
        MAX_S - 1,
        MAX_S - 0.001,
        MIN_MS + 1,
        T0 * 1000,
        MAX_S * 1000 - 1,
        1e11 + 0.5,
    ):
        ok(f"timestamp {ts!r}", None, wire(prediction(timestamp=ts)))

    # Invalid: the message is not a UTF-8 JSON object.
    m = "<message>"
    bad("empty bytes", None, b"", m)
    bad("invalid UTF-8 byte", None, wire(prediction(model="MARK")).replace(b"MARK", b"\xff"), m)
    bad("overlong UTF-8", None, wire(prediction(model="MARK")).replace(b"MARK", b"\xc0\xaf"), m)
    bad("UTF-16 text", None, wire(prediction()).decode().encode("utf-16"), m)
    bad("BOM", None, b"\xef\xbb\xbf" + wire(prediction()), m)
    bad(
        "lone surrogate escape", None, splice(prediction(features={"x": "X"}), "X", b'"\\ud800"'), m
    )
    bad("truncated", None, wire(prediction())[:-1], m)
    bad("trailing garbage", None, wire(prediction()) + b"x", m)
    bad("two objects", None, wire(prediction()) + wire(prediction()), m)
    bad("array", None, wire([prediction()]), m)
    bad("string", None, b'"event"', m)
    bad("null", None, b"null", m)
    bad("number", None, b"3", m)
    bad("NaN token", None, splice(prediction(features={"x": "X"}), "X", b"NaN"), m)
    bad("Infinity token", None, splice(prediction(features={"x": "X"}), "X", b"Infinity"), m)
    bad("-Infinity token", None, splice(prediction(features={"x": "X"}), "X", b"-Infinity"), m)
    bad("NaN token in extra", None, splice(prediction(extra="X"), "X", b"NaN"), m)
    bad("1e400", None, splice(prediction(features={"x": "X"}), "X", b"1e400"), m)
    bad("-1e400 timestamp", None, splice(prediction(timestamp="X"), "X", b"-1e400"), m)
    bad("400-digit integer", None, splice(prediction(extra="X"), "X", b"1" + b"0" * 400), m)
    bad("depth 65 in an extra field", None, splice(prediction(trace="T"), "T", nested(64)), "trace")
    bad(
        "depth 65 in a prediction object",
        None,
        splice(prediction(prediction={"score": 1, "x": "T"}), "T", nested(63)),
        "prediction",
    )
    bad("depth 65 in a label event extra", "label", splice(label(t="T"), "T", nested(64)), "t")
    bad(
        "depth 1024 in an extra field",
        None,
        splice(prediction(trace="T"), "T", nested(1023)),
        "trace",
    )
    bad("depth 1025 in an extra field", None, splice(prediction(trace="T"), "T", nested(1024)), m)
    bad(
        "depth 10000 in an extra field", None, splice(prediction(trace="T"), "T", nested(10_000)), m
    )
    bad("single quotes", None, b"{'model': 'm'}", m)
    bad("comment", None, b'{"model": "m" /* c */}', m)

    # Invalid fields.
    bad("timestamp bool", None, wire(prediction(timestamp=True)), "timestamp")
    bad("timestamp list", None, wire(prediction(timestamp=[T0])), "timestamp")
    bad("timestamp null", None, wire(prediction(timestamp=None)), "timestamp")
    bad("timestamp missing", None, wire(prediction(timestamp=_DROP)), "timestamp")
    bad("timestamp numeric string", None, wire(prediction(timestamp=str(T0))), "timestamp")
    for ts in (
        "2024-05-01T12:00:00",
        "2024-05-01 12:00:00Z",
        "2024-02-30T00:00:00Z",
        "2100-02-29T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "2201-01-01T00:00:00Z",
        "2024-05-01T12:00:60Z",
        "2024-05-01T12:00:00Z\n",
        "2024-05-01T12:00Z",
        "2024-05-01",
        "",
        "\uff12\uff10\uff12\uff14-05-01T12:00:00Z",
    ):
        bad(f"timestamp {ts!r}", None, wire(prediction(timestamp=ts)), "timestamp")
    for ts in (-1, -0.5, MAX_S, 5e10, MIN_MS, MAX_S * 1000, 1e300):
        bad(f"timestamp {ts!r}", None, wire(prediction(timestamp=ts)), "timestamp")
    bad("model missing", None, wire(prediction(model=_DROP)), "model")
    bad("model empty", None, wire(prediction(model="")), "model")
    bad("model number", None, wire(prediction(model=3)), "model")
    bad("model null", None, wire(prediction(model=None)), "model")
    bad("model_version empty", None, wire(prediction(model_version="")), "model_version")
    bad("event_id number", None, wire(prediction(event_id=1)), "event_id")
    bad("segment number value", None, wire(prediction(segment={"region": 1})), "segment.region")
    bad("segment null value", None, wire(prediction(segment={"region": None})), "segment.region")
    bad("segment array", None, wire(prediction(segment=["eu"])), "segment")
    bad("feature value object", None, wire(prediction(features={"age": {"y": 1}})), "features.age")
    bad("feature value array", None, wire(prediction(features={"age": [1]})), "features.age")
    bad("features null", None, wire(prediction(features=None)), "features")
    bad("features missing", "prediction", wire(prediction(features=_DROP)), "features")
    bad("features array", None, wire(prediction(features=[1])), "features")
    bad("prediction missing", "prediction", wire(prediction(prediction=_DROP)), "prediction")
    bad("prediction array", None, wire(prediction(prediction=[0.1])), "prediction")
    bad(
        "prediction object without output",
        None,
        wire(prediction(prediction={"p": 0.1})),
        "prediction",
    )
    bad("prediction empty object", None, wire(prediction(prediction={})), "prediction")
    bad(
        "prediction score object",
        None,
        wire(prediction(prediction={"score": {}})),
        "prediction.score",
    )
    bad(
        "prediction value array",
        None,
        wire(prediction(prediction={"score": 1, "value": [1]})),
        "prediction.value",
    )
    bad("prediction_id empty", None, wire(prediction(prediction_id="")), "prediction_id")
    bad("latency negative", None, wire(prediction(latency_ms=-0.5)), "latency_ms")
    bad("latency string", None, wire(prediction(latency_ms="5")), "latency_ms")
    bad("latency bool", None, wire(prediction(latency_ms=True)), "latency_ms")
    bad("type unknown", None, wire(prediction(type="predictions")), "type")
    bad("type number", None, wire(prediction(type=1)), "type")
    bad("type contradicts kind", "feature", wire(prediction()), "type")
    bad("label type on prediction source", "prediction", wire(label(type="label")), "type")
    bad("label null", None, wire(label(label=None)), "label")
    bad("label object", None, wire(label(label={"y": 1})), "label")
    bad("label missing on a label source", "label", wire(label(label=_DROP)), "label")
    bad("prediction_id missing", None, wire(label(prediction_id=_DROP)), "prediction_id")
    bad("prediction_id number", None, wire(label(prediction_id=7)), "prediction_id")
    bad("feature event without features", None, wire(feature(features=_DROP)), "features")
    bad("entity_id empty", "feature", wire(feature(entity_id="")), "entity_id")

    # Python objects that no JSON text can produce.
    for value, name in (
        (math.nan, "NaN"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
        (10**400, "10**400"),
        (-(10**309), "-10**309"),
        (int(DBL_MAX) + 1, "int(DBL_MAX) + 1"),
    ):
        bad(f"feature {name}", None, prediction(features={"x": value}), "features.x")
        bad(f"prediction {name}", None, prediction(prediction=value), "prediction")
        bad(f"score {name}", None, prediction(prediction={"score": value}), "prediction.score")
        bad(f"timestamp {name}", None, prediction(timestamp=value), "timestamp")
        bad(f"latency {name}", None, prediction(latency_ms=value), "latency_ms")
        bad(f"label {name}", None, label(label=value), "label")
    bad("non-string top-level key", None, {**prediction(), 1: "x"}, m)
    bad("non-string feature key", None, prediction(features={1: 1.0}), "features")
    bad("non-string segment key", None, prediction(segment={None: "x"}), "segment")
    bad("tuple feature value", None, prediction(features={"x": (1,)}), "features.x")
    bad("top-level list object", None, [prediction()], m)
    bad(
        "depth 10000 in an extra field object",
        None,
        prediction(trace=nested_object(10_000)),
        "trace",
    )
    ok("depth 64 in an extra field object", None, prediction(trace=nested_object(63)))

    # Alerts.
    ok("alert", "alert", wire(alert()))
    ok("alert object", "alert", alert())
    ok(
        "alert with extra and segment",
        "alert",
        wire(alert(segment={"region": "eu"}, runbook="x", model_version="v1", feature=None)),
    )
    ok("alert fractional UTC time", "alert", wire(alert(event_time="2024-05-01T12:00:00.25Z")))
    ok(
        "alert schema_version 1.0",
        "alert",
        wire(alert()).replace(b'"schema_version":1,', b'"schema_version":1.0,'),
    )
    bad("alert status", "alert", wire(alert(status="open")), "status")
    bad("alert severity", "alert", wire(alert(severity="info")), "severity")
    bad("alert kind empty", "alert", wire(alert(kind="")), "kind")
    bad("alert missing detector", "alert", wire(alert(detector=_DROP)), "detector")
    bad(
        "alert missing schema_version", "alert", wire(alert(schema_version=_DROP)), "schema_version"
    )
    bad("alert schema_version 2", "alert", wire(alert(schema_version=2)), "schema_version")
    bad("alert schema_version true", "alert", wire(alert(schema_version=True)), "schema_version")
    bad(
        "alert event_time offset",
        "alert",
        wire(alert(event_time="2024-05-01T14:00:00+02:00")),
        "event_time",
    )
    bad("alert event_time number", "alert", wire(alert(event_time=T0)), "event_time")
    bad("alert window array", "alert", wire(alert(window=[])), "window")
    bad("alert statistics null", "alert", wire(alert(statistics=None)), "statistics")
    bad("alert segment value", "alert", wire(alert(segment={"r": 1})), "segment.r")
    bad("alert feature empty", "alert", wire(alert(feature="")), "feature")
    bad("alert not an object", "alert", b"[]", m)
    bad("alert invalid UTF-8", "alert", b'{"\xff": 1}', m)
    return c


CASES = _cases()
