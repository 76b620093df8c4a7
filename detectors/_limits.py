"""Limits that keep a model stream's memory bounded whatever the stream sends.

Why: every feature name a model stream sees gets detector state (about 14 KiB for a numeric
feature: sketches, reference, quality counters) and a column in every later block. A producer
that sends thousands of new names (a bug that puts ids into feature names, or an attack)
made one worker allocate gigabytes and spend seconds per block, during which ``/health``
stopped answering. So a stream tracks at most ``max_features`` names: the first ones it saw
(in sorted order within a block, so the choice does not depend on batching); the others are
never allocated, their values are counted (``features_over_limit`` in the stream's counters)
and the first block that refuses any raises one ``schema`` alert (detector
``feature_limit``) naming a few of them.
"""

from __future__ import annotations

import heapq
from typing import Any

from ._policy import make_alert

__all__ = ["LIMIT_FEATURE", "cap_features", "feature_limit_alert"]

#: The ``feature`` slot of the limit alert in a block's ``(seq, feature, alert)`` triples.
LIMIT_FEATURE = "~feature_limit"


def cap_features(
    names: set[str], known: Any, ignore: Any, cap: int, feats: list[dict], show: bool
) -> tuple[list[str], list[str], int]:
    """``(kept names sorted, the first refused names, refused values)`` of a block whose
    ``names`` may exceed ``cap``: names already ``known`` stay, the smallest new ones fill up
    to ``cap``, ``ignore``d ones are neither kept nor counted. The refused names are listed
    (the five smallest) only when ``show``: finding them costs a pass over all of them.

    A flood brings a million names to a block, so nothing here sorts or loops over all of
    them in Python: set differences and counts run in C, and only the few names that fit
    (and five refused ones, for the alert) are picked with ``heapq``.
    """
    old = [n for n in known if n in names and n not in ignore]
    new = names.difference(known).difference(ignore)
    room = max(0, cap - len(old))
    if not room:
        extra = []
    elif len(new) > room:
        extra = heapq.nsmallest(room, new)
    else:
        extra = sorted(new)
    kept = sorted(old + extra)
    if len(new) <= room:
        return kept, [], 0  # nothing refused
    keep = set(kept).union(names.intersection(ignore))
    values = sum(map(len, feats)) - sum(len(f.keys() & keep) for f in feats)
    shown = heapq.nsmallest(len(extra) + 5, new)[len(extra) :] if show else []
    return kept, shown, values


def feature_limit_alert(
    stream: Any, refused: list[str], cap: int, time: float, seq: int
) -> tuple[int, str, Any]:
    """The one ``schema`` alert of a stream that refused feature names (``refused``: the
    first few of them)."""
    shown = ", ".join(repr(n) for n in refused[:5])
    more = " and more" if len(refused) >= 5 else ""
    alert = make_alert(
        model=stream.model,
        version=stream.version,
        feature=None,
        detector="feature_limit",
        status="firing",
        severity="warning",
        event_time=time,
        seq=seq,
        window={},
        statistics={"max_features": cap},
        message=(
            f"More than {cap} feature names (max_features): {shown}{more} are not monitored; "
            "their values are counted as features_over_limit, never stored."
        ),
        kind="schema",
        segment=stream.segment,
    )
    return seq, LIMIT_FEATURE, alert
