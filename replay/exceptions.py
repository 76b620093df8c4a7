"""Errors of the replay tool.

Each error maps to one exit status of ``driftline replay`` so the command line can report a
one-line message instead of a traceback: an input that cannot be read at all is a different
failure (exit 2, nothing was replayed) from a bad line met under ``--strict`` (exit 1, the
input is readable but not clean).
"""

from __future__ import annotations

__all__ = ["BadLineError", "InputError", "PublishError", "ReplayError"]


class ReplayError(Exception):
    """Base class of everything the replay tool raises on purpose.

    Attributes
    ----------
    exit_status : int
        The process exit status the command line uses for this error.
    """

    exit_status = 2


class InputError(ReplayError):
    """An input cannot be replayed at all: missing, unreadable, corrupt gzip, empty.

    Raised before any output is committed where possible (inputs are checked up front), so a
    typo in a file name never leaves a half-written alerts file behind.
    """

    exit_status = 2


class BadLineError(ReplayError):
    """A bad line under ``--strict``: the run stops at it and names it.

    Parameters
    ----------
    source : str
        The input's display name (a path, or ``<stdin>``).
    line : int
        1-based line number (row number for Parquet).
    reason : str
        Why the line was rejected, e.g. ``not JSON: ...`` or the contract's ``field: problem``.
    """

    exit_status = 1

    def __init__(self, source: str, line: int, reason: str) -> None:
        super().__init__(f"{source}:{line}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason


class PublishError(ReplayError):
    """Publishing to Kafka failed (broker unreachable, delivery errors)."""

    exit_status = 2
