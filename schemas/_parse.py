"""Validation of input events: from bytes (``decode_event``) or a decoded object (``parse_event``).

``decode_event`` first tries the msgspec fast path of ``_fast.py``, which takes ordinary valid
events; every other message comes to the reference path here, which alone decides what is
invalid and words the error. The checks run once per message, so they are written for speed:
exact ``type(v) is ...`` checks instead of ``isinstance`` and helper calls, the numeric
timestamp branch inlined, events built with positional arguments, and no copy of the
``features`` dict.

After orjson the reference path leans on what orjson guarantees for JSON text, which a test
pins down: object keys are strings, floats are finite (``NaN``/``Infinity`` tokens and
overflowing numbers such as ``1e400`` are decode errors), and integers beyond 64 bits come
back as floats. So the feature values need only a type check, done in one C-level call.
``parse_event`` accepts arbitrary Python objects and checks those properties itself.
"""

from __future__ import annotations

import sys
from typing import Any

from orjson import JSONDecodeError, loads

from ._depth import MAX_DEPTH, nested_deeper_than
from ._errors import ContractError, describe
from ._errors import show as _show
from ._events import EVENT_KINDS, KNOWN_FIELDS, Event, FeatureEvent, LabelEvent, PredictionEvent
from ._fast import decode_fast
from ._timestamp import (
    MAX_EPOCH_MS,
    MAX_EPOCH_S,
    MIN_EPOCH_MS,
    _fromisoformat,
    _match_rfc3339,
    epoch_problem,
    parse_rfc3339,
)

__all__ = ["decode_event", "decode_reference", "parse_event"]

_MESSAGE = "<message>"
#: Largest finite float: a number field must be convertible to a finite float64.
_MAX_FLOAT = sys.float_info.max
_SCALARS = frozenset({float, int, str, bool, type(None)})
_STRINGS = frozenset({str})
_OUTPUT_KEYS = ("score", "label", "value")
_KNOWN = KNOWN_FIELDS
_MISSING: Any = object()
# A top-level field's value may nest one level less than the event (the event is level 1).
_VALUE_LEVELS = MAX_DEPTH - 1
_TOO_DEEP = f"nested deeper than the contract's limit of {MAX_DEPTH} levels"
_SCALAR_PROBLEM = "expected a number, string, boolean or null, got "
_TS_PROBLEM = "expected an RFC 3339 string or epoch number"
_NON_EMPTY = "expected a non-empty string"
_FINITE = "expected a finite number, got "
_TYPE_PROBLEM = 'expected "prediction", "feature" or "label"'
_PREDICTION_PROBLEM = "expected a number, string, boolean, null or object"
_LATENCY_PROBLEM = "expected a non-negative finite number"


def decode_event(data: bytes | bytearray | memoryview | str, kind: str | None = None) -> Event:
    """Decode one message (UTF-8 JSON text) and validate it as a contract event.

    Parameters
    ----------
    data : bytes
        The Kafka message value or one line of a replay file. ``None`` (a tombstone) and
        empty messages are contract errors, not crashes.
    kind : {"prediction", "feature", "label"}, optional
        The kind the topic carries. ``None`` infers it per event (mixed files).

    Returns
    -------
    PredictionEvent | FeatureEvent | LabelEvent

    Raises
    ------
    ContractError
        With ``field == "<message>"`` when the bytes are not a UTF-8 JSON object (invalid
        UTF-8, a BOM, ``NaN``, numbers that overflow a double, nesting deeper than the
        decoder's 1024 levels), otherwise with the dotted path of the first offending field
        (an unknown field nested deeper than the contract's 64 levels is named too).
    ValueError
        For a ``kind`` that is not one of :data:`EVENT_KINDS` (a programming error).
    """
    event = decode_fast(data, kind)
    if event is not None:
        return event
    return _parse(_loads_object(data), kind, True)


def decode_reference(data: object, kind: str | None = None) -> Event:
    """``decode_event`` without its msgspec fast path: orjson, then the checks of this module.

    This path alone defines what is invalid and how the error reads; ``decode_event`` gives
    the same result for every message (tests hold it to that) and comes here for every message
    its fast path does not take (see ``_fast.py``).
    """
    return _parse(_loads_object(data), kind, True)


def _loads_object(data: object) -> dict:
    """Decode with orjson; anything but a JSON object is a contract error of the message."""
    try:
        obj = loads(data)  # type: ignore[arg-type]
    except JSONDecodeError as exc:
        raise ContractError(_MESSAGE, _json_problem(data, exc)) from None
    if type(obj) is not dict:
        raise ContractError(_MESSAGE, f"expected a JSON object, got {describe(obj)}")
    return obj


