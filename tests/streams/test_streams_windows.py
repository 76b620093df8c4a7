"""Per-model event-time windows of ``/status``: the pure tally, the shard, a real worker."""

from __future__ import annotations

import asyncio
import signal
from types import SimpleNamespace

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftline.schemas import FeatureEvent, LabelEvent, PredictionEvent, format_timestamp
from driftline.streams._framing import KINDS, batch_prefix, encode_frame
from driftline.streams._shards import header_windows, pack_checkpoint
from driftline.streams._windows import WindowBook

T0 = 1_700_000_040.0  # a window boundary for 60 s windows (multiple of 60)


def _pred(model: str, t: float, pid: str | None = None) -> PredictionEvent:
    return PredictionEvent(
        model=model, timestamp=t, features={"x": 1.0}, prediction=0.5, prediction_id=pid
    )


def _alert(model: str, t: float, kind: str, status: str) -> SimpleNamespace:
    return SimpleNamespace(model=model, event_time=format_timestamp(t), kind=kind, status=status)


def _by_start(windows: list[dict]) -> dict[str, dict]:
    return {w["start"]: w for w in windows}


# ------------------------------------------------------------------------ the pure tally


def test_events_alerts_and_joins_land_in_their_event_time_window():
    joined = {"m": 0}
    book = WindowBook(60, 5, lambda model: joined[model])
    events = [_pred("m", T0 + i) for i in range(5)]  # window 0
    events += [FeatureEvent(model="m", timestamp=T0 + 61, features={"x": 1.0})] * 2  # window 1
    events += [_pred("other", T0 + 130)]  # another model, window 2
    book.count(events, [], None)
    labels = [
        LabelEvent(model="m", timestamp=T0 + 70, prediction_id=f"p{i}", label=1) for i in range(3)
    ]
    labelled = book.labels_before(labels)
    joined["m"] += 2  # what the monitor joined while processing the batch
    alerts = [
        _alert("m", T0 + 65, "data_drift", "firing"),
        _alert("m", T0 + 66, "schema", "firing"),
    ]
    alerts.append(_alert("m", T0 + 80, "data_drift", "resolved"))
    book.count(labels, alerts, labelled)

    view = book.view("m")
    assert [w["start"] for w in view] == [format_timestamp(T0), format_timestamp(T0 + 60)]
    assert view[0]["end"] == view[1]["start"]  # tumbling: back to back, newest last
    first, second = view
    assert first["events"] == {"prediction": 5} and first["alerts"] == {}
    assert second["events"] == {"feature": 2, "label": 3}
    assert second["labels_joined"] == 2
    assert second["alerts"] == {"data_drift": {"firing": 1, "resolved": 1}, "schema": {"firing": 1}}
    assert [w["events"] for w in book.view("other")] == [{"prediction": 1}]
    assert book.view("unknown") == []


def test_only_the_last_windows_are_kept_and_late_events_are_counted_as_late():
    book = WindowBook(60, 3, lambda model: 0)
    for w in range(6):
        book.count([_pred("m", T0 + 60 * w + 1)] * (w + 1), [], None)
    view = book.view("m")
    assert [w["events"]["prediction"] for w in view] == [4, 5, 6]  # windows 3, 4 and 5
    book.count([_pred("m", T0 + 60), _pred("m", T0 + 60 * 4)], [], None)  # window 1 is gone
    view = book.view("m")
    assert [w["events"]["prediction"] for w in view] == [4, 6, 6]
    assert [w["late"] for w in view] == [0, 0, 1]


