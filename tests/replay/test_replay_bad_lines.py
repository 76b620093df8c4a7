"""Bad lines are skipped, counted and named by line number; ``--strict`` stops at the first.

The fixture ``data/bad_lines.jsonl`` has, by line: 1 a prediction, 2 not JSON, 3 an array,
4 a label, 5 blank, 6 an unparseable timestamp, 7 no model, 8 truncated JSON, 9 invalid
UTF-8, 10 a prediction, 11 a JSON string, 12 a prediction.
"""

from __future__ import annotations

import re

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.replay import replay_files
from driftline.replay._badlines import BadLineLog
from driftline.replay._decode import decode_batches
from driftline.replay.exceptions import InputError

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


_GOOD = [
    b'{"model":"m","timestamp":1772323200.5,"features":{"x":1.5,"c":"a"},"prediction":0.2}\n',
    b'{"model":"m","timestamp":"2026-03-01T00:00:01Z","prediction_id":"p1","label":1}\n',
    b'{"type":"feature","model":"n","timestamp":1772323201000,"features":{"y":null}}\n',
]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(_GOOD).map(lambda line: (line, True)),
            st.binary(max_size=60).map(lambda b: (b.replace(b"\n", b" ") + b"\n", None)),
            st.recursive(
                st.none()
                | st.booleans()
                | st.integers(-(2**63), 2**63 - 1)
                | st.floats()
                | st.text(max_size=8),
                lambda inner: (
                    st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=3)
                ),
                max_leaves=6,
            ).map(lambda v: (orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS) + b"\n", None)),
        ),
        min_size=1,
        max_size=40,
    ),
    st.integers(min_value=1, max_value=8),
)
def test_any_bytes_are_counted_never_raised(items, batch_size):
    """Arbitrary lines never stop a replay: every line is an event, blank, or counted bad."""
    lines = [line for line, _ in items]
    bad = BadLineLog(show=0)
    try:
        batches = list(decode_batches(lines, "fuzz", bad, batch_size))
    except InputError:  # only when no line holds anything
        assert all(not line.strip() for line in lines)
        return
    events = [e for batch, _ in batches for e in batch]
    raws = [r for _, batch_raws in batches for r in batch_raws]
    assert all(len(batch) <= batch_size for batch, _ in batches)
    blank = sum(1 for line in lines if not line.strip())
    assert len(events) + bad.count + blank == len(lines)
    assert raws == [line for line in lines if line in raws], "events keep their order"
    for line, known_good in items:
        if known_good:
            assert line in raws
