"""``driftline alerts forward`` against a real Alertmanager, real webhooks, the real broker.

Alertmanager is Debian's ``prometheus-alertmanager`` run with the deployment's configuration
(``deploy/alertmanager/alertmanager.yml``); its v2 API lists the active alerts, and a
resolved alert is not listed. The forwarder runs as the real CLI subprocess.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import signal
import threading
import time
import uuid

import orjson
import pytest

from driftline.schemas import Alert

pytestmark = pytest.mark.integration


def _alert(model: str, feature: str, status: str, minute: int, **extra) -> Alert:
    stats = {"before": 0.0, "after": 2.0, "p_value": 1e-9}
    if status == "resolved":
        stats = {"reason": "returned_to_reference", "fired_alert_id": extra.pop("fired")}
    return Alert(
        alert_id=uuid.uuid4().hex,
        status=status,
        kind="data_drift",
        severity="critical",
        model=model,
        model_version="v1",
        segment=extra.pop("segment", None),
        feature=feature,
        detector="mean",
        event_time=f"2026-01-01T00:{minute:02d}:00.000000Z",
        window={},
        statistics=stats,
        message=f"Mean of {feature!r} moved up.",
    )


def _metrics(proc) -> dict[tuple[str, frozenset], float]:
    from prometheus_client.parser import text_string_to_metric_families

    got = proc.get("/metrics")
    if got is None:  # not listening yet
        return {}
    assert got[0] == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(got[1].decode())
        for s in family.samples
    }


def _value(proc, name: str, **labels: str) -> float:
    return _metrics(proc).get((name, frozenset(labels.items())), 0.0)


def _incidents(am) -> dict[str, dict]:
    return {a["labels"]["incident"]: a for a in am.alerts()}


def _wait(cond, timeout: float, what: str, *procs) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    logs = "\n".join(p.tail() for p in procs)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def _settles(get, expected, *procs, timeout: float = 20.0) -> None:
    """Wait until ``get()`` equals ``expected``: a forwarder counts a delivery after the
    target answered, so its counters may trail what Alertmanager already shows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and get() != expected:
        time.sleep(0.1)
    assert get() == expected, "\n".join(p.tail() for p in procs)


def _send(kit, lay, *alerts: Alert, raw: tuple[bytes, ...] = ()) -> None:
    messages = [(lay.topics.alerts, a.alert_id.encode(), a.to_json()) for a in alerts]
    kit.produce(lay.bootstrap, messages + [(lay.topics.alerts, None, r) for r in raw])


