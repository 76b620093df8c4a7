"""Unit tests of the pure parts of ``driftline.streams`` (no broker)."""

from __future__ import annotations

import random

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftline.streams import KafkaSettings, TopicLayout, WorkerSettings
from driftline.streams._framing import KINDS, TICK, batch_prefix, encode_frame, iter_frames
from driftline.streams._router import model_of, shard_of
from driftline.streams._shards import (
    CHUNK_BYTES,
    chunk_key,
    fence_key,
    pack_checkpoint,
    unpack_header,
    unpack_state,
)
from driftline.streams._tail import AlertDeduplicator, format_alert
from driftline.streams.exceptions import StreamsConfigError


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


def test_checkpoint_round_trip_in_chunks_and_rejects_foreign_bytes():
    marks = {("prediction", 0): 41, ("label", 3): 7}
    state = random.Random(1).randbytes(3 * CHUNK_BYTES)  # incompressible: several chunks
    header, chunks = pack_checkpoint(marks, state, generation=5)
    assert len(chunks) >= 3 and all(len(c) <= CHUNK_BYTES for c in chunks)
    head = unpack_header(header)
    assert (head.generation, head.chunks, head.marks) == (5, len(chunks), marks)
    assert unpack_state(chunks, head.crc, head.size) == state
    with pytest.raises(ValueError):
        unpack_state([*chunks[:-1], None])
    with pytest.raises(ValueError):
        unpack_header(b"\x80\x04pickle-looking bytes")
    assert chunk_key(b"m", 5, 0) != b"m" and chunk_key(b"m", 5, 0).startswith(b"\xff")


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


# --------------------------------------------------------------------- the shard processor
# Pure logic with stand-ins for Faust's table, producer and events: the integration tests
# cover the real ones; these pin down watermarks, checkpoints and failure handling.


class _Future:
    def __init__(self) -> None:
        self._done = True

    def done(self) -> bool:
        return True

    def __await__(self):
        return iter(())


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple] = []

    async def send(self, topic, key, value, partition, timestamp, headers):
        self.sent.append((topic, key, value, headers))
        return _Future()

    async def flush(self) -> None:
        self.flushes = getattr(self, "flushes", 0) + 1


class _Message:
    def __init__(self, partition: int, offset: int) -> None:
        self.partition, self.offset, self.topic = partition, offset, "app-shards"


class _Event:
    def __init__(self, value: bytes, partition: int, offset: int) -> None:
        self.value = value
        self.message = _Message(partition, offset)


