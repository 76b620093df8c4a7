"""End-to-end tests of ``driftline worker`` against the embedded broker.

Each test runs real worker processes. Expected alerts always come from ``driftline.replay``
on the same events: the streaming path must emit exactly the alerts (by ``alert_id``) that
replay does, also across a crash and a rebalance.
"""

from __future__ import annotations

import signal

import orjson
import pytest

from driftline.streams._router import shard_of

pytestmark = pytest.mark.integration


def _ids(alerts: list[dict]) -> set[str]:
    return {a["alert_id"] for a in alerts}


def _baseline_case(tmp_path) -> tuple[str, list[bytes]]:
    """A training profile of model ``bl`` and a serving stream whose ``x`` moved by 2 sd.

    The stream is shorter than one warm-up (600 events against 2000), so only a baseline
    can make it alert.
    """
    import random

    from driftline.replay import build_baseline_file

    rnd = random.Random(11)

    def events(n: int, shift: float, t0: float) -> list[bytes]:
        return [
            orjson.dumps(
                {
                    "model": "bl",
                    "timestamp": t0 + i,
                    "features": {"x": rnd.gauss(shift, 1), "y": rnd.gauss(0, 1)},
                    "prediction": rnd.random(),
                }
            )
            for i in range(n)
        ]

    train = tmp_path / "train.jsonl"
    train.write_bytes(b"\n".join(events(3000, 0.0, 1.6e9)) + b"\n")
    profile = tmp_path / "profile.json"
    build_baseline_file([str(train)], str(profile), progress=False)
    return str(profile), events(600, 2.0, 1.7e9)


def test_drifting_stream_gives_the_replay_alerts(layout, start_worker, kit, tmp_path):
    import gzip

    from driftline.replay import sample_path

    # Predictions only: a model's predictions are in one partition, in order, as in the
    # file; labels travel on another topic, so their interleaving is not the file's.
    with gzip.open(sample_path(), "rb") as f:
        lines = [line.rstrip(b"\n") for line in f if b'"features"' in line]
    # ... plus model ``bl`` with a training profile (--baseline): it covers only ``bl``.
    profile, serving = _baseline_case(tmp_path)
    assert not [a for a in kit.replay_alerts(serving) if a["model"] == "bl"], "needs warm-up"
    lines += serving
    expected = kit.replay_alerts(lines, baseline=profile)
    assert expected, "the sample must drift"
    early = [a for a in expected if a["model"] == "bl" and a["status"] == "firing"]
    assert [a["feature"] for a in early] == ["x"], "the baseline alerts without a warm-up"
    worker = start_worker(layout, baseline=profile)
    kit.produce(layout.bootstrap, kit.keyed(layout.topics.predictions, lines))
    got = kit.read_alerts(layout, lambda a: _ids(a) >= _ids(expected), timeout=90)
    assert _ids(got) == _ids(expected)
    # same bytes, not only the same ids: streaming and replay emit the same alert
    by_id = {a["alert_id"]: a for a in got}
    assert all(by_id[a["alert_id"]] == a for a in expected)
    worker.wait_events(len(lines))
    assert worker.metric("driftline_alerts_total") >= len(expected)
    exposition = worker.get("/metrics")[1].decode()
    for name in (
        "driftline_events_total{",
        "driftline_consumer_lag{",
        "driftline_checkpoint_age_seconds{",
        "driftline_event_latency_seconds_bucket{",
        "driftline_batch_processing_seconds_count",
    ):
        assert name in exposition, name
    status = orjson.loads(worker.get("/status")[1])
    assert {"fraud", "eta", "bl"} <= set(status["models"])
    assert status["models"]["fraud"]["last_alert"]["alert_id"] in _ids(expected)
    assert worker.get("/health")[0] == 200


