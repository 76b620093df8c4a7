"""The Faust application of one worker: topics, the shard agent, the state table, timers.

Data flow (see ``_router``, ``_bulk`` and ``_shards`` for each step)::

    predictions / features / labels   (any partition count, any producer key)
        -> bulk consumer + router: one fetch -> one framed batch per shard
    <app_id>-shards                   (internal, `partitions` partitions, one per shard)
        -> shard agent: decode + validate, Monitor.process, alerts, checkpoints
    alerts (key = alert_id), deadletter (original bytes, error headers)
    <app_id>-driftline-state-changelog (table: model -> checkpoint)

Everything Faust provides for groups is kept: the consumer group splits source partitions
and shards among workers, the table is co-partitioned with the shard topic and restored from
its changelog on start and on rebalance, and offsets are committed by Faust's commit loop.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

import faust

from driftline.streams._bulk import BulkTransport
from driftline.streams._deadletter import KAFKA_DEFAULT_MAX_MESSAGE_BYTES, DeadLetters
from driftline.streams._framing import TICK
from driftline.streams._metrics import WorkerMetrics
from driftline.streams._router import Router
from driftline.streams._settings import KafkaSettings, WorkerSettings
from driftline.streams._shards import ShardProcessor
from driftline.streams._web import only_documented

__all__ = ["DriftlineApp", "Worker", "build_monitor", "build_worker"]

log = logging.getLogger(__name__)

_TABLE = "driftline-state"
#: Allocations between two young-generation collections (CPython's default is 700). A
#: worker allocates a dozen short-lived objects per event, so the default collected about
#: every 60 events, and every tenth of those runs escalated; the full collections scanned
#: the whole heap (detector state, Faust) for 50-75 ms each, 8-11% of the worker's time in
#: ``benchmarks/stream.py``. Almost all of these objects die by reference counting anyway.
_GC_THRESHOLD = (50_000, 20, 20)
#: Internal batches buffered for the shard agent (each up to ``max_batch_bytes``).
_SHARD_BUFFER = 32
_ROCKSDB_OPTIONS = {
    "write_buffer_size": 4 * 1024 * 1024,
    "max_write_buffer_number": 2,
    "target_file_size_base": 8 * 1024 * 1024,
    "block_cache_size": 16 * 1024 * 1024,
    "block_cache_compressed_size": 4 * 1024 * 1024,
}


class DriftlineApp(faust.App):
    """A Faust app whose consumer reads the source topics in bulk (``_bulk.BulkConsumer``)."""

    driftline_router: Router | None = None

    def _new_transport(self) -> Any:
        return BulkTransport(self.conf.broker_consumer, self)


class Worker:
    """One driftline worker: the Faust app and the objects its agent and views use.

    Build it with :func:`build_worker`; run it with :meth:`run` (blocks until SIGINT or
    SIGTERM). Attributes are public for tests and for the web views.
    """

    def __init__(
        self,
        app: DriftlineApp,
        processor: ShardProcessor,
        metrics: WorkerMetrics,
        kafka: KafkaSettings,
        settings: WorkerSettings,
    ) -> None:
        self.app = app
        self.processor = processor
        self.metrics = metrics
        self.kafka = kafka
        self.settings = settings

    @property
    def shard_topic(self) -> str:
        """Name of the internal topic whose partitions are the shards."""
        return shard_topic_name(self.settings.app_id)

    def run(self) -> int:
        """Run until interrupted; returns the worker's exit code.

        Source and internal topics must exist first (``ensure_topics``): this does not
        create them, because creating a source topic with the wrong partition count is
        worse than failing.
        """
        worker = faust.Worker(
            self.app,
            loglevel=self.settings.loglevel,
            quiet=True,
            override_logging=True,
        )
        # Objects alive now (modules, the app, a loaded baseline) live as long as the
        # process: freeze them out of the collector's scans, and collect young objects
        # less often (see _GC_THRESHOLD). Reference cycles are still collected.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*_GC_THRESHOLD)
        try:
            worker.execute_from_commandline()
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0


def shard_topic_name(app_id: str) -> str:
    """The internal topic carrying batches to shards: ``<app_id>-shards``."""
    return f"{app_id}-shards"


def changelog_topic_name(app_id: str) -> str:
    """The changelog of the state table (Faust's naming: ``<app>-<table>-changelog``)."""
    return f"{app_id}-{_TABLE}-changelog"


def producer_max_request_size(settings: WorkerSettings) -> int:
    """The producer's request limit: a full internal batch plus one event, with room."""
    return settings.max_batch_bytes + settings.max_event_bytes + 65536


def deadletter_limit(settings: WorkerSettings) -> int:
    """The largest dead-letter record: the topic's limit or the producer's, the smaller."""
    topic_limit = settings.deadletter_max_bytes or KAFKA_DEFAULT_MAX_MESSAGE_BYTES
    return min(topic_limit, producer_max_request_size(settings))


def build_monitor(settings: WorkerSettings) -> Any:
    """The worker's :class:`driftline.detectors.Monitor` from ``--config`` and ``--baseline``.

    Both files are read the way ``driftline replay`` reads them (``load_config`` and replay's
    public ``load_baseline``), so a worker and a replay given the same files run the same
    detection. Raises ``ValueError`` (the detectors' ``ConfigError``) for an invalid file and
    ``OSError`` or replay's ``InputError`` for an unreadable one; the messages name the file.
    """
    from driftline.detectors import Monitor, load_config

    config = load_config(settings.config_path or None, settings.preset)
    baseline = None
    if settings.baseline_path:
        from driftline.replay import load_baseline

        baseline = load_baseline(settings.baseline_path)
    return Monitor(config, baseline=baseline)


def build_worker(
    kafka: KafkaSettings, settings: WorkerSettings, monitor: Any | None = None
) -> Worker:
    """Assemble the Faust app, its agent, table, timer and web views.

    Parameters
    ----------
    kafka
        Connection settings.
    settings
        Worker settings (topics, checkpointing, store, web).
    monitor
        A :class:`driftline.detectors.Monitor`; by default :func:`build_monitor`'s. Passing
        one is for tests and benchmarks that want to look at it.
    """
    if monitor is None:
        monitor = build_monitor(settings)
    topics = settings.topics
    shards = topics.partitions
    web_enabled = settings.web_port > 0
    app = DriftlineApp(
        settings.app_id,
        broker=kafka.url,
        broker_credentials=kafka.faust_credentials(),
        broker_client_id=kafka.client_id,
        store="rocksdb://" if settings.store == "rocksdb" else "memory://",
        datadir=settings.data_dir,
        topic_partitions=shards,
        topic_replication_factor=topics.replication,
        topic_allow_declare=True,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
        broker_rebalance_timeout=settings.rebalance_timeout,
        broker_commit_interval=settings.commit_interval,
        broker_max_poll_records=settings.max_poll_records,
        consumer_max_fetch_size=4 * 1024 * 1024,
        producer_max_request_size=producer_max_request_size(settings),
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,  # held messages wait for a checkpoint, never for a rebalance
        table_standby_replicas=0,
        # A worker killed between writing a checkpoint to RocksDB and the changelog's
        # acknowledgement restarts with local state *ahead* of the changelog, which Faust's
        # check refuses (seen after kill -9). For driftline that state is consistent: a
        # checkpoint is written only after its alerts were delivered and carries its own
        # source watermarks, so the redelivered events it contains are skipped.
        recovery_consistency_check=False,
        web_enabled=web_enabled,
        web_port=settings.web_port if web_enabled else 6066,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_in_thread=False,
        # Faust's own views (/router/, /table/...) are not served: 404 outside the list
        web_application_options={"middlewares": [only_documented()]},
    )
    metrics = WorkerMetrics()
    shard_topic = app.topic(
        shard_topic_name(settings.app_id),
        partitions=shards,
        key_serializer="raw",
        value_serializer="raw",
        internal=True,
        # Messages here are batches of up to max_batch_bytes: Faust's default buffer of
        # 4096 messages could hold gigabytes when routing runs ahead of detection. A full
        # buffer pauses the consumer loop, and with it the routing: backpressure.
        maxsize=_SHARD_BUFFER,
    )
    table = app.Table(
        _TABLE,
        default=None,
        partitions=shards,
        key_type=bytes,  # bytes in, bytes out: Faust picks the raw codec
        value_type=bytes,
        # One small record per model: Faust's RocksDB defaults (64 MiB write buffers x3 per
        # partition, a 2 GiB block cache) would only make resident memory creep upwards.
        options=dict(_ROCKSDB_OPTIONS) if settings.store == "rocksdb" else None,
    )
    sources = topics.sources
    source_of_kind = {kind: topic for topic, kind in sources.items()}
    deadletters = DeadLetters(app.producer, topics.deadletter, deadletter_limit(settings))
    processor = ShardProcessor(
        monitor,
        table,
        app.producer,
        shards=shards,
        sources={kind: topic for topic, kind in sources.items()},
        alerts_topic=topics.alerts,
        deadletter_topic=topics.deadletter,
        checkpoint_events=settings.checkpoint_events,
        checkpoint_seconds=settings.checkpoint_seconds,
        metrics=metrics,
        window_seconds=settings.window_seconds,
        window_count=settings.window_count,
        deadletters=deadletters,
        max_models=settings.max_models,
        model_idle_seconds=settings.model_idle_seconds,
        on_bad_state=settings.on_bad_state,
        end_offset=lambda kind, partition: source_end(app, source_of_kind[kind], partition),
    )
    router = Router(
        app.producer,
        sources,
        shard_topic.get_topic_name(),
        shards,
        topics.deadletter,
        settings.max_batch_bytes,
        settings.max_event_bytes,
        metrics,
        deadletters,
    )
    app.driftline_router = router
    # Subscribe the consumer to the source topics; records never reach a channel (the bulk
    # consumer diverts them to the router), so the channel's value type does not matter.
    app.topics.add(app.topic(*sources, key_serializer="raw", value_serializer="raw"))

    @app.agent(shard_topic, concurrency=1, name="driftline-shards")
    async def shard_agent(stream: Any) -> None:
        manual = stream.noack()
        async for event in manual.events():
            await processor.handle(event, manual.ack)

    shard_name = shard_topic.get_topic_name()

    @app.on_partitions_revoked.connect
    async def _on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        processor.on_revoked({tp.partition for tp in revoked if tp.topic == shard_name})

    @app.on_partitions_assigned.connect
    async def _on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        processor.on_assigned({tp.partition for tp in assigned if tp.topic == shard_name})

    @app.timer(max(0.2, settings.checkpoint_seconds / 2))
    async def _tick() -> None:
        for shard in processor.due_ticks():
            await app.producer.send(shard_name, None, TICK, shard, None, None)

    def consumer_lag() -> list[tuple[str, int, int]]:
        consumer = app.consumer
        rows = []
        try:
            assignment = consumer.assignment()
        except Exception:
            return rows
        read = consumer._read_offset
        for tp in sorted(assignment):
            if tp.topic not in sources and tp.topic != shard_name:
                continue
            highwater = consumer.highwater(tp)
            position = read.get(tp)
            if highwater is None:
                continue
            done = position + 1 if position is not None else 0
            rows.append((tp.topic, tp.partition, max(0, highwater - done)))
        return rows

    metrics.bind_gauges(
        consumer_lag,
        processor.checkpoint_ages,
        processor.feature_drift,
        lambda: processor.monitor.stats,
    )
    worker = Worker(app, processor, metrics, kafka, settings)
    if web_enabled:
        from driftline.streams._livepage import LivePage

        processor.page = LivePage(monitor, worker=f"{settings.web_host}:{settings.web_port}")
        from driftline.streams._web import add_page_views, add_views

        add_views(worker)
        add_page_views(worker)
    return worker


def source_end(app: faust.App, topic: str, partition: int) -> int | None:
    """The end offset of a source partition if this worker's consumer knows it (assigned)."""
    from faust.types import TP

    try:
        return app.consumer.highwater(TP(topic, partition))
    except Exception:  # not assigned here, or not started: nothing to check against
        return None


def is_ready(app: faust.App) -> bool:
    """Whether the worker has an assignment, finished recovery and is not rebalancing."""
    try:
        assignment = app.consumer.assignment()
    except Exception:
        return False
    recovery = app.tables.recovery
    return bool(assignment) and not app.rebalancing and recovery.completed.is_set()


def uptime(metrics: WorkerMetrics) -> float:
    """Seconds since the worker's metrics were created."""
    return time.time() - metrics.started
