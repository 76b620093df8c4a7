"""Stage two of the hot path: decode, detect, publish alerts, checkpoint state.

One agent (concurrency 1: upstream issue 606) consumes the internal shard topic. Each message
is a batch of raw events of the models one shard owns; the agent decodes and validates them
with :mod:`driftline.schemas`, routes failures to the dead-letter topic with the original
bytes, runs :class:`driftline.detectors.Monitor` on the valid ones and publishes its alerts.

State and at-least-once
-----------------------
Detector state lives in memory (the ``Monitor``) and is written to a changelog-backed table
when the shard has seen ``checkpoint_events`` events or ``checkpoint_seconds`` have passed:
per model, the state compressed and cut into chunks of at most 256 KiB (a model's state can
exceed Kafka's 1 MB record limit), then a small header naming the chunks' generation.
Messages are acknowledged only *after* the checkpoint that includes them (and after the
alerts they produced were delivered), so the committed offset of a shard never passes its
last checkpoint.

Duplicates are expected at two places: the shard topic is re-read from its committed offset
after a crash or a rebalance, and the router re-forwards source records whose offsets it had
not committed yet. Both are recognised the same way: each checkpoint stores, per model, the
highest *source* offset applied from each source partition (a watermark), and an event at or
below its watermark is skipped. A source partition's events of one model reach the shard in
offset order (one router per partition at a time, sends to a partition are ordered), so the
watermark is exact: no event is counted twice in detector state, none is skipped.

Events after the checkpoint are processed again after a crash and may re-emit alerts, with
the same ``alert_id`` (ids are deterministic): subscribers deduplicate by ``alert_id``.

The per-window statistics of ``/status`` (:mod:`driftline.streams._windows`) are tallied
once per batch and stored inside each model's checkpoint header, next to its watermarks.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import orjson

from driftline.detectors.exceptions import StateError
from driftline.streams._deadletter import DeadLetters, Origin
from driftline.streams._framing import KINDS, iter_frames
from driftline.streams._metrics import WorkerMetrics
from driftline.streams._router import model_of, shard_of
from driftline.streams._windows import WindowBook, shard_windows_key

__all__ = [
    "CheckpointHeader",
    "ShardProcessor",
    "chunk_key",
    "header_windows",
    "pack_checkpoint",
    "unpack_header",
    "unpack_state",
]

log = logging.getLogger(__name__)

_MAGIC = b"DLC3"  # header with checksums; ``DLC2`` (no checksums) is still read
_OLD_MAGIC = b"DLC2"
_LENGTH = struct.Struct(">I")
#: A model's state can exceed Kafka's default 1 MB record limit (it grows with features and
#: segments), so it is compressed and split into chunks of at most this size.
CHUNK_BYTES = 256 * 1024
#: Bounds a header must respect before anything is allocated for it: 4,096 chunks is 1 GiB
#: of compressed state, far above any configured model; a state never inflates past 2 GiB.
MAX_CHUNKS = 4096
MAX_STATE_BYTES = 2 << 30
_MAX_OFFSET = 2**63 - 1

#: Models dumped into a checkpoint between two yields to the event loop.
_YIELD_EVERY = 32

#: (event kind, source partition) -> highest source offset applied to a model's state.
Watermarks = dict[tuple[str, int], int]


class CheckpointHeader(NamedTuple):
    """A model's checkpoint header: which chunks hold its state, and its watermarks."""

    generation: int
    chunks: int
    marks: Watermarks
    crc: int | None  # CRC-32 of the joined compressed chunks (None: a DLC2 header)
    size: int | None  # length of the uncompressed state


def fence_key(shard: int) -> bytes:
    """Table key of a shard's checkpoint fence (see ``ShardProcessor._fence``); ``0xfd``
    never starts UTF-8, so no model's key."""
    return b"\xfd%d" % shard


