"""Property tests: generated events round-trip; broken ones are rejected by both validators."""

from __future__ import annotations

import calendar
import math
import re
import sys
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from driftline.schemas import (
    ContractError,
    decode_event,
    json_schema,
    parse_event,
    parse_timestamp,
)
from driftline.schemas._fast import decode_fast
from driftline.schemas._parse import decode_reference
from driftline.schemas._timestamp import MAX_EPOCH_MS, MAX_EPOCH_S, MIN_EPOCH_MS, RFC3339_PATTERN

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALIDATORS = {
    name: Draft202012Validator(json_schema(name))
    for name in ("prediction", "feature", "label", "event")
}
MAX = sys.float_info.max

names = st.text(max_size=12)
non_empty = st.text(min_size=1, max_size=12)
finite = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), finite, st.text(max_size=10)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=8,
)
zones = st.one_of(
    st.just(UTC),
    st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-(23 * 60 + 59), 23 * 60 + 59)),
)
instants = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 12, 30), timezones=zones
)


def rfc3339(moment: datetime, lower: bool, fraction: bool) -> str:
    text = moment.isoformat(timespec="microseconds" if fraction else "seconds")
    if text.endswith("+00:00") and moment.tzinfo is UTC:
        text = text[:-6] + "Z"
    return text.replace("T", "t").replace("Z", "z") if lower else text


timestamps = st.one_of(
    st.floats(0, MAX_EPOCH_S, exclude_max=True),
    st.integers(0, MAX_EPOCH_S - 1),
    st.integers(MIN_EPOCH_MS + 1, MAX_EPOCH_MS - 1),
    st.builds(rfc3339, instants, st.booleans(), st.booleans()),
)


def expected_seconds(ts) -> float:
    if isinstance(ts, str):
        return datetime.fromisoformat(ts.upper().replace("Z", "+00:00")).timestamp()
    return ts / 1000 if ts > MIN_EPOCH_MS else float(ts)


@st.composite
def valid_events(draw):
    kind = draw(st.sampled_from(["prediction", "feature", "label"]))
    event = {"model": draw(non_empty), "timestamp": draw(timestamps)}
    optional = {
        "model_version": non_empty | st.none(),
        "event_id": non_empty | st.none(),
        "segment": st.dictionaries(names, st.text(max_size=5), max_size=3) | st.none(),
    }
    if kind == "prediction":
        event["features"] = draw(st.dictionaries(names, scalars, max_size=25))
        event["prediction"] = draw(
            scalars
            | st.fixed_dictionaries(
                {},
                optional={"score": scalars, "label": scalars, "value": scalars, "x": json_values},
            ).filter(lambda d: {"score", "label", "value"} & d.keys())
        )
        optional["prediction_id"] = non_empty | st.none()
        optional["latency_ms"] = st.floats(0, 1e6) | st.integers(0, 10**6) | st.none()
    elif kind == "feature":
        event["features"] = draw(st.dictionaries(names, scalars, max_size=25))
        optional["entity_id"] = non_empty | st.none()
    else:
        event["prediction_id"] = draw(non_empty)
        event["label"] = draw(
            st.one_of(st.booleans(), st.integers(-(2**63), 2**63), finite, st.text(max_size=5))
        )
    for key, strategy in optional.items():
        if draw(st.booleans()):
            event[key] = draw(strategy)
    if draw(st.booleans()):
        event["type"] = kind
    extras = draw(st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=3))
    for key, value in extras.items():
        event.setdefault("x_" + key, value)
    return kind, event


def inferable(kind: str, event: dict) -> bool:
    """Whether a mixed-file reader would infer ``kind`` (else the test passes the kind)."""
    if "type" in event:
        return True
    if kind == "label":
        return True
    return ("prediction" in event) == (kind == "prediction")


@SETTINGS
@given(valid_events())
def test_valid_events_round_trip(generated):
    kind, event = generated
    data = orjson.dumps(event)
    source = None if inferable(kind, event) else kind
    decoded = decode_event(data, source)
    assert decoded.kind == kind
    reference = decode_reference(data, source)
    assert decoded == reference and repr(decoded) == repr(reference)
    assert decoded == parse_event(event, source)
    assert decoded.model == event["model"]
    assert decoded.timestamp == pytest.approx(expected_seconds(event["timestamp"]), abs=1e-6)
    if kind != "label":
        assert decoded.features == orjson.loads(orjson.dumps(event["features"]))
    else:
        assert decoded.label == orjson.loads(orjson.dumps(event["label"]))
    assert set(decoded.extra) == {k for k in event if k.startswith("x_")}
    assert VALIDATORS[kind].is_valid(orjson.loads(data))
    if source is None:
        assert VALIDATORS["event"].is_valid(orjson.loads(data))


