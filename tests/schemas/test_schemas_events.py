"""Unit tests of event validation: types, inference, edge cases and the error messages."""

from __future__ import annotations

import math

import orjson
import pytest

from driftline.schemas import (
    EVENT_KINDS,
    ContractError,
    FeatureEvent,
    LabelEvent,
    PredictionEvent,
    decode_event,
    parse_event,
)

T0 = 1_714_564_800.0  # 2024-05-01T12:00:00Z


def prediction(**changes):
    event = {
        "model": "fraud",
        "timestamp": T0,
        "features": {"age": 41, "country": "FR", "amount": 12.5, "is_new": False, "x": None},
        "prediction": 0.25,
    }
    event.update(changes)
    return event


def both(obj, kind=None):
    """Parse through both entry points and check that they agree."""
    via_bytes = decode_event(orjson.dumps(obj), kind)
    via_object = parse_event(obj, kind)
    assert via_bytes == via_object
    return via_bytes


def error_of(obj, kind=None) -> ContractError:
    with pytest.raises(ContractError) as caught:
        parse_event(obj, kind)
    try:
        data = orjson.dumps(obj)
    except TypeError:  # not representable as JSON (NaN is, as null; non-string keys are not)
        return caught.value
    if not any(isinstance(v, float) and not math.isfinite(v) for v in _leaves(obj)):
        with pytest.raises(ContractError) as again:
            decode_event(data, kind)
        assert (again.value.field, again.value.problem) == (
            caught.value.field,
            caught.value.problem,
        )
    return caught.value


