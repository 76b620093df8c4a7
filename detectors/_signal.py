"""What a detector reports to the alert policy: a candidate alarm with its evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Signal"]


@dataclass(slots=True)
class Signal:
    """A detector's alarm on one feature, before the policy decides to fire, merge or drop it.

    Attributes
    ----------
    detector : str
        ``mean``, ``scale``, ``shape`` or ``frequency`` (issue-4 signals add their own).
    index : int
        Position in the block of the event at which the alarm was raised.
    severity : str
        ``warning`` or ``critical``, from the effect size.
    statistics : dict
        JSON-able numbers that justify the alarm: ``before``, ``after``, ``score``,
        ``threshold``, ``p_value``, ``effect`` and detector-specific ones.
    window : dict
        Event-time start/end and counts of the reference and of the current data compared.
    message : str
        One sentence for a person.
    """

    detector: str
    index: int
    severity: str
    statistics: dict[str, Any]
    window: dict[str, Any]
    message: str
    extra: dict[str, Any] = field(default_factory=dict)
