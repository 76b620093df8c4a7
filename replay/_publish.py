"""Re-publishing logs into Kafka: load tests, demos and backfills.

Each valid event goes to the contract's topic for its kind, keyed by its ``model`` so that a
model's events stay in order in one partition (the workers' per-model state relies on that
order). The value is the original line, byte for byte: publishing must not normalise what
producers sent, or a replayed incident would not be the incident. Bad lines are reported as
in replay and never published.

Messages are not sent one by one: they are appended to one record batch per partition,
and full batches are handed to the producer (which waits only when its buffer is full, the
back-pressure we want); delivery is checked per batch and after one ``flush`` at the end.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from driftline.replay._badlines import BadLineLog
from driftline.replay._decode import decode_batches
from driftline.replay._inputs import check_inputs, display_name, open_lines
from driftline.replay._progress import Progress
from driftline.replay._summary import PublishSummary
from driftline.replay.exceptions import PublishError

if TYPE_CHECKING:
    from driftline.streams import KafkaSettings, TopicLayout

__all__ = ["Pacer", "PublishOptions", "publish_files"]


@dataclass(frozen=True)
class PublishOptions:
    """How to publish.

    Parameters
    ----------
    speed : float, optional
        Event-time gaps are replayed divided by ``speed`` (2 = twice as fast as it happened);
        ``None`` sends as fast as the broker takes it.
    linger_ms : int
        How long the producer waits to fill a batch; batches are what make publishing fast.
    max_batch_bytes : int
        Upper bound of one producer batch per partition.
    acks : int or str
        Producer acknowledgements: ``1`` (leader) by default, ``"all"`` for backfills that
        must survive a broker failure.
    """

    speed: float | None = None
    linger_ms: int = 20
    max_batch_bytes: int = 1 << 20
    acks: int | str = 1
    extra_producer_args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.speed is not None and not self.speed > 0:
            raise ValueError(f"speed must be > 0 or None (max), got {self.speed!r}")


class Pacer:
    """Turns event times into send times: ``wall0 + (t - t0) / speed``.

    Events earlier than the ones already sent (late labels) go out at once rather than
    holding up the stream; so does everything when ``speed`` is ``None``.

    Parameters
    ----------
    speed : float, optional
        Time-compression factor; ``None`` for no pacing.
    clock : callable
        Monotonic seconds; a parameter so the arithmetic is testable without sleeping.
    """

    def __init__(self, speed: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.speed = speed
        self.clock = clock
        self._t0: float | None = None
        self._w0 = 0.0

    def delay(self, event_time: float) -> float:
        """Seconds to wait before sending an event of ``event_time`` (<= 0: send now)."""
        if self.speed is None:
            return 0.0
        if self._t0 is None:
            self._t0 = event_time
            self._w0 = self.clock()
            return 0.0
        return self._w0 + (event_time - self._t0) / self.speed - self.clock()


class _Outbox:
    """One open record batch per topic partition, shipped when full.

    Filling aiokafka's batch builders directly (its C record builder) and handing over whole
    batches costs a fraction of ``send()`` per message, which goes through metadata checks,
    partitioning and a future for every record. Order within a partition is kept: batches of
    one partition are shipped in the order they were filled. Delivery is checked on the
    futures of whole batches, oldest first, so no callback runs per message.
    """

    def __init__(self, producer: Any) -> None:
        self.producer = producer
        self.open: dict[tuple[str, int], Any] = {}
        self.in_flight: deque[asyncio.Future[Any]] = deque()

    def add(self, topic: str, partition: int, key: bytes, value: bytes) -> bool:
        """Append one message; ``False`` when the partition's batch is full (ship, retry)."""
        batch = self.open.get((topic, partition))
        if batch is None:
            batch = self.open[topic, partition] = self.producer.create_batch()
        return batch.append(timestamp=None, key=key, value=value) is not None

    async def ship(self, topic: str, partition: int) -> None:
        """Hand the partition's open batch to the producer (waits if its buffer is full)."""
        batch = self.open.pop((topic, partition), None)
        if batch is not None and batch.record_count():
            batch.close()
            self.in_flight.append(await self.producer.send_batch(batch, topic, partition=partition))

    async def ship_all(self) -> None:
        for topic, partition in list(self.open):
            await self.ship(topic, partition)

    def reap(self, final: bool) -> None:
        """Raise :class:`PublishError` for the first failed batch among the completed ones."""
        while self.in_flight and (final or self.in_flight[0].done()):
            fut = self.in_flight.popleft()
            error = fut.exception() if not fut.cancelled() else None
            if error is not None:
                raise PublishError(f"messages not delivered: {error}")

    async def wait(self) -> None:
        """Wait for every shipped batch and check its delivery."""
        await asyncio.gather(*self.in_flight, return_exceptions=True)
        self.reap(final=True)


