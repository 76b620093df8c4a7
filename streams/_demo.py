"""``driftline demo``: the whole service on one machine in about half a minute.

Starts the embedded broker, creates the topics, starts one worker (a subprocess, exactly what
``driftline worker`` runs), publishes the bundled sample log (two models; from 60% of its
time range on, ``fraud``'s ``distance_km`` and ``channel`` drift) paced by its event times,
and prints alerts as they arrive on the alerts topic. It knows which alerts to expect because
it asks ``driftline.replay`` first, and exits 0 once every expected subject (model, feature,
kind) has alerted, or 1 with the worker's log tail after the timeout. Everything it started
is stopped on the way out, also on Ctrl-C. It prints the worker's live page
(``http://127.0.0.1:PORT/``); with ``keep`` it publishes the rest of the log and leaves the
broker and the worker running until Ctrl-C, so a person can browse the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import orjson

__all__ = ["run_demo"]

_APP_ID = "driftline-demo"
_SPEED = 600.0  # the sample spans ~80 minutes of event time: ~8 s of publishing


def _say(text: str) -> None:
    print(text, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _expected_subjects(sample: str) -> dict[tuple[str, str | None, str], set[str]]:
    """Replay's firing alerts on the sample: subject (model, feature, kind) -> alert ids."""
    from driftline.replay import replay_files

    buf = io.BytesIO()
    replay_files([sample], buf, progress=False)
    out: dict[tuple[str, str | None, str], set[str]] = {}
    for line in buf.getvalue().splitlines():
        a = orjson.loads(line)
        if a["status"] == "firing":
            out.setdefault((a["model"], a.get("feature"), a["kind"]), set()).add(a["alert_id"])
    return out


