"""The detection core: sketches, change detectors and the alert policy. Pure; no Kafka.

``Monitor`` is the one interface: events in, :class:`~driftline.schemas.Alert` objects out,
state to and from bytes. How it works, in one paragraph per module:

- ``_stream``: per (model, model version), events are buffered and processed in blocks cut at
  fixed event counts (``block``), so alerts do not depend on batching or on dump/load.
- ``_reference``: the reference is the first ``warmup`` values of each feature (zero
  configuration), then frozen; values are mapped to their rank under it, which makes every
  continuous feature uniform under no drift (heavy tails, bimodal, bounded alike; integer ties
  get mid-ranks).
- ``_numeric``: count, missing, mean/variance, min/max, a KLL sketch; CUSUMs on rank scores
  for location and spread (``_cusum``), and a chi-square test of the last ``window_blocks``
  blocks in equiprobable reference bins for shape (``_homogeneity``); vectorised over
  features x events. Opt-in: river's ADWIN on means of ``adwin_sub`` location scores
  (``_adwin``; its change point and confirmation come from the location CUSUM).
- ``_categorical``: space-saving heavy hitters (``_heavy_hitters``), HLL cardinality, and a
  chi-square frequency test against the reference's categories.
- ``_policy``: the false-alarm budget (``false_alarms_per_million`` per model stream, split
  over detectors; thresholds from an exponential bound calibrated on the reference scores),
  confirmation of CUSUM change points, one incident per feature and alert kind (symptoms of
  an open incident stay quiet), cooldown, ``resolved`` when the data match the reference
  again or a persisting drift becomes the new reference.
- ``_state``: versioned, pickle-free bytes (JSON header + raw numpy/sketch blobs).
- ``_quality``: schema skew (type change, vanished and new features) and data quality
  (missing rate, out-of-range values, unseen categories) per feature: beta-binomial rate
  tests against the reference counts (``_rates``), budgeted like the drift detectors.
- outputs (in ``_stream``): the prediction as a pseudo-feature (``prediction_drift``: its
  distribution and null rate; a new model version starts from the previous version's output
  reference) and ``latency_ms`` (``latency``).
- ``_outcomes``: labels joined to predictions by ``prediction_id`` within a bounded
  time-to-live and judged against the predicted class (``prediction.label``, else the score
  at ``decision_threshold``); classification errors feed a bank of Bernoulli CUSUMs against
  the reference error rate (``_errorrate``, ``concept_drift``), regression errors the rank
  CUSUMs; a windowed test (``performance``); accuracy, precision, recall, F1 or MAE, RMSE of
  the reference, of the outcomes since the change point and of the window.
- segments (in ``_stream``): one child stream per tracked value of each ``segment`` key
  (bounded: ``max_segment_keys`` x ``max_segments``), alerts carry the slice; a slice stays
  quiet about a change the model-wide stream already reports unless it is confined to it.
- ``_baseline``: reference profiles from training data, plain versioned JSON: value tables or
  the resolution of tied numeric data, and the labelled outcomes (the error-rate reference).
- ``_bocpd``: Bayesian online change-point detection, opt-in (``bocpd_hazard``); the
  ``changepoint`` preset (``_config.PRESETS``) uses it for short univariate series.

Memory per monitored feature is bounded by the configuration, not by the stream: a numeric
feature holds its reference grid (at most 513 points, 8 KiB), the window ring
(``window_blocks x (bins + 6)`` numbers), a KLL sketch (k=200, a few KiB) and a few scalars;
during its warm-up also the raw warm-up values (``(warmup + block) x 8`` bytes). A categorical
feature holds ``heavy_hitters`` counters, an HLL sketch (1 KiB), ``window_blocks x
max_categories`` counts, and during its warm-up at most ``4 x heavy_hitters`` counters. A model
stream also buffers up to ``block - 1`` events, its quality table holds ``(window_blocks + 1) x
9`` counts per feature (plus up to 1024 reference categories per categorical feature), the
label join at most ``max_pending_labels`` predictions (about 40 bytes plus the id's text each), and
each of at most ``max_segment_keys x max_segments`` slices is a stream of its own (the same
bounds).
``benchmarks/detect_cost.py`` measures it (about 11 KiB of Python heap plus 3 KiB of
sketches per feature with the defaults).
"""

from ._baseline import Baseline, BaselineBuilder, build_baseline
from ._config import (
    DETECTORS,
    PRESETS,
    DetectionConfig,
    FeatureConfig,
    ModelConfig,
    load_config,
)
from ._monitor import Monitor
from ._view import ScoreHistory, alert_row, detail_document, record_model
from .exceptions import ConfigError, DetectorError, StateError

__all__ = [
    "DETECTORS",
    "PRESETS",
    "Baseline",
    "BaselineBuilder",
    "ConfigError",
    "DetectionConfig",
    "DetectorError",
    "FeatureConfig",
    "ModelConfig",
    "Monitor",
    "ScoreHistory",
    "StateError",
    "alert_row",
    "build_baseline",
    "detail_document",
    "load_config",
    "record_model",
]
