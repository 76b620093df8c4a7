"""Bad lines are skipped, counted and named by line number; ``--strict`` stops at the first.

The fixture ``data/bad_lines.jsonl`` has, by line: 1 a prediction, 2 not JSON, 3 an array,
4 a label, 5 blank, 6 an unparseable timestamp, 7 no model, 8 truncated JSON, 9 invalid
UTF-8, 10 a prediction, 11 a JSON string, 12 a prediction.
"""

from __future__ import annotations

import re

from driftline.replay import replay_files
from driftline.replay._badlines import BadLineLog
from driftline.replay._decode import decode_batches

BAD = {
    2: "not JSON",
    3: "not an object",
    6: "contract: timestamp",
    7: "contract: model",
    8: "not JSON",
    9: "not JSON",
    11: "not an object",
}


def _reported_lines(stderr: str, name: str) -> list[int]:
    return [int(n) for n in re.findall(rf"^{re.escape(name)}:(\d+): ", stderr, re.M)]


def test_bad_lines_are_reported_with_line_numbers(cli, bad_lines_file, tmp_path):
    out = tmp_path / "alerts.jsonl"
    run = cli("replay", bad_lines_file, "--out", out)
    assert run.status == 0, run.stderr
    assert _reported_lines(run.stderr, str(bad_lines_file)) == sorted(BAD)
    assert "Traceback" not in run.stderr
    assert "replayed 4 events" in run.stderr
    assert "events: label 1, prediction 3" in run.stderr
    assert "invalid lines: 7 (" in run.stderr
    assert out.exists()


def test_reasons_are_classified(bad_lines_file):
    bad = BadLineLog(show=100)
    with open(bad_lines_file, "rb") as fh:
        events = [e for batch, _ in decode_batches(fh, "f", bad, 3) for e in batch]
    assert len(events) == 4
    assert [b.line for b in bad.first] == sorted(BAD)
    expected: dict[str, int] = {}
    for reason in BAD.values():
        expected[reason] = expected.get(reason, 0) + 1
    assert dict(bad.by_reason) == expected
    by_line = {b.line: b.reason for b in bad.first}
    assert "UTF-8" in by_line[9]
    assert "timestamp" in by_line[6]


def test_only_the_first_bad_lines_are_shown(cli, tmp_path, sample_lines):
    path = tmp_path / "noisy.jsonl"
    lines = list(sample_lines[:200])
    for i in range(0, 200, 10):  # 20 bad lines at 1, 11, 21, ...
        lines[i] = b"{broken\n"
    path.write_bytes(b"".join(lines))
    run = cli("replay", path, "--show-bad", "3", "--out", "-")
    assert run.status == 0, run.stderr
    assert _reported_lines(run.stderr, str(path)) == [1, 11, 21]
    assert "17 more bad line(s) not shown" in run.stderr
    assert "invalid lines: 20 (not JSON 20)" in run.stderr
    assert "replayed 180 events" in run.stderr


def test_strict_stops_at_the_first_bad_line(cli, bad_lines_file, tmp_path):
    out = tmp_path / "alerts.jsonl"
    run = cli("replay", bad_lines_file, "--strict", "--out", out)
    assert run.status == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert f"{bad_lines_file}:2:" in lines[0]
    assert not out.exists()


def test_summary_counts_match_the_api(bad_lines_file, tmp_path):
    shown: list[str] = []
    summary = replay_files([str(bad_lines_file)], tmp_path / "a.jsonl", echo=shown.append)
    assert summary.events == 4
    assert summary.events_by_kind == {"label": 1, "prediction": 3}
    assert summary.invalid_lines == len(BAD)
    assert [b.line for b in summary.first_invalid] == sorted(BAD)
    assert len(shown) == len(BAD)