def chunk_key(model_key: bytes, generation: int, index: int) -> bytes:
    """Table key of one chunk. ``0xff`` never starts UTF-8, so it cannot be a model's key."""
    return b"\xff%s\x00%d\x00%d" % (model_key, generation, index)


def pack_checkpoint(
    marks: Watermarks, state: bytes, generation: int, windows: dict | None = None
) -> tuple[bytes, list[bytes]]:
    """The header record (magic, JSON: generation, chunk count, watermarks, checksums; then a
    CRC-32 of the record) and the chunks.

    Chunks are written first and the header last, under a new generation, so that a crash
    in the middle leaves the previous header pointing at the previous, complete chunks.
    ``windows`` (the model's per-window statistics) rides in the header, atomic with the
    watermarks it must agree with.
    """
    packed = zlib.compress(state, 1)
    chunks = [packed[i : i + CHUNK_BYTES] for i in range(0, len(packed), CHUNK_BYTES)] or [b""]
    header = {
        "generation": generation,
        "chunks": len(chunks),
        "marks": [[kind, partition, offset] for (kind, partition), offset in marks.items()],
        "crc": zlib.crc32(packed),
        "size": len(state),
    }
    if windows is not None:
        header["windows"] = windows
    doc = orjson.dumps(header)
    record = _MAGIC + _LENGTH.pack(len(doc)) + doc
    return record + _LENGTH.pack(zlib.crc32(record)), chunks


def _header_doc(value: bytes) -> Any:
    """The JSON document of a header; :class:`StateError` if ``value`` is not a sound one."""
    if not isinstance(value, bytes | bytearray) or len(value) < 8:
        raise StateError("checkpoint header: not a driftline checkpoint")
    magic = bytes(value[:4])
    (length,) = _LENGTH.unpack_from(value, 4)
    if magic == _MAGIC:
        if len(value) != 8 + length + 4:
            raise StateError("checkpoint header: truncated or padded")
        (crc,) = _LENGTH.unpack_from(value, 8 + length)
        if zlib.crc32(value[: 8 + length]) != crc:
            raise StateError("checkpoint header: checksum mismatch")
    elif magic != _OLD_MAGIC:
        raise StateError("checkpoint header: not a driftline checkpoint")
    try:
        doc = orjson.loads(value[8 : 8 + length])
    except orjson.JSONDecodeError as exc:
        raise StateError(f"checkpoint header unreadable: {exc}") from None
    if not isinstance(doc, dict):
        raise StateError("checkpoint header: not an object")
    return doc


def _count(value: Any, upper: int, what: str) -> int:
    if type(value) is not int or not 0 <= value <= upper:
        raise StateError(f"checkpoint header: {what} {value!r} out of range")
    return value


def unpack_header(value: bytes) -> CheckpointHeader:
    """The header's fields, every one range-checked; :class:`StateError` otherwise."""
    doc = _header_doc(value)
    try:
        marks = {}
        for kind, partition, offset in doc["marks"]:
            if kind not in KINDS:
                raise StateError(f"checkpoint header: unknown event kind {kind!r}")
            marks[(kind, _count(partition, 1 << 20, "partition"))] = _count(
                offset, _MAX_OFFSET, "offset"
            )
        generation = _count(doc["generation"], _MAX_OFFSET, "generation")
        chunks = _count(doc["chunks"], MAX_CHUNKS, "chunk count")
        crc = doc.get("crc")
        size = doc.get("size")
        if bytes(value[:4]) == _MAGIC:
            crc = _count(crc, 2**32 - 1, "checksum")
            size = _count(size, MAX_STATE_BYTES, "state size")
        return CheckpointHeader(generation, chunks, marks, crc, size)
    except (TypeError, ValueError, KeyError) as exc:
        if isinstance(exc, StateError):
            raise
        raise StateError(f"checkpoint header unreadable: {exc!r}") from None


def header_windows(value: bytes) -> dict | None:
    """The per-window statistics stored in a header (``None``: none, or unreadable)."""
    try:
        doc = _header_doc(value)
    except ValueError:
        return None
    return doc.get("windows")


