"""Shared fixtures for the whole suite.

``kafka_broker`` is the one real Kafka-protocol broker (Tansu, in memory) that every
integration test talks to. It is session-scoped because start-up is cheap but not free, and
because state between tests is kept apart by topic names (``unique_topic``), not by brokers.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator

import pytest
from driftline.streams.broker import EmbeddedBroker


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[EmbeddedBroker]:
    """A started :class:`EmbeddedBroker` on a free loopback port, shared by the session.

    It is stopped when the session ends, also after failures and Ctrl-C; if pytest itself is
    killed, the broker's parent-death signal and atexit hook stop it.
    """
    broker = EmbeddedBroker()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def unique_topic(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Make topic names no other test uses: ``unique_topic("events")`` -> ``t-<test>-events-<hex>``.

    The broker is shared by the whole session and keeps every topic, so tests must not meet
    on a topic name. Names stay readable (they carry the test name) for broker debugging.
    """
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:60]

    def make(suffix: str = "topic") -> str:
        return f"t-{stem}-{suffix}-{uuid.uuid4().hex[:8]}"

    return make
