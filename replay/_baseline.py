"""``driftline baseline build``: reference profiles from training data files.

Replay owns the reading (the same inputs, bad-line accounting and exit statuses as
``driftline replay``); what a profile contains is the detection core's
(``driftline.detectors.BaselineBuilder``), so a profile always matches the detectors that
read it. Events are handed over in large batches because the builder vectorises per column.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from driftline.replay._badlines import BadLine, BadLineLog
from driftline.replay._decode import decode_batches
from driftline.replay._inputs import check_inputs, display_name, open_lines
from driftline.replay._progress import Progress
from driftline.replay._replay import fewer_collections, open_output
from driftline.replay._summary import format_counts, format_invalid
from driftline.replay.exceptions import InputError

__all__ = ["BaselineSummary", "build_baseline_file", "load_baseline"]

#: Events per builder call: large enough for the builder's column-wise numpy work; larger
#: batches measured slower (more live objects for the cyclic collector and the caches to
#: walk: 2.65 s at 16,384 against 2.45 s at 4,096 for 300k 16-feature events).
_BATCH = 4096


@dataclass(frozen=True)
class BaselineSummary:
    """What ``baseline build`` read and wrote.

    Attributes
    ----------
    inputs : tuple of str
        Display names of the inputs.
    output : str
        Where the profile went.
    events_by_kind : dict
        Valid events per kind (label events are only counted by the builder).
    invalid_lines, invalid_by_reason, first_invalid
        As in :class:`ReplaySummary`.
    profiles : tuple of (model, model_version, events, features)
        One entry per profile written.
    elapsed_seconds : float
        Wall time of the build.
    outcomes : tuple of str
        Per profile, what it learnt of labels (the reference of the error-rate detectors).
    """

    inputs: tuple[str, ...]
    output: str
    events_by_kind: dict[str, int]
    invalid_lines: int
    invalid_by_reason: dict[str, int]
    first_invalid: tuple[BadLine, ...]
    profiles: tuple[tuple[str, str | None, int, int], ...]
    elapsed_seconds: float = 0.0
    outcomes: tuple[str, ...] = ()

    def format(self) -> str:
        """The human summary printed on stderr at the end of ``driftline baseline build``."""
        events = sum(self.events_by_kind.values())
        lines = [
            f"baseline: {len(self.profiles)} profile(s) from {events:,} events of "
            f"{len(self.inputs)} input(s) in {self.elapsed_seconds:.2f} s -> {self.output}",
            f"  events: {format_counts(self.events_by_kind)}",
            f"  {format_invalid(self.invalid_lines, self.invalid_by_reason)}",
        ]
        learnt = self.outcomes or ("",) * len(self.profiles)
        for (model, version, n, features), labels in zip(self.profiles, learnt, strict=True):
            lines.append(
                f"  {model} (version {version or 'any'}): {n:,} events, {features} features"
                + (f"; {labels}" if labels else "")
            )
        return "\n".join(lines)


def _outcomes_line(profile: dict) -> str:
    """What a profile learnt of labels, for the summary."""
    op = profile.get("outcomes")
    if not op:
        return "no labelled predictions (join labels by prediction_id, or a label field)"
    m = op["metrics"]
    if op["task"] == "regression":
        how = f"MAE {m['mae']:.4g}, RMSE {m['rmse']:.4g}"
    else:
        how = f"accuracy {m['accuracy']:.2%}"
    line = f"{m['count']:,} labelled predictions ({op['task']}, {how})"
    cal = op.get("calibration")
    if cal:
        line += (
            f"; score calibration: {len(cal['rows'])} bins (performance estimated before labels)"
        )
    elif op["task"] == "binary":
        line += (
            "; no score calibration (needs at least 1,000 labelled predictions with float "
            "scores): no performance estimate before labels"
        )
    return line


def _output_name(out: str | os.PathLike[str] | BinaryIO) -> str:
    if not isinstance(out, (str, os.PathLike)):
        return "<stream>"
    return "<stdout>" if str(out) == "-" else str(out)


def load_baseline(path: str | os.PathLike[str]) -> Any:
    """Read a profile written by ``driftline baseline build``.

    Raises
    ------
    InputError
        The file cannot be read.
    ValueError
        (the detectors' ``ConfigError``) it is not a valid profile; the message names the
        file and the offending field.
    """
    from driftline.detectors import Baseline

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read baseline: {exc.strerror or exc}") from None
    try:
        return Baseline.from_json(data)
    except ValueError as exc:
        raise type(exc)(f"{path}: {exc}") from None


def build_baseline_file(
    inputs: Sequence[str],
    out: str | os.PathLike[str] | BinaryIO,
    *,
    config: Any = None,
    strict: bool = False,
    progress: bool | None = None,
    show_bad: int = 10,
    echo: Callable[[str], None] | None = None,
    stdin: BinaryIO | None = None,
) -> BaselineSummary:
    """Build a reference profile from training or validation logs and write it as JSON.

    Parameters
    ----------
    inputs : sequence of str
        As for :func:`replay_files`: plain, gzipped, Parquet, or ``-``.
    out : str, path or binary file
        Where the profile goes (``-`` for standard output); a path is replaced atomically.
    config : DetectionConfig, optional
        Ignored features and forced feature kinds are respected.
    strict, progress, show_bad, echo, stdin
        As for :func:`replay_files`.

    Raises
    ------
    InputError, BadLineError
        As for :func:`replay_files`.
    """
    from driftline.detectors import BaselineBuilder

    paths = check_inputs(inputs)
    builder = BaselineBuilder(config)
    bar = Progress(progress, desc="baseline", counter="invalid")
    bad = BadLineLog(strict=strict, show=show_bad, echo=echo or bar.write)
    kinds: Counter[str] = Counter()
    start = time.perf_counter()
    try:
        with fewer_collections():
            for path in paths:
                with open_lines(path, stdin) as lines:
                    for events, _raws in decode_batches(lines, display_name(path), bad, _BATCH):
                        kinds.update(e.kind for e in events)
                        builder.add(events)
                        bar.update(len(events), bad.count)
    finally:
        bar.close()
    baseline = builder.build()
    with open_output(out) as sink:
        sink.write(baseline.to_json())
    elapsed = time.perf_counter() - start
    bad.finish()
    return BaselineSummary(
        inputs=tuple(display_name(p) for p in paths),
        output=_output_name(out),
        events_by_kind=dict(sorted(kinds.items())),
        invalid_lines=bad.count,
        invalid_by_reason=dict(sorted(bad.by_reason.items())),
        first_invalid=tuple(bad.first),
        profiles=tuple(
            (p["model"], p["model_version"], p["events"], len(p["features"]))
            for p in baseline.profiles
        ),
        elapsed_seconds=elapsed,
        outcomes=tuple(_outcomes_line(p) for p in baseline.profiles),
    )