def _leaves(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def test_prediction_event_fields():
    event = both(
        prediction(
            model_version="v2",
            event_id="e1",
            segment={"region": "eu"},
            prediction_id="p1",
            latency_ms=3,
            extra_field={"nested": [1, 2]},
        )
    )
    assert isinstance(event, PredictionEvent)
    assert event.kind == "prediction"
    assert event.model == "fraud"
    assert event.timestamp == T0
    assert event.features["country"] == "FR"
    assert event.prediction == 0.25 and event.prediction_raw == 0.25
    assert event.model_version == "v2" and event.event_id == "e1" and event.prediction_id == "p1"
    assert event.segment == {"region": "eu"}
    assert event.latency_ms == 3
    assert event.extra == {"extra_field": {"nested": [1, 2]}}


@pytest.mark.parametrize(
    ("raw", "output"),
    [
        ({"score": 0.9, "label": "fraud"}, 0.9),
        ({"label": "fraud", "value": 3}, "fraud"),
        ({"value": 3, "model_internal": [1, 2]}, 3),
        ({"score": None, "label": "x"}, None),  # the first key present wins, even when null
        ("fraud", "fraud"),
        (True, True),
        (None, None),
    ],
)
def test_prediction_output(raw, output):
    event = both(prediction(prediction=raw))
    assert event.prediction == output
    assert event.prediction_raw == raw


def test_feature_and_label_events():
    feature = both({"model": "m", "timestamp": T0, "features": {"a": 1}, "entity_id": "u1"})
    assert isinstance(feature, FeatureEvent) and feature.entity_id == "u1"
    label = both({"model": "m", "timestamp": T0, "prediction_id": "p1", "label": False})
    assert isinstance(label, LabelEvent) and label.label is False and label.prediction_id == "p1"


@pytest.mark.parametrize(
    ("obj", "kind"),
    [
        ({"label": 1, "prediction_id": "p"}, "label"),
        ({"label": 1, "prediction_id": "p", "features": {}, "prediction": 1}, "prediction"),
        ({"prediction": 1, "features": {}}, "prediction"),
        ({"features": {}}, "feature"),
        ({"features": {}, "label": 1}, "feature"),  # label with features: not a label event
        ({"type": "feature", "features": {}, "prediction": 1}, "feature"),  # explicit type wins
        ({"type": None, "features": {}, "prediction": 1}, "prediction"),  # null type: absent
    ],
)
def test_kind_inference(obj, kind):
    event = both({"model": "m", "timestamp": T0, **obj})
    assert event.kind == kind


def test_kind_argument_and_conflicting_type():
    obj = prediction(type="prediction")
    assert both(obj, "prediction").kind == "prediction"
    error = error_of(obj, "feature")
    assert error.field == "type"
    assert "prediction" in error.problem and "feature" in error.problem
    assert str(error) == f"type: {error.problem}"
    # On a source of one kind, the kind argument decides without a type field.
    event = both({"model": "m", "timestamp": T0, "features": {}, "prediction": 1}, "feature")
    assert isinstance(event, FeatureEvent) and event.extra == {"prediction": 1}


def test_bad_kind_argument_is_a_programming_error():
    with pytest.raises(ValueError) as caught:
        parse_event(prediction(), "predictions")
    assert not isinstance(caught.value, ContractError)
    with pytest.raises(ValueError):
        decode_event(orjson.dumps(prediction(type="prediction")), "bogus")
    with pytest.raises(ValueError):
        decode_event(orjson.dumps(prediction()), "bogus")  # the fast path defers, too
    assert EVENT_KINDS == ("prediction", "feature", "label")


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        ({"timestamp": [1]}, "timestamp", "expected an RFC 3339 string or epoch number, got list"),
        (
            {"timestamp": True},
            "timestamp",
            "expected an RFC 3339 string or epoch number, got boolean",
        ),
        ({"timestamp": None}, "timestamp", "expected an RFC 3339 string or epoch number, got null"),
        ({"timestamp": "2024-05-01T12:00:00"}, "timestamp", "without a zone"),
        ({"timestamp": "2023-02-29T00:00:00Z"}, "timestamp", "not a valid date or time"),
        ({"timestamp": "1969-12-31T23:59:59Z"}, "timestamp", "outside the accepted range"),
        ({"timestamp": "yesterday"}, "timestamp", "expected an RFC 3339 string"),
        ({"timestamp": -1}, "timestamp", "outside the accepted range"),
        ({"timestamp": 1e10}, "timestamp", "outside the accepted range"),
        ({"timestamp": 1e16}, "timestamp", "outside the accepted range"),
        (
            {"features": {"age": {"years": 3}}},
            "features.age",
            "expected a number, string, boolean or null, got object",
        ),
        ({"features": {"age": [1]}}, "features.age", "got list"),
        ({"features": None}, "features", "expected an object, got null"),
        ({"features": [1, 2]}, "features", "expected an object, got list"),
        ({"model": ""}, "model", "expected a non-empty string, got an empty string"),
        ({"model": 7}, "model", "expected a non-empty string, got 7"),
        ({"model_version": ""}, "model_version", "got an empty string"),
        ({"event_id": 3}, "event_id", "got 3"),
        ({"segment": {"region": 1}}, "segment.region", "expected a string, got number"),
        ({"segment": {"region": None}}, "segment.region", "expected a string, got null"),
        ({"segment": ["eu"]}, "segment", "expected an object, got list"),
        ({"prediction": {"proba": 0.3}}, "prediction", "score, label or value"),
        ({"prediction": {"score": [0.3]}}, "prediction.score", "got list"),
        ({"prediction": {"score": 0.1, "label": {}}}, "prediction.label", "got object"),
        ({"prediction": [0.3]}, "prediction", "got list"),
        ({"prediction_id": ""}, "prediction_id", "empty string"),
        ({"latency_ms": -1}, "latency_ms", "non-negative"),
        ({"latency_ms": "3ms"}, "latency_ms", "got '3ms'"),
        ({"type": "predictions"}, "type", "got 'predictions'"),
        ({"type": 1}, "type", "got 1"),
    ],
)
def test_errors_name_field_and_problem(changes, field, problem):
    error = error_of(prediction(**changes))
    assert error.field == field
    assert problem in error.problem
    assert str(error) == f"{field}: {error.problem}"


