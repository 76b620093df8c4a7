"""Input formats and unusable inputs, through the real command line.

Every unusable input must end in one line on stderr and exit status 2, never a traceback,
and must not leave an alerts file behind.
"""

from __future__ import annotations

import gzip

import pytest


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def test_plain_gzip_and_stdin_give_identical_alerts(cli, sample_plain, sample_run, tmp_path):
    data = sample_plain.read_bytes()
    gz = tmp_path / "sample.jsonl.gz"
    gz.write_bytes(_gzip(data))
    plain = sample_run
    assert plain.stdout.count(b"\n") > 0, "the sample's injected drift must raise alerts"
    for args, stdin in [((gz,), None), (("-",), data), (("-",), _gzip(data))]:
        run = cli("replay", *args, "--out", "-", stdin=stdin)
        assert run.status == 0, run.stderr
        assert run.stdout == plain.stdout, args


def test_several_inputs_are_one_stream(cli, sample_lines, sample_run, tmp_path):
    half = len(sample_lines) // 2
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl.gz"
    first.write_bytes(b"".join(sample_lines[:half]))
    second.write_bytes(_gzip(b"".join(sample_lines[half:])))
    whole = sample_run
    split = cli("replay", first, second, "--out", "-")
    assert split.status == 0, split.stderr
    assert split.stdout == whole.stdout


def _assert_one_line_error(run, *fragments: str) -> None:
    assert run.status == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("empty.jsonl", b"", "empty input"),
        ("blank.jsonl", b"\n  \n\n", "empty input"),
        ("empty.jsonl.gz", _gzip(b""), "empty input"),
        ("truncated.jsonl.gz", None, "corrupt gzip stream"),
        ("garbage.jsonl.gz", b"\x1f\x8b\x08\x00garbage-after-the-magic" * 4, "corrupt gzip"),
        ("misnamed.jsonl.gz", b'{"model": "m"}\n', "not a gzip file"),
    ],
)
def test_unusable_input_is_one_line_and_exit_2(
    cli, sample_lines, tmp_path, name, content, fragment
):
    path = tmp_path / name
    if content is None:  # a gzip stream cut in the middle, as by a full disk
        content = _gzip(b"".join(sample_lines[:3000]))[:-5000]
    path.write_bytes(content)
    out = tmp_path / "alerts.jsonl"
    run = cli("replay", path, "--out", out)
    _assert_one_line_error(run, name, fragment)
    assert not out.exists(), "a failed replay must not leave an alerts file"
    assert not list(tmp_path.glob(".alerts.jsonl.*")), "temporary file left behind"


def test_missing_file_and_directory(cli, sample_plain, tmp_path):
    missing = tmp_path / "nope.jsonl"
    run = cli("replay", sample_plain, missing, "--out", tmp_path / "a.jsonl")
    _assert_one_line_error(run, "nope.jsonl", "No such file")
    run = cli("replay", tmp_path, "--out", "-")
    _assert_one_line_error(run, "is a directory")


def test_empty_stdin(cli):
    _assert_one_line_error(cli("replay", "-", stdin=b""), "<stdin>", "empty input")


def test_failed_run_keeps_previous_alerts_file(cli, tmp_path):
    out = tmp_path / "alerts.jsonl"
    out.write_bytes(b"previous run\n")
    run = cli("replay", tmp_path / "missing.jsonl", "--out", out)
    assert run.status == 2
    assert out.read_bytes() == b"previous run\n"


def test_unwritable_output_is_exit_2(cli, sample_plain, tmp_path):
    run = cli("replay", sample_plain, "--out", tmp_path / "no-such-dir" / "alerts.jsonl")
    _assert_one_line_error(run, "cannot write")


def test_parquet_needs_pyarrow_or_reads_rows(cli, tmp_path, sample_lines):
    """Parquet is optional: with pyarrow it replays like JSON Lines, without it exit 2."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        path = tmp_path / "x.parquet"
        path.write_bytes(b"PAR1 not really parquet PAR1")
        _assert_one_line_error(cli("replay", path), "needs pyarrow")
        return
    import orjson

    # One model's predictions: a Parquet struct column has one set of fields for all rows.
    lines = [line for line in sample_lines if b'"fraud"' in line and b"features" in line]
    rows = [orjson.loads(line) for line in lines]
    path = tmp_path / "x.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    plain = tmp_path / "x.jsonl"
    plain.write_bytes(b"".join(lines))
    from_parquet = cli("replay", path, "--out", "-")
    from_jsonl = cli("replay", plain, "--out", "-")
    assert from_parquet.status == 0, from_parquet.stderr
    assert f"replayed {len(lines):,} events" in from_parquet.stderr
    assert from_parquet.stdout and from_parquet.stdout == from_jsonl.stdout  # the drift's alerts
    # features as a Parquet map column (any keys per row) rather than a struct
    feature_type = pa.map_(pa.string(), pa.float64())
    numeric = [
        {**r, "features": {k: float(v) for k, v in r["features"].items() if type(v) is float}}
        for r in rows
    ]
    table = pa.Table.from_pylist(numeric)
    table = table.set_column(
        table.schema.get_field_index("features"),
        "features",
        pa.array([list(r["features"].items()) for r in numeric], type=feature_type),
    )
    mapped = tmp_path / "map.parquet"
    pq.write_table(table, mapped)
    plain_numeric = tmp_path / "numeric.jsonl"
    plain_numeric.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in numeric))
    from_map = cli("replay", mapped, "--out", "-")
    assert from_map.status == 0 and "invalid lines: 0" in from_map.stderr, from_map.stderr
    assert from_map.stdout == cli("replay", plain_numeric, "--out", "-").stdout


def test_crlf_lines_are_accepted(cli, sample_lines, tmp_path):
    path = tmp_path / "dos.jsonl"
    path.write_bytes(b"".join(line.rstrip(b"\n") + b"\r\n" for line in sample_lines[:500]))
    run = cli("replay", path, "--out", "-")
    assert run.status == 0, run.stderr
    assert "replayed 500 events" in run.stderr
    assert "invalid lines: 0" in run.stderr


def test_output_to_a_named_pipe_is_written_in_place(cli, sample_plain, sample_run, tmp_path):
    """Special files (/dev/null, FIFOs) are written to, never renamed over."""
    import os
    import stat
    import threading

    fifo = tmp_path / "alerts.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    run = cli("replay", sample_plain, "--out", fifo)
    reader.join(timeout=60)
    assert run.status == 0, run.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    expected = sample_run.stdout
    assert received == [expected] and expected
