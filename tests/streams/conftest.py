"""Helpers for the streaming tests: worker subprocesses, producing, reading topics, replay.

Workers run as real ``driftline worker`` subprocesses (so ``kill -9`` is a real crash) with
short group timers, the memory store and their web port, which the tests read for readiness
and counters.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from driftline.streams import KafkaSettings, TopicLayout, WorkerSettings, ensure_topics_sync


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Layout:
    bootstrap: str
    app_id: str
    topics: TopicLayout

    @property
    def kafka(self) -> KafkaSettings:
        return KafkaSettings(self.bootstrap)


@pytest.fixture
def layout(kafka_broker, unique_topic) -> Layout:
    """Fresh topic names and application id, with the topics created."""
    topics = TopicLayout(
        predictions=unique_topic("pred"),
        features=unique_topic("feat"),
        labels=unique_topic("lab"),
        alerts=unique_topic("alerts"),
        deadletter=unique_topic("dead"),
        partitions=4,
    )
    lay = Layout(kafka_broker.bootstrap_servers, unique_topic("app"), topics)
    ensure_topics_sync(lay.kafka, WorkerSettings(app_id=lay.app_id, topics=topics))
    return lay


class WorkerProc:
    """One ``driftline worker`` subprocess."""

    def __init__(
        self,
        lay: Layout,
        *,
        checkpoint_events: int = 2000,
        checkpoint_seconds: float = 60.0,
        store: str = "memory",
        data_dir: str | None = None,
        baseline: str | None = None,
    ) -> None:
        self.port = free_port()
        self.scratch = tempfile.mkdtemp(prefix="driftline-test-worker-")
        t = lay.topics
        cmd = [
            sys.executable,
            "-m",
            "driftline.streams.cli",
            "worker",
            "--broker",
            lay.bootstrap,
            "--app-id",
            lay.app_id,
            "--store",
            store,
            "--data-dir",
            data_dir or self.scratch,
            "--web-port",
            str(self.port),
            "--session-timeout",
            "6",
            "--heartbeat-interval",
            "0.5",
            "--checkpoint-events",
            str(checkpoint_events),
            "--checkpoint-seconds",
            str(checkpoint_seconds),
            "--no-create-topics",
            "--topic-predictions",
            t.predictions,
            "--topic-features",
            t.features,
            "--topic-labels",
            t.labels,
            "--topic-alerts",
            t.alerts,
            "--topic-deadletter",
            t.deadletter,
            "--partitions",
            str(t.partitions),
            "--loglevel",
            "info",
        ]
        if baseline is not None:
            cmd += ["--baseline", baseline]
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in cleanup()
            prefix="driftline-worker-", suffix=".log", delete=False
        )
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    def tail(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def get(self, path: str) -> tuple[int, bytes] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=3) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return None

    def metric(self, name: str) -> float:
        got = self.get("/metrics")
        if got is None:
            return 0.0
        total = 0.0
        for line in got[1].decode().splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def shards(self) -> list[int]:
        got = self.get("/ready")
        if got is None or got[0] != 200:
            return []
        return orjson.loads(got[1])["shards"]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"worker exited while waiting for {what}:\n{self.tail()}")
            if cond():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}:\n{self.tail()}")

    def wait_ready(self, timeout: float = 60.0) -> None:
        self.wait(lambda: bool(self.shards()), timeout, "readiness")

    def wait_events(self, n: int, timeout: float = 60.0) -> None:
        self.wait(lambda: self.metric("driftline_events_total") >= n, timeout, f"{n} events")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self) -> None:
        self.stop(signal.SIGKILL)
        self.log.close()
        os.unlink(self.log.name)
        shutil.rmtree(self.scratch, ignore_errors=True)


@pytest.fixture
def start_worker() -> Iterator[Callable[..., WorkerProc]]:
    """Factory of worker subprocesses; all are killed at the end of the test."""
    started: list[WorkerProc] = []

    def start(lay: Layout, **kwargs) -> WorkerProc:
        w = WorkerProc(lay, **kwargs)
        started.append(w)
        return w

    yield start
    for w in started:
        w.cleanup()


class ForwarderProc(WorkerProc):
    """One ``driftline alerts forward`` subprocess (the worker's helpers: web, metrics, stop)."""

    def __init__(
        self,
        lay: Layout,
        *targets: str,
        group: str,
        resend: float = 1.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.scratch = tempfile.mkdtemp(prefix="driftline-test-forward-")
        cmd = [sys.executable, "-m", "driftline.streams.cli", "alerts", "forward"]
        cmd += ["--broker", lay.bootstrap, "--topic", lay.topics.alerts, "--group", group]
        cmd += ["--web-port", str(self.port), "--resend-interval", str(resend)]
        cmd += ["--loglevel", "info", *targets]
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in cleanup()
            prefix="driftline-forward-", suffix=".log", delete=False
        )
        self.proc = subprocess.Popen(
            cmd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        self.wait(lambda: (self.get("/ready") or (0,))[0] == 200, timeout, "readiness")


@pytest.fixture
def start_forwarder() -> Iterator[Callable[..., ForwarderProc]]:
    """Factory of forwarder subprocesses; all are killed at the end of the test."""
    started: list[ForwarderProc] = []

    def start(lay: Layout, *targets: str, **kwargs) -> ForwarderProc:
        f = ForwarderProc(lay, *targets, **kwargs)
        started.append(f)
        return f

    yield start
    for f in started:
        f.cleanup()


def produce(bootstrap: str, messages: list[tuple[str, bytes | None, bytes | None]]) -> None:
    """Send ``(topic, key, value)`` messages and wait for delivery."""
    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, linger_ms=5, max_request_size=2 << 20
        )
        await producer.start()
        try:
            futures = [await producer.send(t, v, key=k) for t, k, v in messages]
            await producer.flush()
            for f in futures:
                await f
        finally:
            await producer.stop()

    asyncio.run(run())


def read_topic(bootstrap: str, topic: str, until: Callable[[list], bool], timeout: float) -> list:
    """All records of ``topic`` from the beginning, polling until ``until(records)``."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run() -> list:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=4 << 20
        )
        await consumer.start()
        try:
            parts = consumer.partitions_for_topic(topic)
            if not parts:
                await consumer.force_metadata_update()
                parts = consumer.partitions_for_topic(topic) or {0}
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            records: list = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not until(records):
                batch = await consumer.getmany(timeout_ms=300)
                for recs in batch.values():
                    records.extend(recs)
            return records
        finally:
            await consumer.stop()

    return asyncio.run(run())


def read_alerts(lay: Layout, until: Callable[[list[dict]], bool], timeout: float) -> list[dict]:
    """Alerts on the alerts topic (with any duplicates), as dicts."""

    def done(records: list) -> bool:
        return until([orjson.loads(r.value) for r in records])

    return [
        orjson.loads(r.value) for r in read_topic(lay.bootstrap, lay.topics.alerts, done, timeout)
    ]


def replay_alerts(lines: list[bytes], baseline: str | None = None) -> list[dict]:
    """What ``driftline.replay`` emits for the same events (the reference)."""
    from driftline.replay import load_baseline, replay_files

    profile = load_baseline(baseline) if baseline else None
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as f:
        f.write(b"\n".join(lines) + b"\n")
    try:
        buf = io.BytesIO()
        replay_files([f.name], buf, baseline=profile, progress=False)
    finally:
        os.unlink(f.name)
    return [orjson.loads(line) for line in buf.getvalue().splitlines()]


def drifting_events(models: list[str], n: int, seed: int = 3) -> list[bytes]:
    """``n`` events per model: ``x`` shifts by 2 sd at 50%, ``y`` at 80%; ``z`` is noise."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        for m in models:
            x = rnd.gauss(0, 1) + (2.0 if i >= n * 0.5 else 0.0)
            y = rnd.gauss(0, 1) + (2.0 if i >= n * 0.8 else 0.0)
            out.append(
                orjson.dumps(
                    {
                        "model": m,
                        "timestamp": 1.7e9 + i * 0.5,
                        "features": {"x": x, "y": y, "z": rnd.gauss(0, 1)},
                        "prediction": rnd.random(),
                    }
                )
            )
    return out


def keyed(topic: str, lines: list[bytes]) -> list[tuple[str, bytes, bytes]]:
    """Messages keyed by model, as the documented producer contract recommends."""
    return [(topic, orjson.loads(line)["model"].encode(), line) for line in lines]


@pytest.fixture
def kit():
    """The helpers above, for test modules (conftest modules cannot be imported by name)."""
    import types

    return types.SimpleNamespace(
        produce=produce,
        read_topic=read_topic,
        read_alerts=read_alerts,
        replay_alerts=replay_alerts,
        drifting_events=drifting_events,
        keyed=keyed,
    )
