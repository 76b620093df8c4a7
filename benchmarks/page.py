"""The live page and the replay report: build times, sizes, time to a rendered page.

    .venv/bin/python benchmarks/page.py [--quick] [--events N] [--repeat R] [--no-browser]

(a) page JSON: a monitor holding 50 models x 20 features (14 numeric, 6 categorical, plus
    the prediction and latency outputs), every reference complete; the time to build
    ``page/data.json`` (``LivePage.document`` + ``orjson.dumps``, best of ``--repeat``: every
    model's summary and one model's columns, as the page polls it), its size, and one
    feature's ``page/feature.json``; the same at 50 models x 200 features.
(b) page ready: Debian's chromium (Playwright) opens the page served from a local HTTP
    server with that JSON, until the first render is complete (``body[data-ready]``): the
    time from navigation, plus the JSON's build time from (a) = what a person waits for on a
    worker of that size. Also the time of one update (fetching and parsing the poll's JSON,
    re-rendering the column table of the model on screen).
(c) report: ``replay_files`` over a generated log of ``--events`` events (the sample's
    generator: two models, 16 features, labels for a third of the predictions) without and
    with ``report=``, interleaved, best of ``--repeat``; the report's share of the replay
    time and its size.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import orjson
from _machine import describe

from driftline.detectors import DetectionConfig, Monitor
from driftline.replay import replay_files
from driftline.replay._sample import write_sample
from driftline.schemas import PredictionEvent, page_html
from driftline.streams._livepage import LivePage


def monitor_of(models: int, features: int, events: int = 2560) -> Monitor:
    """A monitor with ``models`` x ``features`` live features (references complete)."""
    mon = Monitor(DetectionConfig())
    rng = np.random.default_rng(7)
    n_cat = features * 3 // 10
    names = [f"f{i:03d}" for i in range(features)]
    letters = np.array(list("abcdef"))
    for m in range(models):
        cols = [letters[rng.integers(0, 6, events)].tolist() for _ in range(n_cat)]
        cols += rng.normal(size=(features - n_cat, events)).tolist()
        rows = list(zip(*cols, strict=True))
        preds, lat = rng.random(events).tolist(), rng.uniform(5, 50, events).tolist()
        mon.process(
            [
                PredictionEvent(
                    model=f"model-{m:02d}",
                    timestamp=1.7e9 + i,
                    features=dict(zip(names, rows[i], strict=True)),
                    prediction=preds[i],
                    latency_ms=lat[i],
                )
                for i in range(events)
            ]
        )
    return mon


def best(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def page_json(models: int, features: int, repeat: int) -> tuple[float, bytes]:
    t = time.perf_counter()
    mon = monitor_of(models, features)
    setup = time.perf_counter() - t
    page = LivePage(mon)
    build, body = best(lambda: orjson.dumps(page.document()), repeat)
    stream = mon.page_view("model-00")[0]["key"]
    detail, det = best(lambda: orjson.dumps(page.detail("model-00", stream, "f010")), repeat)
    every, _ = best(lambda: orjson.dumps([mon.page_view(m) for m in mon.models()]), repeat)
    print(
        f"  {models} models x {features} features: data.json built in {build * 1000:.1f} ms, "
        f"{len(body) / 1024:.0f} KiB; feature.json {detail * 1000:.2f} ms, "
        f"{len(det) / 1024:.1f} KiB; every model's columns at once {every * 1000:.0f} ms "
        f"(set-up {setup:.1f} s)"
    )
    return build, body


def serve(body: bytes) -> ThreadingHTTPServer:
    """``/`` and ``page/data.json`` (``body``) on a free loopback port, in a thread."""
    html = page_html()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/":
                data, kind = html, "text/html"
            elif self.path.startswith("/page/data.json"):
                data, kind = body, "application/json"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def page_ready(body: bytes, build: float, label: str, repeat: int) -> None:
    from playwright.sync_api import sync_playwright

    server = serve(body)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            ready, update = [], []
            for _ in range(repeat):
                page = b.new_page(viewport={"width": 1400, "height": 900})
                t = time.perf_counter()
                page.goto(url)
                page.wait_for_selector("body[data-ready='1']", state="attached")
                ready.append(time.perf_counter() - t)
                # one update: fetch + parse the poll's JSON, re-render the model's column table
                ms = page.evaluate(
                    "() => { const t = performance.now(); return fetch('page/data.json')"
                    ".then(r => r.json()).then(d => { document.querySelector("
                    "'#features th[data-k=name]').click(); return performance.now() - t; }); }"
                )
                update.append(ms / 1000)
                page.close()
            b.close()
    finally:
        server.shutdown()
    print(
        f"  {label}: page ready {min(ready) * 1000:.0f} ms after navigation "
        f"(+ {build * 1000:.0f} ms to build its JSON = {(min(ready) + build) * 1000:.0f} ms); "
        f"an update (fetch + parse + re-render of the columns) {min(update) * 1000:.0f} ms"
    )


def report_cost(events: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "log.jsonl")
        # about 3 prediction lines in 4 (a third of the predictions get a label)
        n = write_sample(log, n_predictions=events * 3 // 4, segments=False)
        report = Path(tmp) / "report.html"
        plain, with_report, own = [], [], []
        for _ in range(repeat):
            t = time.perf_counter()
            replay_files([log], os.devnull, progress=False)
            plain.append(time.perf_counter() - t)
            t = time.perf_counter()
            summary = replay_files([log], os.devnull, progress=False, report=report)
            with_report.append(time.perf_counter() - t)
            own.append(summary.report_seconds)
        a, b, c = min(plain), min(with_report), min(own)
        print(
            f"  {n:,} events: replay {a:.2f} s; the report's own work (sampling, document, "
            f"file) {c:.2f} s = {c / a:.1%} of the replay time (wall clock with --report "
            f"{b:.2f} s, {(b - a) / a:+.1%}); report size {report.stat().st_size / 1e6:.2f} MB"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200k events, one repeat")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.events, args.repeat = 200_000, 1
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {describe()}; load average at start {load} (shared machine)")
    print("(a) page JSON")
    build, body = page_json(50, 20, args.repeat)
    build_big, body_big = page_json(50, 200, args.repeat)
    if not args.no_browser:
        print("(b) page ready in chromium")
        page_ready(body, build, "50 x 20", args.repeat)
        page_ready(body_big, build_big, "50 x 200", args.repeat)
    print("(c) replay report")
    report_cost(args.events, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
