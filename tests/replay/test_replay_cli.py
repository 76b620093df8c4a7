"""The ``driftline replay`` command line: where output goes, the summary, the progress bar."""

from __future__ import annotations

import socket

from driftline.schemas import Alert


def test_alerts_on_stdout_summary_on_stderr(cli, sample_plain, sample_run, tmp_path):
    run = cli("replay", sample_plain)  # --out defaults to standard output
    assert run.status == 0, run.stderr
    assert run.stdout == sample_run.stdout
    alerts = [Alert.from_json(line) for line in run.stdout.splitlines()]
    assert alerts
    assert "replayed 23,985 events from 1 input(s)" in run.stderr
    assert "events: label 5,985, prediction 18,000" in run.stderr
    assert f"alerts: {len(alerts)}" in run.stderr
    assert "events/s" in run.stderr
    assert "\r" not in run.stderr, "no progress bar when stderr is not a terminal"
    out = tmp_path / "alerts.jsonl"
    to_file = cli("replay", sample_plain, "--out", out)
    assert to_file.stdout == b""
    assert out.read_bytes() == run.stdout


def test_summary_names_alert_features(sample_run):
    run = sample_run
    for alert in (Alert.from_json(line) for line in run.stdout.splitlines()):
        assert f"{alert.kind}" in run.stderr
        assert f"{alert.feature or '-'}: " in run.stderr


def test_progress_bar_can_be_forced_and_quiet_silences(cli, sample_plain, sample_run):
    forced = cli("replay", sample_plain, "--progress", "--out", "-")
    assert forced.status == 0
    assert " ev/s" in forced.stderr and "alerts=" in forced.stderr
    quiet = cli("replay", sample_plain, "--quiet", "--out", "-")
    assert quiet.status == 0
    assert quiet.stderr == ""
    assert quiet.stdout == forced.stdout == sample_run.stdout


def test_bad_config_is_one_line_exit_2(cli, sample_plain, tmp_path):
    missing = cli("replay", sample_plain, "--config", tmp_path / "nope.toml")
    assert missing.status == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert "nope.toml" in missing.stderr and "Traceback" not in missing.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("this is = = not toml\n")
    run = cli("replay", sample_plain, "--config", broken)
    assert run.status == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_argument_errors(cli, sample_plain):
    assert cli("replay", sample_plain, "--publish", "--speed", "0").status == 2
    assert cli("replay", sample_plain, "--batch-size", "0").status == 2
    run = cli("replay", sample_plain, "--publish", "--out", "x.jsonl")
    assert run.status == 2 and "--out" in run.stderr


def test_publish_to_unreachable_broker_is_exit_2(cli, sample_plain):
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run = cli("replay", sample_plain, "--publish", "--broker", f"127.0.0.1:{port}")
    assert run.status == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert f"127.0.0.1:{port}" in run.stderr
