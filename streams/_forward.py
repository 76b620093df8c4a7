"""``driftline alerts forward``: alerts from the alerts topic to Alertmanager and webhooks.

People on call route alerts with Alertmanager (paging, chat, silences, grouping, inhibition);
this delivers driftline's alerts there, and to plain webhooks, without losing or re-ordering
an incident:

- **At least once.** A consumer group of its own stores the offsets; they are committed only
  after every target acknowledged the alerts before them. While a target is down, delivery is
  retried with exponential backoff and reading stops (nothing piles up in memory).
- **Each alert once.** Redelivered records are dropped by ``alert_id`` (the same
  :class:`~driftline.streams._tail.AlertDeduplicator` as ``alerts tail``), and
  :class:`~driftline.streams._incidents.IncidentBook` keeps a firing alert read after its
  incident's resolution from re-opening it.
- **All partitions, one reader.** A firing and a resolved alert usually sit in different
  partitions (the worker keys alerts by ``alert_id``), so one forwarder reads every partition:
  several forwarders sharing a group would each see half an incident. For redundancy run two
  forwarders with *different* ``--group`` ids: Alertmanager merges identical alerts.
- **Restarts.** On start the forwarder reads the topic from its beginning: alerts before the
  committed offsets rebuild the incident book (which incidents are open, which closed), the
  rest are delivered. The alerts topic is small (a few alerts per model and day), so this
  costs little and makes a restart exact.
- **Long incidents stay active.** Alertmanager ends an alert at its ``endsAt`` and keeps
  alerts in memory only, so open incidents are re-sent every ``resend_seconds`` (and at once
  after Alertmanager was unreachable), with ``endsAt`` four intervals ahead, as Prometheus
  does with its resend delay.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from driftline.streams._incidents import (
    SIGNATURE_HEADER,
    IncidentBook,
    alertmanager_alert,
    malformed,
    signature,
    slack_body,
    sort_for_delivery,
)
from driftline.streams._settings import KafkaSettings
from driftline.streams._tail import AlertDeduplicator, decode_alert, topic_partitions
from driftline.streams.exceptions import StreamsConfigError

__all__ = ["ForwardMetrics", "ForwardSettings", "Forwarder", "TargetTLS", "run_forwarder"]

log = logging.getLogger(__name__)

_AM_PATH = "/api/v2/alerts"
_PROMETHEUS = "text/plain; version=0.0.4"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True, slots=True)
class TargetTLS:
    """TLS towards Alertmanager and webhooks: a CA bundle, a client certificate, and
    (for tests only) ``insecure_skip_verify``, off by default."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure_skip_verify: bool = False

    def context(self) -> ssl.SSLContext:
        """The client context every HTTPS target is reached with."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        if self.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


@dataclass(frozen=True, slots=True)
class ForwardSettings:
    """What ``driftline alerts forward`` reads and where it delivers.

    ``alertmanagers`` are base URLs (``http://am:9093``) of one Alertmanager or of an HA
    cluster: an alert counts as delivered when one of them accepted it (the cluster gossips
    it to the others). Every ``webhooks`` URL must accept every alert. ``webhook_format`` is
    ``json`` (the alert itself) or ``slack`` (``{"text": ...}``); with ``webhook_secret``
    each request carries ``X-Driftline-Signature: sha256=<HMAC-SHA256 of the body>``.
    """

    topic: str = "driftline.alerts"
    group_id: str = "driftline-forward"
    alertmanagers: tuple[str, ...] = ()
    webhooks: tuple[str, ...] = ()
    webhook_format: str = "json"
    webhook_secret: str | None = field(default=None, repr=False)
    resend_seconds: float = 60.0
    request_timeout: float = 10.0
    max_backoff: float = 30.0
    tls: TargetTLS = field(default_factory=TargetTLS)
    web_host: str = "127.0.0.1"
    web_port: int = 6067
    max_records: int = 500
    #: How long a broker may hold an empty fetch: it bounds the latency of an alert published
    #: while the forwarder waits (aiokafka's default is 500 ms; benchmarks/forward.py).
    fetch_max_wait_ms: int = 100

    def __post_init__(self) -> None:
        if not self.alertmanagers and not self.webhooks:
            raise StreamsConfigError("give at least one --alertmanager or --webhook URL")
        for url in (*self.alertmanagers, *self.webhooks):
            if not url.startswith(("http://", "https://")):
                raise StreamsConfigError(f"target URL: expected http:// or https://, got {url!r}")
        if self.webhook_format not in ("json", "slack"):
            raise StreamsConfigError(f"webhook format: json or slack, got {self.webhook_format!r}")
        if not 0 < self.resend_seconds < float("inf") or self.request_timeout <= 0:
            raise StreamsConfigError("resend interval and request timeout must be > 0")

    @property
    def hold_seconds(self) -> float:
        """How long Alertmanager keeps a firing alert active without a re-send."""
        return 4 * self.resend_seconds


class ForwardMetrics:
    """The forwarder's ``/metrics``, prefixed ``driftline_forward_``, in a registry of its own."""

    def __init__(self, targets: tuple[str, ...] = ("alertmanager", "webhook")) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.delivered = Counter(
            "driftline_forward_alerts",
            "Alerts accepted by a target, by target type and alert status.",
            ["target", "status"],
            registry=r,
        )
        self.skipped = Counter(
            "driftline_forward_skipped",
            "Alerts read but not sent: duplicate (alert_id seen), repeat (incident state "
            "already sent), stale_firing (its resolution was sent), invalid (undecodable), "
            "rejected (a target answered 4xx).",
            ["reason"],
            registry=r,
        )
        self.failures = Counter(
            "driftline_forward_delivery_failures",
            "Failed delivery attempts (retried with backoff).",
            ["target"],
            registry=r,
        )
        self.resent = Counter(
            "driftline_forward_resent", "Open incidents re-sent to Alertmanager.", registry=r
        )
        self.open = Gauge(
            "driftline_forward_open_incidents", "Incidents firing and not resolved.", registry=r
        )
        self.latency = Histogram(
            "driftline_forward_delivery_latency_seconds",
            "From an alert's timestamp on the alerts topic to its acknowledgement by every target.",
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        # Known label values start at 0, so that rates and alerts on them have a series
        # before the first delivery or failure.
        for target in targets:
            self.failures.labels(target)
            for status in ("firing", "resolved"):
                self.delivered.labels(target, status)
        for reason in ("duplicate", "repeat", "stale_firing", "invalid", "rejected"):
            self.skipped.labels(reason)
        self.started = time.time()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class Forwarder:
    """One forwarder: consumer, incident book, targets and web endpoints.

    ``on_delivered(alert, seconds)`` is called for each alert sent, once every target has
    answered it (benchmarks read latencies from it).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        settings: ForwardSettings,
        *,
        on_delivered: Callable[[dict[str, Any], float], None] | None = None,
    ) -> None:
        self.kafka = kafka
        self.settings = settings
        kinds = {"alertmanager": settings.alertmanagers, "webhook": settings.webhooks}
        self.metrics = ForwardMetrics(tuple(kind for kind, urls in kinds.items() if urls))
        self.book = IncidentBook()
        self.dedup = AlertDeduplicator()
        self.ready = False
        self._on_delivered = on_delivered
        self._lock = asyncio.Lock()  # one delivery (or re-send) at a time: keeps the order
        self._am_recovered = False
        self._session: Any = None
        self._ssl = settings.tls.context()

    # ------------------------------------------------------------------ delivery

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> str:
        """One request: ``ok``, ``retry`` (network, 5xx, 408, 429) or ``reject`` (other 4xx)."""
        import aiohttp

        try:
            async with self._session.post(url, data=body, headers=headers, ssl=self._ssl) as r:
                if 200 <= r.status < 300:
                    return "ok"
                detail = (await r.text())[:300]
                verdict = "retry" if r.status >= 500 or r.status in (408, 429) else "reject"
                log.warning("%s answered %s (%s): %s", url, r.status, verdict, detail)
                return verdict
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("%s unreachable: %s", url, exc or type(exc).__name__)
            return "retry"

    async def _until_done(self, target: str, attempt: Callable[[], Any]) -> bool:
        """Retry ``attempt`` with exponential backoff; ``False`` if the target rejected it."""
        delay, failed = 0.1, False
        while True:
            verdict = await attempt()
            if verdict == "ok":
                if failed and target == "alertmanager":
                    self._am_recovered = True
                return True
            if verdict == "reject":
                return False
            failed = True
            self.metrics.failures.labels(target).inc()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.max_backoff)

    async def _to_alertmanagers(self, alerts: list[dict[str, Any]]) -> list[bool]:
        """Deliver ``alerts`` in one request; per alert, whether Alertmanager accepted it.

        Alertmanager rejects a whole request for one invalid alert, so a rejected request
        of several alerts is sent again one alert at a time: the others still arrive.
        """
        urls = self.settings.alertmanagers
        headers = {"Content-Type": "application/json"}

        async def attempt(batch: list[dict[str, Any]]) -> str:
            # Rebuilt per attempt: endsAt is counted from the moment of sending.
            now = datetime.now(UTC)
            hold = self.settings.hold_seconds
            body = orjson.dumps([alertmanager_alert(a, now=now, hold_seconds=hold) for a in batch])
            posts = (self._post(u.rstrip("/") + _AM_PATH, body, headers) for u in urls)
            verdicts = await asyncio.gather(*posts)
            if "ok" in verdicts:
                return "ok"
            return "retry" if "retry" in verdicts else "reject"

        if await self._until_done("alertmanager", lambda: attempt(alerts)):
            return [True] * len(alerts)
        if len(alerts) == 1:
            return [False]
        return [
            await self._until_done("alertmanager", lambda a=alert: attempt([a])) for alert in alerts
        ]

    async def _to_webhook(self, url: str, alerts: list[dict[str, Any]]) -> list[bool]:
        """POST each alert in order; per alert, whether the webhook accepted it."""
        settings = self.settings
        secret = settings.webhook_secret.encode() if settings.webhook_secret else None
        accepted = []
        for alert in alerts:
            payload = slack_body(alert) if settings.webhook_format == "slack" else alert
            body = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
            headers = {"Content-Type": "application/json"}
            if secret is not None:
                headers[SIGNATURE_HEADER] = signature(secret, body)
            bound = body, headers
            accepted.append(
                await self._until_done("webhook", lambda b=bound: self._post(url, b[0], b[1]))
            )
        return accepted

    async def _send(self, alerts: list[dict[str, Any]], stamps: list[float]) -> None:
        """Deliver ``alerts`` (in order) to every target; returns when all answered."""
        async with self._lock:
            jobs, targets = [], []
            if self.settings.alertmanagers:
                jobs.append(self._to_alertmanagers(alerts))
                targets.append("alertmanager")
            for url in self.settings.webhooks:
                jobs.append(self._to_webhook(url, alerts))
                targets.append("webhook")
            answers = await asyncio.gather(*jobs)
        now = time.time()
        for target, accepted in zip(targets, answers, strict=True):
            for alert, ok in zip(alerts, accepted, strict=True):
                if ok:
                    self.metrics.delivered.labels(target, str(alert.get("status"))).inc()
                else:
                    self.metrics.skipped.labels("rejected").inc()
        for alert, stamp in zip(alerts, stamps, strict=True):
            self.metrics.latency.observe(max(0.0, now - stamp))
            if self._on_delivered is not None:
                self._on_delivered(alert, now - stamp)
        self.metrics.open.set(len(self.book))
        if self._am_recovered:
            self._am_recovered = False
            await self.resend_open()

    async def resend_open(self) -> None:
        """Re-send every open incident to Alertmanager (keeps it active, restores it)."""
        if not self.settings.alertmanagers:
            return
        async with self._lock:
            alerts, size = self.book.open_alerts(), self.settings.max_records
            for start in range(0, len(alerts), size):
                await self._to_alertmanagers(alerts[start : start + size])
            self.metrics.resent.inc(len(alerts))

    async def _resend_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resend_seconds)
            await self.resend_open()

    async def deliver(self, records: list[Any]) -> None:
        """Decide and send the alerts of ``records`` (decoded alerts with their stamps)."""
        alerts, stamps = [], []
        stamp_of = {id(alert): stamp for alert, stamp in records}
        for alert in sort_for_delivery(alert for alert, _ in records):
            if not self.dedup.first_time(alert["alert_id"]):
                self.metrics.skipped.labels("duplicate").inc()
                continue
            decision = self.book.decide(alert)
            if not decision.send:
                self.metrics.skipped.labels(decision.reason).inc()
            for sent in decision.send:
                alerts.append(sent)
                stamps.append(stamp_of[id(alert)])
        size = self.settings.max_records  # one request per chunk (a new group's backlog)
        for start in range(0, len(alerts), size):
            await self._send(alerts[start : start + size], stamps[start : start + size])

    # ------------------------------------------------------------------ reading

    def _split(self, batch: dict[Any, list[Any]], committed: dict[Any, int]) -> list[Any]:
        """Remember alerts before the committed offsets; return the others with stamps."""
        fresh = []
        for tp, records in batch.items():
            for record in records:
                alert = decode_alert(record)
                problem = None if alert is None else malformed(alert)
                if problem is not None:
                    log.warning("skipping alert at %s offset %s: %s", tp, record.offset, problem)
                if alert is None or problem is not None:
                    self.metrics.skipped.labels("invalid").inc()
                elif record.offset < committed.get(tp, 0):
                    self.dedup.first_time(alert["alert_id"])
                    self.book.remember(alert)
                else:
                    fresh.append((alert, record.timestamp / 1000.0))
        return fresh

    async def _catch_up(self, consumer: Any, tps: list[Any]) -> dict[Any, int]:
        """Read every partition to its end offset at start; deliver what was not delivered."""
        committed = {}
        for tp in tps:
            committed[tp] = await consumer.committed(tp) or 0
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        fresh, idle = [], 0
        while idle < 10:
            positions = [await consumer.position(tp) for tp in tps]
            if all(p >= ends[tp] for p, tp in zip(positions, tps, strict=True)):
                break
            batch = await consumer.getmany(timeout_ms=500, max_records=self.settings.max_records)
            idle = 0 if batch else idle + 1
            fresh += self._split(batch, committed)
        await self.deliver(fresh)
        await self.resend_open()  # Alertmanager may have lost them while we were away
        await self._commit(consumer, {tp: await consumer.position(tp) for tp in tps})
        self.metrics.open.set(len(self.book))
        return committed

    async def _follow(self, consumer: Any, committed: dict[Any, int]) -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=self.settings.max_records)
            if not batch:
                continue
            await self.deliver(self._split(batch, committed))
            await self._commit(consumer, {tp: rs[-1].offset + 1 for tp, rs in batch.items()})

    async def _commit(self, consumer: Any, offsets: dict[Any, int]) -> None:
        """Commit delivered offsets; a failed commit is logged, not fatal: the next one covers
        it, and alerts redelivered after a crash are recognised (rebuilt incident book)."""
        from aiokafka.errors import KafkaError

        try:
            await consumer.commit(offsets)
        except KafkaError as exc:
            log.warning("offset commit failed (the next one retries): %s", exc)

    async def run(self) -> None:
        """Run until cancelled."""
        import aiohttp
        from aiokafka import AIOKafkaConsumer

        timeout = aiohttp.ClientTimeout(total=self.settings.request_timeout)
        runner = await self._start_web()
        consumer = AIOKafkaConsumer(
            **self.kafka.aiokafka_kwargs(),
            group_id=self.settings.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
        )
        resender = None
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                self._session = session
                await consumer.start()
                tps = await topic_partitions(consumer, self.settings.topic)
                consumer.assign(tps)
                committed = await self._catch_up(consumer, tps)
                self.ready = True
                resender = asyncio.create_task(self._resend_loop())
                await self._follow(consumer, committed)
        finally:
            self.ready = False
            if resender is not None:
                resender.cancel()
            await consumer.stop()
            if runner is not None:
                await runner.cleanup()

    # ------------------------------------------------------------------ web

    async def _start_web(self) -> Any:
        """``/health``, ``/ready`` and ``/metrics``, like the worker's (port 0: none)."""
        if self.settings.web_port <= 0:
            return None
        from aiohttp import web

        async def health(request: Any) -> Any:
            uptime = round(time.time() - self.metrics.started, 3)
            return web.json_response({"status": "ok", "uptime_seconds": uptime})

        async def ready(request: Any) -> Any:
            body = {"ready": self.ready, "open_incidents": len(self.book)}
            return web.json_response(body, status=200 if self.ready else 503)

        async def metrics(request: Any) -> Any:
            headers = {"Content-Type": _PROMETHEUS}
            return web.Response(body=self.metrics.exposition(), headers=headers)

        app = web.Application()
        app.router.add_get("/health", health)
        app.router.add_get("/ready", ready)
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.settings.web_host, self.settings.web_port).start()
        return runner


def run_forwarder(kafka: KafkaSettings, settings: ForwardSettings) -> int:
    """Run a :class:`Forwarder` until SIGINT or SIGTERM; returns the exit status."""
    import signal

    async def main() -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        await Forwarder(kafka, settings).run()

    try:
        asyncio.run(main())
    except asyncio.CancelledError:
        return 0
    return 0
