"""Create driftline's topics with the right partition counts before anything names them.

Kafka-protocol brokers (Tansu, and Apache Kafka with ``auto.create.topics.enable``) create a
topic that a client merely mentions, with the broker's default partition count. The shard
topic must have exactly ``partitions`` partitions (the state table's changelog is
co-partitioned with it), so it is created here explicitly and checked.
"""

from __future__ import annotations

from driftline.streams._admin import create_topics, max_message_bytes, partition_counts
from driftline.streams._app import shard_topic_name
from driftline.streams._settings import KafkaSettings, WorkerSettings
from driftline.streams.exceptions import TopicLayoutError

__all__ = ["deadletter_limit_sync", "ensure_topics", "ensure_topics_sync"]

#: The shard topic holds a copy of every event only until its shard has processed it; a day
#: covers any realistic outage of the workers without keeping the stream twice for ever.
SHARD_RETENTION_MS = 24 * 3600 * 1000


async def ensure_topics(kafka: KafkaSettings, settings: WorkerSettings) -> dict[str, int]:
    """Create every topic the worker uses that does not exist yet; return actual counts.

    Source topics that already exist are left alone whatever their partition count (the
    router repartitions them). The changelog is left to Faust, which creates it compacted.

    Raises
    ------
    TopicLayoutError
        The broker refused a topic, or the shard topic exists with another partition count
        (the shard count of an application id cannot change without resetting its state).
    """
    from aiokafka.admin import AIOKafkaAdminClient

    wanted = dict(settings.topics.all_topics())
    shard_topic = shard_topic_name(settings.app_id)
    wanted[shard_topic] = settings.topics.partitions
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(**kafka.aiokafka_kwargs(), request_timeout_ms=15000)
    try:
        await admin.start()
    except KafkaError as exc:
        await admin.close()
        raise TopicLayoutError(f"cannot reach {kafka.bootstrap_servers}: {exc}") from None
    try:
        existing = set(await admin.list_topics())
        missing = {name: n for name, n in wanted.items() if name not in existing}
        if missing:
            problems = await create_topics(
                admin, missing, settings.topics.replication, timeout_ms=15000
            )
            if problems:
                raise TopicLayoutError("could not create topics: " + "; ".join(problems))
        counts = await partition_counts(admin, wanted)
    finally:
        await admin.close()
    if counts.get(shard_topic) != settings.topics.partitions:
        raise TopicLayoutError(
            f"{shard_topic} has {counts.get(shard_topic)} partitions, the worker is configured "
            f"for {settings.topics.partitions}: use the same --partitions as when the "
            "application id was first run, or a new --app-id"
        )
    return counts


def ensure_topics_sync(kafka: KafkaSettings, settings: WorkerSettings) -> dict[str, int]:
    """Blocking form of :func:`ensure_topics` for the CLI."""
    import asyncio

    return asyncio.run(ensure_topics(kafka, settings))


def deadletter_limit_sync(kafka: KafkaSettings, topic: str) -> int | None:
    """The dead-letter topic's ``max.message.bytes`` as the broker describes it, or ``None``.

    Asked once at start-up so that the dead-letter producer's limit follows the broker's
    (``None``: not described or not reachable; the worker then assumes Kafka's default).
    """
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    async def ask() -> int | None:
        admin = AIOKafkaAdminClient(**kafka.aiokafka_kwargs(), request_timeout_ms=15000)
        try:
            await admin.start()
            return await max_message_bytes(admin, topic)
        except Exception:  # unreachable now: the worker's own connection will say so
            return None
        finally:
            await admin.close()

    return asyncio.run(ask())
