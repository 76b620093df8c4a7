"""The event contract, version 1: typed events, validation with precise errors, JSON Schemas.

One JSON object per Kafka message or per line of a replay file, UTF-8. Producers in any
language validate against the JSON Schema documents shipped here (:func:`json_schema`);
driftline itself decodes with :func:`decode_event`, which gives the same verdicts (a test
holds the two to one corpus) for at most about twice the cost of ``orjson.loads`` alone
(``benchmarks/decode.py``). Errors are :class:`ContractError`, naming the field and the
problem; what the detectors emit is an :class:`Alert`.
"""

from ._alert import ALERT_SEVERITIES, ALERT_STATUSES, Alert
from ._errors import ContractError
from ._events import EVENT_KINDS, Event, FeatureEvent, LabelEvent, PredictionEvent, Scalar
from ._jsonschema import SCHEMA_NAMES, json_schema
from ._page import page_html
from ._parse import decode_event, parse_event
from ._timestamp import format_timestamp, parse_timestamp

__all__ = [
    "ALERT_SEVERITIES",
    "ALERT_STATUSES",
    "EVENT_KINDS",
    "SCHEMA_NAMES",
    "Alert",
    "ContractError",
    "Event",
    "FeatureEvent",
    "LabelEvent",
    "PredictionEvent",
    "Scalar",
    "decode_event",
    "format_timestamp",
    "json_schema",
    "page_html",
    "parse_event",
    "parse_timestamp",
]
