"""The streaming service: a faust-streaming application from event topics to alerts.

Public surface: the settings every Kafka client of driftline shares (:class:`KafkaSettings`,
:class:`TopicLayout`, :class:`WorkerSettings`), :func:`build_worker` to assemble a worker,
:func:`ensure_topics` to create topics with the right partition counts, and the alert
subscriber helpers (:func:`iter_alerts`, :class:`AlertDeduplicator`, :func:`format_alert`),
and the delivery of alerts to Alertmanager and webhooks (:class:`Forwarder`,
:class:`ForwardSettings`).
Faust is imported only by the modules that need it, lazily.
"""

from __future__ import annotations

from typing import Any

from driftline.streams._settings import KafkaSettings, TopicLayout, WorkerSettings

__all__ = [
    "AlertDeduplicator",
    "ForwardSettings",
    "Forwarder",
    "KafkaSettings",
    "TopicLayout",
    "Worker",
    "WorkerSettings",
    "build_worker",
    "ensure_topics",
    "ensure_topics_sync",
    "format_alert",
    "iter_alerts",
]

_LAZY = {
    "Worker": "driftline.streams._app",
    "build_worker": "driftline.streams._app",
    "ensure_topics": "driftline.streams._topics",
    "ensure_topics_sync": "driftline.streams._topics",
    "AlertDeduplicator": "driftline.streams._tail",
    "Forwarder": "driftline.streams._forward",
    "ForwardSettings": "driftline.streams._forward",
    "format_alert": "driftline.streams._tail",
    "iter_alerts": "driftline.streams._tail",
}


def __getattr__(name: str) -> Any:
    # Faust and aiokafka are heavy imports; ``driftline --help`` and replay's publisher only
    # need the settings, so the rest loads on first use.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'driftline.streams' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
