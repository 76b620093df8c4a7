"""What a replay or a publish run did, as data and as the text printed at the end."""

from __future__ import annotations

from dataclasses import dataclass, field

from driftline.replay._badlines import BadLine

__all__ = [
    "PublishSummary",
    "ReplaySummary",
    "estimate_lines",
    "format_counts",
    "format_invalid",
    "format_labels",
]


def format_counts(items: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(items.items())) or "none"


def format_labels(labels: dict[str, int]) -> str:
    """``unmatched 3, expired 0, read early 12 (joined 12), waiting at the end 0``."""
    return (
        f"unmatched {labels.get('labels_unmatched', 0):,}, "
        f"expired {labels.get('labels_expired', 0):,}, "
        f"read before their prediction {labels.get('labels_early', 0):,} "
        f"(joined {labels.get('labels_early_joined', 0):,}), "
        f"waiting at the end {labels.get('labels_waiting', 0):,}"
    )


def format_invalid(count: int, by_reason: dict[str, int]) -> str:
    if not count:
        return "invalid lines: 0"
    return f"invalid lines: {count:,} ({format_counts(by_reason)})"


@dataclass(frozen=True)
class ReplaySummary:
    """Counts and timing of one replay.

    The counts are deterministic; ``elapsed_seconds`` is the only wall-clock figure and is
    kept here (and printed on stderr) precisely so it never reaches the alerts output.

    Attributes
    ----------
    inputs : tuple of str
        Display names of the inputs, in order.
    events_by_kind : dict
        Valid events per kind (``prediction``, ``feature``, ``label``).
    invalid_lines : int
        Lines skipped as bad (blank lines are not counted).
    invalid_by_reason : dict
        Bad lines per reason class.
    first_invalid : tuple of BadLine
        The first bad lines, as reported.
    alerts_by_kind : dict
        Alerts written, per alert kind.
    alerts_by_feature : dict
        Alerts written per ``(kind, feature)``; feature ``-`` for model-level alerts.
    labels : dict
        The monitor's label counters (``labels_unmatched``, ``labels_expired``,
        ``labels_early``, ``labels_early_joined``, ``labels_waiting``: see ``Monitor.stats``).
    elapsed_seconds : float
        Wall time from the first read to the last write.
    report_bytes, report_seconds : int, float
        With ``report=``: the HTML report's size, and the time spent building it (sampling
        during the run, the document and the file; part of ``elapsed_seconds`` only for the
        sampling).
    estimated : tuple of str
        Per model stream, its performance estimated from calibrated scores over the last
        window (issue 17), or why there is none (:func:`estimate_lines`).
    """

    inputs: tuple[str, ...]
    events_by_kind: dict[str, int]
    invalid_lines: int
    invalid_by_reason: dict[str, int]
    first_invalid: tuple[BadLine, ...]
    alerts_by_kind: dict[str, int]
    alerts_by_feature: dict[tuple[str, str], int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    elapsed_seconds: float = 0.0
    report_bytes: int = 0
    report_seconds: float = 0.0
    estimated: tuple[str, ...] = ()

    @property
    def events(self) -> int:
        """Valid events replayed."""
        return sum(self.events_by_kind.values())

    @property
    def alerts(self) -> int:
        """Alerts written."""
        return sum(self.alerts_by_kind.values())

    @property
    def events_per_second(self) -> float:
        return self.events / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    def format(self) -> str:
        """The human summary printed on stderr at the end of ``driftline replay``."""
        lines = [
            f"replayed {self.events:,} events from {len(self.inputs)} input(s) in "
            f"{self.elapsed_seconds:.2f} s ({self.events_per_second:,.0f} events/s)",
            f"  events: {format_counts(self.events_by_kind)}",
            f"  {format_invalid(self.invalid_lines, self.invalid_by_reason)}",
            f"  alerts: {self.alerts:,}",
        ]
        if self.events_by_kind.get("label"):
            lines.insert(-1, "  labels: " + format_labels(self.labels))
        if self.alerts:
            lines[-1] += f" ({format_counts(self.alerts_by_kind)})"
        width = max((len(k) for k, _ in self.alerts_by_feature), default=0)
        for (kind, feature), n in sorted(self.alerts_by_feature.items()):
            lines.append(f"    {kind:<{width}}  {feature}: {n:,}")
        if self.report_bytes:
            lines.append(
                f"  report: {self.report_bytes:,} bytes, built in {self.report_seconds:.2f} s"
            )
        if self.estimated:
            lines.append("  estimated performance (calibrated scores, last window):")
            lines += [f"    {line}" for line in self.estimated]
        return "\n".join(lines)


def _metric(m: dict, name: str, label: str) -> str | None:
    value, iv = m.get(name), m.get(f"{name}_interval")
    if value is None:
        return None
    return f"{label} {value:.1%}" + (f" [{iv[0]:.1%}, {iv[1]:.1%}]" if iv else "")


def estimate_lines(status: dict) -> list[str]:
    """One line per model stream of a ``Monitor.status`` view: the estimated metrics of the
    last window with their 95% intervals and the reference accuracy, or why a stream with a
    baseline has none (streams without a baseline are left out: there is nothing to say).

    Examples
    --------
    >>> estimate_lines({"model": "m", "streams": [{"model_version": None,
    ...     "estimated_performance": {"available": False, "cause": "no_calibration",
    ...                               "reason": "too few labels"}}]})
    ['m (version any): no estimate (too few labels)']
    """
    out = []
    for st in status.get("streams", []):
        est = st.get("estimated_performance")
        if est is None or est.get("cause") in ("no_baseline", "slice"):
            continue
        head = f"{status['model']} (version {st.get('model_version') or 'any'})"
        if not est.get("available"):
            out.append(f"{head}: no estimate ({est.get('reason', 'unavailable')})")
            continue
        w, ref = est["window"], est["reference"]
        if not w.get("count"):
            out.append(f"{head}: no predictions counted yet")
            continue
        parts = [
            _metric(w, k, label)
            for k, label in (
                ("accuracy", "accuracy"),
                ("precision", "precision"),
                ("recall", "recall"),
                ("f1", "F1"),
                ("roc_auc", "ROC AUC"),
            )
        ]
        out.append(
            f"{head}: {', '.join(p for p in parts if p)} over the last {w['count']:,} "
            f"predictions (reference accuracy {ref['accuracy']:.1%})"
        )
    return out


@dataclass(frozen=True)
class PublishSummary:
    """Counts and timing of one publish run.

    Attributes
    ----------
    inputs : tuple of str
        Display names of the inputs.
    messages_by_topic : dict
        Messages delivered per topic.
    invalid_lines, invalid_by_reason, first_invalid
        As in :class:`ReplaySummary`: bad lines are never published.
    elapsed_seconds : float
        Wall time of the run (including the pacing sleeps of ``--speed X``).
    """

    inputs: tuple[str, ...]
    messages_by_topic: dict[str, int]
    invalid_lines: int
    invalid_by_reason: dict[str, int]
    first_invalid: tuple[BadLine, ...]
    elapsed_seconds: float = 0.0

    @property
    def messages(self) -> int:
        return sum(self.messages_by_topic.values())

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    def format(self) -> str:
        """The human summary printed on stderr at the end of ``driftline replay --publish``."""
        return "\n".join(
            [
                f"published {self.messages:,} messages from {len(self.inputs)} input(s) in "
                f"{self.elapsed_seconds:.2f} s ({self.messages_per_second:,.0f} messages/s)",
                f"  topics: {format_counts(self.messages_by_topic)}",
                f"  {format_invalid(self.invalid_lines, self.invalid_by_reason)}",
            ]
        )
