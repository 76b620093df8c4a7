"""The alert: validation at construction, deterministic JSON, and the round trip."""

from __future__ import annotations

import dataclasses
import math

import orjson
import pytest

from driftline.schemas import Alert, ContractError


def make(**changes) -> Alert:
    fields = {
        "alert_id": "a-1f3c",
        "status": "firing",
        "kind": "data_drift",
        "severity": "critical",
        "model": "fraud",
        "model_version": "v2",
        "segment": {"region": "eu"},
        "feature": "amount",
        "detector": "psi",
        "event_time": "2024-05-01T12:00:00Z",
        "window": {
            "reference": {
                "start": "2024-04-01T00:00:00Z",
                "end": "2024-05-01T00:00:00Z",
                "count": 9,
            },
            "current": {"start": "2024-05-01T11:00:00Z", "end": "2024-05-01T12:00:00Z", "count": 4},
        },
        "statistics": {"before": 10.5, "after": 31.0, "score": 0.41, "threshold": 0.2},
        "message": "amount drifted in region eu: PSI 0.41 above 0.2",
    }
    fields.update(changes)
    return Alert(**fields)


def test_round_trip_and_defaults():
    alert = make()
    assert alert.schema_version == 1
    again = Alert.from_json(alert.to_json())
    assert again == alert
    assert again.to_json() == alert.to_json()


def test_json_is_deterministic_and_sorted():
    one = make(statistics={"b": 1, "a": 2}, window={"z": {"y": 1, "x": 2}})
    two = make(statistics={"a": 2, "b": 1}, window={"z": {"x": 2, "y": 1}})
    assert one.to_json() == two.to_json()
    data = orjson.loads(one.to_json())
    assert list(data) == sorted(data)
    assert list(data["statistics"]) == ["a", "b"]


def test_model_level_alert_and_extra_fields_survive():
    alert = make(feature=None, segment=None, model_version=None)
    data = orjson.loads(alert.to_json())
    assert data["feature"] is None and data["segment"] is None
    data["runbook"] = "https://example.invalid/runbook"
    again = Alert.from_json(orjson.dumps(data))
    assert again.extra == {"runbook": "https://example.invalid/runbook"}
    assert orjson.loads(again.to_json())["runbook"] == data["runbook"]


def test_hashable_for_deduplication():
    alerts = {make(), make(), make(status="resolved")}
    assert len(alerts) == 2
    assert make() in alerts


def test_frozen():
    alert = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        alert.status = "resolved"  # type: ignore[misc]


def test_numpy_statistics_serialize_as_plain_json():
    import numpy as np

    alert = make(statistics={"p": np.float64(0.01), "n": np.int64(7), "hist": np.array([1, 2])})
    data = orjson.loads(alert.to_json())["statistics"]
    assert data == {"hist": [1, 2], "n": 7, "p": 0.01}
    assert Alert.from_json(alert.to_json()).statistics == data


def test_non_finite_statistics_become_null():
    alert = make(statistics={"divergence": math.inf, "p_value": math.nan})
    assert orjson.loads(alert.to_json())["statistics"] == {"divergence": None, "p_value": None}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"status": "open"}, "status"),
        ({"severity": "info"}, "severity"),
        ({"kind": ""}, "kind"),
        ({"alert_id": 3}, "alert_id"),
        ({"model": None}, "model"),
        ({"feature": ""}, "feature"),
        ({"model_version": 2}, "model_version"),
        ({"segment": {"region": 1}}, "segment.region"),
        ({"segment": "eu"}, "segment"),
        ({"event_time": "2024-05-01T12:00:00+02:00"}, "event_time"),
        ({"event_time": 1714564800.0}, "event_time"),
        ({"window": []}, "window"),
        ({"statistics": None}, "statistics"),
        ({"schema_version": 2}, "schema_version"),
        ({"schema_version": True}, "schema_version"),
        ({"message": ""}, "message"),
    ],
)
def test_invalid_alerts_name_the_field(changes, field):
    with pytest.raises(ContractError) as caught:
        make(**changes)
    assert caught.value.field == field


def test_from_json_errors():
    data = orjson.loads(make().to_json())
    del data["detector"]
    with pytest.raises(ContractError, match=r"^detector: required field is missing$"):
        Alert.from_json(orjson.dumps(data))
    with pytest.raises(ContractError) as caught:
        Alert.from_json(b"\xff")
    assert caught.value.field == "<message>"
    with pytest.raises(ContractError, match="expected a JSON object"):
        Alert.from_json(b"[]")
