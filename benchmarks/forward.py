"""Delivery latency of ``driftline alerts forward``: alerts topic to Alertmanager.

    .venv/bin/python benchmarks/forward.py [--rate 50] [--seconds 10] [--fetch-wait-ms 100]

The embedded broker, a real Alertmanager (Debian's ``prometheus-alertmanager``, with
deploy/alertmanager/alertmanager.yml, on loopback) and a :class:`Forwarder` in this process.
Alerts are published one at a time at ``--rate`` per second, as a worker would: each
incident's firing alert, and for every second incident its resolution a little later, keyed
by ``alert_id`` over 4 partitions. The latency of an alert is from its record timestamp
(set by the producer when it is sent) to the moment Alertmanager acknowledged the POST that
carried it (``Forwarder``'s ``on_delivered``); target p99 < 500 ms. At the end Alertmanager's
API must list exactly the incidents still open.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
import uuid
from dataclasses import fields
from pathlib import Path

from _machine import describe

from driftline.streams import (
    Forwarder,
    ForwardSettings,
    KafkaSettings,
    TopicLayout,
    WorkerSettings,
    ensure_topics,
)
from driftline.streams.broker import EmbeddedBroker

CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "alertmanager" / "alertmanager.yml"


def start_alertmanager(workdir: str) -> tuple[subprocess.Popen, str]:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        raise SystemExit("needs prometheus-alertmanager on PATH (make system-deps)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={CONFIG}",
            f"--storage.path={workdir}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("alertmanager did not become ready")


def alert(incident: str, status: str, i: int) -> dict:
    stats = {"fired_alert_id": incident} if status == "resolved" else {"p_value": 1e-9}
    return {
        "schema_version": 1,
        "alert_id": incident if status == "firing" else uuid.uuid4().hex,
        "status": status,
        "kind": "data_drift",
        "severity": "warning",
        "model": "bench",
        "model_version": "v1",
        "segment": None,
        "feature": f"f{i}",
        "detector": "mean",
        "event_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "window": {},
        "statistics": stats,
        "message": f"Mean of 'f{i}' moved.",
    }


async def publish(bootstrap: str, topic: str, rate: float, seconds: float) -> set[str]:
    """Publish at ``rate``/s; returns the incidents left open."""
    import orjson
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    open_incidents: dict[str, int] = {}
    try:
        began, sent = time.perf_counter(), 0
        while sent < rate * seconds:
            if sent % 3 == 2 and open_incidents:  # every third message resolves one
                incident = next(iter(open_incidents))
                body = alert(incident, "resolved", open_incidents.pop(incident))
            else:
                incident = uuid.uuid4().hex
                open_incidents[incident] = sent
                body = alert(incident, "firing", sent)
            await producer.send_and_wait(topic, orjson.dumps(body), key=body["alert_id"].encode())
            sent += 1
            await asyncio.sleep(max(0.0, began + sent / rate - time.perf_counter()))
    finally:
        await producer.stop()
    return set(open_incidents)


def active_incidents(url: str) -> list[str]:
    with urllib.request.urlopen(url + "/api/v2/alerts?active=true", timeout=5) as r:
        return [a["labels"]["incident"] for a in json.load(r)]


async def run(rate: float, seconds: float, fetch_wait_ms: int) -> None:
    broker = EmbeddedBroker()
    broker.start()
    workdir = tempfile.mkdtemp(prefix="driftline-bench-am-")
    am, url = start_alertmanager(workdir)
    try:
        kafka = KafkaSettings(broker.bootstrap_servers)
        topics = TopicLayout(alerts=f"bench.alerts.{uuid.uuid4().hex[:8]}")
        await ensure_topics(kafka, WorkerSettings(topics=topics))
        latencies: list[float] = []
        forwarder = Forwarder(
            kafka,
            ForwardSettings(
                topic=topics.alerts,
                alertmanagers=(url,),
                web_port=0,
                fetch_max_wait_ms=fetch_wait_ms,
            ),
            on_delivered=lambda _alert, seconds: latencies.append(seconds),
        )
        task = asyncio.create_task(forwarder.run())
        while not forwarder.ready:
            await asyncio.sleep(0.05)
        still_open = await publish(broker.bootstrap_servers, topics.alerts, rate, seconds)
        sent = int(rate * seconds)
        deadline = time.monotonic() + 30
        while len(latencies) < sent and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        active = active_incidents(url)
    finally:
        am.terminate()
        am.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
        broker.stop()
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))]
    print(describe())
    print(
        f"alerts published: {sent} at {rate:g}/s over {seconds:g} s; delivered: {len(ms)}; "
        f"consumer fetch wait {fetch_wait_ms} ms"
    )
    print(
        f"delivery latency alerts topic -> Alertmanager ack: p50 {statistics.median(ms):.1f} ms, "
        f"p99 {p99:.1f} ms, max {ms[-1]:.1f} ms (target p99 < 500 ms: "
        f"{'met' if p99 < 500 else 'NOT met'})"
    )
    exact = sorted(active) == sorted(still_open)
    print(
        f"Alertmanager active alerts: {len(active)}, open incidents: {len(still_open)}, "
        f"each once: {exact and len(active) == len(set(active))}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="alerts per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--fetch-wait-ms",
        type=int,
        default=next(f.default for f in fields(ForwardSettings) if f.name == "fetch_max_wait_ms"),
        help="the forwarder's consumer fetch_max_wait_ms (aiokafka's own default: 500)",
    )
    args = parser.parse_args()
    asyncio.run(run(args.rate, args.seconds, args.fetch_wait_ms))


if __name__ == "__main__":
    main()
