"""Detection options: frozen dataclasses, defaults that need no file, TOML overrides.

A configuration has three levels, each overriding the one above it::

    [detection]                      # defaults for every model
    false_alarms_per_million = 1.0
    warmup = 2000
    ignore = ["request_id"]

    [detection.features.country]     # a feature of any model
    kind = "categorical"

    [detection.models.fraud]         # one model: any option of [detection]
    false_alarms_per_million = 0.5
    block = 256

    [detection.models.fraud.features.amount]
    detectors = ["mean", "shape"]    # only these detectors on this feature
    # ignore = true                  # or do not monitor it at all

A file without a ``[detection]`` table is read from its top level, so a dedicated
``detection.toml`` can drop the prefix. ``preset = "changepoint"`` in the table (or
``--preset changepoint`` on the command line) starts from a named preset (:data:`PRESETS`).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .exceptions import ConfigError

__all__ = [
    "DETECTORS",
    "PRESETS",
    "DetectionConfig",
    "FeatureConfig",
    "ModelConfig",
    "StreamSettings",
    "load_config",
]

#: The detectors of the feature-drift core, by the name used in configuration and alerts.
#: ``mean`` and ``scale`` are CUSUMs on rank scores of numeric features, ``shape`` a windowed
#: binned test of numeric features, ``frequency`` a windowed test of category frequencies,
#: ``adwin`` river's ADWIN on sub-block means of a numeric feature's location score. All but
#: ``adwin`` run by default; ``adwin`` is opt-in (name it in a feature's ``detectors``): on
#: ``benchmarks/quality.py`` it did not shorten any median delay, and its budget share
#: lengthens the other detectors' slightly. ``bocpd`` (Bayesian online change-point detection,
#: ``_bocpd``) runs on numeric features only when ``bocpd_hazard`` > 0 (the ``changepoint``
#: preset).
DETECTORS: tuple[str, ...] = ("mean", "scale", "shape", "frequency", "adwin", "bocpd")

_KINDS = ("numeric", "categorical")

#: Named starting points for a configuration (``--preset NAME``, or ``preset = "NAME"`` in
#: the ``[detection]`` table; options given next to it override the preset's).
#:
#: ``changepoint``: short univariate series (hundreds of points: monthly counts, daily
#: prices) where each change of level is an event to report, not an incident to page about.
#: Numeric features are watched by Bayesian online change-point detection (``bocpd``, hazard
#: 1/100: each segment judged against itself, so trends and successive levels do not pile up
#: as one change) instead of the reference CUSUMs; a decision at every point (``block`` 1);
#: each change reported on its own (``readapt_after`` 0, no cooldown); the first ``warmup``
#: values standardise the series. The prior and the hazard are the method's textbook
#: defaults; ``benchmarks/quality.py`` measures the preset on the TCPD series river bundles.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "changepoint": {
        "warmup": 25,
        "block": 1,
        "window_blocks": 8,
        "bins": 4,
        "false_alarms_per_million": 2000.0,
        "confirm_alpha": 1e-3,
        "readapt_after": 0,
        "cooldown": 0,
        "bocpd_hazard": 0.01,
        "detectors": ("bocpd", "frequency"),
    },
}


@dataclass(frozen=True, slots=True)
class FeatureConfig:
    """Options for one feature.

    Parameters
    ----------
    kind : {"numeric", "categorical"} or None
        Forces the feature type; ``None`` infers it from the first values seen (booleans and
        strings are categorical, other numbers numeric).
    ignore : bool
        Do not monitor this feature at all (identifiers, timestamps, free text).
    detectors : tuple of str or None
        The detectors to run on it; ``None`` means all that apply to its type.
    """

    kind: str | None = None
    ignore: bool = False
    detectors: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class _Options:
    """The tunable numbers shared by the global level and each model (see DetectionConfig)."""

    false_alarms_per_million: float = 1.0
    warmup: int = 2000
    block: int = 512
    block_seconds: float = 0.0
    window_blocks: int = 4
    bins: int = 16
    cusum_k: float = 0.25
    confirm_alpha: float = 1e-3
    resolve_alpha: float = 0.05
    cooldown: int = 5000
    readapt_after: int = 200_000
    max_categories: int = 32
    heavy_hitters: int = 128
    adwin_sub: int = 32
    bocpd_hazard: float = 0.0
    label_ttl: float = 86_400.0
    max_pending_labels: int = 100_000
    early_label_wait: float = 60.0
    max_early_labels: int = 10_000
    outcome_block: int = 128
    decision_threshold: float = 0.5
    max_segment_keys: int = 4
    max_segments: int = 8
    max_features: int = 256


_OPTION_NAMES = tuple(f.name for f in fields(_Options))


@dataclass(frozen=True, slots=True)
class StreamSettings(_Options):
    """Fully resolved options for one model: what a model's detectors actually use.

    Built by :meth:`DetectionConfig.for_model`; holds every option of
    :class:`DetectionConfig` plus the merged per-feature options and the ignore list.
    """

    ignore: frozenset[str] = frozenset()
    features: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    detectors: tuple[str, ...] | None = None

    def feature(self, name: str) -> FeatureConfig:
        """The options of feature ``name`` (defaults when it has none)."""
        return self.features.get(name, _DEFAULT_FEATURE)

    def enabled(self, name: str, detector: str) -> bool:
        """Whether ``detector`` runs on feature ``name`` (its own ``detectors``, else the
        configuration's default list, else all that apply)."""
        chosen = self.feature(name).detectors or self.detectors
        return chosen is None or detector in chosen


_DEFAULT_FEATURE = FeatureConfig()


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Overrides for one model: any option of :class:`DetectionConfig` (``None`` = inherit)."""

    options: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    ignore: tuple[str, ...] = ()
    features: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class DetectionConfig(_Options):
    """Options of the detection core; ``DetectionConfig()`` is the zero-configuration default.

    Parameters
    ----------
    false_alarms_per_million : float
        The false-alarm budget: expected false alerts per million events of one model stream
        (model and version), summed over all its features and detectors, when nothing drifts.
        Every threshold is derived from it (see ``_policy``).
    warmup : int
        Non-missing values of a feature that form its reference distribution (the first
        ``warmup`` values of the live stream; frozen afterwards).
    block : int
        Events per processing block. Detection runs vectorised over blocks cut at fixed event
        counts of each model stream (never at batch boundaries, so results do not depend on
        batching); an alert is emitted when its block completes, at most ``block - 1`` events
        after the event it names.
    block_seconds : float
        If > 0, a block also closes when an event arrives this much event time after the
        block's first event: bounds the alert latency of low-traffic models (in event time;
        0 = off). Blocks then vary in size, still identically for every batching.
    window_blocks : int
        The current window of the windowed tests (``shape``, ``frequency``) in blocks.
    bins : int
        Equiprobable reference bins of the ``shape`` test.
    cusum_k : float
        CUSUM allowance in standard deviations of the score: the smallest shift worth
        detecting quickly is about ``2 * cusum_k``.
    confirm_alpha : float
        Significance of the two-sample test that confirms a CUSUM change point (reference
        against the data after the change point) before an alert fires.
    resolve_alpha : float
        An active alert resolves when a full window after it no longer differs from the
        reference at this level.
    cooldown : int
        Events after a resolution during which the same feature cannot fire again.
    readapt_after : int
        Events a drift may persist before the current distribution is adopted as the new
        reference (the alert then resolves); ``0`` adopts right after firing (univariate
        change-point mode).
    max_categories : int
        Categories compared by the ``frequency`` test (the most frequent of the reference; the
        rest pooled into one "other" cell).
    heavy_hitters : int
        Capacity of the space-saving table that estimates category frequencies.
    adwin_sub : int
        Non-missing values averaged into one input of the (opt-in) ``adwin`` detector: ADWIN
        then costs ``1 / adwin_sub`` of an update per value and sees near-Gaussian inputs;
        1 feeds it every value (univariate change-point use).
    bocpd_hazard : float
        Prior probability per value of a change for the ``bocpd`` detector (``_bocpd``); 0
        (the default) turns it off. Its alarms are not governed by the false-alarm budget.
    label_ttl : float
        Seconds of event time a prediction waits for its label; later labels are counted as
        expired, not joined.
    max_pending_labels : int
        How many of a model stream's latest predictions the label join remembers: a
        prediction waits for its label while it is among them (and within ``label_ttl``);
        older ones are dropped an eighth of this at a time and counted as evicted. Bounds
        the join's memory.
    early_label_wait : float
        Seconds of event time a label read before its prediction waits for it (backlogs
        after a restart read the label topic ahead of the predictions): it gives up at the
        first block of the model whose events are this much later than the label.
    max_early_labels : int
        Labels that may wait so per model (about 150 bytes each); beyond it the oldest is
        dropped and counted as unmatched.
    outcome_block : int
        Joined (prediction, label) pairs per block of the error-stream detectors.
    decision_threshold : float
        A binary classifier's score at or above which it predicted the positive class, when
        the prediction does not carry its predicted class (``prediction.label``, which
        always wins).
    max_segment_keys : int
        Segment keys tracked per model stream (the first seen); each key's slices share
        ``1 / (1 + keys)`` of the false-alarm budget.
    max_segments : int
        Slices per segment key: a value gets its own state once it has ``block`` events, up
        to this many; rarer values stay pooled in the model-wide state.
    max_features : int
        Feature names a model stream (and each slice) monitors: the first ones seen; more
        are counted (``features_over_limit``), never stored, and the first refusal raises one
        ``schema`` alert (detector ``feature_limit``). About 14 KiB per numeric feature.
    ignore : tuple of str
        Features never monitored, for every model.
    detectors : tuple of str or None
        The detectors of every feature that does not name its own (``None``: all that apply
        to its type).
    features : mapping of str to FeatureConfig
        Per-feature options for every model.
    models : mapping of str to ModelConfig
        Per-model overrides.

    Examples
    --------
    >>> cfg = DetectionConfig(warmup=500)
    >>> cfg.for_model("fraud").warmup
    500
    """

    ignore: tuple[str, ...] = ()
    features: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    models: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    detectors: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.detectors is not None:
            object.__setattr__(
                self, "detectors", _detector_list(list(self.detectors), "detection.detectors")
            )
        for name in ("features", "models"):
            value = getattr(self, name)
            if not isinstance(value, MappingProxyType):
                object.__setattr__(self, name, MappingProxyType(dict(value)))
        object.__setattr__(self, "ignore", tuple(self.ignore))
        _check_options({n: getattr(self, n) for n in _OPTION_NAMES}, "detection")

    def for_model(self, model: str) -> StreamSettings:
        """Resolve the options of ``model``: global values, then the model's overrides."""
        values = {n: getattr(self, n) for n in _OPTION_NAMES}
        features = dict(self.features)
        ignore = set(self.ignore)
        override = self.models.get(model)
        if override is not None:
            values.update(override.options)
            ignore.update(override.ignore)
            for name, fc in override.features.items():
                base = features.get(name, _DEFAULT_FEATURE)
                features[name] = FeatureConfig(
                    kind=fc.kind if fc.kind is not None else base.kind,
                    ignore=fc.ignore or base.ignore,
                    detectors=fc.detectors if fc.detectors is not None else base.detectors,
                )
        ignore.update(n for n, fc in features.items() if fc.ignore)
        return StreamSettings(
            **values,
            ignore=frozenset(ignore),
            features=MappingProxyType(features),
            detectors=self.detectors,
        )

    def with_options(self, **options: Any) -> DetectionConfig:
        """A copy with some global options changed (validated)."""
        return replace(self, **options)

    @classmethod
    def preset(cls, name: str) -> DetectionConfig:
        """The configuration of a named preset (:data:`PRESETS`).

        Examples
        --------
        >>> DetectionConfig.preset("changepoint").block
        1
        """
        return cls(**_preset_options(name, "preset"))


