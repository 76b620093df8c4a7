"""Soak: one worker under mixed hostile traffic, RSS and /health latency sampled over time.

Usage::

    .venv/bin/python benchmarks/soak.py                 # 10 minutes
    .venv/bin/python benchmarks/soak.py --minutes 1     # a short run

It starts the embedded broker and one ``driftline worker`` (RocksDB store, default limits),
then, in rounds until the time is up, publishes a mix of what issue 18 found could knock a
worker over: oversized messages (300 kB to 8 MB), a flood of new feature names (events of one
model with 2,000 new names each), many model names (1,000 new ones per round), labels read
before their predictions, garbage (not JSON, duplicate keys, contract violations), and normal
prediction traffic. Every second it prints the worker's resident memory (from /proc) and how
long ``/health`` took to answer. At the end: the worker must still run, and every message
must be accounted for (processed events + dead letters + refused = published).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import orjson
from _machine import describe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _get(port: int, path: str, timeout: float = 10.0) -> tuple[float, bytes | None]:
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            body = r.read()
    except OSError:
        body = None
    return time.perf_counter() - start, body


def _metric(port: int, name: str) -> float:
    _, body = _get(port, "/metrics")
    total = 0.0
    for line in (body or b"").decode().splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _round(r: int, rnd: random.Random) -> list[tuple[str, bytes]]:
    """One round of traffic: ``(kind, value)`` pairs, kind in prediction/label."""
    t0 = 1.7e9 + r * 1000
    out: list[tuple[str, bytes]] = []
    for i in range(2000):  # normal traffic, with ids for labels
        feats = {f"f{k}": rnd.gauss(0, 1) for k in range(10)}
        ev = {"model": "steady", "timestamp": t0 + i * 0.1, "features": feats}
        out.append(("prediction", orjson.dumps({**ev, "prediction": rnd.random(),
                                                 "prediction_id": f"r{r}-{i}"})))  # fmt: skip
    labels = [
        ("label", orjson.dumps({"model": "steady", "timestamp": t0 + 300 + i * 0.1,
                                "prediction_id": f"r{r}-{i}", "label": rnd.random() < 0.5}))
        for i in range(0, 2000, 3)
    ]  # fmt: skip
    out = labels + out  # labels first: the backlog order
    for i in range(100):  # a flood of new feature names
        feats = {f"new{r}_{i}_{k}": 1.0 for k in range(2000)}
        out.append(("prediction", orjson.dumps({"model": "flood", "timestamp": t0 + i,
                                                 "features": feats, "prediction": 1})))  # fmt: skip
    for i in range(1000):  # many model names
        ev = {"model": f"name-{r}-{i}", "timestamp": t0, "features": {"x": 1.0}}
        out.append(("prediction", orjson.dumps({**ev, "prediction": 1})))
    for size in (300_000, 900_000, 8_000_000):  # oversized
        out.append(("prediction", b'{"model": "big", "pad": "' + b"x" * size + b'"}'))
    out += [
        ("prediction", b"not json"),
        ("prediction", b'{"model": "steady", "model": "other", "timestamp": 1, "features": {}}'),
        ("label", b'{"model": "steady", "timestamp": "yesterday"}'),
    ]
    return out


async def _publish(bootstrap: str, topics: dict[str, str], batch: list[tuple[str, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, max_request_size=64 << 20, linger_ms=20
    )
    await producer.start()
    try:
        futures = [await producer.send(topics[kind], value, key=b"k") for kind, value in batch]
        for f in futures:
            await f
    finally:
        await producer.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument(
        "--round-seconds", type=float, default=10.0, help="one round of traffic per this long"
    )
    args = parser.parse_args()
    print(describe())
    from driftline.streams import KafkaSettings, TopicLayout, WorkerSettings, ensure_topics_sync
    from driftline.streams.broker import EmbeddedBroker

    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as scratch:
        bootstrap = broker.bootstrap_servers
        topics = TopicLayout(partitions=2)
        ensure_topics_sync(KafkaSettings(bootstrap), WorkerSettings(topics=topics))
        port = _free_port()
        log = open(Path(scratch) / "worker.log", "wb")  # noqa: SIM115 - closed below
        worker = subprocess.Popen(
            [sys.executable, "-m", "driftline.streams.cli", "worker", "--broker", bootstrap,
             "--partitions", "2", "--data-dir", scratch, "--web-port", str(port),
             "--session-timeout", "6", "--heartbeat-interval", "0.5", "--no-create-topics"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        samples: list[tuple[float, float, float, bool]] = []
        stop = threading.Event()
        t_start = time.monotonic()

        def sample() -> None:
            while not stop.is_set() and worker.poll() is None:
                took, body = _get(port, "/health")
                samples.append(
                    (time.monotonic() - t_start, _rss_mib(worker.pid), took, body is not None)
                )
                answer = f"{took:.3f} s" if body else "no answer"
                print(f"{samples[-1][0]:7.1f} s  RSS {samples[-1][1]:7.1f} MiB  /health {answer}")
                stop.wait(max(0.0, 1.0 - took))

        threading.Thread(target=sample, daemon=True).start()
        sent = 0
        rnd = random.Random(18)
        kinds = {"prediction": topics.predictions, "label": topics.labels}
        r = 0
        try:
            while time.monotonic() - t_start < args.minutes * 60 and worker.poll() is None:
                began = time.monotonic()
                batch = _round(r, rnd)
                asyncio.run(_publish(bootstrap, kinds, batch))
                sent += len(batch)
                r += 1
                time.sleep(max(0.0, args.round_seconds - (time.monotonic() - began)))
            deadline = time.monotonic() + 120
            accounted = 0.0
            while time.monotonic() < deadline and worker.poll() is None:
                accounted = _metric(port, "driftline_events_total") + _metric(
                    port, "driftline_invalid_messages_total"
                )
                if accounted >= sent:
                    break
                time.sleep(1)
        finally:
            stop.set()
            alive = worker.poll() is None
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
            log.close()
        rss = [s[1] for s in samples]
        health = [s[2] for s in samples]
        ready = next((i for i, s in enumerate(samples) if s[3]), len(samples))
        print(f"rounds {r}, messages published {sent:,}, accounted for {accounted:,.0f}")
        print(f"worker alive at the end: {alive}; exit status after SIGTERM {worker.returncode}")
        if rss:
            print(f"RSS MiB: max {max(rss):.0f}, last {rss[-1]:.0f}")
            worst = max(health[ready:], default=0.0)
            print(f"/health once it first answered: slowest {worst:.3f} s (10 s = no answer)")
        if not alive or accounted < sent:
            print((Path(scratch) / "worker.log").read_text(errors="replace")[-3000:])
            return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
