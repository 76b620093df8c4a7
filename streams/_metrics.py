"""Prometheus metrics of one worker, in a registry of their own.

A private :class:`~prometheus_client.CollectorRegistry` keeps the worker's metrics apart from
whatever else the process imports (two workers in one test process must not collide on the
global registry). Counters are incremented once per *batch* with the batch's count, never
once per event: the per-event cost of ``Counter.inc`` (a lock and a float add) would be
measurable on the hot path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

__all__ = ["WorkerMetrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _Gauges:
    """Collector for values that are cheaper to read at scrape time than to keep updated."""

    def __init__(
        self,
        lag: Callable[[], Iterable[tuple[str, int, int]]],
        checkpoint_ages: Callable[[], Mapping[int, float]],
        feature_drift: Callable[[], Iterable[tuple[str, str, float]]],
        label_counts: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        self._lag = lag
        self._checkpoint_ages = checkpoint_ages
        self._feature_drift = feature_drift
        self._label_counts = label_counts

    def collect(self):
        lag = GaugeMetricFamily(
            "driftline_consumer_lag",
            "Messages between the consumer position and the end of the partition.",
            labels=["topic", "partition"],
        )
        for topic, partition, value in self._lag():
            lag.add_metric([topic, str(partition)], value)
        yield lag
        age = GaugeMetricFamily(
            "driftline_checkpoint_age_seconds",
            "Seconds since the shard's detector state was last written to its changelog.",
            labels=["shard"],
        )
        for shard, seconds in self._checkpoint_ages().items():
            age.add_metric([str(shard)], seconds)
        yield age
        drift = GaugeMetricFamily(
            "driftline_feature_drift",
            "Shift of a numeric feature's mean over the detectors' current window from its "
            "reference mean, in reference standard deviations (model-wide stream; the largest "
            "over model versions).",
            labels=["model", "feature"],
        )
        for model, feature, shift in self._feature_drift():
            drift.add_metric([model, feature], shift)
        yield drift
        if self._label_counts is not None:
            yield from _label_families(self._label_counts())


#: ``Monitor.stats`` key -> ``outcome`` label of ``driftline_labels_total``.
_LABEL_OUTCOMES = {
    "labels_unmatched": "unmatched",
    "labels_expired": "expired",
    "labels_early": "early",
    "labels_early_joined": "early_joined",
}


def _label_families(stats: Mapping[str, int]):
    total = CounterMetricFamily(
        "driftline_labels",
        "Labels by outcome: unmatched (no prediction found: gave up waiting or pushed out of "
        "the early-label buffer), expired (prediction older than label_ttl), early (read "
        "before their prediction and held), early_joined (held, then joined).",
        labels=["outcome"],
    )
    for key, outcome in _LABEL_OUTCOMES.items():
        total.add_metric([outcome], stats.get(key, 0))
    yield total
    waiting = GaugeMetricFamily(
        "driftline_labels_waiting", "Labels held now, waiting for their prediction."
    )
    waiting.add_metric([], stats.get("labels_waiting", 0))
    yield waiting


class WorkerMetrics:
    """The metrics ``/metrics`` exposes, all prefixed ``driftline_``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter(
            "driftline_events", "Valid events processed.", ["topic", "kind"], registry=r
        )
        self.invalid = Counter(
            "driftline_invalid_messages",
            "Messages sent to the dead-letter topic.",
            ["topic", "reason"],
            registry=r,
        )
        self.alerts = Counter(
            "driftline_alerts", "Alerts published.", ["kind", "model"], registry=r
        )
        self.batches = Counter(
            "driftline_batches", "Internal batches processed by this worker's shards.", registry=r
        )
        self.checkpoints = Counter(
            "driftline_checkpoints", "Detector state writes to the changelog.", registry=r
        )
        self.state_errors = Counter(
            "driftline_state_errors",
            "Checkpoints that failed verification on restore (checksum, ranges, watermarks, "
            "detector state), per model; see --on-bad-state.",
            ["model"],
            registry=r,
        )
        self.evicted = Counter(
            "driftline_models_evicted",
            "Models dropped from memory (idle, or to make room under --max-models); their "
            "state stays in the changelog and comes back with their next event.",
            registry=r,
        )
        self.routed = Counter(
            "driftline_routed_events", "Source messages forwarded to their shard.", registry=r
        )
        self.processing = Histogram(
            "driftline_batch_processing_seconds",
            "Time to decode, detect and publish one internal batch.",
            registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
        )
        self.latency = Histogram(
            "driftline_event_latency_seconds",
            "From the producer's timestamp of the oldest event in a batch to the end of its "
            "processing (alerts handed to the producer): an upper bound for the batch.",
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self._gauges: _Gauges | None = None
        self.started = time.time()

    def bind_gauges(
        self,
        lag: Callable[[], Iterable[tuple[str, int, int]]],
        checkpoint_ages: Callable[[], Mapping[int, float]],
        feature_drift: Callable[[], Iterable[tuple[str, str, float]]],
        label_counts: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        """Attach the scrape-time gauges once the worker can compute them."""
        if self._gauges is None:
            self._gauges = _Gauges(lag, checkpoint_ages, feature_drift, label_counts)
            self.registry.register(self._gauges)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)