def _preset_options(name: Any, where: str) -> dict[str, Any]:
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError(f"{where}: unknown preset {name!r} (known: {', '.join(PRESETS)})")
    return dict(PRESETS[name])


def _check_options(values: dict[str, Any], where: str) -> None:
    defaults = _Options()
    for name, value in values.items():
        default = getattr(defaults, name)
        path = f"{where}.{name}"
        if isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{path}: expected an integer, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{path}: expected a finite number >= 0, got {value!r}")
    positive = (
        "false_alarms_per_million",
        "warmup",
        "block",
        "window_blocks",
        "heavy_hitters",
        "adwin_sub",
        "max_pending_labels",
        "max_early_labels",
        "outcome_block",
        "max_segments",
        "max_features",
    )
    for name in positive:
        if name in values and values[name] <= 0:
            raise ConfigError(f"{where}.{name}: must be > 0, got {values[name]!r}")
    if "bins" in values and values["bins"] < 2:
        raise ConfigError(f"{where}.bins: must be >= 2, got {values['bins']!r}")
    if "max_categories" in values and values["max_categories"] < 2:
        raise ConfigError(f"{where}.max_categories: must be >= 2")
    if "bocpd_hazard" in values and not 0 <= values["bocpd_hazard"] < 1:
        got = values["bocpd_hazard"]
        raise ConfigError(f"{where}.bocpd_hazard: must be in [0, 1), got {got!r}")
    for name in ("confirm_alpha", "resolve_alpha"):
        if name in values and not 0 < values[name] < 1:
            raise ConfigError(f"{where}.{name}: must be in (0, 1), got {values[name]!r}")