@given(
    st.lists(st.tuples(st.sampled_from(["a", "b"]), st.floats(0, 900)), max_size=60),
    st.lists(st.integers(1, 7), max_size=20),
    st.integers(1, 6),
)
def test_an_event_time_ordered_stream_gives_the_same_windows_however_it_is_batched(
    events, cuts, keep
):
    stream = [_pred(model, T0 + t) for model, t in sorted(events, key=lambda e: e[1])]
    whole = WindowBook(60, keep, lambda model: 0)
    whole.count(stream, [], None)
    batched = WindowBook(60, keep, lambda model: 0)
    pos = 0
    for size in [*cuts, len(stream)]:
        if stream[pos : pos + size]:
            batched.count(stream[pos : pos + size], [], None)
        pos += size
    for model in ("a", "b"):
        assert batched.view(model) == whole.view(model)
        times = [T0 + t for m, t in events if m == model]
        kept = [t for t in times if t // 60 > max(times) // 60 - keep] if times else []
        view = whole.view(model)
        assert sum(w["events"]["prediction"] for w in view) == len(kept)  # each once
        assert sum(w["late"] for w in view) == 0  # in event-time order nothing is late


def test_windows_round_trip_in_the_checkpoint_header_and_refuse_another_size():
    book = WindowBook(60, 4, lambda model: 0)
    book.count([_pred("m", T0 + 1), _pred("m", T0 + 61)], [], None)
    book.count_invalid("m")
    header, _ = pack_checkpoint({("prediction", 0): 9}, b"state", 3, book.dump("m"))
    restored = WindowBook(60, 4, lambda model: 0)
    restored.load("m", header_windows(header))
    assert restored.view("m") == book.view("m")
    assert restored.view("m")[-1]["invalid"] == 1
    resized = WindowBook(30, 4, lambda model: 0)
    resized.load("m", header_windows(header))
    assert resized.view("m") == []  # counts of 60 s windows cannot be split into 30 s ones
    plain, _ = pack_checkpoint({}, b"state", 1)
    assert header_windows(plain) is None
    broken = WindowBook(60, 4, lambda model: 0)
    broken.load("m", {"format": 1, "seconds": 60.0, "windows": [[1, {"events": 3}]]})
    assert broken.view("m") == []  # unreadable: logged, started afresh, never a crash


@pytest.mark.parametrize(
    "options", [{"window_seconds": 0}, {"window_seconds": float("nan")}, {"window_count": 0}]
)
def test_window_settings_are_validated(options):
    from driftline.streams import WorkerSettings
    from driftline.streams.exceptions import StreamsConfigError

    assert WorkerSettings().window_seconds == 60.0 and WorkerSettings().window_count == 10
    with pytest.raises(StreamsConfigError):
        WorkerSettings(**options)


# ------------------------------------------------------------------- the shard processor


class _Producer:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, topic, key, value, partition, timestamp, headers):
        self.sent.append(topic)
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def flush(self) -> None:
        return None


def _handle(proc, batches: list[tuple[int, list[tuple[str, int, bytes]]]]) -> None:
    """Feed ``(shard offset, [(kind, source offset, raw), ...])`` batches to shard 0."""

    async def ack(event) -> None:
        return None

    async def run() -> None:
        for offset, frames in batches:
            parts = [batch_prefix()]
            for kind, source_offset, raw in frames:
                parts += [encode_frame(KINDS.index(kind), 0, source_offset, -1, raw), raw]
            message = SimpleNamespace(partition=0, offset=offset, topic="app-shards")
            await proc.handle(SimpleNamespace(value=b"".join(parts), message=message), ack)

    asyncio.run(run())


def _shard_processor(table: dict):
    from driftline.detectors import Monitor
    from driftline.streams._metrics import WorkerMetrics
    from driftline.streams._shards import ShardProcessor

    proc = ShardProcessor(
        Monitor(), table, _Producer(), shards=1,
        sources={"prediction": "preds", "feature": "feats", "label": "labels"},
        alerts_topic="alerts", deadletter_topic="dead", checkpoint_events=1,
        checkpoint_seconds=3600, metrics=WorkerMetrics(), window_seconds=60, window_count=5,
    )  # fmt: skip
    proc.on_assigned({0})
    return proc


def test_shard_counts_each_event_and_dead_letter_once_across_redelivery_and_restore():
    def pred(i: int, t: float) -> bytes:
        doc = {"model": "m", "timestamp": t, "features": {"x": 1.0}, "prediction": 0.5}
        return orjson.dumps({**doc, "prediction_id": f"p{i}"})

    first = [("prediction", i, pred(i, T0 + i)) for i in range(4)]
    first.append(("prediction", 4, b'{"model": "m", "timestamp": "soon"}'))
    first.append(("prediction", 5, b"not json at all"))
    second = [("prediction", 6 + i, pred(6 + i, T0 + 60 + i)) for i in range(3)]
    label = {"model": "m", "timestamp": T0 + 70, "label": 1}
    labels = [
        ("label", i, orjson.dumps({**label, "prediction_id": pid}))
        for i, pid in enumerate(["p0", "p1", "nobody"])
    ]
    table: dict = {}
    proc = _shard_processor(table)
    _handle(proc, [(0, first), (1, second), (2, labels)])
    _handle(proc, [(3, first + second)])  # the router re-forwards after a crash
    expected = [
        {"prediction": 4, "invalid": 1, "joined": 0},
        {"prediction": 3, "label": 3, "invalid": 0, "joined": 2},
    ]

    def counts(proc) -> list[dict]:
        out = []
        for w in proc.status()["models"]["m"]["windows"]:
            out.append({**w["events"], "invalid": w["invalid"], "joined": w["labels_joined"]})
        return out

    assert counts(proc) == expected
    unattributed = proc.status()["shards"]["0"]["unattributed_windows"]
    # in the shard's newest window when sent; at least once: the re-forwarded copy counts
    assert [(w["start"], w["invalid"]) for w in unattributed] == [
        (format_timestamp(T0), 1),
        (format_timestamp(T0 + 60), 1),
    ]
    # a new owner of the shard restores the windows with the state, from the table alone
    again = _shard_processor(table)
    _handle(again, [(4, [("prediction", 9, pred(9, T0 + 121)), ("prediction", 10, b"[]")])])
    assert counts(again) == [*expected, {"prediction": 1, "invalid": 0, "joined": 0}]
    # the re-forwarded batch was never acknowledged (no new event, no checkpoint): its new
    # owner would read it again, so its count is not in the table
    unattributed = again.status()["shards"]["0"]["unattributed_windows"]
    assert [(w["start"], w["invalid"]) for w in unattributed] == [
        (format_timestamp(T0), 1),
        (format_timestamp(T0 + 120), 1),
    ]


