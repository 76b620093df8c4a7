"""The worker's web endpoints: ``/health``, ``/ready``, ``/metrics``, ``/status``, and the
live page: ``/`` with its JSON under ``/page/`` (``PAGE_PREFIX``).

Served by Faust's own web server (aiohttp), bound to 127.0.0.1 by default: ``/status``
and the page reveal model names and statistics, so exposing them is a deliberate choice
(``--web-host``). The page is one self-contained HTML file shipped in the package; its
Content-Security-Policy lets it load nothing but its own inline code and this worker's JSON.

Faust also mounts views of its own (``/router/``, ``/table/<name>/<key>/`` which returned
checkpoint headers, ``/graph/``, ``/stats/``...). None is documented or needed, so every
request passes :func:`only_documented`, which answers 404 for any path outside
:data:`SERVED_PATHS`. That set is the one place to extend when a route is added.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from driftline.streams._app import Worker

__all__ = [
    "PAGE_PREFIX",
    "SERVED_PATHS",
    "add_page_views",
    "add_views",
    "is_served",
    "only_documented",
]

_PROMETHEUS = "text/plain; version=0.0.4"
#: Every JSON route of the live page starts with this (the page itself is ``/``).
PAGE_PREFIX = "/page/"
_JSON = "application/json"
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

#: Every path the worker answers: an entry is an exact path, or, ending in ``/``, a prefix
#: (``"/static/"`` would serve everything below it). Anything else is a 404.
SERVED_PATHS = frozenset({"/health", "/ready", "/metrics", "/status", "/", PAGE_PREFIX})


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


def add_page_views(worker: Worker) -> None:
    """Register the live page (``/``) and its two JSON documents (under ``PAGE_PREFIX``).

    ``worker.processor.page`` (a :class:`~driftline.streams._livepage.LivePage`) holds what
    they show; the documents are built when asked, from the monitor's state.
    """
    import orjson

    from driftline.schemas import page_html

    app = worker.app
    page = worker.processor.page
    headers = dict(_PAGE_HEADERS)

    @app.page("/", name="driftline-page")
    async def index(self: Any, request: Any) -> Any:
        """The live page (it polls the two documents below)."""
        return self.bytes(page_html(), content_type="text/html", headers=headers)

    @app.page(PAGE_PREFIX + "data.json", name="driftline-page-data")
    async def data(self: Any, request: Any) -> Any:
        """Every model of this worker (streams, recent alerts), the columns of one model."""
        doc = page.document(request.query.get("model"))
        body = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
        return self.bytes(body, content_type=_JSON, headers=headers)

    @app.page(PAGE_PREFIX + "feature.json", name="driftline-page-feature")
    async def feature(self: Any, request: Any) -> Any:
        """One column: distributions, history of its statistic, its alerts (404: none)."""
        q = request.query
        model, stream, name = q.get("model"), q.get("stream"), q.get("name")
        if not (model and stream is not None and name):
            return self.bytes(
                b'{"error":"model, stream and name are required"}',
                content_type=_JSON,
                status=400,
                headers=headers,
            )
        doc = page.detail(model, stream, name)
        if doc is None:
            return self.bytes(
                b'{"error":"no such column"}', content_type=_JSON, status=404, headers=headers
            )
        body = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
        return self.bytes(body, content_type=_JSON, headers=headers)