WRONG = {
    "model": st.one_of(
        st.just(""), st.none(), st.booleans(), finite, st.lists(scalars, max_size=2)
    ),
    "timestamp": st.one_of(
        st.booleans(),
        st.none(),
        st.lists(scalars, max_size=2),
        st.dictionaries(names, scalars),
        st.text(max_size=25).filter(lambda s: re.match(RFC3339_PATTERN, s) is None),
        st.floats(max_value=0, exclude_max=True, allow_nan=False, allow_infinity=False),
        st.floats(MAX_EPOCH_S, MIN_EPOCH_MS),
        st.floats(min_value=MAX_EPOCH_MS, allow_nan=False),
    ),
    "features": st.one_of(st.none(), scalars, st.lists(scalars, max_size=2)),
    "prediction": st.one_of(
        st.lists(scalars, max_size=2), st.dictionaries(st.sampled_from(["p", "q"]), scalars)
    ),
    "label": st.one_of(st.none(), st.lists(scalars, max_size=2), st.dictionaries(names, scalars)),
    "prediction_id": st.one_of(st.just(""), st.none(), st.booleans(), finite),
}


@SETTINGS
@given(valid_events(), st.data())
def test_breaking_a_required_field_is_rejected_by_both(generated, data):
    kind, event = generated
    required = {
        "prediction": ["model", "timestamp", "features", "prediction"],
        "feature": ["model", "timestamp", "features"],
        "label": ["model", "timestamp", "prediction_id", "label"],
    }[kind]
    field = data.draw(st.sampled_from(required))
    if field == "prediction_id" and kind != "label":
        return
    broken = dict(event, **{field: data.draw(WRONG[field])})
    with pytest.raises(ContractError) as caught:
        decode_event(orjson.dumps(broken), kind)
    assert caught.value.field == field or caught.value.field.startswith(field + ".")
    assert not VALIDATORS[kind].is_valid(orjson.loads(orjson.dumps(broken)))


@SETTINGS
@given(valid_events(), st.data())
def test_breaking_a_feature_value_is_rejected_by_both(generated, data):
    kind, event = generated
    assume(kind != "label")
    bad = data.draw(st.lists(scalars, max_size=2) | st.dictionaries(names, scalars, max_size=2))
    broken = dict(event, features={**event["features"], "broken": bad})
    with pytest.raises(ContractError) as caught:
        decode_event(orjson.dumps(broken), kind)
    assert caught.value.field == "features.broken"
    assert not VALIDATORS[kind].is_valid(orjson.loads(orjson.dumps(broken)))


known_keys = st.sampled_from(
    [
        "type",
        "model",
        "model_version",
        "timestamp",
        "event_id",
        "segment",
        "features",
        "prediction",
        "prediction_id",
        "latency_ms",
        "entity_id",
        "label",
    ]
)
field_values = st.one_of(
    json_values,
    timestamps,
    st.sampled_from(["prediction", "feature", "label", "", "x"]),
    st.floats(-1e12, 1e16),
    st.dictionaries(names, scalars, max_size=3),
    st.fixed_dictionaries({}, optional={"score": json_values, "label": json_values}),
)


@SETTINGS
@given(
    st.dictionaries(known_keys | names, field_values, max_size=10),
    st.sampled_from([None, "prediction", "feature", "label"]),
)
def test_arbitrary_objects_get_the_same_verdict(obj, kind):
    """Random mixes of contract fields and values: decode_event and the schema agree."""
    data = orjson.dumps(obj)
    try:
        reference = decode_reference(data, kind)
    except ContractError:
        reference = None
    assert (reference is not None) == VALIDATORS[kind or "event"].is_valid(orjson.loads(data))
    fast = decode_fast(data, kind)
    assert fast is None or (fast == reference and repr(fast) == repr(reference))


timestamp_text = st.one_of(
    st.text(alphabet="0123456789-:Tt Zz+.", min_size=18, max_size=32),
    st.builds(rfc3339, instants, st.booleans(), st.booleans()),
    st.builds(
        lambda y, mo, d, h, mi, s, z: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{z}",
        st.integers(1960, 2210),
        st.integers(0, 13),
        st.integers(0, 32),
        st.integers(0, 25),
        st.integers(0, 61),
        st.integers(0, 61),
        st.sampled_from(["Z", "+01:00", "-23:59", "+24:00", ""]),
    ),
)