# ---------------------------------------------------------------- a worker and a broker


def _committed_everything(lay) -> bool:
    """Whether the worker's group committed every message it read (routed, acknowledged)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    async def run() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=lay.bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=lay.bootstrap)
        await admin.start()
        await consumer.start()
        try:
            names = [f"{lay.app_id}-shards", *lay.topics.sources]
            tps = [TopicPartition(t, p) for t in names for p in range(lay.topics.partitions)]
            committed = await admin.list_consumer_group_offsets(lay.app_id, partitions=tps)
            ends = await consumer.end_offsets(tps)
            done = {tp: max(0, meta.offset) for tp, meta in committed.items()}
            return all(done.get(tp, 0) >= ends[tp] for tp in tps)
        finally:
            await consumer.stop()
            await admin.close()

    return asyncio.run(run())


@pytest.mark.integration
@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_status_windows_count_what_was_produced_and_survive_a_kill_9(
    layout, start_worker, kit, tmp_path, store
):
    """Counts per window as produced, and the same windows after ``kill -9`` and a restart.

    With ``--store memory`` the restart rebuilds the table from the changelog alone. This
    Tansu build reports a partition's end offset as the *first* offset of its last record
    batch plus one (offsets 2-4 written as one batch: ListOffsets answers 3), so without the
    checkpoint's fence (``ShardProcessor._fence``) Faust's recovery would stop before the
    tail of the last checkpoint and restore the previous one.
    """
    topics = layout.topics
    options = {"checkpoint_events": 50, "checkpoint_seconds": 1.0, "store": store}
    if store == "rocksdb":
        options["data_dir"] = str(tmp_path)
    models = ["win-a", "win-b"]

    def preds(model: str, n: int, t: float, tag: str) -> list[bytes]:
        return [
            orjson.dumps(
                {"model": model, "timestamp": t + i, "prediction_id": f"{tag}{i}",
                 "features": {"x": float(i)}, "prediction": 0.25}
            )
            for i in range(n)
        ]  # fmt: skip

    def rows(model: str, n: int, t: float) -> list[bytes]:
        doc = {"model": model, "features": {"x": 1.0}}
        return [orjson.dumps({**doc, "timestamp": t + i}) for i in range(n)]

    def labels(model: str, pids: list[str], t: float) -> list[bytes]:
        doc = {"model": model, "timestamp": t, "label": 1}
        return [orjson.dumps({**doc, "prediction_id": pid}) for pid in pids]

    bad = [b'{"model": "win-a", "timestamp": "yesterday", "features": {}, "prediction": 1}'] * 3
    garbage = [b"not json", b"\xff\xfe"]  # name no model: unattributed
    worker = start_worker(layout, **options)
    worker.wait_ready()
    # window 0 (predictions) and window 1 (predictions, feature rows), per model
    first = []
    for m in models:
        first += kit.keyed(topics.predictions, preds(m, 30, T0, f"{m}-0-"))
        first += kit.keyed(topics.predictions, preds(m, 20, T0 + 60, f"{m}-1-"))
        first += kit.keyed(topics.features, rows(m, 10, T0 + 70))
    kit.produce(layout.bootstrap, first)
    worker.wait_events(len(first))
    # labels after their predictions (10 of 12 find one), then the dead letters
    later = []
    for m in models:
        pids = [f"{m}-1-{i}" for i in range(10)] + ["nobody-1", "nobody-2"]
        later += kit.keyed(topics.labels, labels(m, pids, T0 + 90))
    later += [(topics.predictions, b"win-a", raw) for raw in bad]
    later += [(topics.predictions, None, raw) for raw in garbage]
    kit.produce(layout.bootstrap, later)
    worker.wait_events(len(first) + 24)
    worker.wait(
        lambda: worker.metric("driftline_invalid_messages_total") >= len(bad) + len(garbage),
        30,
        "dead letters",
    )

    def settled(w) -> bool:  # everything checkpointed and acknowledged
        shards = orjson.loads(w.get("/status")[1])["shards"].values()
        return all(
            s["uncheckpointed_events"] == 0 and s["unacknowledged_batches"] == 0 for s in shards
        )

    worker.wait(lambda: settled(worker), 30, "checkpoints")

    def windows(w) -> dict[str, list[dict]]:
        status = orjson.loads(w.get("/status")[1])
        out = {m: status["models"][m]["windows"] for m in status["models"]}
        out[""] = [x for s in status["shards"].values() for x in s["unattributed_windows"]]
        return out

    before = windows(worker)
    for m in models:
        got = _by_start(before[m])
        w0, w1 = got[format_timestamp(T0)], got[format_timestamp(T0 + 60)]
        assert w0["events"] == {"prediction": 30}
        assert w1["events"] == {"prediction": 20, "feature": 10, "label": 12}
        assert w1["labels_joined"] == 10
        assert list(got) == sorted(got) and len(got) == 2  # newest last
    assert sum(w["invalid"] for w in before["win-a"]) == len(bad)
    assert sum(w["invalid"] for w in before["win-b"]) == 0
    assert sum(w["invalid"] for w in before[""]) == len(garbage)
    worker.wait(lambda: _committed_everything(layout), 30, "offsets committed")

    worker.stop(signal.SIGKILL)
    second = start_worker(layout, **options)  # same RocksDB directory, as after a reboot
    # window 2: new events (a model's windows are restored with its state, on its first event)
    third = []
    for m in models:
        third += kit.keyed(topics.predictions, preds(m, 5, T0 + 120, f"{m}-2-"))
    third += [(topics.predictions, b"win-a", bad[0]), (topics.predictions, None, garbage[0])]
    kit.produce(layout.bootstrap, third)
    second.wait_events(10)
    second.wait(lambda: second.metric("driftline_invalid_messages_total") >= 2, 30, "dead letters")
    after = windows(second)
    for m in models:
        got = _by_start(after[m])
        assert list(got) == [format_timestamp(T0 + 60 * w) for w in range(3)]
        assert got[format_timestamp(T0)] == _by_start(before[m])[format_timestamp(T0)]
        assert got[format_timestamp(T0 + 60)] == _by_start(before[m])[format_timestamp(T0 + 60)]
        assert got[format_timestamp(T0 + 120)]["events"] == {"prediction": 5}
    assert sum(w["invalid"] for w in after["win-a"]) == len(bad) + 1
    # unattributed dead letters are counted at least once: a batch redelivered by the
    # rebalance that follows the restart may count its garbage again
    assert sum(w["invalid"] for w in after[""]) >= len(garbage) + 1
    assert second.metric("driftline_events_total") == 10  # nothing re-read: state restored


def test_windows_carry_the_accuracy_of_the_labels_judged_in_them():
    """Issue 12: realized metrics per window, from the monitor's cumulative outcome totals."""
    from driftline.detectors import Monitor
    from driftline.schemas import PredictionEvent

    mon = Monitor()
    book = WindowBook(60, 5, mon.labels_joined, mon.outcome_totals)
    preds = [
        PredictionEvent(
            model="m",
            timestamp=T0 + i * 0.1,
            features={"x": 1.0},
            prediction={0: 0.9, 1: 0.1}[i % 2],
            prediction_id=f"p{i}",
        )
        for i in range(256)
    ]
    mon.process(preds)
    book.count(preds, [], None)
    truth = [1 if i % 2 == 0 else (1 if i % 8 == 1 else 0) for i in range(256)]  # some wrong
    for half in (0, 1):  # each half of the labels in its own window (one outcome block each)
        labels = [
            LabelEvent(
                model="m", timestamp=T0 + 60 * half + 30, prediction_id=f"p{i}", label=truth[i]
            )
            for i in range(128 * half, 128 * half + 128)
        ]
        labelled = book.labels_before(labels)
        book.count(labels, mon.process(labels), labelled)
    view = book.view("m")
    assert [w["outcomes"]["count"] for w in view] == [128, 128]
    for half, w in enumerate(view):
        part = range(128 * half, 128 * half + 128)
        wrong = sum(((0.9 if i % 2 == 0 else 0.1) >= 0.5) != bool(truth[i]) for i in part)
        assert w["outcomes"]["accuracy"] == pytest.approx(1 - wrong / 128)
        assert w["labels_joined"] == 128
