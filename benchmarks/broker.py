"""Start-up and consumer-group timings of the embedded Tansu broker.

    .venv/bin/python benchmarks/broker.py [--quick]

(a) start-to-ready: ``EmbeddedBroker.start()`` from spawning the process to the first Kafka
    round trip (ApiVersions + Metadata through aiokafka), and ``stop()``;
(b) aiokafka consumer-group join: seconds from ``start()`` of a subscribed consumer to its
    first assignment, for several session timeouts, and for a second member of the same
    group that joins right after the first one left (a restarted worker);
(c) librdkafka (confluent-kafka) group join for the same session timeouts; with its default
    (45 s) the join takes over 20 s, which is why the test suite calls it a limitation.
    Skipped with ``--quick``.

Topic: one, 4 partitions, empty. Everything on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

from _machine import describe

from driftline.streams.broker import EmbeddedBroker

TOPIC = "bench.group"


async def aiokafka_join(bootstrap: str, group: str, session_ms: int | None) -> float:
    from aiokafka import AIOKafkaConsumer

    kwargs = (
        {}
        if session_ms is None
        else {
            "session_timeout_ms": session_ms,
            "heartbeat_interval_ms": max(100, session_ms // 4),
        }
    )
    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=bootstrap, group_id=group, **kwargs)
    began = time.perf_counter()
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=50)
        return time.perf_counter() - began
    finally:
        await consumer.stop()


def rdkafka_join(bootstrap: str, session_ms: int | None, budget: float = 60.0) -> float:
    import confluent_kafka

    settings: dict[str, object] = {"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex}
    if session_ms is not None:
        settings |= {"session.timeout.ms": session_ms, "heartbeat.interval.ms": session_ms // 4}
    assigned: list[float] = []
    consumer = confluent_kafka.Consumer(settings)
    began = time.perf_counter()
    consumer.subscribe([TOPIC], on_assign=lambda c, p: assigned.append(time.perf_counter()))
    while not assigned and time.perf_counter() - began < budget:
        consumer.poll(0.05)
    consumer.close()
    return assigned[0] - began if assigned else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer starts, no librdkafka")
    args = parser.parse_args()
    starts = 3 if args.quick else 10
    print(f"machine: {describe()}")

    ready, stop = [], []
    for _ in range(starts):
        broker = EmbeddedBroker().start()
        assert broker.startup_seconds is not None
        ready.append(broker.startup_seconds)
        began = time.perf_counter()
        broker.stop()
        stop.append(time.perf_counter() - began)
    print(
        f"(a) start-to-ready over {starts} starts: median {statistics.median(ready) * 1000:.0f} ms,"
        f" min {min(ready) * 1000:.0f} ms, max {max(ready) * 1000:.0f} ms;"
        f" stop: median {statistics.median(stop) * 1000:.1f} ms"
    )

    sessions = [None, 6000, 2000]
    with EmbeddedBroker() as broker:
        broker.create_topics_sync({TOPIC: 4})
        for session in sessions:
            label = "default (10 s)" if session is None else f"{session / 1000:g} s"
            group = uuid.uuid4().hex
            first = asyncio.run(aiokafka_join(broker.bootstrap_servers, group, session))
            again = asyncio.run(aiokafka_join(broker.bootstrap_servers, group, session))
            print(
                f"(b) aiokafka join, session timeout {label}: first member {first:.2f} s, "
                f"next member right after it left {again:.2f} s"
            )
        if not args.quick:
            for session in sessions:
                label = "default (45 s)" if session is None else f"{session / 1000:g} s"
                seconds = rdkafka_join(broker.bootstrap_servers, session)
                print(f"(c) librdkafka join, session timeout {label}: {seconds:.2f} s")


if __name__ == "__main__":
    main()
