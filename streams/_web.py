"""The worker's web endpoints: ``/health``, ``/ready``, ``/metrics``, ``/status``.

Served by Faust's own web server (aiohttp), bound to 127.0.0.1 by default: ``/status``
reveals model names and statistics, so exposing it is a deliberate choice (``--web-host``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from driftline.streams._app import Worker

__all__ = ["add_views"]

_PROMETHEUS = "text/plain; version=0.0.4"


def add_views(worker: Worker) -> None:
    """Register the four views on the worker's Faust app."""
    from driftline.streams._app import is_ready, uptime

    app = worker.app

    @app.page("/health", name="driftline-health")
    async def health(self: Any, request: Any) -> Any:
        """Liveness: the process and its event loop answer."""
        return self.json({"status": "ok", "uptime_seconds": round(uptime(worker.metrics), 3)})

    @app.page("/ready", name="driftline-ready")
    async def ready(self: Any, request: Any) -> Any:
        """Readiness: partitions assigned, tables recovered, not rebalancing (else 503)."""
        ready_now = is_ready(app)
        body = {"ready": ready_now, "shards": worker.processor.assigned}
        return self.json(body, status=200 if ready_now else 503)

    @app.page("/metrics", name="driftline-metrics")
    async def metrics(self: Any, request: Any) -> Any:
        """Prometheus text exposition of the worker's private registry."""
        return self.bytes(worker.metrics.exposition(), content_type=_PROMETHEUS)

    @app.page("/status", name="driftline-status")
    async def status(self: Any, request: Any) -> Any:
        """Per model (and, inside the monitor's summary, per segment and feature) state."""
        return self.json(worker.processor.status())
