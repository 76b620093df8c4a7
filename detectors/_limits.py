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

from typing import Any

from ._policy import make_alert

__all__ = ["LIMIT_FEATURE", "cap_features", "feature_limit_alert"]

#: The ``feature`` slot of the limit alert in a block's ``(seq, feature, alert)`` triples.
LIMIT_FEATURE = "~feature_limit"


def cap_features(
    order: list[str], known: Any, cap: int, feats: list[dict]
) -> tuple[list[str], list[str], int]:
    """``(kept names, refused names, refused values)`` for a block whose sorted names
    ``order`` exceed ``cap``: names already ``known`` stay, new ones fill up to ``cap``."""
    room = max(0, cap - sum(1 for n in order if n in known))
    kept, refused = [], []
    for name in order:
        if name in known:
            kept.append(name)
        elif room:
            kept.append(name)
            room -= 1
        else:
            refused.append(name)
    gone = set(refused)
    values = sum(1 for f in feats for n in f if n in gone)
    return kept, refused, values


def feature_limit_alert(
    stream: Any, refused: list[str], cap: int, time: float, seq: int
) -> tuple[int, str, Any]:
    """The one ``schema`` alert of a stream that refused feature names."""
    shown = ", ".join(repr(n) for n in refused[:5])
    more = f" and {len(refused) - 5} more" if len(refused) > 5 else ""
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
        statistics={"max_features": cap, "refused_in_block": len(refused)},
        message=(
            f"More than {cap} feature names (max_features): {shown}{more} are not monitored; "
            "their values are counted as features_over_limit, never stored."
        ),
        kind="schema",
        segment=stream.segment,
    )
    return seq, LIMIT_FEATURE, alert
