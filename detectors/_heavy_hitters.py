"""Space-saving heavy hitters: category counts in bounded memory, mergeable.

Metwally, Agrawal & El Abbadi (2005). With ``capacity`` entries, every category whose true
count exceeds ``n / capacity`` is in the table, and each estimate ``c`` satisfies
``true <= c <= true + error <= true + n / capacity``. Two summaries merge (Agarwal et al.
2012, "Mergeable summaries") by adding counts (an absent key counts as the other table's
minimum when that table is full) and keeping the ``capacity`` largest, which preserves the
same bound for the combined stream.
"""

from __future__ import annotations

__all__ = ["HeavyHitters"]

#: Distinct keys in one update above which it is merged as a summary.
_BULK = 16


class HeavyHitters:
    """Bounded-memory frequency table.

    Examples
    --------
    >>> hh = HeavyHitters(2)
    >>> hh.update({"a": 5, "b": 3})
    >>> hh.update({"c": 1})
    >>> hh.n, sorted(hh.counts.items())
    (9, [('a', 5), ('c', 4)])
    >>> hh.errors["c"]  # 'c' may really have 1..4
    3
    """

    __slots__ = ("capacity", "counts", "errors", "n")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.counts: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.n = 0

    def update(self, counts: dict[str, int]) -> None:
        """Add a block's counts (keys in sorted order: the result is deterministic).

        Many distinct keys (identifier-like features) are added as one exact summary merged
        in (``O(k log k)``) instead of one replacement scan per key (``O(k)`` each).
        """
        if len(counts) > _BULK:
            block = HeavyHitters(len(counts))
            block.counts = dict(counts)
            block.errors = dict.fromkeys(counts, 0)
            block.n = sum(counts.values())
            merged = self.merge(block)
            self.counts, self.errors, self.n = merged.counts, merged.errors, merged.n
            return
        table, errors = self.counts, self.errors
        for key in sorted(counts):
            w = counts[key]
            self.n += w
            if key in table:
                table[key] += w
            elif len(table) < self.capacity:
                table[key] = w
                errors[key] = 0
            else:  # replace the smallest entry (ties: the smallest key)
                victim = min(table, key=lambda c: (table[c], c))
                floor = table.pop(victim)
                errors.pop(victim, None)
                table[key] = floor + w
                errors[key] = floor

    def _floor(self) -> int:
        return min(self.counts.values()) if len(self.counts) >= self.capacity else 0

    def merge(self, other: HeavyHitters) -> HeavyHitters:
        """A summary of both streams (same capacity as ``self``)."""
        fa, fb = self._floor(), other._floor()
        keys = set(self.counts) | set(other.counts)
        merged = {}
        err = {}
        for k in keys:
            ca = self.counts.get(k)
            cb = other.counts.get(k)
            merged[k] = (fa if ca is None else ca) + (fb if cb is None else cb)
            err[k] = (fa if ca is None else self.errors.get(k, 0)) + (
                fb if cb is None else other.errors.get(k, 0)
            )
        out = HeavyHitters(self.capacity)
        ranked = sorted(merged, key=lambda k: (-merged[k], k))[: self.capacity]
        out.counts = {k: merged[k] for k in ranked}
        out.errors = {k: err[k] for k in ranked}
        out.n = self.n + other.n
        return out

    def top(self, m: int) -> list[tuple[str, int]]:
        """The ``m`` largest (estimate) entries, ties by key."""
        return sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:m]

    def to_state(self) -> dict:
        keys = sorted(self.counts)
        return {
            "capacity": self.capacity,
            "n": self.n,
            "keys": keys,
            "counts": [self.counts[k] for k in keys],
            "errors": [self.errors.get(k, 0) for k in keys],
        }

    @classmethod
    def from_state(cls, s: dict) -> HeavyHitters:
        hh = cls(int(s["capacity"]))
        hh.n = int(s["n"])
        hh.counts = dict(zip(s["keys"], s["counts"], strict=True))
        hh.errors = dict(zip(s["keys"], s["errors"], strict=True))
        return hh
