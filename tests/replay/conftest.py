"""Fixtures of the replay tests: the bundled sample, small slices of it, a CLI runner."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from driftline.replay import sample_path

DATA = Path(__file__).with_name("data")
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    """Outcome of one ``driftline`` invocation."""

    status: int
    stdout: bytes
    stderr: str


@pytest.fixture(scope="session")
def sample_lines() -> list[bytes]:
    """The bundled sample's lines (about 24k events, drift from 60% of the time range)."""
    with gzip.open(sample_path(), "rb") as fh:
        return fh.readlines()


@pytest.fixture(scope="session")
def sample_plain(tmp_path_factory: pytest.TempPathFactory, sample_lines: list[bytes]) -> Path:
    """The bundled sample, uncompressed."""
    path = tmp_path_factory.mktemp("sample") / "sample.jsonl"
    path.write_bytes(b"".join(sample_lines))
    return path


@pytest.fixture
def bad_lines_file() -> Path:
    """A hand-made file of 12 lines: 4 events, 1 blank line and 7 bad lines (see test)."""
    return DATA / "bad_lines.jsonl"


def _run_cli(*args: str | os.PathLike[str], stdin: bytes | None = None) -> Run:
    proc = subprocess.run(
        [sys.executable, "-m", "driftline.streams.cli", *map(str, args)],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))


@pytest.fixture
def cli() -> Callable[..., Run]:
    """Run the real ``driftline`` command in a subprocess (exit status, stdout, stderr)."""
    return _run_cli


@pytest.fixture(scope="session")
def sample_run(sample_plain: Path) -> Run:
    """``driftline replay SAMPLE --out -`` once per session: the reference alerts and summary."""
    run = _run_cli("replay", sample_plain, "--out", "-")
    assert run.status == 0, run.stderr
    return run
