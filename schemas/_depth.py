"""The nesting limit of the contract: at most 64 levels, the top-level object counting as one.

The decoder alone would allow 1024 levels (orjson's limit), but an accepted event must stay
usable: ``orjson.dumps`` refuses to nest deeper than 255 levels, and Python's ``repr`` and
``==`` recurse, so a deeply nested ``extra`` field accepted here would crash whoever logs,
compares or re-publishes the event later. 64 is also the default limit of .NET's
System.Text.Json, so producers there cannot exceed it by accident. Only ``extra`` fields and
the other keys of a prediction object can nest at all; the check is iterative so that its
own recursion cannot be the thing that fails.
"""

from __future__ import annotations

__all__ = ["MAX_DEPTH", "nested_deeper_than"]

_SCALARS = frozenset({float, int, str, bool, type(None)})

#: Maximum nesting depth of an event, the top-level object counting as level 1.
MAX_DEPTH = 64


def nested_deeper_than(value: object, levels: int) -> bool:
    """Whether arrays/objects in ``value`` nest more than ``levels`` deep (a scalar: 0)."""
    kind = type(value)
    if kind is not dict and kind is not list:
        return False
    children = value.values() if kind is dict else value  # type: ignore[union-attr]
    if _SCALARS.issuperset(map(type, children)):
        return levels < 1  # one level of scalars: the usual shape of an extra field
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > levels:
            return True
        for child in item.values() if type(item) is dict else item:  # type: ignore[union-attr]
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))
    return False
