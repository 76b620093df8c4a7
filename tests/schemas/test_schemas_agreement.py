"""The Python validation and the shipped JSON Schemas give the same verdict on one corpus.

The schema side is judged independently of driftline's decoder: wire bytes are parsed the way
the contract defines the wire format (RFC 8259 JSON as restricted by I-JSON, RFC 7493: UTF-8
without a byte order mark, no lone surrogates, numbers that are finite doubles; plus nesting
at most 1024 deep), and the document is then checked by ``jsonschema``'s
``Draft202012Validator``. Python objects (what ``parse_event`` receives) are checked by the
same validator with one adaptation: JSON numbers are finite, Python floats need not be, so
"number" excludes NaN and the infinities.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator, validators

from driftline.schemas import (
    SCHEMA_NAMES,
    Alert,
    ContractError,
    decode_event,
    json_schema,
    parse_event,
)
from driftline.schemas._fast import decode_fast
from driftline.schemas._jsonschema import render
from driftline.schemas._parse import decode_reference


def _load_corpus():
    path = Path(__file__).with_name("schemas_corpus.py")
    spec = importlib.util.spec_from_file_location("driftline_tests_schemas_corpus", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


CORPUS = _load_corpus()
MAX_DEPTH = 64  # the contract's nesting limit (see schemas/_depth.py)


def _finite_number(checker, instance) -> bool:
    if not Draft202012Validator.TYPE_CHECKER.is_type(instance, "number"):
        return False
    return not isinstance(instance, float) or math.isfinite(instance)


ObjectValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("number", _finite_number),
)

WIRE = {name: Draft202012Validator(json_schema(name)) for name in SCHEMA_NAMES}
OBJECT = {name: ObjectValidator(json_schema(name)) for name in SCHEMA_NAMES}


class NotIJSON(Exception):
    """The bytes are not an I-JSON text (or nest deeper than the contract allows)."""


def _reject_constant(name: str):
    raise NotIJSON(f"non-standard token {name}")


def _object_depth(value) -> int:
    """Nesting depth of a Python value (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _depth(text: str) -> int:
    """Nesting depth of a JSON text, ignoring brackets inside strings."""
    outside = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    depth = deepest = 0
    for char in re.findall(r"[\[\]{}]", outside):
        depth += 1 if char in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _check_values(value) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise NotIJSON("number outside the range of a double")
    if isinstance(value, str):
        value.encode("utf-8")  # lone surrogates raise UnicodeEncodeError
    elif isinstance(value, list):
        for item in value:
            _check_values(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_values(key)
            _check_values(item)


def parse_wire(data: bytes):
    """Parse per RFC 8259 + I-JSON (numbers as doubles, last duplicate key wins).

    Nesting beyond the contract's limit is reported as not a document here; the Python side
    reports it on the field (or, beyond orjson's 1024 levels, on the message): both reject.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        raise NotIJSON("byte order mark")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotIJSON("not UTF-8") from exc
    if _depth(text) > MAX_DEPTH:
        raise NotIJSON("too deep")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * MAX_DEPTH))
    try:
        document = json.loads(text, parse_constant=_reject_constant, parse_int=float)
        _check_values(document)
    except (ValueError, UnicodeEncodeError) as exc:
        raise NotIJSON(str(exc)) from exc
    finally:
        sys.setrecursionlimit(limit)
    return document


def schema_verdict(kind: str | None, data) -> bool:
    name = kind or "event"
    if isinstance(data, bytes):
        try:
            document = parse_wire(data)
        except NotIJSON:
            return False
        return WIRE[name].is_valid(document)
    return _object_depth(data) <= MAX_DEPTH and OBJECT[name].is_valid(data)


def python_verdict(kind: str | None, data) -> ContractError | None:
    try:
        if kind == "alert":
            if isinstance(data, bytes):
                Alert.from_json(data)
            else:
                Alert.from_dict(data)
        elif isinstance(data, bytes):
            decode_event(data, kind)
        else:
            parse_event(data, kind)
    except ContractError as error:
        return error
    return None


@pytest.mark.parametrize("case", CORPUS.CASES, ids=lambda case: case.name)
def test_python_and_json_schema_agree(case):
    error = python_verdict(case.kind, case.data)
    assert (error is None) == case.valid, f"Python said {error}"
    assert schema_verdict(case.kind, case.data) == case.valid, "JSON Schema disagrees"
    if case.field is not None:
        assert error.field == case.field, str(error)


def test_corpus_covers_the_required_edge_cases():
    names = " ".join(case.name for case in CORPUS.CASES)
    for topic in (
        "NaN",
        "Infinity",
        "1e400",
        "2**70",
        "depth 10000",
        "non-string",
        "empty",
        "one megabyte",
        "invalid UTF-8",
        "BOM",
    ):
        assert topic in names, topic
    assert sum(case.valid for case in CORPUS.CASES) >= 50
    assert sum(not case.valid for case in CORPUS.CASES) >= 100


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_shipped_schema_files_are_current_and_valid(name):
    """The files producers use are exactly what the code generates (regenerate: see module)."""
    shipped = Path(__file__).parents[2] / "schemas" / f"{name}.schema.json"
    assert shipped.read_bytes() == render(name), (
        "schema file out of date; regenerate with "
        '`.venv/bin/python -c "from driftline.schemas._jsonschema import write_schemas; '
        'write_schemas()"`'
    )
    document = json_schema(name)
    Draft202012Validator.check_schema(document)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "changed"
    assert json_schema(name)["title"] != "changed"  # each call returns a fresh copy


def test_json_schema_rejects_unknown_names():
    with pytest.raises(ValueError):
        json_schema("predictions")


def test_schema_errors_point_at_the_same_field_as_python():
    """Beyond the verdict: for a wrong field type the schema's error path names that field."""
    event = orjson.loads(CORPUS.wire(CORPUS.prediction(features={"age": [1]})))
    errors = list(WIRE["prediction"].iter_errors(event))
    assert [list(error.absolute_path) for error in errors] == [["features", "age"]]
    assert parse_wire(CORPUS.wire(CORPUS.prediction()))["model"] == "fraud"


def same_event(a, b) -> bool:
    """Equal, and equal in representation: 1 == 1.0, but an int must stay an int."""
    return a == b and type(a) is type(b) and repr(a) == repr(b)


WIRE_CASES = [c for c in CORPUS.CASES if isinstance(c.data, bytes) and c.kind != "alert"]


@pytest.mark.parametrize("case", WIRE_CASES, ids=lambda case: case.name)
def test_fast_path_takes_only_what_the_reference_path_accepts_identically(case):
    for kind in {case.kind, None, "prediction", "feature", "label"}:
        fast = decode_fast(case.data, kind)
        if fast is not None:
            assert same_event(fast, decode_reference(case.data, kind))


def test_fast_path_is_taken_for_ordinary_events():
    """Guard against a fast path that silently never fires (everything would still pass)."""
    ordinary = [
        case
        for case in WIRE_CASES
        if case.valid
        and not decode_reference(case.data, case.kind).extra
        and b"2**70" not in case.name.encode()
    ]
    taken = [case.name for case in ordinary if decode_fast(case.data, case.kind) is not None]
    assert len(taken) >= 0.8 * len(ordinary), set(c.name for c in ordinary) - set(taken)
    assert decode_fast(CORPUS.wire(CORPUS.prediction()), None) is not None