def test_forward_to_alertmanager_survives_restarts_of_both(
    kit, layout, alertmanager, start_forwarder
):
    am = alertmanager()
    a = _alert("fraud", "amount", "firing", 1, segment={"region": "eu-west"})
    b = _alert("fraud", "distance", "firing", 2)
    b_end = _alert("fraud", "distance", "resolved", 3, fired=b.alert_id)
    # b's resolution and a redelivered copy of a, plus a record that is not an alert.
    _send(kit, layout, a, b, b_end, a, raw=(b"{oops",))
    fwd = start_forwarder(layout, "--alertmanager", am.url, group="g1")
    fwd.wait_ready()
    assert fwd.get("/health")[0] == 200
    _wait(lambda: set(_incidents(am)) == {a.alert_id}, 20, "alert a only", fwd)
    (got,) = am.alerts()
    assert got["labels"] == {
        "alertname": "DriftlineDataDrift",
        "model": "fraud",
        "model_version": "v1",
        "feature": "amount",
        "kind": "data_drift",
        "severity": "critical",
        "detector": "mean",
        "segment_region": "eu-west",
        "incident": a.alert_id,
    }
    assert got["annotations"]["description"] == a.message
    assert got["annotations"]["alert_id"] == a.alert_id
    assert got["startsAt"].startswith("2026-01-01T00:01:00")
    name = "driftline_forward_alerts_total"
    skipped = "driftline_forward_skipped_total"
    _settles(
        lambda: (
            _value(fwd, name, target="alertmanager", status="firing"),
            _value(fwd, name, target="alertmanager", status="resolved"),
            _value(fwd, skipped, reason="duplicate"),
            _value(fwd, skipped, reason="invalid"),
        ),
        (2, 1, 1, 1),
        fwd,
    )

    # Alertmanager down: a new incident waits, retried; after the restart (alerts are kept
    # in memory only) both the open incident and the new one are there.
    am.stop()
    c = _alert("fraud", "channel", "firing", 4)
    _send(kit, layout, c)
    _wait(
        lambda: _value(fwd, "driftline_forward_delivery_failures_total", target="alertmanager"),
        20,
        "a failed delivery",
        fwd,
    )
    am.start()
    _wait(lambda: set(_incidents(am)) == {a.alert_id, c.alert_id}, 20, "a and c", fwd)
    _settles(lambda: _value(fwd, name, target="alertmanager", status="firing"), 3, fwd)

    # The forwarder killed: its successor delivers nothing twice, re-opens nothing, and
    # keeps the open incidents alive; a's resolution then ends a.
    fwd.stop(signal.SIGKILL)
    fwd2 = start_forwarder(layout, "--alertmanager", am.url, group="g1")
    fwd2.wait_ready()
    assert _value(fwd2, name, target="alertmanager", status="firing") == 0
    assert _value(fwd2, "driftline_forward_open_incidents") == 2
    _send(kit, layout, _alert("fraud", "amount", "resolved", 5, fired=a.alert_id))
    _wait(lambda: set(_incidents(am)) == {c.alert_id}, 20, "c only", fwd2)
    # c outlives several hold periods (4 x the 1 s re-send interval) because it is re-sent.
    time.sleep(5)
    assert set(_incidents(am)) == {c.alert_id}
    assert _value(fwd2, "driftline_forward_resent_total") >= 3
    assert am.received("resolved") == 1
    assert _value(fwd2, name, target="alertmanager", status="firing") == 0


class _Hook(http.server.BaseHTTPRequestHandler):
    """Records POSTs; answers 503 to the first ``fail_first`` of them, 400 to a body that
    contains ``reject-me``."""

    received: list[tuple[dict, bytes]]
    fail_first = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        if server.fail_first > 0:
            server.fail_first -= 1
            self.send_response(503)
        elif b"reject-me" in body:
            self.send_response(400)
        else:
            server.received.append((dict(self.headers), body))
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def _hook_server(fail_first: int = 0) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received, server.fail_first = [], fail_first
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_forward_to_webhooks_signed_and_slack(kit, layout, start_forwarder):
    signed, slack = _hook_server(fail_first=2), _hook_server()
    try:
        first = _alert("fraud", "amount", "firing", 1)
        alerts = [first, _alert("fraud", "amount", "resolved", 2, fired=first.alert_id)]
        bad = _alert("fraud", "reject-me", "firing", 3)  # the webhook answers 400: not retried
        _send(kit, layout, *alerts, bad)
        url = "http://127.0.0.1:{}/hook"
        fwd = start_forwarder(
            layout,
            "--webhook",
            url.format(signed.server_address[1]),
            group="g-json",
            env={"DRIFTLINE_WEBHOOK_SECRET": "s3cret"},
        )
        fwd2 = start_forwarder(
            layout,
            "--webhook",
            url.format(slack.server_address[1]),
            "--webhook-format",
            "slack",
            group="g-slack",
        )
        _wait(
            lambda: (
                _value(fwd, "driftline_forward_skipped_total", reason="rejected")
                and _value(fwd2, "driftline_forward_skipped_total", reason="rejected")
            ),
            30,
            "the rejection",
            fwd,
            fwd2,
        )
        assert len(signed.received) == 2 and len(slack.received) == 2
        for (headers, body), alert in zip(signed.received, alerts, strict=True):
            assert orjson.loads(body) == alert.to_dict()
            digest = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
            assert headers["X-Driftline-Signature"] == f"sha256={digest}"
        texts = [orjson.loads(body)["text"] for _, body in slack.received]
        assert texts[0].startswith("[FIRING]") and texts[1].startswith("[RESOLVED]")
        assert "feature=amount" in texts[0] and first.message in texts[0]
        assert "X-Driftline-Signature" not in slack.received[0][0]
        assert _value(fwd, "driftline_forward_delivery_failures_total", target="webhook") == 2
        assert _value(fwd2, "driftline_forward_delivery_failures_total", target="webhook") == 0
        name = "driftline_forward_alerts_total"
        assert _value(fwd, name, target="webhook", status="firing") == 1
        assert _value(fwd, "driftline_forward_skipped_total", reason="rejected") == 1
    finally:
        signed.shutdown()
        slack.shutdown()


