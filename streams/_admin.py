"""Topic creation shared by the worker (``_topics``) and the embedded broker (``broker``).

Kept free of Faust so that ``driftline broker`` and the test fixtures stay light to import.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["create_topics", "partition_counts"]

_TOPIC_ALREADY_EXISTS = 36  # Kafka error code TOPIC_ALREADY_EXISTS


async def create_topics(
    admin: Any, topics: Mapping[str, int], replication: int, timeout_ms: int
) -> list[str]:
    """Create ``topics`` (name to partitions) with a started aiokafka admin client.

    A topic that already exists is not an error (its partition count is left as it is; the
    caller checks counts where they matter). Returns the broker's refusals as
    ``"topic: reason"`` strings, empty when every topic now exists.
    """
    from aiokafka.admin import NewTopic

    response = await admin.create_topics(
        [NewTopic(name, n, replication) for name, n in topics.items()], timeout_ms=timeout_ms
    )
    return [
        f"{topic}: {message or 'error code ' + str(code)}"
        for topic, code, message in _topic_errors(response)
        if code not in (0, _TOPIC_ALREADY_EXISTS)
    ]


async def partition_counts(admin: Any, topics: Iterable[str]) -> dict[str, int]:
    """The actual partition count of each topic, as the broker describes it."""
    described = await admin.describe_topics(list(topics))
    return {t["topic"]: len(t["partitions"]) for t in described}


def _topic_errors(response: Any) -> Iterable[tuple[str, int, str | None]]:
    for entry in getattr(response, "topic_errors", ()):
        # CreateTopicsResponse v0 has (topic, code); v1+ adds the message.
        topic, code = entry[0], entry[1]
        yield topic, code, entry[2] if len(entry) > 2 else None
