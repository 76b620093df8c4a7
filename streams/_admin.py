"""Topic creation shared by the worker (``_topics``) and the embedded broker (``broker``).

Kept free of Faust so that ``driftline broker`` and the test fixtures stay light to import.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["create_topics", "max_message_bytes", "partition_counts"]

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


async def max_message_bytes(admin: Any, topic: str) -> int | None:
    """The topic's ``max.message.bytes`` (or the broker's ``message.max.bytes``), if told.

    ``None`` when neither is described (Tansu 0.6 describes no configuration) or the request
    fails; the caller then assumes Apache Kafka's default.
    """
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    try:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    except Exception:  # an old broker or a missing ACL: not worth failing start-up for
        return None
    for response in responses:
        for resource in getattr(response, "resources", ()):
            for entry in resource[4] if len(resource) > 4 else ():
                if entry[0] in ("max.message.bytes", "message.max.bytes") and entry[1]:
                    try:
                        return int(entry[1])
                    except ValueError:
                        return None
    return None


def _topic_errors(response: Any) -> Iterable[tuple[str, int, str | None]]:
    for entry in getattr(response, "topic_errors", ()):
        # CreateTopicsResponse v0 has (topic, code); v1+ adds the message.
        topic, code = entry[0], entry[1]
        yield topic, code, entry[2] if len(entry) > 2 else None