def _drifting(drifts: dict[str, tuple[float, float]], n: int, seed: int = 3) -> list[bytes]:
    """``n`` events per model, in two regions; ``x`` shifts by 2 sd over the model's
    ``(start, end)`` fractions of the stream, then returns."""
    import random

    rnd = random.Random(seed)
    out = []
    for i in range(n):
        for model, (start, end) in drifts.items():
            x = rnd.gauss(0, 1) + (2.0 if start * n <= i < end * n else 0.0)
            event = {
                "model": model,
                "timestamp": 1.7e9 + i * 0.5,
                "features": {"x": x, "y": rnd.gauss(0, 1)},
                "segment": {"region": "eu" if i % 2 else "us"},
                "prediction": rnd.random(),
            }
            out.append(orjson.dumps(event))
    return out


def _expected_labels(alert: dict) -> dict[str, str]:
    labels = {
        "alertname": "Driftline" + alert["kind"].title().replace("_", ""),
        "model": alert["model"],
        "kind": alert["kind"],
        "severity": alert["severity"],
        "detector": alert["detector"],
        "feature": alert["feature"],
        "incident": alert["alert_id"],
    }
    for key, value in (alert["segment"] or {}).items():
        labels[f"segment_{key}"] = value
    return labels


def _open_incidents(alerts: list[dict]) -> set[str]:
    ended = {a["statistics"]["fired_alert_id"] for a in alerts if a["status"] == "resolved"}
    return {a["alert_id"] for a in alerts if a["status"] == "firing"} - ended


def test_drifting_stream_through_a_worker_ends_in_alertmanager(
    kit, layout, alertmanager, start_worker, start_forwarder
):
    """Every alert of the stream is active in Alertmanager exactly once and its resolution
    ends it, although Alertmanager was down (and lost its memory) in the middle of the stream,
    while another incident fired."""
    lines = _drifting({"m1": (0.35, 0.6), "m2": (0.55, 1.0)}, 8000)
    expected = kit.replay_alerts(lines)
    fired = {a["alert_id"]: a for a in expected if a["status"] == "firing"}
    ended = {a["statistics"]["fired_alert_id"] for a in expected if a["status"] == "resolved"}
    # m1's drift fires (near event 2800 of 8000) and resolves (near 7200); m2's fires (near
    # 4400) and lasts. Premises, so that a change of the detectors shows here, not as a hang:
    first_of = {}
    for alert in expected:
        if alert["status"] == "firing" and alert["segment"] is None:
            first_of.setdefault(alert["model"], alert["alert_id"])
    m1, m2 = first_of["m1"], first_of["m2"]
    assert m1 in ended and m2 not in ended

    am = alertmanager()
    worker = start_worker(layout)
    fwd = start_forwarder(layout, "--alertmanager", am.url, group="g-e2e")
    worker.wait_ready()
    fwd.wait_ready()
    first, second = 4000 * 2, 6000 * 2  # event 4000 and 6000 of each model

    def publish(part: list[bytes]) -> None:
        kit.produce(layout.bootstrap, kit.keyed(layout.topics.predictions, part))

    def published() -> list[dict]:
        """Every alert on the alerts topic now (one second of reading)."""
        return kit.read_alerts(layout, lambda got: False, 1.0)

    publish(lines[:first])
    _wait(lambda: m1 in _incidents(am), 60, "m1's alert", fwd, worker)
    am.stop()
    publish(lines[first:second])
    worker.wait_events(second)
    kit.read_alerts(layout, lambda got: m2 in {a["alert_id"] for a in got}, 60)
    failures = "driftline_forward_delivery_failures_total"
    _wait(lambda: _value(fwd, failures, target="alertmanager"), 20, "a failed delivery", fwd)
    am.start()

    def restored() -> bool:
        now_open = _open_incidents(published())
        return {m1, m2} <= now_open and set(_incidents(am)) == now_open

    _wait(
        restored,
        30,
        "the open incidents restored and the new one delivered",
        fwd,
    )
    resolved_before = sum(a["status"] == "resolved" for a in published())
    for incident, alert in _incidents(am).items():
        assert alert["labels"] == _expected_labels(fired[incident])

    publish(lines[second:])
    final = set(fired) - ended
    _wait(lambda: set(_incidents(am)) == final, 60, "the end state", fwd, worker)
    active = am.alerts()
    assert len(active) == len(final), "each incident active once"
    for alert in active:
        incident = alert["labels"]["incident"]
        assert alert["labels"] == _expected_labels(fired[incident])
        assert alert["annotations"]["description"] == fired[incident]["message"]
    resolved_later = len(ended) - resolved_before
    assert resolved_later >= 1, "m1's resolution reaches the restarted Alertmanager"
    name = "driftline_forward_alerts_total"
    _settles(
        lambda: (
            am.received("resolved"),
            _value(fwd, name, target="alertmanager", status="firing"),
            _value(fwd, name, target="alertmanager", status="resolved"),
        ),
        (resolved_later, len(fired), len(ended)),
        fwd,
    )


