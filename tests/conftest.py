"""Shared fixtures for the whole suite.

``kafka_broker`` is the one real Kafka-protocol broker (Tansu, in memory) that every
integration test talks to. It is session-scoped because start-up is cheap but not free, and
because state between tests is kept apart by topic names (``unique_topic``), not by brokers.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, settings

from driftline.streams.broker import EmbeddedBroker

# Property tests judge results, never speed: these machines are shared and noisy, and
# hypothesis's default deadline (200 ms per example) and too-slow health check turn a slow
# moment of the machine into a failure. Every property test runs under this profile.
settings.register_profile("driftline", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("driftline")


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[EmbeddedBroker]:
    """A started :class:`EmbeddedBroker` on a free loopback port, shared by the session.

    It is stopped when the session ends, also after failures and Ctrl-C; if pytest itself is
    killed, the broker's parent-death signal and atexit hook stop it.
    """
    broker = EmbeddedBroker()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def unique_topic(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Make topic names no other test uses: ``unique_topic("events")`` -> ``t-<test>-events-<hex>``.

    The broker is shared by the whole session and keeps every topic, so tests must not meet
    on a topic name. Names stay readable (they carry the test name) for broker debugging.
    """
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:60]

    def make(suffix: str = "topic") -> str:
        return f"t-{stem}-{suffix}-{uuid.uuid4().hex[:8]}"

    return make


# ------------------------------------------------- programs the tests drive for real


@pytest.fixture(scope="session")
def program() -> Callable[[str], str]:
    """``program("promtool")`` -> its path. Missing: a failure under ``CI=true`` (the README's
    test command installs it), a skip with the reason elsewhere."""
    import os
    import shutil

    def find(name: str) -> str:
        path = shutil.which(name)
        if path is None:
            reason = (
                f"{name} is not on PATH: `make system-deps` installs it (Debian packages "
                "prometheus, prometheus-alertmanager)"
            )
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(reason)
            pytest.skip(reason)
        return path

    return find


class Alertmanager:
    """A real ``prometheus-alertmanager`` on loopback, no cluster, storage in a temp dir.

    :meth:`stop` and :meth:`start` again keep the port and the storage (silences, the
    notification log), as a restarted Alertmanager does; alerts live in memory only.
    """

    def __init__(
        self, binary: str, config: str, workdir: str, web_config: str | None = None, tls=None
    ) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.binary, self.config, self.workdir = binary, config, workdir
        self.web_config, self.tls = web_config, tls  # tls: the client SSLContext to use
        scheme = "https" if web_config else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.proc = None

    def _open(self, path: str, timeout: float):
        import urllib.request

        return urllib.request.urlopen(self.url + path, timeout=timeout, context=self.tls)

    def start(self, timeout: float = 20.0) -> None:
        import subprocess
        import time

        log = open(f"{self.workdir}/alertmanager.log", "ab")  # noqa: SIM115 - owned by Popen
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.config}",
                f"--storage.path={self.workdir}/data",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                *([f"--web.config.file={self.web_config}"] if self.web_config else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"alertmanager exited:\n{self.log()}"
            try:
                with self._open("/-/ready", 2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"alertmanager not ready in {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except Exception:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        from pathlib import Path

        return Path(f"{self.workdir}/alertmanager.log").read_text(errors="replace")[-3000:]

    def received(self, status: str) -> float:
        """Alertmanager's own count of alerts it received with ``status`` since it started."""
        from prometheus_client.parser import text_string_to_metric_families

        with self._open("/metrics", 5) as r:
            text = r.read().decode()
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "alertmanager_alerts_received_total" and s.labels["status"] == status
        )

    def alerts(self) -> list[dict]:
        """Active alerts (``GET /api/v2/alerts``: resolved ones are not listed)."""
        import json

        with self._open("/api/v2/alerts?active=true", 5) as r:
            return json.load(r)


@pytest.fixture(scope="module")
def alertmanager(program, tmp_path_factory) -> Iterator[Callable[..., Alertmanager]]:
    """Factory: ``alertmanager(config_path=None, web_config=None, tls=None)`` starts one
    (``web_config``: Alertmanager's --web.config.file, for TLS; ``tls``: the SSLContext the
    test reads its API with); all are stopped at the end of the module (so module-scoped
    fixtures can use it too).

    The default configuration is the deployment's (deploy/alertmanager/alertmanager.yml), so
    every test that starts one also checks that the real program accepts that file.
    """
    from pathlib import Path

    binary = program("prometheus-alertmanager")
    default = Path(__file__).resolve().parents[1] / "deploy" / "alertmanager" / "alertmanager.yml"
    started: list[Alertmanager] = []

    def start(config: str | None = None, **tls) -> Alertmanager:
        workdir = tmp_path_factory.mktemp("alertmanager")
        am = Alertmanager(binary, str(config or default), str(workdir), **tls)
        started.append(am)
        am.start()
        return am

    yield start
    for am in started:
        am.stop()
