"""Opening replay inputs: plain or gzipped JSON Lines, standard input, Parquet.

Inputs are checked before anything is replayed (a typo in the third file name should not
cost a ten-minute run), then opened one at a time and read as a stream of raw lines, so
memory stays bounded whatever the size of the file. Compression is recognised by the gzip
magic bytes rather than by the file name, so ``zcat``-less pipes (``cat x.gz | driftline
replay -``) and misnamed files work too.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import sys
import warnings
import zlib
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import BinaryIO

import orjson

from driftline.replay.exceptions import InputError

__all__ = ["READ_ERRORS", "STDIN", "check_inputs", "display_name", "open_lines", "read_failure"]

STDIN = "-"
_BUFFER = 1 << 20  # big reads: one syscall per MiB, not per 8 KiB
_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"
# What a damaged gzip stream raises while it is being read: BadGzipFile (an OSError) for a
# bad header, EOFError for a truncated stream, zlib.error for corrupt deflate data.
READ_ERRORS = (OSError, EOFError, zlib.error)


def display_name(path: str) -> str:
    """The name used in messages: the path as given, ``<stdin>`` for ``-``."""
    return "<stdin>" if path == STDIN else path


def check_inputs(paths: Iterable[str]) -> list[str]:
    """Check that every input exists, is a readable file and is not empty.

    Parameters
    ----------
    paths : iterable of str
        File paths, or ``-`` (at most once) for standard input.

    Returns
    -------
    list of str
        The paths, in order.

    Raises
    ------
    InputError
        On the first input that cannot be replayed, with a one-line reason.
    """
    checked = list(paths)
    if not checked:
        raise InputError("no input given")
    if checked.count(STDIN) > 1:
        raise InputError("standard input ('-') can be given only once")
    for path in checked:
        if path == STDIN:
            continue
        if os.path.isdir(path):
            raise InputError(f"{path}: is a directory")
        with open_lines(path):
            pass  # opening reads the head: missing, unreadable, empty, bad gzip header
    return checked


def read_failure(name: str, line: int, exc: BaseException) -> InputError:
    """Turn an error raised while reading an input into a one-line :class:`InputError`."""
    where = f" after line {line}" if line else ""
    if isinstance(exc, (EOFError, zlib.error, gzip.BadGzipFile)):
        return InputError(f"{name}: corrupt gzip stream{where}: {exc}")
    return InputError(f"{name}: read error{where}: {exc}")


@contextlib.contextmanager
def open_lines(path: str, stdin: BinaryIO | None = None) -> Iterator[Iterable[bytes]]:
    """Open one input as an iterable of raw lines (bytes, newline included).

    Parameters
    ----------
    path : str
        A file path or ``-``.
    stdin : binary file, optional
        What ``-`` reads; defaults to ``sys.stdin.buffer`` (a parameter so tests and callers
        embedding replay can pass their own stream).

    Yields
    ------
    iterable of bytes
        Iterating it may raise ``OSError``/``EOFError``/``zlib.error`` on a damaged gzip
        stream; callers convert those with :func:`read_failure` because only they know the
        line number reached.

    Raises
    ------
    InputError
        The input is empty, unreadable, or needs a reader that is not installed.
    """
    name = display_name(path)
    with contextlib.ExitStack() as stack:
        try:
            if path == STDIN:
                if stdin is None:
                    # Our own big-buffered reader on fd 0: sys.stdin.buffer reads 8 KiB at a time.
                    raw = stack.enter_context(
                        open(sys.stdin.fileno(), "rb", buffering=_BUFFER, closefd=False)
                    )
                elif isinstance(stdin, io.BufferedReader):
                    raw = stdin
                else:
                    raw = io.BufferedReader(stdin, _BUFFER)  # type: ignore[arg-type]
            else:
                raw = stack.enter_context(open(path, "rb", buffering=_BUFFER))
            head = raw.peek(4)[:4]
        except OSError as exc:
            raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from None
        if not head:
            raise InputError(f"{name}: empty input")
        if head.startswith(_GZIP_MAGIC):
            gz = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
            reader = io.BufferedReader(gz, _BUFFER)  # type: ignore[arg-type]
            try:
                first = reader.peek(1)  # decompresses the first block: a bad header fails here
            except READ_ERRORS as exc:
                raise read_failure(name, 0, exc) from None
            if not first:
                raise InputError(f"{name}: empty input (empty gzip stream)")
            yield reader
        elif path.endswith(".gz"):
            raise InputError(f"{name}: not a gzip file (no gzip header)")
        elif head == _PARQUET_MAGIC or path.endswith(".parquet"):
            if path == STDIN:
                raise InputError(f"{name}: Parquet cannot be read from standard input")
            yield _parquet_lines(path)
        else:
            yield raw


def _parquet_default(value: object) -> object:
    """orjson fallback for Parquet cell types JSON has no word for."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot convert {type(value).__name__} to JSON")


def _parquet_lines(path: str) -> Iterator[bytes]:
    """Rows of a Parquet file as JSON lines, one record batch in memory at a time.

    Struct and map columns become JSON objects. A null top-level column means "field
    absent" (a label row has no ``features``), so those keys are dropped; nulls inside
    ``features`` are kept because there they are a missing value the detectors count.
    """
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises its own ArrowInvalid etc.
        raise InputError(f"{path}: not a readable Parquet file: {exc}") from None
    dumps = orjson.dumps
    for batch in parquet.iter_batches(batch_size=8192):
        with warnings.catch_warnings():
            # a map column (features with any keys per row) becomes a dict; a repeated key
            # keeps its last value, as JSON objects do, without a warning per row
            warnings.simplefilter("ignore")
            rows = batch.to_pylist(maps_as_pydicts="lossy")
        for row in rows:
            clean = {k: v for k, v in row.items() if v is not None}
            yield dumps(clean, default=_parquet_default)