def publish_files(
    inputs: Sequence[str],
    settings: KafkaSettings | str | None = None,
    *,
    topics: TopicLayout | None = None,
    options: PublishOptions | None = None,
    strict: bool = False,
    progress: bool | None = None,
    show_bad: int = 10,
    echo: Callable[[str], None] | None = None,
    stdin: BinaryIO | None = None,
    batch_size: int = 1024,
) -> PublishSummary:
    """Publish the events of JSON Lines logs to the contract's Kafka topics.

    Parameters
    ----------
    inputs : sequence of str
        As for :func:`replay_files`.
    settings : KafkaSettings or str, optional
        The cluster and its credentials (``driftline.streams`` shares one settings type
        between all Kafka clients); a string is taken as the bootstrap servers, ``None``
        reads ``DRIFTLINE_BROKER`` and the other ``DRIFTLINE_*`` variables.
    topics : TopicLayout, optional
        Topic names; the contract's defaults (``driftline.predictions`` etc.) if ``None``.
    options : PublishOptions, optional
        Pacing and producer tuning.
    strict, progress, show_bad, echo, stdin
        As for :func:`replay_files`.
    batch_size : int
        Lines decoded per batch (a reading unit; it does not change what is sent).

    Returns
    -------
    PublishSummary

    Raises
    ------
    InputError, BadLineError
        As for :func:`replay_files` (inputs are checked before connecting).
    PublishError
        The broker cannot be reached or messages were not delivered.
    """
    from driftline.streams import KafkaSettings, TopicLayout

    paths = check_inputs(inputs)
    if not isinstance(settings, KafkaSettings):
        settings = KafkaSettings.from_env(settings)
    topics = topics or TopicLayout()
    options = options or PublishOptions()
    return asyncio.run(
        _publish(
            paths, settings, topics, options, strict, progress, show_bad, echo, stdin, batch_size
        )
    )


async def _publish(
    paths: list[str],
    settings: KafkaSettings,
    topics: TopicLayout,
    options: PublishOptions,
    strict: bool,
    progress: bool | None,
    show_bad: int,
    echo: Callable[[str], None] | None,
    stdin: BinaryIO | None,
    batch_size: int,
) -> PublishSummary:
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError
    from aiokafka.partitioner import DefaultPartitioner

    producer = AIOKafkaProducer(
        **settings.aiokafka_kwargs(),
        acks=options.acks,
        linger_ms=options.linger_ms,
        max_batch_size=options.max_batch_bytes,
        **options.extra_producer_args,
    )
    try:
        await producer.start()
    except KafkaError as exc:
        await producer.stop()
        raise PublishError(f"cannot connect to {settings.bootstrap_servers}: {exc}") from None

    topic_of = {
        "prediction": topics.predictions,
        "feature": topics.features,
        "label": topics.labels,
    }
    sent: Counter[str] = Counter()
    partitioner = DefaultPartitioner()
    routes: dict[tuple[str, str], tuple[bytes, int]] = {}
    outbox = _Outbox(producer)

    async def route(topic: str, model: str) -> tuple[bytes, int]:
        # The partition of a key never changes during a run, so it is computed once per
        # (topic, model) with the Java-compatible default partitioner (the same placement as
        # any other keyed producer) instead of a pure-Python murmur2 per message.
        key = model.encode()
        partitions = sorted(await producer.partitions_for(topic))
        routes[topic, model] = key, partitioner(key, partitions, partitions)
        return routes[topic, model]

    bar = Progress(progress, desc="publish", counter="sent")
    bad = BadLineLog(strict=strict, show=show_bad, echo=echo or bar.write)
    pacer = Pacer(options.speed)
    add = outbox.add
    start = time.perf_counter()
    try:
        for path in paths:
            name = display_name(path)
            with open_lines(path, stdin) as lines:
                for events, raws in decode_batches(lines, name, bad, batch_size):
                    for event, raw in zip(events, raws, strict=True):
                        if options.speed is not None:
                            wait = pacer.delay(event.timestamp)
                            if wait > 0:
                                await outbox.ship_all()  # what is due goes out before the pause
                                bar.update(0, sum(sent.values()))
                                await asyncio.sleep(wait)
                        topic = topic_of[event.kind]
                        target = routes.get((topic, event.model))
                        if target is None:
                            target = await route(topic, event.model)
                        if not add(topic, target[1], target[0], raw.rstrip(b"\r\n")):
                            await outbox.ship(topic, target[1])
                            if not add(topic, target[1], target[0], raw.rstrip(b"\r\n")):
                                raise PublishError(
                                    f"{name}: an event of {len(raw):,} bytes exceeds the "
                                    f"producer batch size ({options.max_batch_bytes:,} bytes)"
                                )
                        sent[topic] += 1
                    outbox.reap(final=False)
                    bar.update(len(events), sum(sent.values()))
        await outbox.ship_all()
        await producer.flush()
        await outbox.wait()
    except KafkaError as exc:
        raise PublishError(f"publishing to {settings.bootstrap_servers} failed: {exc}") from None
    finally:
        bar.close()
        await producer.stop()
    elapsed = time.perf_counter() - start
    bad.finish()
    return PublishSummary(
        inputs=tuple(display_name(p) for p in paths),
        messages_by_topic=dict(sorted(sent.items())),
        invalid_lines=bad.count,
        invalid_by_reason=dict(sorted(bad.by_reason.items())),
        first_invalid=tuple(bad.first),
        elapsed_seconds=elapsed,
    )
