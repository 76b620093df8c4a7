"""A ring of per-block counts: the current window of the windowed tests, in bounded memory."""

from __future__ import annotations

import numpy as np

__all__ = ["BlockRing"]


class BlockRing:
    """The last ``size`` blocks of bin counts plus a few per-block aggregates.

    Parameters
    ----------
    size : int
        Blocks in the window.
    cells : int
        Count cells per block (bins or categories).
    aggregates : int
        Extra float aggregates per block (e.g. count, sum, sum of squares, score sum).

    Examples
    --------
    >>> import numpy as np
    >>> ring = BlockRing(2, 3, 1)
    >>> for c in ([1, 0, 0], [0, 2, 0], [0, 0, 3]):
    ...     ring.push(np.array(c), np.array([1.0]), 0.0, 1.0)
    >>> ring.counts().tolist(), ring.full
    ([0, 2, 3], True)
    """

    __slots__ = ("agg", "cells", "filled", "pos", "size", "span", "total")

    def __init__(self, size: int, cells: int, aggregates: int) -> None:
        self.size = size
        self.cells = np.zeros((size, cells), dtype=np.int64)
        self.agg = np.zeros((size, aggregates))
        self.span = np.zeros((size, 2))
        self.total = np.zeros(cells, dtype=np.int64)
        self.pos = 0
        self.filled = 0

    def push(self, counts: np.ndarray, agg: np.ndarray, start: float, end: float) -> None:
        """Add one block (overwriting the oldest); integer window totals follow exactly."""
        self.total += counts - self.cells[self.pos]
        self.cells[self.pos] = counts
        self.agg[self.pos] = agg
        self.span[self.pos] = (start, end)
        self.pos = (self.pos + 1) % self.size
        self.filled = min(self.filled + 1, self.size)

    @property
    def full(self) -> bool:
        return self.filled >= self.size

    def counts(self) -> np.ndarray:
        """Counts per cell over the window."""
        return self.total

    def aggregates(self) -> np.ndarray:
        """Aggregates summed over the window (exactly: recomputed, not running floats)."""
        return self.agg.sum(axis=0)

    def recent(self, m: int) -> tuple[np.ndarray, float]:
        """Aggregates summed over the last ``m`` blocks (at most those held) and their start."""
        m = min(m, self.filled)
        if m <= 0:
            return np.zeros(self.agg.shape[1]), float("nan")
        idx = [(self.pos - i - 1) % self.size for i in range(m)]
        return self.agg[idx].sum(axis=0), float(self.span[idx[-1], 0])

    def start(self) -> float:
        """Event time of the oldest block in the window."""
        oldest = self.pos if self.full else 0
        return float(self.span[oldest, 0])

    def clear(self) -> None:
        self.cells[:] = 0
        self.agg[:] = 0
        self.span[:] = 0
        self.total[:] = 0
        self.pos = 0
        self.filled = 0

    def to_state(self) -> dict:
        return {
            "cells": self.cells,
            "agg": self.agg,
            "span": self.span,
            "pos": self.pos,
            "filled": self.filled,
        }

    @classmethod
    def from_state(cls, s: dict) -> BlockRing:
        ring = cls.__new__(cls)
        ring.cells, ring.agg, ring.span = s["cells"], s["agg"], s["span"]
        ring.size = ring.cells.shape[0]
        ring.total = ring.cells.sum(axis=0)
        ring.pos, ring.filled = int(s["pos"]), int(s["filled"])
        return ring
