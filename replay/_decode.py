"""From raw lines to batches of contract events: the hot loop of replay and publish.

The loop is written once, flat, and yields whole batches rather than single events: a
generator step per event would be a measurable share of the per-event budget, while a step
per batch of a thousand costs nothing. Everything that is not the common case (blank lines,
bad JSON, contract violations) lives in the ``except`` branch, so the path a good line takes
is one ``decode_event`` call (``orjson.loads`` plus the contract's validation, which may skip
the checks orjson already guarantees for JSON text) and two appends.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from driftline.replay._badlines import BadLineLog
from driftline.replay._inputs import READ_ERRORS, read_failure
from driftline.replay.exceptions import InputError
from driftline.schemas import ContractError, Event, decode_event

__all__ = ["decode_batches"]

#: The ``ContractError.field`` of a message that is not a JSON object at all.
MESSAGE_FIELD = "<message>"


def decode_batches(
    lines: Iterable[bytes],
    name: str,
    bad: BadLineLog,
    batch_size: int,
    kind: str | None = None,
) -> Iterator[tuple[list[Event], list[bytes]]]:
    """Decode one input into batches of events, with the raw line of each event.

    Parameters
    ----------
    lines : iterable of bytes
        Raw lines of one input (see :func:`open_lines`).
    name : str
        The input's display name, for messages.
    bad : BadLineLog
        Receives every bad line (and raises under ``--strict``).
    batch_size : int
        Events per yielded batch; the last batch may be shorter.
    kind : str, optional
        Forces one event kind (a single-kind topic dump); ``None`` infers it per line.

    Yields
    ------
    (events, raws)
        Parallel lists: the decoded events and the lines they came from (publish sends the
        original bytes, so a re-encoding can never change what producers sent).

    Raises
    ------
    InputError
        The input has no non-blank line, or its compressed stream is damaged.
    BadLineError
        Under ``--strict``, at the first bad line.
    """
    decode = decode_event
    events: list[Event] = []
    raws: list[bytes] = []
    lineno = 0
    blank = 0
    try:
        for lineno, line in enumerate(lines, 1):
            try:
                events.append(decode(line, kind))
            except ContractError as exc:
                if not line.strip():
                    blank += 1
                    continue
                bad.add(name, lineno, *_classify(exc))
                continue
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                # decode_event promises ContractError only; anything else is a decoder bug on
                # odd input, and odd input must never stop a replay.
                reason = f"decoder error: {type(exc).__name__}: {exc}"
                bad.add(name, lineno, reason, "decoder error")
                continue
            raws.append(line)
            if len(events) >= batch_size:
                yield events, raws
                events = []
                raws = []
    except READ_ERRORS as exc:
        raise read_failure(name, lineno, exc) from None
    if lineno == blank:
        raise InputError(f"{name}: empty input (no events)")
    if events:
        yield events, raws


def _classify(exc: ContractError) -> tuple[str, str]:
    """The message and the summary's reason class of a rejected line."""
    if exc.field == MESSAGE_FIELD:
        if exc.problem.startswith("expected a JSON object"):
            return exc.problem, "not an object"
        return exc.problem, "not JSON"
    return f"contract: {exc}", f"contract: {exc.field}"