def _feature_config(raw: Any, where: str) -> FeatureConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table")
    unknown = set(raw) - {"kind", "ignore", "detectors"}
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    kind = raw.get("kind")
    if kind is not None and kind not in _KINDS:
        raise ConfigError(f"{where}.kind: expected 'numeric' or 'categorical', got {kind!r}")
    ignore = raw.get("ignore", False)
    if not isinstance(ignore, bool):
        raise ConfigError(f"{where}.ignore: expected true or false, got {ignore!r}")
    detectors = raw.get("detectors")
    if detectors is not None:
        detectors = _detector_list(detectors, f"{where}.detectors")
    return FeatureConfig(kind=kind, ignore=ignore, detectors=detectors)


def _detector_list(detectors: Any, where: str) -> tuple[str, ...]:
    if not isinstance(detectors, list) or not all(isinstance(d, str) for d in detectors):
        raise ConfigError(f"{where}: expected a list of names")
    for d in detectors:
        if d not in DETECTORS:
            raise ConfigError(f"{where}: unknown detector {d!r} (known: {DETECTORS})")
    return tuple(detectors)


def _level(raw: dict[str, Any], where: str, *, top: bool) -> dict[str, Any]:
    allowed = set(_OPTION_NAMES) | {"ignore", "features"}
    allowed |= {"models", "detectors"} if top else set()
    unknown = set(raw) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    options = {n: raw[n] for n in _OPTION_NAMES if n in raw}
    if isinstance(options.get("false_alarms_per_million"), int):
        options["false_alarms_per_million"] = float(options["false_alarms_per_million"])
    floats = ("cusum_k", "confirm_alpha", "resolve_alpha", "block_seconds", "label_ttl")
    floats += ("bocpd_hazard", "early_label_wait")
    for name in (*floats, "decision_threshold"):
        if isinstance(options.get(name), int) and not isinstance(options.get(name), bool):
            options[name] = float(options[name])
    _check_options(options, where)
    ignore = raw.get("ignore", [])
    if not isinstance(ignore, list) or not all(isinstance(x, str) for x in ignore):
        raise ConfigError(f"{where}.ignore: expected a list of feature names")
    feats = raw.get("features", {})
    if not isinstance(feats, dict):
        raise ConfigError(f"{where}.features: expected a table")
    features = {n: _feature_config(v, f"{where}.features.{n}") for n, v in feats.items()}
    return {"options": options, "ignore": tuple(ignore), "features": features}


