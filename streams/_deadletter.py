"""Dead letters that always fit: the original bytes when they can, a reference when not.

Why: a dead letter is a Kafka record like any other, bounded by the producer's
``max_request_size`` and by the topic's ``max.message.bytes``. A message that is invalid
*because* it is too large cannot be forwarded unchanged; the first version of the worker
tried, the producer raised ``MessageSizeTooLargeError``, the fetch loop died, the worker
restarted onto the same message and died again: one hostile message stopped every worker.

:class:`DeadLetters` sends a message intact when the record fits the limit (the smaller of
the topic's limit and the producer's), and otherwise a *reference*: the first
:data:`PREFIX_BYTES` of the value, with headers naming the source record (``topic``,
``partition``, ``offset``), the original ``size`` and its ``sha256`` digest, and
``payload: reference`` (intact records carry ``payload: intact``). If the broker still refuses
a record as too large (its limit was lower than discovered), the send is retried once as a
reference, so a size error never reaches the fetch loop.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, NamedTuple

from aiokafka.errors import (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from aiokafka.record.default_records import DefaultRecordBatchBuilder

__all__ = [
    "KAFKA_DEFAULT_MAX_MESSAGE_BYTES",
    "PREFIX_BYTES",
    "DeadLetters",
    "Origin",
    "deadletter_headers",
    "reference_record",
]

#: Apache Kafka's default ``max.message.bytes`` (1 MB plus the batch overhead): used when the
#: broker does not tell (Tansu 0.6 describes no topic configuration).
KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
#: How much of an oversized value a reference keeps: enough to see what the producer sent.
PREFIX_BYTES = 64 * 1024
#: A reference keeps at most this much of the key (keys are routing hints, not payload).
_KEY_PREFIX_BYTES = 1024
#: Room for the record batch header and framing beyond the record itself.
_BATCH_OVERHEAD = 512
_TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError)
#: Error texts come from the contract and name fields; a field name can be long.
_ERROR_BYTES = 1024


class Origin(NamedTuple):
    """Where a dead letter came from and why it failed."""

    error: str
    topic: str
    partition: int
    offset: int


def deadletter_headers(error: str, topic: str, partition: int, offset: int) -> list:
    """Kafka headers of a dead-letter record: why it failed and where it came from."""
    return [
        ("error", error.encode("utf-8", "replace")[:_ERROR_BYTES]),
        ("topic", topic.encode()),
        ("partition", str(partition).encode()),
        ("offset", str(offset).encode()),
    ]


def _record_size(key: bytes | None, value: bytes, headers: list) -> int:
    return DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers) + _BATCH_OVERHEAD


def reference_record(
    key: bytes | None, raw: bytes, headers: list, limit: int
) -> tuple[bytes | None, bytes, list]:
    """``(key, value, headers)`` of the reference to ``raw``: a prefix, size and digest."""
    headers = [
        *headers,
        ("payload", b"reference"),
        ("size", str(len(raw)).encode()),
        ("sha256", hashlib.sha256(raw).hexdigest().encode()),
    ]
    if key is not None and len(key) > _KEY_PREFIX_BYTES:
        headers.append(("key_size", str(len(key)).encode()))
        key = key[:_KEY_PREFIX_BYTES]
    room = limit - _record_size(key, b"", headers)
    return key, raw[: max(0, min(PREFIX_BYTES, room))], headers


class DeadLetters:
    """The dead-letter topic's sender, shared by the router and the shards.

    Parameters
    ----------
    producer
        Faust's producer (``send`` returns a delivery future).
    topic
        The dead-letter topic.
    max_bytes
        The largest record the topic and the producer accept (the smaller of the topic's
        ``max.message.bytes`` and the producer's ``max_request_size``); Apache Kafka's
        default when not given.
    """

    def __init__(
        self, producer: Any, topic: str, max_bytes: int = KAFKA_DEFAULT_MAX_MESSAGE_BYTES
    ) -> None:
        self._producer = producer
        self.topic = topic
        self.max_bytes = max_bytes
        self.references = 0  # dead letters sent as references (for tests and /status)

    async def send(self, key: bytes | None, raw: bytes, where: Origin) -> asyncio.Future:
        """Hand one dead letter to the producer; returns the future of its delivery.

        The future never fails because of the record's size: a record the broker refuses as
        too large is sent again as a reference. Other delivery failures propagate (the fetch
        is then read again: at-least-once).
        """
        headers = deadletter_headers(*where)
        if _record_size(key, raw, headers) <= self.max_bytes:
            headers.append(("payload", b"intact"))
            try:
                future = await self._producer.send(self.topic, key, raw, None, None, headers)
            except _TOO_LARGE:
                headers.pop()
            else:
                return asyncio.ensure_future(self._settle(future, key, raw, headers[:-1]))
        return await self._send_reference(key, raw, headers, self.max_bytes)

    async def _send_reference(
        self, key: bytes | None, raw: bytes, headers: list, limit: int
    ) -> asyncio.Future:
        self.references += 1
        key, value, headers = reference_record(key, raw, headers, limit)
        return await self._producer.send(self.topic, key, value, None, None, headers)

    async def _settle(
        self, future: asyncio.Future, key: bytes | None, raw: bytes, headers: list
    ) -> Any:
        try:
            return await future
        except _TOO_LARGE:
            # the broker's limit is lower than discovered: a quarter of it surely fits
            retry = await self._send_reference(key, raw, headers, self.max_bytes // 4)
            return await retry
