"""A Faust consumer that hands whole fetches of the source topics to the router.

Why: Faust's consumer loop (``Consumer._drain_messages``) wraps *every* message in a
``ConsumerMessage``, runs it through ``wait_first`` (two tasks and an ``asyncio.wait``) and
a channel queue before an agent sees it. That per-message machinery, not Kafka and not the
detector maths, is what limits a plain Faust agent to about 7% of what aiokafka can read.

This subclass keeps everything Faust does for the group (subscription, assignment, the
rebalance protocol, seeking to committed offsets, table recovery, the commit loop) and
changes one thing: records of the *source* topics are not converted one by one but passed,
one fetch at a time, to :meth:`Router.forward`. All other topics (the internal shard topic,
changelogs) take Faust's usual per-message path unchanged.

Offsets: the loop does not wait for the broker's acknowledgement of one fetch's batches
before it reads the next (that wait left the worker idle for a round trip per fetch); up to
:data:`MAX_IN_FLIGHT` fetches are in flight. A source partition's offset becomes committable
only when the delivery of its fetch *and of every earlier fetch* has completed (deliveries
are settled in order). Faust's commit loop commits it like any other acknowledged offset; a
fetch whose delivery completes after a rebalance is not marked and is read again by whoever
owns the partition next, and a failed delivery stops the worker before anything after it is
committed (at-least-once).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from typing import Any

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka

__all__ = ["BulkConsumer", "BulkTransport"]


#: How long the broker may hold a fetch when there is no data. Faust hard-codes 1500 ms; a
#: broker that holds fetches that long even when data arrives on another partition (Tansu
#: does) adds it to every hop, so produce-to-alert latency would be seconds.
FETCH_MAX_WAIT_MS = 20

#: Fetches forwarded to the shard topic whose delivery is not yet confirmed. The producer
#: itself holds back a send while the partition's previous batch waits for the broker, so
#: this mainly bounds the bookkeeping.
MAX_IN_FLIGHT = 4


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by AIOKafkaConsumer.start()
        return consumer


class BulkConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with a bulk path for the router's topics."""

    def _new_consumer_thread(self) -> Any:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # tp -> next offset to commit, for source partitions whose fetches were routed.
        self._bulk_done: dict[Any, int] = {}
        # (consumer generation, {tp: next offset}, delivery future) per forwarded fetch, oldest
        # first: a fetch is committable only once it and everything before it was delivered.
        self._in_flight: deque[tuple[int, dict[Any, int], asyncio.Future]] = deque()

    # -- offsets ---------------------------------------------------------------------------

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Iterator[Any]:
        seen = set(super()._filter_tps_with_pending_acks(topics))
        for tp in list(self._bulk_done):
            if topics is None or tp in topics or tp.topic in topics:
                seen.add(tp)
        return iter(seen)

    def _new_offset(self, tp: Any) -> int | None:
        done = self._bulk_done.pop(tp, None)
        if done is not None:
            return done
        return super()._new_offset(tp)

    async def on_partitions_revoked(self, revoked: set) -> None:
        for tp in revoked:
            self._bulk_done.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    def _settle(self) -> None:
        """Mark the fetches whose delivery completed, oldest first, as committable.

        A failed delivery raises here (the drain loop stops, nothing after it is marked).
        Fetches forwarded under an earlier consumer generation, or settled while a rebalance
        is under way (flow suspended), are not marked: their partitions may have a new owner
        and are read again from the committed offset.
        """
        in_flight = self._in_flight
        generation = self.app.consumer_generation_id
        while in_flight and in_flight[0][2].done():
            forwarded_in, marks, delivery = in_flight.popleft()
            delivery.result()
            if forwarded_in == generation and self.flow_active:
                self._bulk_done.update(marks)

    # -- the fetch loop --------------------------------------------------------------------

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - I/O loop
        router = getattr(self.app, "driftline_router", None)
        bulk_topics = router.topics if router is not None else frozenset()
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        to_message = self._to_message
        monitor = self.app.monitor
        in_flight = self._in_flight
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records, active = await self._wait_next_records(1.0)
                self._settle()
                await self.sleep(0)
                if not records or self.should_stop:
                    continue
                if not self.flow_active:
                    try:
                        await self.perform_seek()
                    except Exception as exc:
                        self.log.warning("seek while flow stopped failed: %r", exc)
                    continue
                generation = self.app.consumer_generation_id
                bulk: dict[Any, list] = {}
                for tp, batch in records.items():
                    if self.app.consumer_generation_id != generation or not self.flow_active:
                        break
                    if (
                        active is not None
                        and tp not in active
                        and tp not in self._buffered_partitions
                    ):
                        continue
                    r_offset = read_offset[tp]
                    if r_offset is not None and batch and batch[0].offset < r_offset:
                        batch = [rec for rec in batch if rec.offset >= r_offset]
                    if not batch:
                        continue
                    monitor.track_tp_end_offset(tp, self.highwater(tp))
                    if tp.topic in bulk_topics:
                        bulk[tp] = batch
                        continue
                    for rec in batch:
                        offset = rec.offset
                        r_offset = read_offset[tp]
                        if r_offset is not None and offset < r_offset:
                            continue
                        if r_offset and offset - r_offset > 1 and acks_enabled_for(tp.topic):
                            await self._add_gap(tp, r_offset + 1, offset)
                        if self._commit_every is not None and self._n_acked >= self._commit_every:
                            self._n_acked = 0
                            await self.commit()
                        await self.wait_first(callback(to_message(tp, rec)), self.suspend_flow)
                        read_offset[tp] = offset
                if bulk and router is not None:
                    job = router.forward(bulk)
                    outcome = await self.wait_first(job, self.suspend_flow)
                    if job in outcome.done and self.app.consumer_generation_id == generation:
                        marks = {}
                        for tp, batch in bulk.items():
                            last = batch[-1].offset
                            read_offset[tp] = last
                            marks[tp] = last + 1
                            monitor.tp_read_offsets[tp] = last
                        delivery = outcome.results[outcome.done.index(job)]
                        in_flight.append((generation, marks, delivery))
                if len(in_flight) > MAX_IN_FLIGHT:
                    # shielded: wait_first cancels what did not finish (a rebalance won), and
                    # a cancelled delivery future would read as a failed delivery
                    await self.wait_first(asyncio.shield(in_flight[0][2]), self.suspend_flow)
                    self._settle()
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)


class BulkTransport(faust_aiokafka.Transport):
    """The aiokafka transport, with :class:`BulkConsumer` as its consumer."""

    Consumer = BulkConsumer
