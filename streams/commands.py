"""``driftline worker``, ``driftline demo``, ``driftline alerts tail`` and ``alerts forward``.

Handlers import Faust, aiokafka and the detectors only when they run, so ``driftline --help``
stays fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_kafka_arguments", "kafka_settings_from_args", "register"]


def add_kafka_arguments(parser: argparse.ArgumentParser) -> None:
    """Connection options shared by every command that talks to Kafka."""
    group = parser.add_argument_group("Kafka connection (defaults from DRIFTLINE_* variables)")
    group.add_argument(
        "--broker", help="bootstrap servers host:port[,host:port] (env DRIFTLINE_BROKER)"
    )
    group.add_argument(
        "--security-protocol",
        choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
        help="env DRIFTLINE_SECURITY_PROTOCOL",
    )
    group.add_argument("--ssl-cafile", help="CA bundle (PEM) for TLS")
    group.add_argument("--ssl-certfile", help="client certificate (PEM) for mutual TLS")
    group.add_argument("--ssl-keyfile", help="client key (PEM) for mutual TLS")
    group.add_argument("--sasl-mechanism", choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"))
    group.add_argument(
        "--sasl-username", help="SASL user (password from env DRIFTLINE_SASL_PASSWORD)"
    )


def kafka_settings_from_args(args: argparse.Namespace, client_id: str) -> Any:
    """Build :class:`~driftline.streams.KafkaSettings` from parsed options and environment."""
    from driftline.streams._settings import KafkaSettings

    return KafkaSettings.from_env(
        args.broker,
        security_protocol=args.security_protocol,
        ssl_cafile=args.ssl_cafile,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
        sasl_mechanism=args.sasl_mechanism,
        sasl_username=args.sasl_username,
        client_id=client_id,
    )


def _add_topic_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("topics")
    group.add_argument("--topic-predictions", default="driftline.predictions")
    group.add_argument("--topic-features", default="driftline.features")
    group.add_argument("--topic-labels", default="driftline.labels")
    group.add_argument("--topic-alerts", default="driftline.alerts")
    group.add_argument("--topic-deadletter", default="driftline.deadletter")
    group.add_argument(
        "--partitions",
        type=int,
        default=4,
        help="state shards (partitions of the internal topic and table; default 4)",
    )
    group.add_argument("--replication", type=int, default=1, help="for topics it creates")


def _topic_layout(args: argparse.Namespace) -> Any:
    from driftline.streams._settings import TopicLayout

    return TopicLayout(
        predictions=args.topic_predictions,
        features=args.topic_features,
        labels=args.topic_labels,
        alerts=args.topic_alerts,
        deadletter=args.topic_deadletter,
        partitions=args.partitions,
        replication=args.replication,
    )


def register(subparsers: Any) -> None:
    """Add ``worker``, ``demo`` and ``alerts`` to the ``driftline`` command."""
    worker = subparsers.add_parser(
        "worker",
        help="run one streaming worker (several share the work through the consumer group)",
        description="Consume the event topics, detect drift, publish alerts. Start more "
        "workers with the same --app-id to share partitions.",
    )
    add_kafka_arguments(worker)
    _add_topic_arguments(worker)
    worker.add_argument("--app-id", default="driftline", help="consumer group and state id")
    worker.add_argument("--config", help="detection configuration (driftline.toml)")
    worker.add_argument(
        "--preset",
        metavar="NAME",
        default=None,
        help="start from a named detection preset (as `driftline replay --preset`); "
        "--config options override it",
    )
    worker.add_argument(
        "--baseline",
        metavar="PROFILE",
        help="reference profile from `driftline baseline build`: skew detection from the "
        "first event for the models it covers (give replay the same profile)",
    )
    worker.add_argument("--store", choices=("rocksdb", "memory"), default="rocksdb")
    worker.add_argument("--data-dir", default="./driftline-data", help="RocksDB directory")
    worker.add_argument("--checkpoint-events", type=int, default=20_000)
    worker.add_argument("--checkpoint-seconds", type=float, default=5.0)
    worker.add_argument(
        "--window-seconds",
        type=float,
        default=60.0,
        help="size of the event-time windows of per-model statistics in /status (default 60)",
    )
    worker.add_argument(
        "--windows",
        type=int,
        default=10,
        metavar="N",
        help="how many of those windows /status keeps per model (default 10)",
    )
    worker.add_argument(
        "--max-models",
        type=int,
        default=2000,
        help="models kept in memory (about 15 KiB + 14 KiB per numeric feature each); the "
        "least recently seen are evicted to the changelog (default 2000)",
    )
    worker.add_argument(
        "--model-idle-seconds",
        type=float,
        default=600.0,
        help="evict a model from memory after this long without events (default 600)",
    )
    worker.add_argument(
        "--on-bad-state",
        choices=("refuse", "fresh"),
        default="refuse",
        help="a checkpoint that fails verification: refuse (default: keep it, dead-letter "
        "the model's events) or fresh (start the model anew)",
    )
    worker.add_argument("--web-host", default="127.0.0.1")
    worker.add_argument("--web-port", type=int, default=6066, help="0 disables the web server")
    worker.add_argument("--session-timeout", type=float, default=10.0, help="seconds")
    worker.add_argument("--heartbeat-interval", type=float, default=1.0, help="seconds")
    worker.add_argument("--loglevel", default="warning")
    worker.add_argument(
        "--no-create-topics", action="store_true", help="fail instead of creating topics"
    )
    worker.set_defaults(handler=_worker)

    demo = subparsers.add_parser(
        "demo",
        help="embedded broker + worker + sample log with an injected drift; prints alerts",
    )
    demo.add_argument("--timeout", type=float, default=110.0, help="give up after seconds")
    demo.add_argument("--json", action="store_true", help="print alerts as JSON lines")
    demo.add_argument(
        "--keep",
        action="store_true",
        help="after the alerts, leave the broker and the worker running (browse the live "
        "page it prints) until Ctrl-C",
    )
    demo.set_defaults(handler=_demo)

    alerts = subparsers.add_parser("alerts", help="read the alerts topic")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    tail = alerts_sub.add_parser("tail", help="print alerts as they arrive, each alert_id once")
    add_kafka_arguments(tail)
    tail.add_argument("--topic", default="driftline.alerts")
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest alert kept"
    )
    tail.add_argument("--max", type=int, default=None, help="stop after this many alerts")
    tail.add_argument(
        "--timeout", type=float, default=None, help="stop after this many idle seconds"
    )
    tail.set_defaults(handler=_alerts_tail)
    _register_forward(alerts_sub)


def _register_forward(alerts_sub: Any) -> None:
    forward = alerts_sub.add_parser(
        "forward",
        help="deliver alerts to Alertmanager and webhooks (at least once, each alert once)",
        description="Consume the alerts topic with a consumer group of its own and deliver "
        "each alert to Alertmanager's v2 API and/or webhooks; offsets are committed after "
        "delivery, open incidents are re-sent so that they stay active.",
    )
    add_kafka_arguments(forward)
    forward.add_argument("--topic", default="driftline.alerts")
    forward.add_argument("--group", default="driftline-forward", help="consumer group id")
    targets = forward.add_argument_group("targets")
    targets.add_argument(
        "--alertmanager",
        action="append",
        default=[],
        metavar="URL",
        help="Alertmanager base URL (http://am:9093); repeat for each member of an HA cluster",
    )
    targets.add_argument(
        "--webhook", action="append", default=[], metavar="URL", help="POST each alert here"
    )
    targets.add_argument(
        "--webhook-format",
        choices=("json", "slack"),
        default="json",
        help='json: the alert itself; slack: {"text": ...} (default json). With '
        "DRIFTLINE_WEBHOOK_SECRET set, requests are signed (X-Driftline-Signature)",
    )
    targets.add_argument(
        "--resend-interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="re-send open incidents to Alertmanager this often; each stays active for 4 "
        "intervals without a re-send (default 60)",
    )
    targets.add_argument("--request-timeout", type=float, default=10.0, metavar="SECONDS")
    tls = forward.add_argument_group("TLS towards the targets")
    tls.add_argument("--tls-ca-file", help="CA bundle (PEM) that signed the targets' certificates")
    tls.add_argument("--tls-cert-file", help="client certificate (PEM) for mutual TLS")
    tls.add_argument("--tls-key-file", help="client key (PEM) for mutual TLS")
    tls.add_argument(
        "--tls-insecure-skip-verify",
        action="store_true",
        help="do not verify the targets' certificates (tests only)",
    )
    forward.add_argument("--web-host", default="127.0.0.1")
    forward.add_argument(
        "--web-port", type=int, default=6067, help="/health, /ready, /metrics; 0 disables"
    )
    forward.add_argument("--loglevel", default="warning")
    forward.set_defaults(handler=_alerts_forward)


def _worker(args: argparse.Namespace) -> int:
    from driftline.replay.exceptions import ReplayError
    from driftline.streams._settings import WorkerSettings
    from driftline.streams.exceptions import StreamsError

    try:
        kafka = kafka_settings_from_args(args, "driftline-worker")
        settings = WorkerSettings(
            app_id=args.app_id,
            topics=_topic_layout(args),
            config_path=args.config,
            preset=args.preset,
            baseline_path=args.baseline,
            store=args.store,
            data_dir=args.data_dir,
            checkpoint_events=args.checkpoint_events,
            checkpoint_seconds=args.checkpoint_seconds,
            window_seconds=args.window_seconds,
            window_count=args.windows,
            max_models=args.max_models,
            model_idle_seconds=args.model_idle_seconds,
            on_bad_state=args.on_bad_state,
            web_host=args.web_host,
            web_port=args.web_port,
            session_timeout=args.session_timeout,
            heartbeat_interval=args.heartbeat_interval,
            rebalance_timeout=args.session_timeout,
            loglevel=args.loglevel,
        )
        from dataclasses import replace

        from driftline.streams._app import build_monitor, build_worker
        from driftline.streams._topics import deadletter_limit_sync, ensure_topics_sync

        monitor = build_monitor(settings)  # a bad --config or --baseline fails before Kafka
        if not args.no_create_topics:
            ensure_topics_sync(kafka, settings)
        limit = deadletter_limit_sync(kafka, settings.topics.deadletter)
        settings = replace(settings, deadletter_max_bytes=limit)
        worker = build_worker(kafka, settings, monitor)
    except (StreamsError, ReplayError, ValueError, OSError) as exc:
        print(f"driftline worker: {exc}", file=sys.stderr)
        return 2
    return worker.run()


def _alerts_tail(args: argparse.Namespace) -> int:
    from aiokafka.errors import KafkaError

    from driftline.streams._tail import tail_alerts
    from driftline.streams.exceptions import StreamsError

    try:
        kafka = kafka_settings_from_args(args, "driftline-alerts-tail")
        tail_alerts(
            kafka,
            args.topic,
            as_json=args.json,
            from_beginning=args.from_beginning,
            max_alerts=args.max,
            idle_timeout=args.timeout,
        )
    except (StreamsError, ValueError, KafkaError) as exc:
        print(f"driftline alerts tail: {exc}", file=sys.stderr)
        return 2
    return 0


def _alerts_forward(args: argparse.Namespace) -> int:
    import logging
    import os

    from aiokafka.errors import KafkaError

    from driftline.streams._forward import ForwardSettings, TargetTLS, run_forwarder
    from driftline.streams.exceptions import StreamsError

    logging.basicConfig(
        level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        kafka = kafka_settings_from_args(args, "driftline-alerts-forward")
        settings = ForwardSettings(
            topic=args.topic,
            group_id=args.group,
            alertmanagers=tuple(args.alertmanager),
            webhooks=tuple(args.webhook),
            webhook_format=args.webhook_format,
            webhook_secret=os.environ.get("DRIFTLINE_WEBHOOK_SECRET") or None,
            resend_seconds=args.resend_interval,
            request_timeout=args.request_timeout,
            tls=TargetTLS(
                ca_file=args.tls_ca_file,
                cert_file=args.tls_cert_file,
                key_file=args.tls_key_file,
                insecure_skip_verify=args.tls_insecure_skip_verify,
            ),
            web_host=args.web_host,
            web_port=args.web_port,
        )
        return run_forwarder(kafka, settings)
    except (StreamsError, ValueError, KafkaError, OSError) as exc:
        print(f"driftline alerts forward: {exc}", file=sys.stderr)
        return 2


def _demo(args: argparse.Namespace) -> int:
    from driftline.streams._demo import run_demo

    return run_demo(timeout=args.timeout, as_json=args.json, keep=args.keep)