@pytest.mark.parametrize("name", ["model", "timestamp", "features", "prediction"])
def test_missing_required_prediction_field(name):
    obj = prediction(type="prediction")
    del obj[name]
    error = error_of(obj)
    assert (error.field, error.problem) == (name, "required field is missing")


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({"model": "m", "timestamp": T0, "label": 1}, "prediction_id"),
        ({"model": "m", "timestamp": T0, "prediction_id": "p", "label": None}, "label"),
        ({"model": "m", "timestamp": T0, "prediction_id": "p", "label": [1]}, "label"),
        ({"model": "m", "timestamp": T0, "type": "label", "prediction_id": "p"}, "label"),
        ({"model": "m", "timestamp": T0}, "features"),
        ({"model": "m", "timestamp": T0, "features": {}, "entity_id": ""}, "entity_id"),
    ],
)
def test_label_and_feature_errors(obj, field):
    assert error_of(obj).field == field


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 10**400, -(10**309)])
def test_non_finite_and_huge_numbers_from_python(bad):
    """Python objects can hold values no JSON text can; every typed number rejects them."""
    for changes, field in [
        ({"features": {"f": bad}}, "features.f"),
        ({"prediction": bad}, "prediction"),
        ({"prediction": {"score": bad}}, "prediction.score"),
        ({"latency_ms": bad}, "latency_ms"),
        ({"timestamp": bad}, "timestamp"),
    ]:
        with pytest.raises(ContractError) as caught:
            parse_event(prediction(**changes))
        assert caught.value.field == field
    label = {"model": "m", "timestamp": T0, "prediction_id": "p", "label": bad}
    with pytest.raises(ContractError, match=r"^label: "):
        parse_event(label)


def test_big_integers_that_fit_a_double_are_numbers():
    event = parse_event(prediction(features={"big": 2**70}))
    assert event.features["big"] == 2**70
    # orjson turns integers beyond 64 bits into floats; the value is still accepted.
    decoded = decode_event(
        b'{"model":"m","timestamp":1,"features":{"big":%d},"prediction":1}' % 2**70
    )
    assert decoded.features["big"] == float(2**70)


def test_non_string_keys_from_python():
    for obj, field in [
        (prediction(features={1: 2.0}), "features"),
        (prediction(segment={("a",): "x"}), "segment"),
        ({**prediction(), 5: "x"}, "<message>"),
    ]:
        with pytest.raises(ContractError) as caught:
            parse_event(obj)
        assert caught.value.field == field
        assert "keys must be strings" in caught.value.problem


def test_python_only_types_are_rejected_in_typed_fields():
    with pytest.raises(ContractError, match=r"features\.t: .*got tuple"):
        parse_event(prediction(features={"t": (1, 2)}))
    with pytest.raises(ContractError, match=r"^<message>: expected a JSON object, got list"):
        parse_event([prediction()])


def test_empty_values():
    event = both(prediction(features={"": "", "blank": ""}, segment={}))
    assert event.features == {"": "", "blank": ""}  # an empty string is a valid string value
    assert event.segment is None  # no slices is the same as no segment
    assert both(prediction(features={})).features == {}


def test_timestamp_forms_agree():
    iso = both(prediction(timestamp="2024-05-01T12:00:00Z")).timestamp
    offset = both(prediction(timestamp="2024-05-01T14:00:00+02:00")).timestamp
    lower = both(prediction(timestamp="2024-05-01t12:00:00z")).timestamp
    seconds = both(prediction(timestamp=int(T0))).timestamp
    millis = both(prediction(timestamp=int(T0 * 1000))).timestamp
    assert iso == offset == lower == seconds == millis == T0
    assert type(seconds) is float
    fraction = both(prediction(timestamp="2024-05-01T12:00:00.250Z")).timestamp
    assert fraction == T0 + 0.25


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "empty message"),
        (None, "empty message (null value)"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b'{"model": "caf\xe9"}', "not valid UTF-8"),
        (b"\xef\xbb\xbf{}", "not valid JSON"),
        (b"{not json", "not valid JSON"),
        (b'{"a": NaN}', "not valid JSON"),
        (b'{"a": Infinity}', "not valid JSON"),
        (b'{"a": 1e400}', "not valid JSON"),
        (b"[" * 10_000 + b"]" * 10_000, "not valid JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b'"text"', "expected a JSON object, got string"),
        (b"null", "expected a JSON object, got null"),
    ],
)
def test_decode_rejects_messages_that_are_not_json_objects(data, problem):
    with pytest.raises(ContractError) as caught:
        decode_event(data)
    assert caught.value.field == "<message>"
    assert problem in caught.value.problem


