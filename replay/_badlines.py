"""Accounting for bad input lines: skipped, counted, and named by file and line.

A replay over a month of logs must not die on one truncated line, but a silent skip would
hide a broken producer; so every bad line is counted by reason and the first few are shown
with ``file:line: reason``, in the spirit of a compiler's diagnostics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from driftline.replay.exceptions import BadLineError

__all__ = ["BadLine", "BadLineLog"]


@dataclass(frozen=True, slots=True)
class BadLine:
    """One rejected line: where it is and why."""

    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


class BadLineLog:
    """Collects bad lines during a run.

    Parameters
    ----------
    strict : bool
        Raise :class:`BadLineError` at the first bad line instead of counting it.
    show : int
        How many bad lines are reported one by one; the rest only as a count, so a file
        that is bad throughout does not flood the terminal.
    echo : callable, optional
        Where each shown line is written as it is met (stderr, through the progress bar's
        writer so the bar is not garbled); ``None`` to collect silently.
    """

    def __init__(
        self, *, strict: bool = False, show: int = 10, echo: Callable[[str], None] | None = None
    ) -> None:
        self.strict = strict
        self.show = show
        self.echo = echo
        self.count = 0
        self.first: list[BadLine] = []
        self.by_reason: Counter[str] = Counter()

    def add(self, source: str, line: int, reason: str, category: str) -> None:
        """Record a bad line (or raise under ``strict``).

        Parameters
        ----------
        source, line, reason
            As in :class:`BadLine`.
        category : str
            A short, low-cardinality reason class for the summary's counts, e.g.
            ``not JSON`` or ``contract: timestamp``.
        """
        if self.strict:
            raise BadLineError(source, line, reason)
        self.count += 1
        self.by_reason[category] += 1
        if len(self.first) < self.show:
            bad = BadLine(source, line, reason)
            self.first.append(bad)
            if self.echo is not None:
                self.echo(str(bad))

    def finish(self) -> None:
        """Report how many bad lines were not shown one by one."""
        hidden = self.count - len(self.first)
        if hidden > 0 and self.echo is not None:
            self.echo(f"... and {hidden} more bad line(s) not shown")
