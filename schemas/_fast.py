"""The decoding fast path: msgspec decodes and type-checks an ordinary event in one C pass.

``orjson.loads`` followed by the checks of ``_parse.py`` (the reference path) costs about 2.5
times ``orjson.loads`` alone in CPython (``benchmarks/decode.py`` prints both), mostly in
per-field interpreter work. msgspec decodes
straight into a typed struct, checking JSON types in C, so only a few Python-level checks
remain. It is only a fast path: it accepts an event when every field passes exactly the checks
of the reference path, and answers ``None`` for everything else (unknown fields, which must go
to ``extra``; nested values in a prediction object; any error), which the caller then decodes
with the reference path. The reference path alone decides what is invalid and explains why,
so there is one set of error messages; a test holds the two paths to the same events.

Why msgspec agrees with orjson on what it accepts: both reject invalid UTF-8, lone
surrogates, a BOM, ``NaN``/``Infinity`` and numbers that overflow a double, both let the last
of duplicate keys win, and both give ``int`` for integer literals and ``float`` for the rest.
Integers are bounded to int64 here (orjson would turn integers beyond 64 bits into floats), so
rarer integers take the reference path, and the strict decoder accepts nothing nested deeper
than three levels, so the depth limits of the two decoders never come into play.

Events with unknown fields always take the reference path (about 3.5 times
``orjson.loads``, see ``benchmarks/decode.py``): msgspec cannot keep unknown fields, and
checking the known ones with ``msgspec.convert`` after orjson saved only about a tenth.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from ._events import KNOWN_FIELDS, Event, FeatureEvent, LabelEvent, PredictionEvent
from ._timestamp import (
    MAX_EPOCH_S,
    _fromisoformat,
    _match_rfc3339,
    epoch_or_none,
    parse_rfc3339,
)

__all__ = ["decode_fast"]

_Int = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
_Scalar = float | _Int | str | bool | None
_Text = Annotated[str, Meta(min_length=1)]
_NonNegative = Annotated[float, Meta(ge=0)]
_NonNegativeInt = Annotated[int, Meta(ge=0, le=2**63 - 1)]


class _Wire(Struct, forbid_unknown_fields=True):
    """Every field any kind knows; absent ones stay UNSET so that inference can see them.

    The constraints that msgspec can check in C (non-empty identifiers, a non-negative
    latency) are declared here; ``_build`` checks the rest.
    """

    model: _Text | UnsetType = UNSET
    timestamp: float | _Int | str | UnsetType = UNSET
    type: str | UnsetType | None = UNSET
    model_version: _Text | None = None
    event_id: _Text | None = None
    segment: dict[str, str] | None = None
    features: dict[str, _Scalar] | UnsetType = UNSET
    prediction: _Scalar | dict[str, _Scalar] | UnsetType = UNSET
    prediction_id: _Text | UnsetType | None = UNSET
    latency_ms: _NonNegative | _NonNegativeInt | UnsetType | None = UNSET
    entity_id: _Text | UnsetType | None = UNSET
    label: _Scalar | UnsetType = UNSET


_decode = msgspec.json.Decoder(_Wire).decode
_KINDS = frozenset(KNOWN_FIELDS)
_FOREIGN = {
    kind: tuple(sorted(set(_Wire.__struct_fields__) - known))
    for kind, known in KNOWN_FIELDS.items()
}


def decode_fast(data: Any, kind: str | None) -> Event | None:
    """Decode an ordinary, valid event without unknown fields; ``None``: use another path."""
    try:
        wire = _decode(data)
    except Exception:
        # Any failure (invalid UTF-8 raises UnicodeDecodeError, a wrong argument TypeError)
        # is for the reference path to judge and explain.
        return None
    return _build(wire, kind)


def _build(wire: _Wire, kind: str | None) -> Event | None:
    """Apply the checks that types alone do not express, and build the event."""
    declared = wire.type
    if declared is not UNSET and declared is not None:
        if declared not in _KINDS or (kind is not None and declared != kind):
            return None
        kind = declared
    elif kind is None:
        if wire.label is not UNSET and wire.features is UNSET:
            kind = "label"
        elif wire.prediction is not UNSET:
            kind = "prediction"
        else:
            kind = "feature"
    elif kind not in _KINDS:
        return None

    model = wire.model
    if model is UNSET:
        return None
    ts = wire.timestamp
    ttype = type(ts)
    if ttype is float or ttype is int:
        if 0 <= ts < MAX_EPOCH_S:
            ts = float(ts)
        else:
            ts = epoch_or_none(ts)
            if ts is None:
                return None
    elif ttype is str and _match_rfc3339(ts) is not None:
        if ts[10] == "T" and ts[-1] != "z":  # parse_rfc3339, inlined for the usual form
            ts = _fromisoformat(ts).timestamp()
        else:
            ts = parse_rfc3339(ts)
    else:
        return None
    segment = wire.segment or None  # no slices: the same as an absent segment

    if kind == "prediction":
        features = wire.features
        raw = wire.prediction
        if features is UNSET or raw is UNSET:
            return None
        # Fields that only other kinds know are unknown here and would belong in extra.
        if wire.entity_id is not UNSET or wire.label is not UNSET:
            return None
        if type(raw) is dict:
            output = raw.get("score", UNSET)
            if output is UNSET:
                output = raw.get("label", UNSET)
                if output is UNSET:
                    output = raw.get("value", UNSET)
                    if output is UNSET:
                        return None
        else:
            output = raw
        prediction_id = wire.prediction_id
        if prediction_id is UNSET:
            prediction_id = None
        latency = wire.latency_ms
        if latency is UNSET:
            latency = None
        return PredictionEvent(
            model,
            ts,
            features,
            output,
            wire.model_version,
            wire.event_id,
            segment,
            raw,
            prediction_id,
            latency,
            {},
        )

    for name in _FOREIGN[kind]:  # as above, for the other two kinds
        if getattr(wire, name) is not UNSET:
            return None
    version = wire.model_version
    event_id = wire.event_id
    if kind == "feature":
        features = wire.features
        if features is UNSET:
            return None
        entity_id = wire.entity_id
        if entity_id is UNSET:
            entity_id = None
        return FeatureEvent(model, ts, features, version, event_id, segment, entity_id, {})

    label = wire.label
    prediction_id = wire.prediction_id
    if label is None or label is UNSET or prediction_id is None or prediction_id is UNSET:
        return None
    return LabelEvent(model, ts, prediction_id, label, version, event_id, segment, {})