def parse_event(obj: object, kind: str | None = None) -> Event:
    """Validate an already decoded JSON object as a contract event.

    Unlike :func:`decode_event` it cannot assume the object came from JSON text, so it also
    rejects non-string keys, ``NaN``/infinite floats and integers too large for a double in
    the fields it types. Unknown fields go to ``extra`` as they are (checked only for the
    nesting limit), and ``features`` is kept by reference, not copied.

    Parameters
    ----------
    obj : object
        Usually the result of ``orjson.loads``.
    kind : {"prediction", "feature", "label"}, optional
        The kind the source carries; ``None`` infers it per event.

    Raises
    ------
    ContractError
        Naming the first offending field and the problem.
    """
    if type(obj) is not dict:
        raise ContractError(_MESSAGE, f"expected a JSON object, got {describe(obj)}")
    return _parse(obj, kind, False)


def _parse(obj: dict, kind: str | None, trusted: bool) -> Event:
    """Validate ``obj`` as an event of ``kind``; ``trusted`` when it came from orjson."""
    get = obj.get
    declared = get("type")
    if declared is not None:
        if type(declared) is not str or declared not in _KNOWN:
            raise ContractError("type", f"{_TYPE_PROBLEM}, got {_show(declared)}")
        if kind is not None and declared != kind:
            _check_kind(kind)
            raise ContractError("type", f'"{declared}" event on a source of "{kind}" events')
        kind = declared
    elif kind is None:
        if "label" in obj and "features" not in obj:
            kind = "label"
        elif "prediction" in obj:
            kind = "prediction"
        else:
            kind = "feature"
    known = _KNOWN.get(kind)  # type: ignore[arg-type]
    if known is None:
        _check_kind(kind)

    # Fields common to all kinds.
    model = get("model")
    if type(model) is not str or not model:
        raise ContractError("model", _problem(obj, "model", _NON_EMPTY))
    ts = get("timestamp")
    tst = type(ts)
    if tst is float or tst is int:
        # Comparisons are False for NaN, so NaN and the infinities fall through to the error.
        if 0 <= ts < MAX_EPOCH_S:
            if tst is int:
                ts = float(ts)
        elif MIN_EPOCH_MS < ts < MAX_EPOCH_MS:
            ts = ts / 1000
        else:
            raise ContractError("timestamp", epoch_problem(ts))
    elif tst is str:
        # parse_rfc3339, inlined for the common case of an upper-case "T"/"Z".
        if _match_rfc3339(ts) is not None and ts[10] == "T" and ts[-1] != "z":
            ts = _fromisoformat(ts).timestamp()
        else:
            ts = parse_rfc3339(ts)
    else:
        raise ContractError("timestamp", _problem(obj, "timestamp", _TS_PROBLEM))
    version = get("model_version")
    if version is not None and (type(version) is not str or not version):
        raise ContractError("model_version", _problem(obj, "model_version", _NON_EMPTY))
    event_id = get("event_id")
    if event_id is not None and (type(event_id) is not str or not event_id):
        raise ContractError("event_id", _problem(obj, "event_id", _NON_EMPTY))
    segment = get("segment")
    if segment is not None:
        if type(segment) is not dict:
            raise ContractError("segment", f"expected an object, got {describe(segment)}")
        if segment:
            if not trusted or not _STRINGS.issuperset(map(type, segment.values())):
                for key, value in segment.items():
                    if type(value) is not str or type(key) is not str:
                        _segment_error(key, value)
        else:
            segment = None  # no slices: the same as an absent segment
    # No unknown fields is the usual case, and a superset test is cheaper than a difference.
    extra = {} if known.issuperset(obj) else _extra(obj, known, trusted)

    if kind == "prediction":
        features = get("features")
        if type(features) is not dict:
            raise ContractError("features", _problem(obj, "features", "expected an object"))
        if not trusted or not _SCALARS.issuperset(map(type, features.values())):
            _check_features(features)
        raw = get("prediction", _MISSING)
        rtype = type(raw)
        if rtype is dict:
            # Fast path for orjson objects whose values are all scalars (finite, by orjson's
            # guarantee): take the first output key present. Anything else gets the full check.
            if trusted and _SCALARS.issuperset(map(type, raw.values())):
                output = raw.get("score", _MISSING)
                if output is _MISSING:
                    output = _output_of(raw)
            else:
                output = _output_of(raw)
        elif rtype is float or rtype is int:
            if not -_MAX_FLOAT <= raw <= _MAX_FLOAT:
                raise ContractError("prediction", _FINITE + _show(raw))
            output = raw
        elif rtype is str or rtype is bool or raw is None:
            output = raw
        elif raw is _MISSING:
            raise ContractError("prediction", "required field is missing")
        else:
            raise ContractError("prediction", f"{_PREDICTION_PROBLEM}, got {describe(raw)}")
        prediction_id = get("prediction_id")
        if prediction_id is not None and (type(prediction_id) is not str or not prediction_id):
            raise ContractError("prediction_id", f"{_NON_EMPTY}, got {_show(prediction_id)}")
        latency = get("latency_ms")
        if latency is not None:
            ltype = type(latency)
            if (ltype is not float and ltype is not int) or not 0 <= latency <= _MAX_FLOAT:
                raise ContractError("latency_ms", f"{_LATENCY_PROBLEM}, got {_show(latency)}")
        return PredictionEvent(
            model,
            ts,
            features,
            output,
            version,
            event_id,
            segment,
            raw,
            prediction_id,
            latency,
            extra,
        )

    if kind == "feature":
        features = get("features")
        if type(features) is not dict:
            raise ContractError("features", _problem(obj, "features", "expected an object"))
        if not trusted or not _SCALARS.issuperset(map(type, features.values())):
            _check_features(features)
        entity_id = get("entity_id")
        if entity_id is not None and (type(entity_id) is not str or not entity_id):
            raise ContractError("entity_id", f"{_NON_EMPTY}, got {_show(entity_id)}")
        return FeatureEvent(model, ts, features, version, event_id, segment, entity_id, extra)

    prediction_id = get("prediction_id")
    if type(prediction_id) is not str or not prediction_id:
        raise ContractError("prediction_id", _problem(obj, "prediction_id", _NON_EMPTY))
    label = get("label")
    ltype = type(label)
    if ltype is float or ltype is int:
        if not -_MAX_FLOAT <= label <= _MAX_FLOAT:
            raise ContractError("label", _FINITE + _show(label))
    elif ltype is not str and ltype is not bool:
        raise ContractError("label", _problem(obj, "label", "expected a number, string or boolean"))
    return LabelEvent(model, ts, prediction_id, label, version, event_id, segment, extra)


