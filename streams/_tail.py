"""Subscribe to the alerts topic, deduplicate by ``alert_id``, print readably.

Workers process at least once: after a crash the stretch since the last checkpoint is
processed again and its alerts are published again, with the same ``alert_id``. Every
subscriber must therefore drop ids it has seen; this is the reference implementation (a
bounded set of recent ids: a re-emitted alert follows its original within one checkpoint
interval, so a window of 100 000 ids is ample).
"""

from __future__ import annotations

import asyncio
import sys
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from driftline.streams._settings import KafkaSettings

__all__ = [
    "AlertDeduplicator",
    "decode_alert",
    "format_alert",
    "iter_alerts",
    "tail_alerts",
    "topic_partitions",
]


class AlertDeduplicator:
    """Remembers the last ``capacity`` alert ids; :meth:`first_time` is true once per id."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity
        self.duplicates = 0

    def first_time(self, alert_id: str) -> bool:
        """Record ``alert_id``; ``False`` if it was seen before (a redelivery)."""
        if alert_id in self._seen:
            self._seen.move_to_end(alert_id)
            self.duplicates += 1
            return False
        self._seen[alert_id] = None
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        return True


def format_alert(alert: dict[str, Any]) -> str:
    """One human-readable line (plus the explanation) for a decoded alert."""
    subject = [f"model={alert.get('model')}"]
    if alert.get("model_version"):
        subject.append(f"version={alert['model_version']}")
    segment = alert.get("segment")
    if segment:
        subject.append("segment=" + ",".join(f"{k}={v}" for k, v in sorted(segment.items())))
    if alert.get("feature"):
        subject.append(f"feature={alert['feature']}")
    head = (
        f"{alert.get('event_time', '?')}  {str(alert.get('severity', '?')).upper():8} "
        f"{alert.get('status', '?'):8} {alert.get('kind', '?'):16} {' '.join(subject)}"
    )
    tail = f"[{alert.get('detector')}, id {alert.get('alert_id')}]"
    return f"{head}\n    {alert.get('message', '')}  {tail}"


def decode_alert(record: Any) -> dict[str, Any] | None:
    """The alert of a Kafka record, or ``None`` (with a note on standard error) if the
    record is not a JSON object with an ``alert_id``."""
    try:
        alert = orjson.loads(record.value)
        if isinstance(alert, dict) and isinstance(alert.get("alert_id"), str):
            return alert
    except (orjson.JSONDecodeError, TypeError):
        pass
    print(f"skipping an undecodable alert at offset {record.offset}", file=sys.stderr)
    return None


async def topic_partitions(consumer: Any, topic: str) -> list[Any]:
    """Every partition of ``topic`` (waits up to 10 s for metadata); ``ValueError`` if none."""
    from aiokafka import TopicPartition

    partitions = None
    for _ in range(50):
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            break
        await consumer.force_metadata_update()
        await asyncio.sleep(0.2)
    if not partitions:
        raise ValueError(f"topic {topic!r} does not exist")
    return [TopicPartition(topic, p) for p in sorted(partitions)]


async def iter_alerts(
    kafka: KafkaSettings,
    topic: str,
    *,
    from_beginning: bool = False,
    idle_timeout: float | None = None,
    dedup: AlertDeduplicator | None = None,
    on_ready: Callable[[], None] | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Yield each alert (as a dict) once, in arrival order.

    No consumer group: ``tail`` is an observer and must not take partitions away from other
    subscribers or leave committed offsets behind. Undecodable records are skipped with a
    note on standard error.
    """
    from aiokafka import AIOKafkaConsumer

    dedup = dedup or AlertDeduplicator()
    consumer = AIOKafkaConsumer(**kafka.aiokafka_kwargs(), enable_auto_commit=False, group_id=None)
    try:
        await consumer.start()
    except BaseException:
        await consumer.stop()
        raise
    try:
        tps = await topic_partitions(consumer, topic)
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        if on_ready is not None:
            on_ready()
        idle = 0.0
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            if not batch:
                idle += 0.5
                if idle_timeout is not None and idle >= idle_timeout:
                    return
                continue
            idle = 0.0
            for records in batch.values():
                for record in records:
                    alert = decode_alert(record)
                    if alert is not None and dedup.first_time(alert["alert_id"]):
                        yield alert
    finally:
        await consumer.stop()


def tail_alerts(
    kafka: KafkaSettings,
    topic: str,
    *,
    as_json: bool = False,
    from_beginning: bool = False,
    max_alerts: int | None = None,
    idle_timeout: float | None = None,
) -> int:
    """``driftline alerts tail``: print alerts until interrupted; returns the count printed."""

    async def run() -> int:
        count = 0
        async for alert in iter_alerts(
            kafka, topic, from_beginning=from_beginning, idle_timeout=idle_timeout
        ):
            if as_json:
                sys.stdout.write(orjson.dumps(alert, option=orjson.OPT_SORT_KEYS).decode() + "\n")
            else:
                sys.stdout.write(format_alert(alert) + "\n")
            sys.stdout.flush()
            count += 1
            if max_alerts is not None and count >= max_alerts:
                break
        return count

    try:
        return asyncio.run(run())
    except KeyboardInterrupt:
        return 0
