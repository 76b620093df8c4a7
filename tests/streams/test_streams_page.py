"""The live page and the replay report in a real browser (Debian's chromium via Playwright).

End to end: a worker on the embedded broker reads a drifting stream; its page shows the alert
and marks the drifting feature, with no console error; the report of the same log opens from
a file and lists the same alerts. Every request either page makes must stay on the machine
(loopback for the page, ``file:`` for the report). Screenshots are written under the test's
tmp dir and their paths printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _chromium() -> str:
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if path:
        return path
    why = "chromium is not installed (make system-deps installs it on Debian)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture
def browser():
    """Opens a headless chromium (the system's: Playwright cannot download its own here).

    A context manager, entered only once the test is done with asyncio (the Kafka helpers):
    Playwright's sync API keeps an event loop running in the thread while it is open.
    """
    exe = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("playwright is not installed (the dev extra has it)")
        pytest.skip("playwright is not installed (the dev extra has it)")

    @contextlib.contextmanager
    def open_browser():
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
            try:
                yield b
            finally:
                b.close()

    return open_browser


class Watched:
    """A page with its console errors and every URL it requested."""

    def __init__(self, browser) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 900})
        self.errors: list[str] = []
        self.urls: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else 0)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.urls.append(r.url))

    def hosts(self) -> set[tuple[str, str]]:
        return {(urlsplit(u).scheme, urlsplit(u).hostname or "") for u in self.urls}


def _ready(w: Watched) -> None:
    """Wait for the first render; on a time-out say what the page said."""
    try:
        w.page.wait_for_selector("body[data-ready='1']", state="attached", timeout=15_000)
    except Exception as exc:
        raise AssertionError(f"page not ready: {w.errors} {w.page.inner_text('#err')}") from exc


def _shot(w: Watched, path: Path) -> None:
    w.page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def test_page_and_report_show_the_drift(layout, start_worker, kit, browser, tmp_path):
    from driftline.replay import replay_files

    lines = kit.drifting_events(["shop"], 4000)
    expected = [a for a in kit.replay_alerts(lines) if a["status"] == "firing"]
    assert {a["feature"] for a in expected} >= {"x", "y"}, "the stream must drift"
    worker = start_worker(layout)
    kit.produce(layout.bootstrap, kit.keyed(layout.topics.predictions, lines))
    ids = {a["alert_id"] for a in expected}
    kit.read_alerts(layout, lambda got: ids <= {a["alert_id"] for a in got}, timeout=90)
    worker.wait_events(len(lines))
    n_alerts = len(kit.replay_alerts(lines))
    log = tmp_path / "drift.jsonl"
    log.write_bytes(b"\n".join(lines) + b"\n")
    report = tmp_path / "report.html"
    with tempfile.TemporaryFile() as sink:
        replay_files([str(log)], sink, progress=False, report=report)
    # a column that does not exist, a request without one: a clear error, not a crash
    status, body = worker.get("/page/feature.json?model=shop&stream=-&name=nope")
    assert status == 404 and b"no such column" in body
    assert worker.get("/page/feature.json?model=shop")[0] == 400
    with browser() as b:
        _check_page(b, worker.port, expected, tmp_path)
        _check_report(b, report, expected, n_alerts, tmp_path)


def _check_page(browser, port: int, expected: list[dict], tmp_path: Path) -> None:
    live = Watched(browser)
    response = live.page.goto(f"http://127.0.0.1:{port}/")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    _ready(live)
    # the drifting features are marked and the page lists the alerts, with their messages
    live.page.wait_for_selector("#features tr[data-f='x'][data-state='firing']", timeout=15_000)
    assert live.page.get_attribute("#features tr[data-f='z']", "data-state") == "ok"
    shown = live.page.inner_text("#alerts tbody")
    for a in expected:
        assert a["message"] in shown
    # the selected feature's charts: distributions, the statistic with its threshold, alerts
    live.page.click("#features tr[data-f='x']")
    live.page.wait_for_selector("#detail svg line.threshold", state="attached", timeout=10_000)
    assert live.page.locator("#detail svg line.alert-mark").count() >= 1
    live.page.wait_for_timeout(2500)  # one poll in place, without errors
    assert live.page.locator("#features tr[data-f='x']").count() == 1
    _shot(live, tmp_path / "page.png")
    assert live.errors == []
    assert {h for s, h in live.hosts()} <= _LOOPBACK, live.urls
    assert any("/page/data.json" in u for u in live.urls) and any(
        "/page/feature.json" in u for u in live.urls
    )


def _check_report(browser, report: Path, expected: list, n_alerts: int, tmp_path: Path) -> None:
    rep = Watched(browser)
    rep.page.goto(report.as_uri())
    _ready(rep)
    rep.page.wait_for_selector("#features tr[data-f='x'][data-state='firing']", timeout=5_000)
    rows = rep.page.inner_text("#alerts tbody")
    for a in expected:
        assert a["message"] in rows
    assert rep.page.locator("#alerts tbody tr").count() == n_alerts
    rep.page.click("#features tr[data-f='y']")
    rep.page.wait_for_selector("#detail svg line.alert-mark", state="attached", timeout=5_000)
    assert rep.page.inner_text("#badcount") == "0"
    _shot(rep, tmp_path / "report.png")
    assert rep.errors == []
    assert {s for s, _ in rep.hosts()} == {"file"}, rep.urls


def test_demo_keep_serves_the_page_until_ctrl_c(browser, tmp_path):
    """``driftline demo --keep``: prints the page, keeps it up, stops everything on Ctrl-C."""
    import re
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    import orjson

    demo = subprocess.Popen(
        [sys.executable, "-m", "driftline.streams.cli", "demo", "--keep", "--timeout", "90"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    out: list[str] = []
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            out.append(line)
            if line.startswith("keeping"):
                break
        text = "".join(out)
        assert out and out[-1].startswith("keeping"), text[-3000:]
        url = re.search(r"^page\s+(http://127\.0\.0\.1:\d+/)", text, re.M).group(1)
        worker_pid = int(re.search(r"^worker\s+pid (\d+)", text, re.M).group(1))
        with urllib.request.urlopen(url + "page/data.json?model=fraud", timeout=5) as r:
            doc = orjson.loads(r.read())
        assert doc["selected"] == "fraud"
        models = {m["model"]: m for m in doc["models"]}
        assert set(models) == {"fraud", "eta"}
        firing = {
            row["name"]
            for s in models["fraud"]["streams"]
            for row in s["rows"]
            if row["state"] == "firing" and s["segment"] is None
        }
        assert {"distance_km", "channel"} <= firing
        with browser() as b:
            w = Watched(b)
            w.page.goto(url)
            _ready(w)
            w.page.click("#models tr[data-m='fraud']")
            w.page.wait_for_selector("#features tr[data-f='distance_km'][data-state='firing']")
            w.page.click("#features tr[data-f='distance_km']")
            w.page.wait_for_selector("#detail svg line.threshold", state="attached")
            _shot(w, tmp_path / "demo-page.png")
            assert w.errors == []
            assert {h for _, h in w.hosts()} <= _LOOPBACK, w.urls
        assert demo.poll() is None, "the stack stays up"
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=60)
        assert demo.returncode == 0, rest[-2000:]
        assert "stopping the worker and the broker" in rest
        with pytest.raises(ProcessLookupError):
            for _ in range(50):
                os.kill(worker_pid, 0)  # gone (not even a zombie: the demo reaped it)
                time.sleep(0.1)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()


def test_report_shows_hostile_names_as_text(browser, tmp_path):
    """Feature names and messages are data: the page escapes them, nothing runs."""
    import orjson

    from driftline.replay import replay_files

    evil = '<img src=x onerror="document.title=1">'
    log = tmp_path / "evil.jsonl"
    log.write_bytes(
        b"\n".join(
            orjson.dumps(
                {
                    "model": "m</script><b>",
                    "timestamp": 1.7e9 + i,
                    "features": {evil: float(i % 7), "ok": 1.0},
                    "prediction": 0.5,
                }
            )
            for i in range(600)
        )
        + b"\n"
    )
    report = tmp_path / "evil.html"
    with tempfile.TemporaryFile() as sink:
        replay_files([str(log)], sink, progress=False, report=report)
    with browser() as b:
        w = Watched(b)
        w.page.goto(report.as_uri())
        _ready(w)
        assert evil in w.page.inner_text("#features tbody")
        assert "m</script><b>" in w.page.inner_text("#models tbody")
        assert w.page.locator("img").count() == 0 and w.page.locator("#models b").count() == 0
        assert w.page.locator("script").count() == 2  # the embedded document and the code
        assert w.page.title() == "driftline"
        assert w.errors == []
