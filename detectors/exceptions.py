"""The errors of the detection core.

Both are ``ValueError`` subclasses: a bad configuration file and a bad state blob are bad
values handed to the detectors, and generic handlers that already catch ``ValueError`` (a CLI
that prints one line, a worker that counts bad records) keep working.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DetectorError", "StateError"]


class DetectorError(ValueError):
    """Base class of the errors raised by :mod:`driftline.detectors`."""


class ConfigError(DetectorError):
    """A detection configuration (TOML file or keyword) that cannot be used.

    The message names the offending key as a dotted path, e.g.
    ``models.fraud.features.age.kind: expected 'numeric' or 'categorical', got 'date'``.
    """


class StateError(DetectorError):
    """Serialized detector state that cannot be restored.

    Raised for truncated or corrupt bytes, an unknown format version, or a blob written for a
    different model. State is never unpickled, so a bad blob can only be rejected, not run.
    """
