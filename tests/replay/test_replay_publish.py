"""``driftline replay --publish``: events to the contract's topics, keyed by model.

The pacing arithmetic is tested with a fake clock (timings are never pass/fail criteria);
the Kafka path against the real embedded broker.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict

import pytest

from driftline.replay import PublishOptions, publish_files
from driftline.replay._publish import Pacer
from driftline.schemas import decode_event
from driftline.streams import KafkaSettings, TopicLayout


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pacer_scales_event_time_gaps():
    clock = FakeClock()
    pacer = Pacer(2.0, clock)
    assert pacer.delay(1000.0) == 0.0  # the first event sets the origin
    assert pacer.delay(1010.0) == pytest.approx(5.0)  # 10 s of event time at speed 2
    clock.now += 5.0
    assert pacer.delay(1010.0) == pytest.approx(0.0)
    assert pacer.delay(1004.0) < 0  # a late event (a label) is sent at once
    clock.now += 1.0
    assert pacer.delay(1020.0) == pytest.approx(4.0)


def test_pacer_max_speed_never_waits():
    pacer = Pacer(None, FakeClock())
    assert pacer.delay(0.0) == 0.0
    assert pacer.delay(1e9) == 0.0


def test_speed_must_be_positive():
    with pytest.raises(ValueError):
        PublishOptions(speed=0)


def _consume(bootstrap: str, topics: list[str], expected: int) -> dict[str, list]:
    from aiokafka import AIOKafkaConsumer

    async def run() -> dict[str, list]:
        consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        got: dict[str, list] = defaultdict(list)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while sum(map(len, got.values())) < expected and loop.time() < deadline:
                batches = await consumer.getmany(timeout_ms=500)
                for tp, records in batches.items():
                    got[tp.topic].extend((tp.partition, r.key, r.value) for r in records)
        finally:
            await consumer.stop()
        return got

    return asyncio.run(run())


@pytest.mark.integration
def test_publish_then_consume_back(kafka_broker, unique_topic, sample_lines, tmp_path):
    lines = list(sample_lines[:600])
    lines.insert(10, b"not json\n")  # bad lines are reported and never published
    path = tmp_path / "few.jsonl"
    path.write_bytes(b"".join(lines))
    topics = TopicLayout(
        predictions=unique_topic("predictions"),
        features=unique_topic("features"),
        labels=unique_topic("labels"),
    )
    kafka_broker.create_topics_sync({topics.predictions: 3, topics.features: 1, topics.labels: 2})
    shown: list[str] = []
    summary = publish_files(
        [str(path)],
        KafkaSettings(kafka_broker.bootstrap_servers),
        topics=topics,
        progress=False,
        echo=shown.append,
    )
    events = [decode_event(line) for line in sample_lines[:600]]
    by_kind = Counter(e.kind for e in events)
    assert summary.invalid_lines == 1 and f"{path}:11:" in shown[0]
    assert summary.messages_by_topic == {
        topics.predictions: by_kind["prediction"],
        topics.labels: by_kind["label"],
    }
    got = _consume(kafka_broker.bootstrap_servers, [topics.predictions, topics.labels], 600)
    assert {t: len(v) for t, v in got.items()} == summary.messages_by_topic
    originals = {line.rstrip(b"\n") for line in sample_lines[:600]}
    partitions_of_model: dict[bytes, set] = defaultdict(set)
    for topic, records in got.items():
        for partition, key, value in records:
            assert value in originals, "the value is the original line, byte for byte"
            event = decode_event(value)
            assert key == event.model.encode()
            partitions_of_model[(topic, key)].add(partition)
    # Keyed by model: each model's events of one topic are in one partition, in file order.
    assert all(len(p) == 1 for p in partitions_of_model.values())
    for topic, kind in ((topics.predictions, "prediction"), (topics.labels, "label")):
        for model in {e.model for e in events}:
            sent = [e.timestamp for e in events if e.kind == kind and e.model == model]
            received = [decode_event(v).timestamp for _, k, v in got[topic] if k == model.encode()]
            assert received == sent


@pytest.mark.integration
def test_publish_cli_with_speed(kafka_broker, unique_topic, sample_lines, tmp_path, cli):
    path = tmp_path / "few.jsonl.gz"
    import gzip

    path.write_bytes(gzip.compress(b"".join(sample_lines[:40])))
    names = {k: unique_topic(k) for k in ("p", "f", "l")}
    kafka_broker.create_topics_sync({n: 1 for n in names.values()})
    # The first 40 events span a few seconds of event time; at speed 50 that is well under
    # a second of pacing, while still going through the sleeping branch.
    run = cli(
        "replay",
        path,
        "--publish",
        "--broker",
        kafka_broker.url,
        "--speed",
        "50",
        "--topic-predictions",
        names["p"],
        "--topic-features",
        names["f"],
        "--topic-labels",
        names["l"],
    )
    assert run.status == 0, run.stderr
    assert "published 40 messages" in run.stderr
    got = _consume(kafka_broker.bootstrap_servers, [names["p"], names["l"]], 40)
    assert sum(map(len, got.values())) == 40
