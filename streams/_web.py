"""The worker's web endpoints: ``/health``, ``/ready``, ``/metrics``, ``/status``.

Served by Faust's own web server (aiohttp), bound to 127.0.0.1 by default: ``/status``
reveals model names and statistics, so exposing it is a deliberate choice (``--web-host``).

Faust also mounts views of its own (``/router/``, ``/table/<name>/<key>/`` which returned
checkpoint headers, ``/graph/``, ``/stats/``...). None is documented or needed, so every
request passes :func:`only_documented`, which answers 404 for any path outside
:data:`SERVED_PATHS`. That set is the one place to extend when a route is added.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from driftline.streams._app import Worker

__all__ = ["SERVED_PATHS", "add_views", "is_served", "only_documented"]

_PROMETHEUS = "text/plain; version=0.0.4"

#: Every path the worker answers: an entry is an exact path, or, ending in ``/``, a prefix
#: (``"/static/"`` would serve everything below it). Anything else is a 404.
SERVED_PATHS = frozenset({"/health", "/ready", "/metrics", "/status"})


def is_served(path: str) -> bool:
    """Whether ``path`` is in :data:`SERVED_PATHS` (a trailing ``/`` is ignored)."""
    if path in SERVED_PATHS or (len(path) > 1 and path.rstrip("/") in SERVED_PATHS):
        return True
    return any(p.endswith("/") and len(p) > 1 and path.startswith(p) for p in SERVED_PATHS)


def only_documented() -> Any:
    """An aiohttp middleware that answers 404 outside :data:`SERVED_PATHS`; for Faust's
    ``web_application_options`` (``build_worker`` installs it)."""
    from aiohttp import web

    @web.middleware
    async def middleware(request: Any, handler: Any) -> Any:
        if not is_served(request.path):
            raise web.HTTPNotFound()
        return await handler(request)

    return middleware


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