def test_deep_nesting_in_an_extra_field_is_a_contract_error_not_a_crash():
    deep = b"[" * 10_000 + b"]" * 10_000
    data = b'{"model":"m","timestamp":1,"features":{},"prediction":1,"trace":' + deep + b"}"
    with pytest.raises(ContractError) as caught:
        decode_event(data)
    assert caught.value.field == "<message>" and "depth" in caught.value.problem
    # Deeper than the contract's 64 levels, but within the decoder's: named by its field.
    with pytest.raises(ContractError, match=r"^trace: nested deeper than .* 64 levels$"):
        decode_event(data.replace(deep, b"[" * 100 + b"]" * 100))
    ok = decode_event(data.replace(deep, b"[" * 63 + b"]" * 63))  # the event is 64 deep
    assert "trace" in ok.extra
    orjson.dumps(ok.extra)  # whatever is accepted can be serialized again


def test_deep_python_objects_do_not_crash_the_check():
    value: list = []
    for _ in range(50_000):
        value = [value]
    with pytest.raises(ContractError, match=r"^trace: nested deeper"):
        parse_event(prediction(trace=value))
    with pytest.raises(ContractError, match=r"^prediction: nested deeper"):
        parse_event(prediction(prediction={"score": 1.0, "debug": value}))


def test_one_megabyte_event():
    features = {f"feature_{i:06d}": i * 0.5 for i in range(40_000)}
    data = orjson.dumps(prediction(features=features, note="x" * 200_000))
    assert len(data) > 1_000_000
    event = decode_event(data)
    assert len(event.features) == 40_000 and len(event.extra["note"]) == 200_000


def test_orjson_guarantees_that_decode_relies_on():
    """decode_event skips checks that orjson makes impossible; pin those guarantees."""
    for text in (b"NaN", b"-Infinity", b"Infinity", b"1e400", b"-1e400", b"1" + b"0" * 400):
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(text)
    assert type(orjson.loads(str(2**70).encode())) is float
    assert type(orjson.loads(str(2**63).encode())) is int
    assert all(type(k) is str for k in orjson.loads(b'{"1": 1, "": 2}'))


def test_error_is_a_value_error_with_parts():
    error = ContractError("features.age", "expected a number")
    assert isinstance(error, ValueError)
    assert (error.field, error.problem, str(error)) == (
        "features.age",
        "expected a number",
        "features.age: expected a number",
    )
    import copy

    clone = copy.copy(error)
    assert (clone.field, clone.problem) == (error.field, error.problem)


@pytest.mark.parametrize(
    ("value", "depth"),
    [
        (1, 0),
        ("x", 0),
        ([], 1),
        ({"a": 1, "b": "c"}, 1),
        ([[]], 2),
        ({"a": [1, {"b": None}]}, 3),
        ([1, [2, [3, [4]]]], 4),
    ],
)
def test_nesting_depth(value, depth):
    from driftline.schemas._depth import nested_deeper_than

    assert nested_deeper_than(value, depth - 1) is (depth > 0)
    assert nested_deeper_than(value, depth) is False


def test_decode_accepts_every_buffer_type():
    for extra in ({}, {"unknown": [1, {"a": 2}]}):  # the fast path, and the reference path
        data = orjson.dumps(prediction(**extra))
        events = [decode_event(x) for x in (data, bytearray(data), memoryview(data), data.decode())]
        assert all(event == events[0] for event in events)
        assert events[0].extra == extra
