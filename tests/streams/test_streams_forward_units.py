"""The forwarder's pure rules: incidents, Alertmanager payloads, webhook bodies, settings."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from driftline.streams._forward import ForwardSettings
from driftline.streams._incidents import (
    IncidentBook,
    alertmanager_alert,
    incident_of,
    signature,
    slack_body,
    sort_for_delivery,
)
from driftline.streams.exceptions import StreamsConfigError

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _firing(alert_id: str = "f1", when: str = "2026-06-01T10:00:00Z", **extra) -> dict:
    return {
        "alert_id": alert_id,
        "status": "firing",
        "kind": "data_drift",
        "severity": "warning",
        "model": "fraud",
        "model_version": None,
        "segment": None,
        "feature": "amount",
        "detector": "mean",
        "event_time": when,
        "statistics": {"before": 1.0, "after": 2.5, "p_value": 1e-9},
        "message": "Mean of 'amount' moved up.",
        **extra,
    }


def _resolved(fired: str = "f1", alert_id: str = "r1", when: str = "2026-06-01T11:00:00Z"):
    return _firing(
        alert_id,
        when,
        status="resolved",
        statistics={"fired_alert_id": fired, "reason": "returned_to_reference"},
    )


def test_incident_of_links_a_resolution_to_its_firing_alert():
    assert incident_of(_firing("f1")) == "f1"
    assert incident_of(_resolved("f1", "r1")) == "f1"
    assert incident_of(_firing("r9", status="resolved", statistics={})) == "r9"


def test_book_sends_each_state_once_and_never_reopens():
    book = IncidentBook()
    assert book.decide(_firing()).send == (_firing(),)
    assert book.decide(_firing()).reason == "repeat"
    assert book.open_alerts() == [_firing()]
    assert book.decide(_resolved()).send == (_resolved(),)
    assert book.open_alerts() == [] and len(book) == 0
    assert book.decide(_firing()) == ((), "stale_firing")
    assert book.decide(_resolved()).reason == "repeat"


def test_book_resolution_read_before_its_firing():
    """Different partitions: the resolution may be read first; the firing then stays out."""
    book = IncidentBook()
    assert book.decide(_resolved()).send == (_resolved(),)
    assert book.decide(_firing()).reason == "stale_firing"
    assert book.open_alerts() == []


def test_book_rebuilt_from_delivered_alerts_in_any_order():
    book = IncidentBook()
    book.remember(_resolved("f1"))
    book.remember(_firing("f1"))
    book.remember(_firing("f2"))
    assert [a["alert_id"] for a in book.open_alerts()] == ["f2"]
    assert book.decide(_firing("f2")).reason == "repeat"
    assert book.decide(_firing("f1")).reason == "stale_firing"


def test_book_forgets_the_oldest_closed_incidents_beyond_capacity():
    book = IncidentBook(capacity=2)
    for i in range(3):
        book.decide(_resolved(f"f{i}", f"r{i}"))
    assert book.decide(_firing("f0")).reason == "new"
    assert book.decide(_firing("f2")).reason == "stale_firing"


def test_alertmanager_firing_alert():
    alert = _firing(segment={"region": "eu-west", "device type": "ios"}, model_version="v3")
    body = alertmanager_alert(alert, now=NOW, hold_seconds=240)
    assert body["labels"] == {
        "alertname": "DriftlineDataDrift",
        "model": "fraud",
        "model_version": "v3",
        "feature": "amount",
        "kind": "data_drift",
        "severity": "warning",
        "detector": "mean",
        "segment_region": "eu-west",
        "segment_device_type": "ios",
        "incident": "f1",
    }
    assert body["startsAt"] == "2026-06-01T10:00:00.000Z"
    assert body["endsAt"] == "2026-06-01T12:04:00.000Z"
    notes = body["annotations"]
    assert notes["description"] == alert["message"]
    assert notes["after"] == "2.5" and notes["p_value"] == "1e-09"
    assert notes["summary"] == "data drift on fraud amount"
    assert all(isinstance(v, str) for v in notes.values())


def test_alertmanager_resolved_alert_has_the_labels_of_its_firing_alert():
    firing = alertmanager_alert(_firing(), now=NOW, hold_seconds=240)
    resolved = alertmanager_alert(_resolved(), now=NOW, hold_seconds=240)
    assert resolved["labels"] == firing["labels"]
    assert resolved["endsAt"] == "2026-06-01T11:00:00.000Z" and "startsAt" not in resolved


def test_alertmanager_times_never_in_the_future():
    """A producer clock ahead of ours must not keep a resolved alert active."""
    ahead = "2026-06-01T13:00:00Z"
    assert alertmanager_alert(_resolved(when=ahead), now=NOW, hold_seconds=1)["endsAt"] == (
        "2026-06-01T12:00:00.000Z"
    )
    body = alertmanager_alert(_firing(when=ahead, feature=None), now=NOW, hold_seconds=1)
    assert body["startsAt"] == "2026-06-01T12:00:00.000Z"
    assert "feature" not in body["labels"]


def test_signature_is_hmac_sha256_of_the_body():
    body = b'{"alert_id":"f1"}'
    expected = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert signature(b"k", body) == "sha256=" + expected
    assert signature(b"other", body) != signature(b"k", body)


def test_slack_body_is_text_with_the_state_and_explanation():
    text = slack_body(_resolved())["text"]
    assert text.startswith("[RESOLVED]") and "feature=amount" in text


def test_delivery_order_is_event_time_then_firing_first():
    same = "2026-06-01T10:00:00Z"
    alerts = [_resolved(when=same), _firing("f2", "2026-06-01T09:00:00Z"), _firing(when=same)]
    assert [a["alert_id"] for a in sort_for_delivery(alerts)] == ["f2", "f1", "r1"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "at least one"),
        ({"alertmanagers": ("am:9093",)}, "http://"),
        ({"webhooks": ("http://h",), "webhook_format": "xml"}, "json or slack"),
        ({"webhooks": ("http://h",), "resend_seconds": 0}, "> 0"),
    ],
)
def test_settings_errors_name_the_problem(kwargs, message):
    with pytest.raises(StreamsConfigError, match=message):
        ForwardSettings(**kwargs)


def test_settings_keep_the_secret_out_of_repr():
    settings = ForwardSettings(webhooks=("http://h",), webhook_secret="hunter2")
    assert "hunter2" not in repr(settings)
    assert settings.hold_seconds == 4 * settings.resend_seconds


def test_delivery_order_compares_instants_not_text():
    """A whole second is written without a fraction (``...:00Z``) and a later instant in the
    same second with one (``...:00.500000Z``): as text the later one sorted first, and a
    resolution read in one batch with its firing was sent first (the firing then dropped as
    stale, so Alertmanager never showed the incident)."""
    alerts = [_resolved(when="2026-06-01T10:00:00.500000Z"), _firing(when="2026-06-01T10:00:00Z")]
    assert [a["alert_id"] for a in sort_for_delivery(alerts)] == ["f1", "r1"]
    unreadable = _firing("f0", when="yesterday")
    assert sort_for_delivery([*alerts, unreadable])[0] is unreadable


def test_an_alert_with_malformed_fields_is_counted_not_fatal():
    """An alert whose ``segment`` or ``statistics`` is not an object made building its
    Alertmanager labels raise, stopping the forwarder on the same record at every restart;
    it is now skipped and counted as invalid, and the records around it are delivered."""
    from typing import NamedTuple

    from orjson import dumps

    from driftline.streams import KafkaSettings
    from driftline.streams._forward import Forwarder
    from driftline.streams._incidents import malformed

    class Record(NamedTuple):
        value: bytes
        offset: int
        timestamp: int

    bad_segment = _firing("b1", segment=["region", "eu"])
    bad_stats = {**_firing("b2"), "statistics": "p=0.01"}
    with pytest.raises(AttributeError):  # what the forwarder did with it before
        alertmanager_alert(bad_segment, now=NOW, hold_seconds=60)
    assert "segment" in malformed(bad_segment) and "statistics" in malformed(bad_stats)
    assert malformed(_firing()) is None and malformed(_resolved()) is None

    fwd = Forwarder(KafkaSettings(), ForwardSettings(webhooks=("http://127.0.0.1:9",)))
    alerts = [_firing("g1"), bad_segment, bad_stats, _resolved("g1", "g2")]
    records = [Record(dumps(a), i, 1_000 * i) for i, a in enumerate(alerts)]
    fresh = fwd._split({"tp": records}, {})
    assert [a["alert_id"] for a, _ in fresh] == ["g1", "g2"]
    skipped = fwd.metrics.registry.get_sample_value(
        "driftline_forward_skipped_total", {"reason": "invalid"}
    )
    assert skipped == 2