def _certificates(openssl: str, where) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made by openssl."""
    import subprocess

    def run(*argv: str) -> None:
        subprocess.run([openssl, *argv], cwd=where, check=True, capture_output=True, timeout=60)

    key = ["-newkey", "rsa:2048", "-nodes"]
    run(
        "req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=ca"
    )
    (where / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        run("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        sign = ["x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key"]
        sign += ["-CAcreateserial", "-out", f"{name}.crt", "-days", "1"]
        run(*sign, *(["-extfile", "san.ext"] if name == "server" else []))
    names = ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")
    return {name: str(where / name) for name in names}


def test_forward_over_mutual_tls(kit, layout, alertmanager, start_forwarder, program, tmp_path):
    """An Alertmanager that requires a client certificate signed by the test CA."""
    import ssl

    files = _certificates(program("openssl"), tmp_path)
    web = tmp_path / "web.yml"
    web.write_text(
        "tls_server_config:\n"
        f"  cert_file: {files['server.crt']}\n"
        f"  key_file: {files['server.key']}\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        f"  client_ca_file: {files['ca.crt']}\n"
    )
    client = ssl.create_default_context(cafile=files["ca.crt"])
    client.load_cert_chain(files["client.crt"], files["client.key"])
    am = alertmanager(web_config=str(web), tls=client)
    assert am.url.startswith("https://")
    firing = _alert("fraud", "amount", "firing", 1)
    _send(kit, layout, firing)
    cert = ["--tls-cert-file", files["client.crt"], "--tls-key-file", files["client.key"]]
    target = ["--alertmanager", am.url]
    verified = start_forwarder(layout, *target, "--tls-ca-file", files["ca.crt"], *cert, group="a")
    no_client_cert = start_forwarder(layout, *target, "--tls-ca-file", files["ca.crt"], group="b")
    unverified = start_forwarder(layout, *target, *cert, "--tls-insecure-skip-verify", group="c")
    no_ca = start_forwarder(layout, *target, *cert, group="d")
    _wait(lambda: set(_incidents(am)) == {firing.alert_id}, 30, "the alert over TLS", verified)
    name, failures = "driftline_forward_alerts_total", "driftline_forward_delivery_failures_total"
    for proc in (verified, unverified):
        _wait(lambda p=proc: _value(p, name, target="alertmanager", status="firing"), 20, "", proc)
    for proc in (no_client_cert, no_ca):  # refused, retried, never delivered
        _wait(lambda p=proc: _value(p, failures, target="alertmanager") >= 2, 20, "fails", proc)
        assert _value(proc, name, target="alertmanager", status="firing") == 0
