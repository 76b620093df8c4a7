"""Connection, topic and worker settings, shared by every Kafka client driftline runs.

The worker (Faust), ``driftline alerts tail`` (aiokafka), the demo producer and replay's
``--publish`` all talk to the same cluster with the same credentials. One frozen
:class:`KafkaSettings` builds the connection arguments for both client libraries, so that TLS
and SASL are configured once and cannot drift apart between the commands.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from typing import Any

from driftline.streams.exceptions import StreamsConfigError

__all__ = ["DEFAULT_BROKER", "KafkaSettings", "TopicLayout", "WorkerSettings"]

#: Used when neither ``--broker`` nor ``DRIFTLINE_BROKER`` is given.
DEFAULT_BROKER = "127.0.0.1:9092"

_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Where the cluster is and how to authenticate to it.

    Parameters
    ----------
    bootstrap_servers
        Comma-separated ``host:port`` list; a ``kafka://`` prefix is accepted and removed.
    security_protocol
        ``PLAINTEXT`` (default), ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL``.
    ssl_cafile, ssl_certfile, ssl_keyfile
        PEM files for TLS: the CA that signed the brokers' certificates, and an optional
        client certificate and key for mutual TLS.
    sasl_mechanism
        ``PLAIN``, ``SCRAM-SHA-256`` or ``SCRAM-SHA-512``, with ``sasl_username`` and
        ``sasl_password``.
    client_id
        Kafka client id, visible in broker logs and quotas.

    Notes
    -----
    The password is kept out of ``repr`` so that it never lands in a log line.
    """

    bootstrap_servers: str = DEFAULT_BROKER
    security_protocol: str = "PLAINTEXT"
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    client_id: str = "driftline"

    def __post_init__(self) -> None:
        servers = self.bootstrap_servers.strip()
        if servers.startswith("kafka://"):
            servers = servers[len("kafka://") :]
        if not servers:
            raise StreamsConfigError("bootstrap servers: empty")
        object.__setattr__(self, "bootstrap_servers", servers)
        protocol = self.security_protocol.upper()
        if protocol not in _PROTOCOLS:
            raise StreamsConfigError(
                f"security protocol: expected one of {', '.join(_PROTOCOLS)}, got {protocol!r}"
            )
        object.__setattr__(self, "security_protocol", protocol)
        if protocol.startswith("SASL"):
            mechanism = (self.sasl_mechanism or "PLAIN").upper()
            if mechanism not in _SASL_MECHANISMS:
                raise StreamsConfigError(
                    f"SASL mechanism: expected one of {', '.join(_SASL_MECHANISMS)}, "
                    f"got {mechanism!r}"
                )
            if not self.sasl_username or self.sasl_password is None:
                raise StreamsConfigError(f"{protocol} needs a SASL username and password")
            object.__setattr__(self, "sasl_mechanism", mechanism)

    @classmethod
    def from_env(cls, broker: str | None = None, **overrides: Any) -> KafkaSettings:
        """Settings from ``--broker`` (wins) or the ``DRIFTLINE_*`` environment variables.

        Reading the environment here, not in each command, is what makes every client see the
        same cluster: ``DRIFTLINE_BROKER``, ``DRIFTLINE_SECURITY_PROTOCOL``,
        ``DRIFTLINE_SSL_CAFILE``, ``DRIFTLINE_SSL_CERTFILE``, ``DRIFTLINE_SSL_KEYFILE``,
        ``DRIFTLINE_SASL_MECHANISM``, ``DRIFTLINE_SASL_USERNAME``, ``DRIFTLINE_SASL_PASSWORD``.
        Keyword overrides that are not ``None`` win over the environment.
        """
        env = os.environ
        values: dict[str, Any] = {
            "bootstrap_servers": broker or env.get("DRIFTLINE_BROKER") or DEFAULT_BROKER,
            "security_protocol": env.get("DRIFTLINE_SECURITY_PROTOCOL", "PLAINTEXT"),
            "ssl_cafile": env.get("DRIFTLINE_SSL_CAFILE"),
            "ssl_certfile": env.get("DRIFTLINE_SSL_CERTFILE"),
            "ssl_keyfile": env.get("DRIFTLINE_SSL_KEYFILE"),
            "sasl_mechanism": env.get("DRIFTLINE_SASL_MECHANISM"),
            "sasl_username": env.get("DRIFTLINE_SASL_USERNAME"),
            "sasl_password": env.get("DRIFTLINE_SASL_PASSWORD"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def url(self) -> str:
        """The ``kafka://host:port;host:port`` form Faust's ``broker`` setting takes."""
        return ";".join(f"kafka://{s.strip()}" for s in self.bootstrap_servers.split(","))

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client TLS context, or ``None`` when the protocol does not use TLS."""
        if not self.security_protocol.endswith("SSL"):
            return None
        from aiokafka.helpers import create_ssl_context

        return create_ssl_context(
            cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile
        )

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``AIOKafkaProducer``, ``AIOKafkaConsumer`` and the admin client."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
            "client_id": self.client_id,
        }
        context = self.ssl_context()
        if context is not None:
            kwargs["ssl_context"] = context
        if self.security_protocol.startswith("SASL"):
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password
        return kwargs

    def faust_credentials(self) -> Any:
        """The object for Faust's ``broker_credentials`` setting (``None`` for plaintext)."""
        import faust

        context = self.ssl_context()
        if self.security_protocol.startswith("SASL"):
            return faust.SASLCredentials(
                username=self.sasl_username,
                password=self.sasl_password,
                mechanism=self.sasl_mechanism,
                ssl_context=context,
            )
        if context is not None:
            return faust.SSLCredentials(context)
        return None


@dataclass(frozen=True, slots=True)
class TopicLayout:
    """Topic names and the partition counts driftline creates them with.

    ``partitions`` is the number of state shards: the internal repartition topic and the
    state table both have that many partitions, so it caps how many workers share the work.
    Source topics that already exist keep their own counts: they are read in bulk and
    repartitioned by model, so their count does not matter for correctness. ``replication``
    is the replication factor of the topics driftline creates (3 on a production cluster).
    """

    predictions: str = "driftline.predictions"
    features: str = "driftline.features"
    labels: str = "driftline.labels"
    alerts: str = "driftline.alerts"
    deadletter: str = "driftline.deadletter"
    partitions: int = 4
    replication: int = 1

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise StreamsConfigError(f"partitions: expected >= 1, got {self.partitions}")
        sources = (self.predictions, self.features, self.labels)
        if len(set(sources)) != 3:
            raise StreamsConfigError("the prediction, feature and label topics must differ")

    @property
    def sources(self) -> dict[str, str]:
        """Source topic name -> event kind it carries."""
        return {self.predictions: "prediction", self.features: "feature", self.labels: "label"}

    def all_topics(self) -> dict[str, int]:
        """Every topic driftline reads or writes with the partition count to create it with."""
        return {
            self.predictions: self.partitions,
            self.features: self.partitions,
            self.labels: self.partitions,
            self.alerts: self.partitions,
            self.deadletter: 1,
        }


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """Everything one worker process needs besides the connection.

    Parameters
    ----------
    app_id
        Faust application id: the consumer group and the prefix of internal topics. Workers
        with the same id share the work.
    topics
        Topic names and shard count.
    config_path
        Detection configuration (``driftline.toml``); ``None`` uses the defaults.
    preset
        A named detection preset (``driftline.detectors.PRESETS``) the configuration starts
        from; ``None``: the defaults.
    baseline_path
        Reference profile written by ``driftline baseline build``; the models it covers are
        judged against their training data from the first event instead of after a warm-up
        on the live stream. ``None``: every model warms up. Replay must be given the same
        profile to emit the same alerts.
    store
        ``rocksdb`` (production: state survives restarts locally, restore reads only the
        changelog tail) or ``memory`` (tests: state is rebuilt from the changelog).
    data_dir
        Where Faust keeps RocksDB tables.
    checkpoint_events, checkpoint_seconds
        Write a model's detector state to the changelog after this many events of its shard
        or this many seconds, whichever comes first. Each write is one changelog record, so
        per-event writes would cost more than the detection itself; the price of a larger
        interval is a longer stretch replayed after a crash.
    web_host, web_port
        Where ``/health``, ``/ready``, ``/metrics`` and ``/status`` are served; ``web_port``
        ``0`` disables the web server.
    max_batch_bytes
        Upper bound of one internal batch message (raw events framed together).
    max_event_bytes
        Larger events go to the dead-letter topic instead of into a batch.
    deadletter_max_bytes
        The dead-letter topic's ``max.message.bytes`` (``driftline worker`` asks the broker;
        ``None``: Apache Kafka's default, 1,048,588). A dead letter whose record would
        exceed it, or the producer's request limit, is sent as a reference (``_deadletter``).
    max_poll_records
        Records per fetch. Larger fetches amortise more per-fetch cost but make each batch
        take longer to detect on, which is latency: 1000 keeps p99 under a second at half
        the maximum throughput (benchmarks/stream.py).
    max_models
        Models whose detector state a worker keeps in memory (about 15 KiB each plus 14 KiB
        per numeric feature, see ``benchmarks/detect_cost.py``). At the limit the least
        recently seen model without unsaved changes is evicted (its state stays in the
        changelog); a brand-new model that finds none is dead-lettered (reason ``limit``).
    model_idle_seconds
        A model with no event for this long is evicted from memory after the next
        checkpoint of its shard, and restored from the table by its next event.
    on_bad_state
        What a checkpoint that fails verification on restore leads to (checksums, ranges,
        watermarks, the detector state): ``refuse`` (default) keeps the record untouched and
        sends the model's events to the dead-letter topic (reason ``state``) until an
        operator repairs it or restarts with ``fresh``, which starts the model anew. Refusing
        loses least: the events are kept (dead letters can be replayed), the evidence stays
        in the changelog, and no detector re-warms and changes every later alert silently.
    window_seconds, window_count
        Per-model statistics of ``/status`` (events by kind, dead letters, label joins,
        alerts) are kept in tumbling windows of this many seconds of *event time*, the
        last ``window_count`` of them (``driftline.streams._windows``). They travel inside
        the checkpoints, so they cost no extra changelog records.
    session_timeout, heartbeat_interval, rebalance_timeout
        Consumer-group timers, seconds. Shorter means faster start-up and faster takeover of
        a crashed worker's partitions, at the cost of false expiry on a stalled worker.
    """

    app_id: str = "driftline"
    topics: TopicLayout = field(default_factory=TopicLayout)
    config_path: str | None = None
    preset: str | None = None
    baseline_path: str | None = None
    store: str = "rocksdb"
    data_dir: str = "./driftline-data"
    checkpoint_events: int = 20_000
    checkpoint_seconds: float = 5.0
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    max_batch_bytes: int = 512 * 1024
    max_event_bytes: int = 256 * 1024
    deadletter_max_bytes: int | None = None
    max_poll_records: int = 1000
    max_models: int = 2000
    model_idle_seconds: float = 600.0
    on_bad_state: str = "refuse"
    window_seconds: float = 60.0
    window_count: int = 10
    session_timeout: float = 10.0
    heartbeat_interval: float = 1.0
    rebalance_timeout: float = 10.0
    commit_interval: float = 1.0
    loglevel: str = "warning"

    def __post_init__(self) -> None:
        if self.store not in ("rocksdb", "memory"):
            raise StreamsConfigError(f"store: expected rocksdb or memory, got {self.store!r}")
        if self.checkpoint_events < 1 or self.checkpoint_seconds <= 0:
            raise StreamsConfigError("checkpoint interval: events >= 1 and seconds > 0")
        if not 0 < self.window_seconds < float("inf") or not 1 <= self.window_count <= 10_000:
            raise StreamsConfigError("windows: seconds > 0 and a count from 1 to 10000")
        if self.on_bad_state not in ("refuse", "fresh"):
            raise StreamsConfigError(f"on_bad_state: refuse or fresh, got {self.on_bad_state!r}")
        if self.max_models < 1 or not self.model_idle_seconds > 0:
            raise StreamsConfigError("max_models >= 1 and model_idle_seconds > 0")
        if self.max_event_bytes > self.max_batch_bytes:
            raise StreamsConfigError("max_event_bytes must not exceed max_batch_bytes")