def config_from_mapping(raw: dict[str, Any], preset: str | None = None) -> DetectionConfig:
    """Build a :class:`DetectionConfig` from parsed TOML (the ``[detection]`` table or all).

    ``preset`` (the ``--preset`` option) is the starting point when the table names none;
    the table's own options override the preset's.
    """
    if "detection" in raw:
        raw = raw["detection"]
        if not isinstance(raw, dict):
            raise ConfigError("detection: expected a table")
    raw = dict(raw)
    named = raw.pop("preset", None)
    if named is not None and preset is not None and named != preset:
        raise ConfigError(f"detection.preset: {named!r} conflicts with --preset {preset!r}")
    name = named if named is not None else preset
    base = _preset_options(name, "detection.preset") if name is not None else {}
    top = _level(raw, "detection", top=True)
    detectors = base.pop("detectors", None)
    if "detectors" in raw:
        detectors = _detector_list(raw["detectors"], "detection.detectors")
    top["options"] = {**base, **top["options"]}
    models_raw = raw.get("models", {})
    if not isinstance(models_raw, dict):
        raise ConfigError("detection.models: expected a table")
    models = {}
    for name, body in models_raw.items():
        if not isinstance(body, dict):
            raise ConfigError(f"detection.models.{name}: expected a table")
        lvl = _level(body, f"detection.models.{name}", top=False)
        models[name] = ModelConfig(
            options=MappingProxyType(lvl["options"]),
            ignore=lvl["ignore"],
            features=MappingProxyType(lvl["features"]),
        )
    return DetectionConfig(
        **top["options"],
        ignore=top["ignore"],
        features=MappingProxyType(top["features"]),
        models=MappingProxyType(models),
        detectors=detectors,
    )


def load_config(path: str | Path | None, preset: str | None = None) -> DetectionConfig:
    """Read a TOML detection configuration.

    Parameters
    ----------
    path : str or Path or None
        The TOML file; options live in its ``[detection]`` table (or at its top level).
        ``None``: no file (the preset, or the defaults).
    preset : str, optional
        A name of :data:`PRESETS` to start from (the file's options override it).

    Returns
    -------
    DetectionConfig

    Raises
    ------
    ConfigError
        The file is missing, is not TOML, or holds an unknown key or a bad value (the
        message names the key).
    """
    if path is None:
        return DetectionConfig() if preset is None else DetectionConfig.preset(preset)
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    return config_from_mapping(raw, preset)