def test_bad_messages_go_to_the_dead_letter_topic(layout, start_worker, kit):
    topic = layout.topics.predictions
    good = kit.drifting_events(["dl-a", "dl-b"], 150)
    huge = orjson.dumps(
        {"model": "dl-a", "timestamp": 1.7e9, "features": {"blob": "x" * 300_000}, "prediction": 1}
    )
    bad = [
        b"this is not json",
        b'{"model": "dl-a", "timestamp": "yesterday", "features": {}, "prediction": 1}',
        b'{"model": "dl-a"}',
        b'{"model": 12, "timestamp": 1.7e9, "features": {"x": 1}, "prediction": 1}',
        b'{"model": "dl-b", "timestamp": 1.7e9, "features": {"x": "\xff\xfe"}, "prediction": 1}',
        b"[1, 2, 3]",
        b"",
        huge,
    ]
    messages = [(topic, None, line) for line in good]  # keyless on purpose
    for j, payload in enumerate(bad):
        messages.insert(5 + j * 37, (topic, b"some-key" if j % 2 else None, payload))
    sent_bad = bad
    worker = start_worker(layout)
    kit.produce(layout.bootstrap, messages)
    dead = kit.read_topic(
        layout.bootstrap, layout.topics.deadletter, lambda r: len(r) >= len(sent_bad), timeout=60
    )
    assert sorted(r.value for r in dead) == sorted(sent_bad)  # original bytes, untouched
    for record in dead:
        headers = dict(record.headers)
        assert headers["topic"].decode() == topic
        assert int(headers["partition"]) >= 0 and int(headers["offset"]) >= 0
        assert headers["error"], "every dead letter says why"
    errors = {r.value: dict(r.headers)["error"].decode() for r in dead}
    assert errors[huge].startswith("payload")
    assert errors[bad[1]].startswith("timestamp")
    assert "missing" in errors[bad[2]]
    assert errors[bad[3]].startswith("model")
    worker.wait_events(len(good))  # every good message processed, nothing lost
    assert worker.metric("driftline_events_total") == len(good)
    assert worker.metric("driftline_invalid_messages_total") == len(sent_bad)
    assert worker.alive()


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_kill_9_restores_state_and_loses_no_alert(layout, start_worker, kit, store, tmp_path):
    lines = kit.drifting_events(["crash-a", "crash-b", "crash-c"], 6000)
    expected = kit.replay_alerts(lines)
    features = {a["feature"] for a in expected}
    assert {"x", "y"} <= features
    cut = int(len(lines) * 0.7)  # x drifts before the cut, y after it
    topic = layout.topics.predictions
    options = {"checkpoint_events": 1500, "store": store, "data_dir": str(tmp_path)}
    first = start_worker(layout, **options)
    kit.produce(layout.bootstrap, kit.keyed(topic, lines[:cut]))
    first.wait_events(cut)
    before = kit.read_alerts(layout, lambda a: {x["feature"] for x in a} >= {"x"}, timeout=30)
    assert {a["feature"] for a in before} == {"x"}
    first.stop(signal.SIGKILL)
    kit.produce(layout.bootstrap, kit.keyed(topic, lines[cut:]))
    second = start_worker(layout, **options)  # same RocksDB directory: local state reused
    got = kit.read_alerts(layout, lambda a: _ids(a) >= _ids(expected), timeout=120)
    assert _ids(got) == _ids(expected)  # every expected alert, nothing else
    # Redelivery may repeat an alert, always with the same id and the same content.
    for alert in got:
        assert alert == next(a for a in expected if a["alert_id"] == alert["alert_id"])
    # State came from the changelog: the new worker did not re-read the stream from the start.
    second.wait_events(len(lines) - cut)
    assert second.metric("driftline_events_total") < len(lines) - 1500


def test_two_workers_split_shards_and_hand_over_on_stop(layout, start_worker, kit):
    models, seen = [], set()
    i = 0
    while len(models) < 8:  # two models per shard, so both workers get some
        name = f"scale-{i}"
        shard = shard_of(name, layout.topics.partitions)
        if sum(shard_of(m, 4) == shard for m in models) < 2:
            models.append(name)
            seen.add(shard)
        i += 1
    lines = kit.drifting_events(models, 6000)
    expected = kit.replay_alerts(lines)
    cut = int(len(lines) * 0.7)
    topic = layout.topics.predictions
    a = start_worker(layout)
    b = start_worker(layout)
    a.wait(
        lambda: len(a.shards()) + len(b.shards()) == 4 and a.shards() and b.shards(),
        60,
        "both workers to own shards",
    )
    kit.produce(layout.bootstrap, kit.keyed(topic, lines[:cut]))
    x_alerts = [e for e in expected if e["feature"] == "x"]
    kit.read_alerts(layout, lambda got: _ids(got) >= _ids(x_alerts), timeout=60)
    assert a.metric("driftline_alerts_total") > 0 and b.metric("driftline_alerts_total") > 0
    b.stop()  # graceful: its shards and their state move to a
    a.wait(lambda: len(a.shards()) == 4, 60, "a to own every shard")
    kit.produce(layout.bootstrap, kit.keyed(topic, lines[cut:]))
    got = kit.read_alerts(layout, lambda g: _ids(g) >= _ids(expected), timeout=90)
    assert _ids(got) == _ids(expected)
    assert {e["model"] for e in expected if e["feature"] == "y"} == set(models)


def test_alerts_tail_prints_each_alert_id_once(layout, kit):
    import subprocess
    import sys

    alerts = [
        {
            "alert_id": f"id-{i}",
            "status": "firing",
            "kind": "data_drift",
            "severity": "warning",
            "model": "m",
            "model_version": None,
            "segment": None,
            "feature": f"f{i}",
            "detector": "mean",
            "event_time": "2026-03-01T00:00:00Z",
            "window": {},
            "statistics": {},
            "message": f"alert {i}",
            "schema_version": 1,
        }
        for i in range(3)
    ]
    # a redelivered stretch: id-1 and id-2 published twice, as after a worker crash
    sequence = [alerts[0], alerts[1], alerts[2], alerts[1], alerts[2]]
    kit.produce(
        layout.bootstrap,
        [(layout.topics.alerts, a["alert_id"].encode(), orjson.dumps(a)) for a in sequence],
    )

    def tail(*options: str) -> str:
        command = [sys.executable, "-m", "driftline.streams.cli", "alerts", "tail"]
        command += ["--broker", layout.bootstrap, "--topic", layout.topics.alerts]
        command += ["--from-beginning", *options]
        done = subprocess.run(command, capture_output=True, timeout=60, check=True, text=True)
        return done.stdout

    printed = [orjson.loads(line) for line in tail("--json", "--timeout", "3").splitlines()]
    assert sorted(a["alert_id"] for a in printed) == ["id-0", "id-1", "id-2"]
    readable = tail("--max", "3")
    assert readable.count("model=m") == 3 and "feature=f2" in readable


def test_demo_shows_the_injected_drift_and_exits_cleanly():
    """The README's main command, end to end: its own broker, worker and publisher."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "driftline.streams.cli", "demo", "--timeout", "90"],
        capture_output=True, timeout=150, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "feature=distance_km" in done.stdout and "feature=channel" in done.stdout
    assert done.stdout.count("ALERT ") >= 2