class _CountingMonitor:
    """Counts events per model; state is the count; fails on a poisoned event."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def process(self, events):
        if any(e.features.get("poison") for e in events):
            raise RuntimeError("detector bug")
        for e in events:
            self.counts[e.model] = self.counts.get(e.model, 0) + 1
        return []

    def dump_model(self, model):
        return orjson.dumps(self.counts.get(model, 0))

    def load_model(self, model, data):
        self.counts[model] = orjson.loads(data)

    def drop_model(self, model):
        self.counts.pop(model, None)

    def status(self, model):
        return {"count": self.counts[model]}

    def labels_joined(self, model):
        return 0

    @property
    def stats(self):
        return {"labels_unmatched": 0}


def _processor(table: dict, producer: _Producer, every: int = 3, **limits):
    from driftline.streams._metrics import WorkerMetrics
    from driftline.streams._shards import ShardProcessor

    monitor = _CountingMonitor()
    proc = ShardProcessor(
        monitor, table, producer, shards=1,
        sources={"prediction": "preds", "feature": "feats", "label": "labels"},
        alerts_topic="alerts", deadletter_topic="dead", checkpoint_events=every,
        checkpoint_seconds=3600, metrics=WorkerMetrics(), **limits,
    )  # fmt: skip
    proc.on_assigned({0})
    return proc, monitor


def _event_bytes(model: str, i: int, **features) -> bytes:
    return orjson.dumps(
        {
            "model": model,
            "timestamp": 1.7e9 + i,
            "features": {"x": float(i), **features},
            "prediction": 0.5,
        }
    )


def test_shard_skips_redelivered_events_and_restores_from_its_checkpoint():
    import asyncio

    table: dict = {}
    producer = _Producer()
    proc, monitor = _processor(table, producer)
    acked: list = []

    async def ack(event):
        acked.append(event.message.offset)

    async def run(proc, batches):
        for offset, frames in batches:
            await proc.handle(_Event(_batch(frames), 0, offset), ack)

    first = [(0, 0, i, -1, _event_bytes("m", i)) for i in range(4)]
    asyncio.run(run(proc, [(10, first)]))
    assert monitor.counts == {"m": 4}
    assert acked == [10] and b"m" in table  # 4 >= 3 events: checkpointed, then acked
    # after the checkpoint: a fence record, flushed alone (before and after), before the ack
    assert table.pop(fence_key(0)) == b"1" and producer.flushes == 2
    generation, count, *_ = unpack_header(table[b"m"])
    assert len(table) == 1 + count  # the header and this generation's chunks, nothing older
    # the router re-forwards the same source records (a crash before its commit)
    asyncio.run(run(proc, [(11, first)]))
    assert monitor.counts == {"m": 4}
    # a new owner restores the checkpoint and skips what it already contains
    again, monitor2 = _processor(table, producer)
    more = [(0, 0, i, -1, _event_bytes("m", i)) for i in range(2, 7)]
    asyncio.run(run(again, [(11, more)]))
    assert monitor2.counts == {"m": 7}  # 4 from the checkpoint + offsets 4, 5 and 6
    assert unpack_header(table[b"m"])[0] == generation + 1
    table.pop(fence_key(0))
    assert len(table) == 1 + unpack_header(table[b"m"])[1]  # old chunks deleted


def test_shard_dead_letters_invalid_events_and_detector_failures():
    import asyncio

    producer = _Producer()
    proc, monitor = _processor({}, producer, every=100)

    async def ack(event):
        return None

    frames = [
        (0, 2, 0, -1, _event_bytes("m", 0)),
        (0, 2, 1, -1, b'{"model": "m", "timestamp": "soon"}'),
        (0, 2, 2, -1, _event_bytes("m", 2)),
    ]
    asyncio.run(proc.handle(_Event(_batch(frames), 0, 0), ack))
    assert monitor.counts == {"m": 2}
    (dead,) = producer.sent
    headers = dict(dead[3])
    assert dead[0] == "dead" and dead[2] == frames[1][4]
    assert headers["topic"] == b"preds" and headers["partition"] == b"2"
    assert headers["offset"] == b"1" and headers["error"].startswith(b"timestamp")
    poisoned = [
        (0, 2, 3, -1, _event_bytes("m", 3, poison=1.0)),
        (0, 2, 4, -1, _event_bytes("m", 4)),
    ]
    asyncio.run(proc.handle(_Event(_batch(poisoned), 0, 1), ack))
    assert monitor.counts == {"m": 2}
    assert [s[2] for s in producer.sent[1:]] == [f[4] for f in poisoned]
    assert all(dict(s[3])["error"].startswith(b"detector") for s in producer.sent[1:])


def test_worker_monitor_gets_the_config_and_the_baseline(tmp_path):
    from driftline.detectors import build_baseline
    from driftline.schemas import FeatureEvent
    from driftline.streams._app import build_monitor

    rnd = random.Random(5)
    train = [
        FeatureEvent(model="bl", timestamp=1.7e9 + i, features={"x": rnd.gauss(0, 1)})
        for i in range(600)
    ]
    profile = tmp_path / "profile.json"
    profile.write_bytes(build_baseline(train).to_json())
    config = tmp_path / "driftline.toml"
    config.write_text("[detection]\nwarmup = 777\n[detection.models.bl]\nblock = 128\n")
    monitor = build_monitor(WorkerSettings(config_path=str(config), baseline_path=str(profile)))
    assert monitor.config.for_model("other").warmup == 777
    assert monitor.config.for_model("bl").block == 128
    assert monitor.baseline.models() == ["bl"]
    plain = build_monitor(WorkerSettings())
    assert plain.baseline is None and plain.config.for_model("bl").warmup != 777
    # --preset (issue 12): the preset's options, under --config's own
    preset = build_monitor(WorkerSettings(config_path=str(config), preset="changepoint"))
    assert preset.config.for_model("x").block == 1 and preset.config.warmup == 777
    assert build_monitor(WorkerSettings(preset="changepoint")).config.bocpd_hazard > 0


@pytest.mark.parametrize("content", [None, b"{not json", b'{"format": "something else"}'])
def test_worker_refuses_a_bad_baseline_before_touching_kafka(tmp_path, content):
    import os
    import subprocess
    import sys

    path = tmp_path / "profile.json"
    if content is not None:
        path.write_bytes(content)
    done = subprocess.run(
        [sys.executable, "-m", "driftline.streams.cli", "worker", "--baseline", str(path)],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "DRIFTLINE_BROKER": "127.0.0.1:1"},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0], done.stderr


class _RebalancingFuture(_Future):
    """A delivery future during whose wait the worker's shard 0 is revoked and reassigned."""

    def __init__(self, proc) -> None:
        super().__init__()
        self.proc = proc

    def __await__(self):
        self.proc.on_revoked({0})  # what Faust does meanwhile (stream_wait_empty=False)
        self.proc.on_assigned({0})
        return iter(())