def unpack_state(
    chunks: list[bytes | None], crc: int | None = None, size: int | None = None
) -> bytes:
    """Join, verify (``crc``, ``size`` from the header) and decompress the chunks;
    :class:`StateError` if one is missing or anything does not match. Decompression stops
    at ``size`` (or :data:`MAX_STATE_BYTES`): a forged stream cannot inflate memory."""
    if any(chunk is None for chunk in chunks):
        raise StateError("checkpoint chunk missing")
    packed = b"".join(chunks)  # type: ignore[arg-type]
    if crc is not None and zlib.crc32(packed) != crc:
        raise StateError("checkpoint state: checksum mismatch")
    limit = MAX_STATE_BYTES if size is None else size
    inflate = zlib.decompressobj()
    try:
        state = inflate.decompress(packed, limit + 1)
    except zlib.error as exc:
        raise StateError(f"checkpoint state corrupt: {exc}") from None
    if len(state) > limit or inflate.unconsumed_tail or not inflate.eof:
        raise StateError("checkpoint state: longer than its header says, or cut short")
    if size is not None and len(state) != size:
        raise StateError("checkpoint state: shorter than its header says")
    return state


class _Refusal(NamedTuple):
    """Why a model's event goes to the dead-letter topic instead of its state."""

    error: str
    reason: str


class _Shard:
    """Book-keeping of one shard (partition of the internal topic) this worker owns."""

    __slots__ = (
        "dirty",
        "events_since",
        "held",
        "last_checkpoint",
        "models",
        "revoked",
        "tick_sent",
    )

    def __init__(self) -> None:
        self.revoked = False  # set by a rebalance; a handler still running on it must stop
        self.models: set[str] = set()
        self.dirty: set[str] = set()
        self.held: list[Any] = []  # Faust events waiting for the next checkpoint to be acked
        self.events_since = 0
        self.last_checkpoint = time.monotonic()
        self.tick_sent = False


