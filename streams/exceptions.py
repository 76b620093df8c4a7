"""Errors raised by ``driftline.streams``.

One base class, so that callers (the CLI, tests) can catch everything the streaming side
raises on purpose without also swallowing programming errors.
"""

from __future__ import annotations

__all__ = ["BrokerError", "StreamsConfigError", "StreamsError", "TopicLayoutError"]


class StreamsError(Exception):
    """Base class of the errors ``driftline.streams`` raises deliberately."""


class BrokerError(StreamsError):
    """The embedded Kafka-protocol broker could not be found, started or used.

    The message always says what to do next (install the ``broker`` extra, free the port, read
    the broker's own log tail that is included), because this error is usually the first
    thing a new developer sees when the test suite or the demo cannot start.
    """


class StreamsConfigError(StreamsError, ValueError):
    """A setting of the worker, a topic layout or a connection is invalid.

    Raised before anything connects, so that a typo in ``--broker`` or a SASL mechanism fails
    at start-up with the setting named rather than as a timeout minutes later.
    """


class TopicLayoutError(StreamsError):
    """A topic exists with a partition count the worker cannot use, or could not be created."""