def _check_kind(kind: object) -> None:
    """Reject a bad ``kind`` argument: a programming error, so ValueError, not ContractError."""
    if kind not in _KNOWN:
        raise ValueError(f"kind must be one of {EVENT_KINDS} or None, got {kind!r}")


def _extra(obj: dict, known: frozenset, trusted: bool) -> dict:
    """The unknown fields of ``obj``, kept as they are."""
    unknown = obj.keys() - known
    if not trusted:
        for key in unknown:
            if type(key) is not str:
                raise ContractError(_MESSAGE, f"keys must be strings, got {_key(key)}")
    extra = {key: obj[key] for key in obj if key in unknown}
    for key, value in extra.items():
        if nested_deeper_than(value, _VALUE_LEVELS):
            raise ContractError(key, _TOO_DEEP)
    return extra


def _check_features(features: dict) -> None:
    """Check every feature name and value; raise for the first bad one.

    The slow, complete check: used by ``parse_event`` always, and by ``decode_event`` only
    to find and explain the offending value once the fast type check has failed.
    """
    for key, value in features.items():
        if type(key) is not str:
            raise ContractError("features", f"keys must be strings, got {_key(key)}")
        vtype = type(value)
        if vtype is float or vtype is int:
            if not -_MAX_FLOAT <= value <= _MAX_FLOAT:
                raise ContractError(f"features.{key}", _FINITE + _show(value))
        elif vtype not in _SCALARS:
            raise ContractError(f"features.{key}", _SCALAR_PROBLEM + describe(value))


def _output_of(raw: dict) -> Any:
    """The output carried by a prediction object: its score, else label, else value."""
    output = _MISSING
    for key in _OUTPUT_KEYS:
        value = raw.get(key, _MISSING)
        if value is _MISSING:
            continue
        vtype = type(value)
        if vtype not in _SCALARS:
            raise ContractError(f"prediction.{key}", _SCALAR_PROBLEM + describe(value))
        if (vtype is float or vtype is int) and not -_MAX_FLOAT <= value <= _MAX_FLOAT:
            raise ContractError(f"prediction.{key}", _FINITE + _show(value))
        if output is _MISSING:
            output = value
    if output is _MISSING:
        raise ContractError("prediction", "an object prediction needs a score, label or value key")
    if nested_deeper_than(raw, _VALUE_LEVELS):
        raise ContractError("prediction", _TOO_DEEP)
    return output


def _segment_error(key: object, value: object) -> None:
    if type(key) is not str:
        raise ContractError("segment", f"keys must be strings, got {_key(key)}")
    raise ContractError(f"segment.{key}", f"expected a string, got {describe(value)}")


def _problem(obj: dict, name: str, expected: str) -> str:
    """Phrase a problem, telling a missing field apart from a wrong value."""
    if name not in obj:
        return "required field is missing"
    return f"{expected}, got {_show(obj[name])}"


def _key(key: object) -> str:
    """Render a non-string key (only possible through ``parse_event``)."""
    text = repr(key)
    return f"{describe(key)} {text if len(text) <= 40 else text[:37] + '...'}"


def _json_problem(data: object, exc: JSONDecodeError) -> str:
    """Turn orjson's decode error into a problem statement for the whole message."""
    if data is None:
        return "empty message (null value)"
    if not data:
        return "empty message"
    text = str(exc)
    if "UTF-8" in text and "BOM" not in text:
        return f"not valid UTF-8: {text}"
    return f"not valid JSON: {text}"
