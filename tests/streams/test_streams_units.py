"""Unit tests of the pure parts of ``driftline.streams`` (no broker)."""

from __future__ import annotations

import random

import orjson
import pytest
from driftline.streams import KafkaSettings, TopicLayout, WorkerSettings
from driftline.streams._framing import KINDS, TICK, batch_prefix, encode_frame, iter_frames
from driftline.streams._router import model_of, shard_of
from driftline.streams._shards import pack_checkpoint, unpack_checkpoint
from driftline.streams._tail import AlertDeduplicator, format_alert
from driftline.streams.exceptions import StreamsConfigError
from hypothesis import given
from hypothesis import strategies as st


def _batch(events: list[tuple[int, int, int, int, bytes]]) -> bytes:
    parts = [batch_prefix()]
    for code, partition, offset, ts, raw in events:
        parts += [encode_frame(code, partition, offset, ts, raw), raw]
    return b"".join(parts)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),
            st.integers(0, 2**31 - 1),
            st.integers(0, 2**62),
            st.integers(-1, 2**62),
            st.binary(),
        )
    )
)
def test_frames_round_trip_byte_for_byte(events):
    frames = list(iter_frames(_batch(events)))
    assert [
        (KINDS.index(f.kind), f.partition, f.offset, f.timestamp_ms, f.raw) for f in frames
    ] == events


def test_tick_has_no_events_and_garbage_is_refused():
    assert list(iter_frames(TICK)) == []
    with pytest.raises(ValueError):
        list(iter_frames(b"\x02whatever"))
    truncated = _batch([(0, 1, 2, 3, b"payload")])[:-2]
    with pytest.raises(ValueError):
        list(iter_frames(truncated))


@pytest.mark.parametrize(
    ("raw", "model"),
    [
        (b'{"model":"fraud","x":1}', "fraud"),
        (b'{"model" : "sp ace"}', "sp ace"),
        (b'{"features":{"model":"inner"},"model":"outer"}', "outer"),
        (b'{"a":"x\\"model\\":\\"evil","model":"real"}', "real"),
        (b'{"model":"caf\\u00e9"}', "caf\u00e9"),
        (b'{"\\u006dodel":"escaped-key"}', "escaped-key"),
        (b'{"tags":["model"],"model":"after-array"}', "after-array"),
        (b'{"model":5}', ""),
        (b"not json", ""),
        (b"[1,2]", ""),
        (b"\xff\xfe", ""),
        (b"", ""),
    ],
)
def test_model_of_agrees_with_a_full_parse(raw, model):
    assert model_of(raw) == model


@given(
    st.dictionaries(
        st.sampled_from(["model", "features", "a", "b"]),
        st.recursive(
            st.none() | st.text() | st.integers(-(2**63), 2**63 - 1),
            lambda c: st.lists(c) | st.dictionaries(st.text(), c),
            max_leaves=5,
        ),
    )
)
def test_model_of_matches_orjson_on_arbitrary_objects(obj):
    raw = orjson.dumps(obj)
    value = obj.get("model")
    assert model_of(raw) == (value if isinstance(value, str) else "")


def test_shard_is_stable_and_spreads():
    # crc32 is fixed: these values must never change, or restarted workers would look for
    # a model's state on the wrong shard
    assert shard_of("fraud", 4) == shard_of("fraud", 4)
    shards = {shard_of(f"model-{i}", 8) for i in range(200)}
    assert shards == set(range(8))


def test_checkpoint_round_trip_and_rejects_foreign_bytes():
    marks = {("prediction", 0): 41, ("label", 3): 7}
    state = bytes(random.Random(1).randbytes(100))
    assert unpack_checkpoint(pack_checkpoint(marks, state)) == (marks, state)
    with pytest.raises(ValueError):
        unpack_checkpoint(b"\x80\x04pickle-looking bytes")


def test_kafka_settings_build_both_clients_arguments(monkeypatch):
    monkeypatch.setenv("DRIFTLINE_BROKER", "kafka://b1:9092,b2:9092")
    monkeypatch.setenv("DRIFTLINE_SASL_PASSWORD", "s3cret")
    s = KafkaSettings.from_env(
        security_protocol="SASL_PLAINTEXT", sasl_mechanism="scram-sha-512", sasl_username="u"
    )
    assert s.bootstrap_servers == "b1:9092,b2:9092"
    assert s.url == "kafka://b1:9092;kafka://b2:9092"
    kw = s.aiokafka_kwargs()
    assert kw["sasl_mechanism"] == "SCRAM-SHA-512" and kw["sasl_plain_password"] == "s3cret"
    assert "s3cret" not in repr(s)
    creds = s.faust_credentials()
    assert creds.mechanism.value == "SCRAM-SHA-512" and creds.username == "u"
    assert KafkaSettings.from_env("cli:1").bootstrap_servers == "cli:1"  # --broker wins


@pytest.mark.parametrize(
    "kwargs",
    [
        {"security_protocol": "TLS"},
        {"security_protocol": "SASL_SSL", "sasl_username": "u"},
        {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "GSSAPI",
            "sasl_username": "u",
            "sasl_password": "p",
        },
        {"bootstrap_servers": "  "},
    ],
)
def test_invalid_kafka_settings_fail_early(kwargs):
    with pytest.raises(StreamsConfigError):
        KafkaSettings(**kwargs)


def test_worker_and_topic_settings_validate():
    with pytest.raises(StreamsConfigError):
        TopicLayout(predictions="same", features="same")
    with pytest.raises(StreamsConfigError):
        WorkerSettings(store="redis")
    with pytest.raises(StreamsConfigError):
        WorkerSettings(checkpoint_events=0)
    assert TopicLayout().sources["driftline.labels"] == "label"


def test_deduplicator_passes_each_id_once():
    d = AlertDeduplicator(capacity=3)
    assert [d.first_time(x) for x in "abab"] == [True, True, False, False]
    assert d.duplicates == 2
    for x in "cde":
        d.first_time(x)
    assert d.first_time("a")  # forgotten beyond capacity: the window is bounded


def test_format_alert_names_the_subject():
    text = format_alert(
        {
            "alert_id": "id1",
            "status": "firing",
            "kind": "data_drift",
            "severity": "critical",
            "model": "fraud",
            "feature": "amount",
            "segment": {"region": "eu"},
            "detector": "mean",
            "event_time": "2026-03-01T00:45:22Z",
            "message": "moved",
        }
    )
    assert "CRITICAL" in text and "model=fraud" in text and "feature=amount" in text
    assert "segment=region=eu" in text and "id1" in text