class _RebalancingProducer(_Producer):
    def __init__(self) -> None:
        super().__init__()
        self.proc = None

    async def send(self, topic, key, value, partition, timestamp, headers):
        await super().send(topic, key, value, partition, timestamp, headers)
        return _RebalancingFuture(self.proc) if topic == "dead" and self.proc else _Future()


@pytest.mark.parametrize("checkpoint_first", [True, False])
def test_a_rebalance_during_a_handler_never_checkpoints_dropped_state(checkpoint_first):
    """A handler resumed after its shard was revoked must not write or ack anything.

    Before the fix it checkpointed the dropped (empty) model state without watermarks and
    acknowledged its messages, so the model restarted its warm-up in the middle of the stream
    (seen as the demo's ``channel`` alert moving from 00:48 to 00:51 of event time).
    """
    import asyncio

    table: dict = {}
    producer = _RebalancingProducer()
    proc, monitor = _processor(table, producer, every=3)
    acked: list = []

    async def ack(event):
        acked.append(event.message.offset)

    async def feed(batches):
        for offset, frames in batches:
            await proc.handle(_Event(_batch(frames), 0, offset), ack)

    good = [(0, 0, i, -1, _event_bytes("m", i)) for i in range(10)]
    bad = (0, 0, 100, -1, b"not json")
    first = good[:4] if checkpoint_first else []
    if first:
        asyncio.run(feed([(10, first)]))
        assert acked == [10] and monitor.counts == {"m": 4}
    producer.proc = proc  # the next dead letter's delivery wait sees a rebalance
    asyncio.run(feed([(11, [*good[4:7], bad])]))
    producer.proc = None
    assert acked == ([10] if first else [])  # nothing acknowledged after the revocation
    if first:
        assert orjson.loads(unpack_state([table[chunk_key(b"m", 1, 0)]])) == 4  # untouched
    # Faust redelivers from the last commit; the same worker owns the shard again
    asyncio.run(feed([(11, [*good[4:7], bad]), (12, good[7:])]))
    assert monitor.counts == ({"m": 10} if first else {"m": 6})


def test_models_over_the_memory_limit_are_evicted_clean_or_refused_new():
    import asyncio

    table: dict = {}
    producer = _Producer()
    proc, monitor = _processor(table, producer, every=1, max_models=3)

    async def ack(event):
        return None

    async def run(offset, frames):
        await proc.handle(_Event(_batch(frames), 0, offset), ack)

    for j, model in enumerate("abc"):
        asyncio.run(run(j, [(0, 0, j, -1, _event_bytes(model, j))]))
    assert set(monitor.counts) == set("abc")  # each checkpointed (every event)
    asyncio.run(run(3, [(0, 0, 3, -1, _event_bytes("d", 3))]))
    assert set(monitor.counts) == set("bcd")  # a: least recently seen, clean: evicted
    assert proc.evicted == 1
    asyncio.run(run(4, [(0, 0, 4, -1, _event_bytes("a", 4))]))
    assert monitor.counts["a"] == 2  # restored from its checkpoint, not restarted
    # every model in memory has unsaved changes: a brand-new one is refused, not allocated
    busy, busy_monitor = _processor({}, _Producer(), every=100, max_models=2)

    async def fill():
        frames = [(0, 0, i, -1, _event_bytes(m, i)) for i, m in enumerate(["x", "y", "z"])]
        await busy.handle(_Event(_batch(frames), 0, 0), ack)

    asyncio.run(fill())
    assert set(busy_monitor.counts) == {"x", "y"}
    dead = [headers for topic, _, _, headers in busy._producer.sent if topic == "dead"]
    assert len(dead) == 1 and dict(dead[0])["error"].startswith(b"model: over the limit")


