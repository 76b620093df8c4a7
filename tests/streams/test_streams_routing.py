"""Unit tests of the router's batching and of the bulk consumer's in-order commit marks."""

from __future__ import annotations

import asyncio
from collections import deque
from types import SimpleNamespace

import orjson
import pytest
from faust.types import TP

from driftline.streams._bulk import BulkConsumer
from driftline.streams._framing import iter_frames
from driftline.streams._metrics import WorkerMetrics
from driftline.streams._router import Router, model_of, shard_of


class _Producer:
    """Records sends; each send's delivery future is resolved by the test."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int | None, bytes, asyncio.Future]] = []

    async def send(self, topic, key, value, partition, timestamp, headers):
        future = asyncio.get_running_loop().create_future()
        self.sent.append((topic, partition, value, future))
        return future


def _record(offset: int, value: bytes | None, timestamp: int | None = 1_000):
    return SimpleNamespace(key=None, value=value, offset=offset, timestamp=timestamp)


def _events(count: int) -> list[bytes]:
    odd = b'{"features": {"model": "decoy"}, "model": "m\\u00e9t"}'  # needs a full parse
    out = []
    for i in range(count):
        if i % 7 == 3:
            out.append(odd)
        elif i % 11 == 5:
            out.append(b"not json")
        else:
            out.append(orjson.dumps({"model": f"model-{i % 5}", "timestamp": i, "x": "y" * i}))
    return out


@pytest.mark.parametrize("max_batch", [300, 512 * 1024])
def test_forward_keeps_bytes_order_and_owner_and_delivers_only_when_all_acked(max_batch):
    async def scenario():
        producer = _Producer()
        shards = 3
        router = Router(
            producer,
            {"p": "prediction", "l": "label"},
            "internal",
            shards,
            "dead",
            max_batch,
            max_batch,
            WorkerMetrics(),
        )
        source = {
            TP("p", 2): [_record(100 + i, raw) for i, raw in enumerate(_events(40))],
            TP("l", 0): [
                _record(7, b'{"model": "model-1"}', None),
                _record(8, None),
            ],
        }
        huge = b'{"model": "model-1", "pad": "%s"}' % (b"z" * max_batch)
        source[TP("p", 2)].append(_record(140, huge))
        delivery = await router.forward(source)
        dead = [value for topic, _, value, _ in producer.sent if topic == "dead"]
        assert dead == [huge]  # too large for a batch: dead-lettered, bytes untouched
        assert not delivery.done()
        got: dict[tuple[str, int], list[tuple[int, int, bytes]]] = {}
        order: dict[tuple[str, int, int], list[int]] = {}
        for topic, shard, value, _ in producer.sent:
            if topic == "dead":
                continue
            for frame in iter_frames(value):
                assert shard_of(model_of(frame.raw), shards) == shard
                got.setdefault((frame.kind, frame.partition), []).append(
                    (frame.offset, frame.timestamp_ms, frame.raw)
                )
                order.setdefault((frame.kind, frame.partition, shard), []).append(frame.offset)
        for tp, records in source.items():
            kind = {"p": "prediction", "l": "label"}[tp.topic]
            want = [
                (r.offset, -1 if r.timestamp is None else r.timestamp, r.value or b"")
                for r in records
                if r.value is not huge
            ]
            assert sorted(got[(kind, tp.partition)]) == want
        # what one shard receives from one source partition is in offset order
        assert len(order) > 2
        assert all(offsets == sorted(offsets) for offsets in order.values())
        for *_, future in producer.sent[:-1]:
            future.set_result(None)
        await asyncio.sleep(0)
        assert not delivery.done()  # one batch still unacknowledged
        producer.sent[-1][3].set_result(None)
        await delivery

    asyncio.run(scenario())


def test_settle_marks_fetches_in_order_and_skips_other_generations():
    loop = asyncio.new_event_loop()
    try:
        futures = [loop.create_future() for _ in range(6)]
        consumer = SimpleNamespace(
            app=SimpleNamespace(consumer_generation_id=2),
            flow_active=True,
            _bulk_done={},
            _in_flight=deque(
                [
                    (1, {"a": 5}, futures[0]),  # forwarded before a rebalance
                    (2, {"a": 9}, futures[1]),
                    (2, {"a": 12, "b": 3}, futures[2]),
                ]
            ),
        )
        settle = BulkConsumer._settle
        futures[2].set_result(None)
        settle(consumer)
        assert consumer._bulk_done == {}  # a later fetch never commits before an earlier one
        futures[0].set_result(None)
        futures[1].set_result(None)
        settle(consumer)
        assert consumer._bulk_done == {"a": 12, "b": 3}
        assert not consumer._in_flight
        futures[3].set_result(None)
        consumer._in_flight.append((2, {"c": 1}, futures[3]))
        consumer.flow_active = False  # a rebalance is under way: the owner may change
        settle(consumer)
        assert "c" not in consumer._bulk_done and not consumer._in_flight
        consumer.flow_active = True
        futures[4].set_exception(RuntimeError("broker said no"))
        futures[5].set_result(None)
        consumer._in_flight.extend([(2, {"b": 4}, futures[4]), (2, {"b": 5}, futures[5])])
        with pytest.raises(RuntimeError):
            settle(consumer)
        assert consumer._bulk_done == {"a": 12, "b": 3}  # nothing at or after the failure
    finally:
        loop.close()


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model":"plain","x":1}',
        b'{"model":"with \\"quote\\"","x":1}',
        b'{"model":"caf\\u00e9"}',
        b'{"model":"caf\xc3\xa9"}',
        b'{"model":"bad \xff utf8"}',
        b'{"model":"","x":1}',
        b'{"model":"unterminated',
        b'{"model":"a","model":"b"}',
        b'{"model": "spaced"}',
    ],
)
def test_model_of_fast_layout_agrees_with_a_full_parse(raw):
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        parsed = {}
    value = parsed.get("model") if isinstance(parsed, dict) else None
    want = value if isinstance(value, str) else ""
    assert model_of(raw) == want  # a repeated key too: the last copy, as every decoder