def _dead_letters(port: int) -> str:
    """The worker's dead-letter counters by reason, from its ``/metrics``."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return "unknown (the worker did not answer)"
    rows = [line for line in text.splitlines() if line.startswith("driftline_invalid_messages")]
    return ", ".join(rows) or "none"


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def run_demo(timeout: float = 110.0, as_json: bool = False, keep: bool = False) -> int:
    """Run the demo; returns the exit status (0 when the expected alerts arrived).

    With ``keep``, once the alerts arrived, everything stays up until Ctrl-C (exit 0 then).
    """
    from driftline.replay import sample_path
    from driftline.streams._settings import KafkaSettings, WorkerSettings
    from driftline.streams._tail import format_alert, iter_alerts
    from driftline.streams._topics import ensure_topics
    from driftline.streams.broker import EmbeddedBroker
    from driftline.streams.exceptions import StreamsError

    began = time.monotonic()
    sample = str(sample_path())
    expected = _expected_subjects(sample)
    worker: subprocess.Popen | None = None
    scratch = tempfile.mkdtemp(prefix="driftline-demo-")
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in the finally below
        prefix="driftline-demo-worker-", suffix=".log", delete=False
    )
    try:
        with EmbeddedBroker() as broker:
            _say(f"broker      embedded Tansu on {broker.bootstrap_servers}")
            kafka = KafkaSettings(broker.bootstrap_servers, client_id="driftline-demo")
            settings = WorkerSettings(app_id=_APP_ID, store="memory")
            asyncio.run(ensure_topics(kafka, settings))
            port = _free_port()
            worker = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "driftline.streams.cli",
                    "worker",
                    "--broker",
                    broker.bootstrap_servers,
                    "--app-id",
                    _APP_ID,
                    "--store",
                    "memory",
                    "--data-dir",  # Faust creates its data directory even for memory tables
                    scratch,
                    "--web-port",
                    str(port),
                    "--no-create-topics",
                    "--session-timeout",
                    "6",
                    "--heartbeat-interval",
                    "0.5",
                    "--checkpoint-seconds",
                    "2",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches the demo only; it stops the worker
            )
            try:
                _say(f"worker      pid {worker.pid}, http://127.0.0.1:{port}/status")
                while not _ready(port):
                    if worker.poll() is not None:
                        raise StreamsError("the worker exited during start-up")
                    if time.monotonic() - began > timeout:
                        raise TimeoutError("the worker did not become ready")
                    time.sleep(0.2)
                _say(f"worker      ready after {time.monotonic() - began:.1f} s")
                _say(f"page        http://127.0.0.1:{port}/  (live: open it in a browser)")
                differs: set[tuple] = set()
                ok = asyncio.run(
                    _publish_and_watch(
                        kafka,
                        settings,
                        sample,
                        expected,
                        began,
                        timeout,
                        as_json,
                        iter_alerts,
                        format_alert,
                        differs,
                        keep,
                    )
                )
                if differs:
                    # Replay and streaming must agree alert for alert on the same ordered
                    # input; a different id means the worker's event sequence of that model
                    # was not the file's (lost, repeated or restarted state). Show why.
                    _say(
                        f"\nNOTE        alerts differ from replay's for {sorted(differs)}; "
                        f"dead letters: {_dead_letters(port)}; worker log tail:"
                    )
                    _say(_tail(log.name))
                if not ok:
                    _say(
                        f"\nno alert for {sorted(expected)} within {timeout:.0f} s; "
                        "worker log tail:"
                    )
                    _say(_tail(log.name))
                    return 1
                _say(
                    f"\ndone in {time.monotonic() - began:.1f} s: every expected alert arrived "
                    "(see `driftline replay` for the same alerts from the log)."
                )
                if keep:
                    _keep(worker, port)
                return 0
            finally:
                _stop(worker)  # before the broker: a worker leaving its group needs it
    except KeyboardInterrupt:
        _say("\ninterrupted; stopping the worker and the broker")
        return 130
    except (StreamsError, TimeoutError, OSError) as exc:
        _say(f"driftline demo: {exc}")
        _say(_tail(log.name))
        return 1
    finally:
        if worker is not None:
            _stop(worker)
        log.close()
        with contextlib.suppress(OSError):
            os.unlink(log.name)
        shutil.rmtree(scratch, ignore_errors=True)


async def _publish_and_watch(
    kafka,
    settings,
    sample,
    expected,
    began,
    timeout,
    as_json,
    iter_alerts,
    format_alert,
    differs,
    keep=False,
) -> bool:
    seen: set[tuple] = set()
    subscribed = asyncio.Event()

    async def watch() -> bool:
        async for alert in iter_alerts(
            kafka, settings.topics.alerts, from_beginning=True, on_ready=subscribed.set
        ):
            if as_json:
                _say(orjson.dumps(alert, option=orjson.OPT_SORT_KEYS).decode())
            else:
                _say("ALERT       " + format_alert(alert))
            if alert.get("status") == "firing":
                subject = (alert["model"], alert.get("feature"), alert["kind"])
                seen.add(subject)
                if alert["alert_id"] not in expected.get(subject, ()):
                    differs.add(subject)
            if expected.keys() <= seen:
                return True
        return False

    watcher = asyncio.ensure_future(watch())
    await asyncio.wait_for(subscribed.wait(), 30)
    _say(
        f"publishing  {os.path.basename(sample)} at {_SPEED:.0f}x its event-time pace "
        "(fraud's distance_km and channel drift from 60% of the log on)"
    )
    # replay's publisher, as its own process so that Ctrl-C or an early finish can stop it
    publisher = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "driftline.streams.cli", "replay", sample, "--publish",
        "--quiet", "--broker", kafka.bootstrap_servers, "--speed", str(_SPEED),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    remaining = max(1.0, timeout - (time.monotonic() - began))
    try:
        done, _ = await asyncio.wait({watcher}, timeout=remaining)
        return bool(done) and watcher.result()
    finally:
        watcher.cancel()
        with contextlib.suppress(BaseException):
            await watcher
        if keep and publisher.returncode is None:  # the page shows the whole log
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(publisher.wait(), 60)
        if publisher.returncode is None:
            publisher.terminate()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(publisher.wait(), 10)


def _keep(worker: subprocess.Popen, port: int) -> None:
    """Leave the stack running until Ctrl-C or SIGTERM (or until the worker exits)."""
    _say(
        f"keeping     the broker and the worker up: browse http://127.0.0.1:{port}/ "
        "(Ctrl-C stops everything)"
    )

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, interrupt)  # stop as cleanly as on Ctrl-C
    try:
        while worker.poll() is None:
            time.sleep(0.5)
        _say(f"the worker exited with status {worker.returncode}")
    except KeyboardInterrupt:
        _say("\nstopping the worker and the broker")
    finally:
        signal.signal(signal.SIGTERM, old)


def _stop(worker: subprocess.Popen) -> None:
    """SIGTERM (Faust commits and leaves the group), SIGKILL if that takes too long."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def _tail(path: str, lines: int = 30) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""