def test_idle_models_leave_memory_after_a_checkpoint_and_come_back():
    import asyncio

    table: dict = {}
    proc, monitor = _processor(table, _Producer(), every=2, model_idle_seconds=1e-9)

    async def ack(event):
        return None

    async def run(offset, frames):
        await proc.handle(_Event(_batch(frames), 0, offset), ack)

    asyncio.run(run(0, [(0, 0, i, -1, _event_bytes("idle", i)) for i in range(2)]))
    assert monitor.counts == {} and proc.evicted == 1  # checkpointed, then evicted
    assert "idle" not in proc.status()["models"]
    asyncio.run(run(1, [(0, 0, 2, -1, _event_bytes("idle", 2))]))
    assert monitor.counts == {"idle": 3}


def test_checkpoint_records_refuse_every_bit_flip_and_truncation():
    from driftline.detectors.exceptions import StateError

    marks = {("prediction", 0): 41, ("label", 3): 7}
    state = random.Random(2).randbytes(40_000) + bytes(60_000)
    header, chunks = pack_checkpoint(marks, state, generation=3, windows={"w": [1, 2]})
    rnd = random.Random(18)
    accepted = 0
    for trial in range(10_000):
        head, parts = bytearray(header), [bytearray(c) for c in chunks]
        target = head if trial % 2 else parts[rnd.randrange(len(parts))]
        if trial % 7 == 6:
            del target[rnd.randrange(len(target)) :]
        else:
            pos = rnd.randrange(len(target) * 8)
            target[pos // 8] ^= 1 << (pos % 8)
        try:
            h = unpack_header(bytes(head))
            got = unpack_state([bytes(p) for p in parts], h.crc, h.size)
        except StateError:
            continue
        accepted += got != state or h.marks != marks  # identical bytes are no harm
    assert accepted == 0


def _restore_with(table, **options):
    import asyncio

    producer = _Producer()
    proc, monitor = _processor(table, producer, **options)

    async def ack(event):
        return None

    frames = [(0, 0, 5000, -1, _event_bytes("m", 5000))]
    asyncio.run(proc.handle(_Event(_batch(frames), 0, 99), ack))
    dead = [dict(h) for topic, _, _, h in producer.sent if topic == "dead"]
    return proc, monitor, dead


def test_a_bad_checkpoint_is_refused_by_default_and_started_fresh_on_request():
    import zlib

    table: dict = {}
    header, chunks = pack_checkpoint({("prediction", 0): 10}, orjson.dumps(4), 1)
    table[b"m"] = header
    table[chunk_key(b"m", 1, 0)] = chunks[0][:-1] + bytes([chunks[0][-1] ^ 1])  # one bit
    proc, monitor, dead = _restore_with(table)
    assert monitor.counts == {} and "m" not in proc.status()["models"]
    assert len(dead) == 1 and dead[0]["error"].startswith(b"state: checkpoint of model 'm'")
    assert proc._metrics.state_errors.labels("m")._value.get() == 1
    assert table[chunk_key(b"m", 1, 0)] != chunks[0]  # the evidence is left as it was
    _, monitor, dead = _restore_with(table, on_bad_state="fresh")
    assert monitor.counts == {"m": 1} and dead == []  # started anew, loudly (logged)
    # a forged header (checksum recomputed) whose watermark is past the partition's end
    forged, chunks = pack_checkpoint({("prediction", 0): 10**12}, orjson.dumps(4), 1)
    table = {b"m": forged, chunk_key(b"m", 1, 0): chunks[0]}
    _, monitor, dead = _restore_with(table, end_offset=lambda kind, partition: 6000)
    assert monitor.counts == {} and b"past its end" in dead[0]["error"]
    # a header written before checksums (DLC2) still loads
    doc = orjson.dumps({"generation": 1, "chunks": 1, "marks": [["prediction", 0, 10]]})
    old = b"DLC2" + len(doc).to_bytes(4, "big") + doc
    table = {b"m": old, chunk_key(b"m", 1, 0): zlib.compress(orjson.dumps(4))}
    _, monitor, dead = _restore_with(table)
    assert monitor.counts == {"m": 5} and dead == []