class ShardProcessor:
    """Everything the shard agent does with one batch message.

    Parameters
    ----------
    monitor
        The worker's :class:`~driftline.detectors.Monitor` (state of every model it owns).
    table
        Faust table ``model (bytes) -> checkpoint (bytes)``, co-partitioned with the shard
        topic.
    producer
        Faust's producer, for alerts and dead letters.
    sources
        Event kind -> source topic name (dead-letter headers name the source topic).
    """

    def __init__(
        self,
        monitor: Any,
        table: Any,
        producer: Any,
        *,
        shards: int,
        sources: dict[str, str],
        alerts_topic: str,
        deadletter_topic: str,
        checkpoint_events: int,
        checkpoint_seconds: float,
        metrics: WorkerMetrics,
        window_seconds: float = 60.0,
        window_count: int = 10,
        deadletters: DeadLetters | None = None,
        max_models: int = 2000,
        model_idle_seconds: float = 600.0,
        on_bad_state: str = "refuse",
        end_offset: Callable[[str, int], int | None] | None = None,
    ) -> None:
        from driftline.schemas import ContractError, decode_event

        self._decode = decode_event
        self._contract_error = ContractError
        self.monitor = monitor
        self._table = table
        self._producer = producer
        self._shards_total = shards
        self._topic_of_kind = sources
        self._alerts_topic = alerts_topic
        self._deadletters = deadletters or DeadLetters(producer, deadletter_topic)
        self._every_events = checkpoint_events
        self._every_seconds = checkpoint_seconds
        self._metrics = metrics
        self._shards: dict[int, _Shard] = {}
        self._marks: dict[str, Watermarks] = {}
        self._generation: dict[str, tuple[int, int]] = {}  # model -> (generation, chunks)
        self._pending: list[Awaitable] = []
        self.last_alert: dict[str, dict] = {}
        self.processed = 0
        # outcome metrics per window where the monitor keeps them (test doubles may not)
        outcomes = getattr(monitor, "outcome_totals", None)
        self.windows = WindowBook(window_seconds, window_count, monitor.labels_joined, outcomes)
        #: The live page's book (``_livepage.LivePage``), fed after each batch; None: no page.
        self.page: Any = None
        self._kind_of_topic = {topic: kind for kind, topic in sources.items()}
        # the shard whose batch is being handled, and the dead letters it sent so far
        self._here: tuple[int, _Shard, list[tuple]] | None = None
        self._max_models = max_models
        self._idle_seconds = model_idle_seconds
        # model in memory -> perf_counter of its last batch, least recently seen first
        self._seen: OrderedDict[str, float] = OrderedDict()
        self.evicted = 0  # models dropped from memory while idle (state kept in the table)
        if on_bad_state not in ("refuse", "fresh"):
            raise ValueError(f"on_bad_state: refuse or fresh, not {on_bad_state!r}")
        self._on_bad_state = on_bad_state
        self._bad_state: dict[str, str] = {}  # model -> why its checkpoint was refused
        self._end_offset = end_offset or (lambda kind, partition: None)

    # -- rebalance -------------------------------------------------------------------------

    @property
    def assigned(self) -> list[int]:
        """Shards this worker currently owns."""
        return sorted(self._shards)

    def on_assigned(self, shards: set[int]) -> None:
        """Start book-keeping for newly owned shards; state loads lazily from the table."""
        for shard in shards:
            self._shards.setdefault(shard, _Shard())

    def on_revoked(self, shards: set[int]) -> None:
        """Forget the state of revoked shards: their new owner restores it from the table.

        Held (unacknowledged) messages are dropped without acknowledging them, so the new
        owner reads them again from the last committed offset, consistent with the
        checkpoint it restores.

        Faust calls this while the agent may still be inside :meth:`handle` (the worker
        does not wait for the agent to drain, ``stream_wait_empty=False``), suspended at an
        ``await``. The book is marked revoked so that the handler, when it resumes, neither
        writes a checkpoint of the state dropped here (it would store an empty model state
        with no watermarks, which the next owner would restore: a silent restart of the
        model's detection) nor acknowledges messages the new owner must read again.
        """
        for model in [m for m in self._bad_state if shard_of(m, self._shards_total) in shards]:
            del self._bad_state[model]  # the next owner (maybe this worker) tries again
        for shard in shards:
            book = self._shards.pop(shard, None)
            if book is None:
                continue
            book.revoked = True
            self._forget(book.models)
            self.windows.drop_shard(shard)
            for model in book.models:
                self.last_alert.pop(model, None)

    # -- the hot path ----------------------------------------------------------------------

    async def handle(self, event: Any, ack: Callable[[Any], Awaitable[Any]]) -> None:
        """Process one batch message (``event`` is the current Faust event)."""
        message = event.message
        shard = message.partition
        offset = message.offset
        book = self._shards.get(shard)
        if book is None:  # a message of a shard revoked meanwhile: its new owner has it
            return
        self._here = (shard, book, [])
        started = time.perf_counter()
        try:
            frames = list(iter_frames(event.value))
        except ValueError as exc:
            await self._dead(event.value, str(exc), message.topic, shard, offset)
            frames = []
        decode = self._decode
        contract_error = self._contract_error
        all_marks = self._marks
        events = []
        used = []  # the frames behind ``events``, for the dead-letter topic if detection fails
        counts: dict[str, int] = {}
        oldest_ms = None
        touched: set[str] = set()  # models of this batch: never evicted while it runs
        for frame in frames:
            try:
                ev = decode(frame.raw, frame.kind)
            except contract_error as exc:
                await self._dead(
                    frame.raw,
                    str(exc),
                    self._topic_of_kind[frame.kind],
                    frame.partition,
                    frame.offset,
                    reason=getattr(exc, "field", None) or "contract",
                )
                continue
            model = ev.model
            if model not in book.models:
                refusal = self._refusal(model, shard, touched) or self._restore(model, book)
                if refusal is not None:
                    await self._dead(
                        frame.raw,
                        refusal.error,
                        self._topic_of_kind[frame.kind],
                        frame.partition,
                        frame.offset,
                        reason=refusal.reason,
                    )
                    continue
                self._seen[model] = started
            touched.add(model)
            marks = all_marks.get(model)
            if marks is None:
                marks = all_marks[model] = {}
            source = (frame.kind, frame.partition)
            if frame.offset <= marks.get(source, -1):
                continue  # a redelivery: already part of this model's state
            marks[source] = frame.offset
            events.append(ev)
            used.append(frame)
            counts[frame.kind] = counts.get(frame.kind, 0) + 1
            if frame.timestamp_ms >= 0 and (oldest_ms is None or frame.timestamp_ms < oldest_ms):
                oldest_ms = frame.timestamp_ms
        if book.revoked:  # revoked while a dead letter was being sent: the new owner has it
            self._forget(book.models)
            return
        if events:
            labelled = self.windows.labels_before(events) if "label" in counts else None
            try:
                alerts = self.monitor.process(events)
            except Exception as exc:  # a detector bug must not stop the shard: park the batch
                log.exception("detection failed on a batch of %d events", len(events))
                for frame in used:
                    await self._dead(
                        frame.raw,
                        f"detector: {type(exc).__name__}: {exc}",
                        self._topic_of_kind[frame.kind],
                        frame.partition,
                        frame.offset,
                        reason="detector",
                    )
                alerts = []
                events = []
                counts = {}
            for alert in alerts:
                self._pending.append(
                    await self._producer.send(
                        self._alerts_topic,
                        alert.alert_id.encode(),
                        alert.to_json(),
                        None,
                        None,
                        None,
                    )
                )
                self._metrics.alerts.labels(alert.kind, alert.model).inc()
                self.last_alert[alert.model] = alert.to_dict()
            self.windows.count(events, alerts, labelled)
            if self.page is not None:
                self.page.observe(events, alerts)
            for ev in events:
                book.dirty.add(ev.model)
            book.events_since += len(events)
            self.processed += len(events)
            for kind, n in counts.items():
                self._metrics.events.labels(self._topic_of_kind[kind], kind).inc(n)
        self._count_dead_letters()
        seen = self._seen
        for model in touched:
            if model in seen:  # least recently seen first (``_admit``)
                seen.move_to_end(model)
                seen[model] = started
        if book.revoked:  # revoked while alerts were being sent: no checkpoint, no ack
            return
        book.held.append(event)
        book.tick_sent = False
        if (
            book.events_since >= self._every_events
            or time.monotonic() - book.last_checkpoint >= self._every_seconds
        ):
            await self._checkpoint(book, ack)
        elif len(self._pending) > 10_000:
            self._pending = [f for f in self._pending if not _done(f)]
        now = time.perf_counter()
        self._metrics.batches.inc()
        self._metrics.processing.observe(now - started)
        if oldest_ms is not None:
            self._metrics.latency.observe(max(0.0, time.time() - oldest_ms / 1000.0))

    def due_ticks(self) -> list[int]:
        """Shards with unacknowledged messages whose checkpoint is overdue.

        The timer sends each of them a tick message, because table writes are only possible
        while the agent handles a message of that shard.
        """
        now = time.monotonic()
        due = []
        for shard, book in self._shards.items():
            if (
                book.held
                and not book.tick_sent
                and now - book.last_checkpoint >= self._every_seconds
            ):
                book.tick_sent = True
                due.append(shard)
        return due

    def checkpoint_ages(self) -> dict[int, float]:
        """Seconds since each owned shard's last checkpoint (the ``/metrics`` gauge)."""
        now = time.monotonic()
        return {shard: now - book.last_checkpoint for shard, book in self._shards.items()}

    def feature_drift(self) -> list[tuple[str, str, float]]:
        """Per model and numeric feature, the current window's mean shift in reference sds.

        Read from the monitor's status of the model-wide streams at scrape time, so the hot
        path pays nothing for it; with several versions the largest shift is reported.
        """
        shifts: dict[tuple[str, str], float] = {}
        for book in self._shards.values():
            for model in book.models:
                try:
                    summary = self.monitor.status(model)
                except KeyError:
                    continue
                for stream in summary.get("streams", ()):
                    if stream.get("segment") is not None:
                        continue
                    for name, feature in stream.get("features", {}).items():
                        ref = feature.get("reference") or {}
                        cur = feature.get("current") or {}
                        mean, ref_mean, ref_sd = cur.get("mean"), ref.get("mean"), ref.get("sd")
                        if mean is None or ref_mean is None or not ref_sd:
                            continue
                        shift = abs(mean - ref_mean) / ref_sd
                        key = (model, name)
                        shifts[key] = max(shift, shifts.get(key, 0.0))
        return [(model, name, shift) for (model, name), shift in sorted(shifts.items())]

    def status(self) -> dict:
        """The ``/status`` document: per model, the monitor's own summary and last alert."""
        models = {}
        for shard, book in sorted(self._shards.items()):
            for model in sorted(book.models):
                try:
                    summary = self.monitor.status(model)
                except KeyError:
                    continue
                models[model] = {
                    "shard": shard,
                    "status": summary,
                    "last_alert": self.last_alert.get(model),
                    "windows": self.windows.view(model),
                }
        return {
            "shards": {
                str(shard): {
                    "models": len(book.models),
                    "uncheckpointed_events": book.events_since,
                    "unacknowledged_batches": len(book.held),
                    "checkpoint_age_seconds": round(time.monotonic() - book.last_checkpoint, 3),
                    "unattributed_windows": self.windows.view_shard(shard),
                }
                for shard, book in sorted(self._shards.items())
            },
            "events_processed": self.processed,
            "labels": {k: v for k, v in self.monitor.stats.items() if k.startswith("labels_")},
            "models": models,
        }

    # -- internals -------------------------------------------------------------------------

    def _restore(self, model: str, book: _Shard) -> _Refusal | None:
        """Load a model's last checkpoint from the table the first time the shard sees it.

        A checkpoint that cannot be trusted (checksums, ranges, watermarks beyond their
        partition's end, a state the monitor refuses) is a :class:`StateError`, logged,
        counted in ``driftline_state_errors_total`` and handled by ``on_bad_state``:
        ``refuse`` (default) leaves the record untouched and returns the refusal, so that
        the model's events go to the dead-letter topic; ``fresh`` starts the model anew.
        """
        bad = self._bad_state.get(model)
        if bad is not None:
            return _Refusal(bad, "state")
        key = model.encode()
        value = self._table.get(key)
        if value is None:
            # No checkpoint: start clean, whatever a handler interrupted by a rebalance left
            # in the monitor; the messages since the last commit are all read again.
            book.models.add(model)
            self._forget({model})
            return None
        try:
            head = unpack_header(value)
            self._check_marks(head.marks)
            chunks = [
                self._table.get(chunk_key(key, head.generation, i)) for i in range(head.chunks)
            ]
            self.monitor.load_model(model, unpack_state(chunks, head.crc, head.size))
        except StateError as exc:
            error = f"state: checkpoint of model {model!r} refused: {exc}"
            self._metrics.state_errors.labels(model).inc()
            self.monitor.drop_model(model)
            self.windows.drop(model)
            if self._on_bad_state == "refuse":
                log.error("%s; its events go to the dead-letter topic (--on-bad-state)", error)
                self._bad_state[model] = error
                return _Refusal(error, "state")
            log.error("%s; starting it fresh (--on-bad-state fresh)", error)
            book.models.add(model)
            return None
        book.models.add(model)
        self.windows.load(model, header_windows(value))
        self._marks[model] = head.marks
        self._generation[model] = (head.generation, head.chunks)
        return None

    def _check_marks(self, marks: Watermarks) -> None:
        """A watermark at or past its source partition's end offset (when this worker knows
        it) cannot come from this cluster's stream: every later event would be skipped."""
        for (kind, partition), offset in marks.items():
            end = self._end_offset(kind, partition)
            if end is not None and offset >= end:
                raise StateError(
                    f"watermark {offset} of {kind} partition {partition} is past its end {end}"
                )

    def _refusal(self, model: str, shard: int, touched: set[str]) -> _Refusal | None:
        """Why a model new to this shard's memory cannot be taken on, if it cannot."""
        if shard_of(model, self._shards_total) != shard:
            # The router and this shard disagree on ownership: only possible when workers
            # run with different shard counts. Never mix states silently.
            return _Refusal(
                "model: routed to the wrong shard (workers disagree on the count)", "routing"
            )
        if not self._admit(model, touched):
            return _Refusal(
                f"model: over the limit of {self._max_models} models in a worker's memory "
                "(--max-models); its state would not be bounded",
                "limit",
            )
        return None

    def _admit(self, model: str, touched: set[str]) -> bool:
        """Whether a model new to this worker's memory may be loaded or created.

        Under ``max_models`` models in memory: yes. At the limit, the least recently seen
        models without unsaved changes are evicted first (their state is in the table and
        comes back with their next event); a model that already has state in the table is
        always admitted (refusing it would lose its events); only a brand-new model is
        refused when nothing can be evicted.
        """
        if len(self._seen) < self._max_models:
            return True
        for victim in self._seen:
            book = self._shards.get(shard_of(victim, self._shards_total))
            if book is not None and victim not in book.dirty and victim not in touched:
                self._evict(book, victim)
                return True
        return self._table.get(model.encode()) is not None

    def _evict_idle(self, book: _Shard, before: float) -> None:
        """Drop the book's models not seen since ``before`` (all are checkpointed now)."""
        seen = self._seen
        for model in [m for m in book.models if seen.get(m, 0.0) < before]:
            self._evict(book, model)

    def _evict(self, book: _Shard, model: str) -> None:
        book.models.discard(model)
        book.dirty.discard(model)
        self._forget({model})
        self.last_alert.pop(model, None)
        self.evicted += 1
        self._metrics.evicted.inc()

    def _forget(self, models: set[str]) -> None:
        """Drop the detector state and book-keeping of ``models`` from this worker."""
        for model in models:
            self.monitor.drop_model(model)
            self.windows.drop(model)
            self._marks.pop(model, None)
            self._generation.pop(model, None)
            self._seen.pop(model, None)

    async def _checkpoint(self, book: _Shard, ack: Callable) -> None:
        """Deliver pending output, write dirty models to the table, then acknowledge."""
        if self._pending:
            pending, self._pending = self._pending, []
            await asyncio.gather(*pending)
        if book.revoked:  # the state was dropped during the wait: nothing true to write
            return
        table = self._table
        dump = self.monitor.dump_model
        wrote = bool(book.dirty)
        for n, model in enumerate(list(book.dirty)):
            if n and n % _YIELD_EVERY == 0:
                # thousands of dirty models (a flood of model names) take seconds to dump:
                # let the web views and the consumer loop run in between
                await asyncio.sleep(0)
                if book.revoked:  # the state was dropped meanwhile: write nothing more
                    return
            key = model.encode()
            old_generation, old_count = self._generation.get(model, (0, 0))
            generation = old_generation + 1
            header, chunks = pack_checkpoint(
                self._marks.get(model, {}), dump(model), generation, self.windows.dump(model)
            )
            for i, chunk in enumerate(chunks):
                table[chunk_key(key, generation, i)] = chunk
            table[key] = header  # last: the switch to the new generation
            for i in range(old_count):
                table.pop(chunk_key(key, old_generation, i), None)
            self._generation[model] = (generation, len(chunks))
        if book.dirty:
            self._metrics.checkpoints.inc(len(book.dirty))
        book.dirty.clear()
        here = self._here
        if here is not None and here[1] is book and here[0] in self.windows.shard_dirty:
            self.windows.shard_dirty.discard(here[0])
            table[shard_windows_key(here[0])] = orjson.dumps(self.windows.dump_shard(here[0]))
            wrote = True
        if wrote and here is not None and here[1] is book:
            await self._fence(here[0])
            if book.revoked:  # revoked during the flush: its new owner acknowledges
                return
        held, book.held = book.held, []
        for event in held:
            await ack(event)
        book.events_since = 0
        book.last_checkpoint = time.monotonic()
        self._evict_idle(book, time.perf_counter() - self._idle_seconds)

    async def _fence(self, shard: int) -> None:
        """End a checkpoint with a record batch of its own, delivered before the acks.

        The embedded broker (Tansu 0.6) answers a partition's end offset with the first
        offset of its last record batch plus one, and Faust's recovery reads a changelog only
        up to that end: a checkpoint sent as one batch (chunks, header, tombstones) would be
        restored in part, i.e. as the previous checkpoint, while the source offsets are
        committed past it. A one-record batch after it (this shard's fence key, flushed
        alone) makes the reported end exact. On Apache Kafka it costs two flushes per
        checkpoint.
        """
        await self._producer.flush()
        self._table[fence_key(shard)] = b"1"  # the record is the point, not its value
        await self._producer.flush()

    async def _dead(
        self,
        raw: bytes,
        error: str,
        topic: str,
        partition: int,
        offset: int,
        reason: str = "batch",
    ) -> None:
        where = Origin(error, topic, partition, offset)
        self._pending.append(await self._deadletters.send(None, raw, where))
        self._metrics.invalid.labels(topic, reason).inc()
        self._note_dead(raw, topic, partition, offset, reason)

    def _note_dead(self, raw: bytes, topic: str, partition: int, offset: int, reason: str) -> None:
        """Remember a dead letter of the batch for its window (:meth:`_count_dead_letters`).

        A dead letter of a model with state advances the model's watermark like a valid
        event (detector failures already did), in stream order, so that its redelivery after
        a crash is not counted twice: count and watermark are checkpointed together.
        """
        here = self._here
        if here is None or here[1].revoked:  # revoked during the send: nothing to count
            return
        model = model_of(raw) if reason != "batch" else ""
        book = here[1]
        kind = self._kind_of_topic.get(topic)
        if model in book.models and kind is not None and reason != "detector":
            marks = self._marks.setdefault(model, {})
            if offset <= marks.get((kind, partition), -1):
                return  # a redelivery, already counted
            marks[(kind, partition)] = offset
            book.dirty.add(model)
        here[2].append(model)

    def _count_dead_letters(self) -> None:
        """Count the batch's dead letters in their model's window, or as unattributed.

        Called once the batch's valid events are counted, so that a model's dead letters
        find the window its events just opened (a dead letter has no trustworthy event time).
        """
        here = self._here
        if here is None or not here[2] or here[1].revoked:
            return
        shard, book, dead = here
        windows = self.windows
        unattributed = 0
        for model in dead:
            if model in book.models and windows.has_time(model):
                windows.count_invalid(model)
                book.dirty.add(model)
            else:
                unattributed += 1
        dead.clear()
        if unattributed:
            if shard not in windows.shards:  # first use since assignment: restore, then count
                windows.load_shard(shard, self._table.get(shard_windows_key(shard)))
            windows.count_unattributed(shard, book.models, time.time(), unattributed)


def _done(future: Any) -> bool:
    done = getattr(future, "done", None)
    return bool(done()) if done is not None else False