@SETTINGS
@given(timestamp_text)
def test_timestamp_text_verdict_and_value(text):
    """Python accepts exactly what the schema pattern accepts, and computes the right instant."""
    matches = re.search(RFC3339_PATTERN, text) is not None
    try:
        seconds = parse_timestamp(text)
    except ContractError:
        assert not matches
        return
    assert matches
    date, _, rest = text.upper().partition("T")
    year, month, day = map(int, date.split("-"))
    hour, minute, second = int(rest[0:2]), int(rest[3:5]), int(rest[6:8])
    if rest.endswith("Z"):
        offset, fraction = 0, rest[8:-1]
    else:
        sign = -1 if rest[-6] == "-" else 1
        offset, fraction = sign * (int(rest[-5:-3]) * 3600 + int(rest[-2:]) * 60), rest[8:-6]
    whole = calendar.timegm((year, month, day, hour, minute, second)) - offset
    assert math.isclose(seconds, whole + (float(fraction) if fraction else 0), abs_tol=1e-6)
    assert 1970 <= year <= 2200 and calendar.monthrange(year, month)[1] >= day


number_text = st.builds(
    lambda sign, whole, fraction, exponent: f"{sign}{whole}{fraction}{exponent}",
    st.sampled_from(["", "-"]),
    st.from_regex(r"0|[1-9][0-9]{0,25}", fullmatch=True),
    st.from_regex(r"(\.[0-9]{1,30})?", fullmatch=True),
    st.from_regex(r"([eE][+-]?[0-9]{1,3})?", fullmatch=True),
)


@SETTINGS
@given(st.lists(number_text, min_size=1, max_size=5))
def test_both_decoders_read_numbers_alike(texts):
    """msgspec (fast path) and orjson (reference) must give the same value for any number."""
    features = ",".join(f'"f{i}":{text}' for i, text in enumerate(texts))
    head = '{"model":"m","timestamp":1714564800,"prediction":' + texts[0]
    data = f'{head},"features":{{{features}}}}}'.encode()
    try:
        reference = decode_reference(data)
    except ContractError:
        reference = None
    fast = decode_fast(data, None)
    assert fast is None or (fast == reference and repr(fast) == repr(reference))
    if reference is not None:
        for i, text in enumerate(texts):
            value = reference.features[f"f{i}"]
            assert value == (float(text) if type(value) is float else int(text))


SEED_MESSAGES = [
    b'{"model":"m","timestamp":"2024-05-01T12:00:00.5Z","features":{"a":1,"b":"x","c":null},'
    b'"prediction":{"score":0.25,"label":"y"},"segment":{"r":"eu"},"latency_ms":3.5}',
    b'{"type":"label","model":"m","timestamp":1714564800123,"prediction_id":"p","label":true}',
    b'{"model":"m","timestamp":1714564800,"features":{"k":-0.0,"s":"\\u00e9\\n"},"entity_id":"e"}',
]
odd_bytes = st.sampled_from(
    [
        b"\x00",
        b"\x0c",
        b"\x0b",
        b"\xa0",
        b"\xc2\xa0",
        b"\xef\xbb\xbf",
        b"\xff",
        b"\xc0\xaf",
        b"\xed\xa0\x80",
        b"\\",
        b'"',
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b" ",
        b"\t",
        b"\r\n",
        b"e",
        b"E",
        b".",
        b"-",
        b"+",
        b"0",
        b"9",
        b"N",
        b"u",
        b"\\u0000",
        b"\\ud800",
        b"true",
        b"null",
        b"1e999",
        b"99999999999999999999",
    ]
) | st.binary(min_size=1, max_size=3)


@SETTINGS
@given(
    st.sampled_from(SEED_MESSAGES),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 2), odd_bytes), max_size=3),
    st.sampled_from([None, "prediction", "feature", "label"]),
)
def test_mutated_bytes_decode_the_same_on_every_path(seed, edits, kind):
    """Byte-level damage: the fast paths never accept what the reference path would not."""
    data = bytearray(seed)
    for position, action, chunk in edits:
        at = position % (len(data) + 1)
        if action == 0:
            data[at:at] = chunk  # insert
        elif action == 1:
            data[at : at + len(chunk)] = chunk  # overwrite
        else:
            del data[at : at + len(chunk)]  # delete
    data = bytes(data)
    try:
        reference = decode_reference(data, kind)
    except ContractError as error:
        reference = error
    try:
        decoded = decode_event(data, kind)
    except ContractError as error:
        decoded = error
    if isinstance(reference, ContractError):
        assert isinstance(decoded, ContractError) and str(decoded) == str(reference)
    else:
        assert decoded == reference and repr(decoded) == repr(reference)
