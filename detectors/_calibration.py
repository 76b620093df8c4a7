"""A binary classifier's score calibration, learnt from the baseline's labelled predictions.

Why: before labels arrive, a model's quality is visible only through its scores. With a
calibrated probability ``p`` that a prediction's class is positive, a prediction judged
positive is right with probability ``p`` and one judged negative with ``1 - p``, so accuracy,
precision, recall, F1 and ROC AUC can be estimated from scores alone (confidence-based
performance estimation, ``_estimation``). Raw scores are rarely calibrated, so the map from
score to probability is learnt from the reference's labelled predictions.

How: isotonic regression of the 0/1 truth on the score (``scipy.optimize.isotonic_regression``,
scipy >= 1.12, pool-adjacent-violators; no hand-written fit), on the distinct scores weighted
by their counts so that tied scores stay in one bin. Its constant pieces are then merged with
their neighbours until each holds at least ``min_rows`` labelled predictions (a weighted mean
of adjacent non-decreasing pieces keeps the map monotone), so every bin's rate has a known
sampling error. The map is a step function: bin ``b`` covers scores from ``starts[b]`` up to
the next start, and holds ``rows[b]`` reference predictions of which a fraction
``positive_rate[b]`` were positive.

What it needs: a binary task (labels 0/1 or true/false) with float scores, and at least
:data:`MIN_LABELLED` labelled predictions with a score. Without them there is no map, no
estimate, and ``/status`` says why (``_estimation``). Multiclass and regression models are
left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
from scipy.optimize import isotonic_regression

from ._outcomes import as_truth
from .exceptions import ConfigError

__all__ = [
    "CALIBRATION_VERSION",
    "MIN_LABELLED",
    "MIN_ROWS",
    "Calibration",
    "calibration_from_rows",
    "learn_calibration",
]

#: Version of a calibration's JSON form (in the profile, field ``version``).
CALIBRATION_VERSION = 1
#: Labelled predictions per bin at least: a bin's rate then has a standard error of at most
#: 0.5 / sqrt(200) = 3.5 points, and about 1.5 points where the model is 95% sure.
MIN_ROWS = 200
#: Labelled predictions with a score needed to learn a map at all.
MIN_LABELLED = 1000


@dataclass(frozen=True)
class Calibration:
    """A monotone step map from score to the probability of the positive class.

    Attributes
    ----------
    starts : tuple of float
        The smallest reference score of each bin, increasing (a score below the first one
        falls in the first bin).
    positive_rate : tuple of float
        The fraction of positives among the bin's reference predictions (non-decreasing).
    rows : tuple of int
        Reference predictions per bin.
    guessed : tuple of (int, int)
        Per bin, the reference predictions judged negative and positive (the predicted-class
        rule in force when the baseline was built): the reference of the estimated metrics.
    """

    starts: tuple[float, ...]
    positive_rate: tuple[float, ...]
    rows: tuple[int, ...]
    guessed: tuple[tuple[int, int], ...]

    def bins(self, scores: np.ndarray) -> np.ndarray:
        """The bin of each (finite) score.

        Examples
        --------
        >>> c = Calibration((0.0, 0.5), (0.1, 0.9), (300, 300), ((300, 0), (0, 300)))
        >>> c.bins(np.array([0.2, 0.5, 0.99, -1.0])).tolist()
        [0, 1, 1, 0]
        """
        return np.searchsorted(np.asarray(self.starts[1:]), scores, side="right")

    def to_profile(self) -> dict[str, Any]:
        """The JSON form stored in a baseline profile (``outcomes.calibration``)."""
        return {
            "version": CALIBRATION_VERSION,
            "method": "isotonic",
            "min_rows_per_bin": MIN_ROWS,
            "starts": list(self.starts),
            "positive_rate": list(self.positive_rate),
            "rows": list(self.rows),
            "guessed": [list(g) for g in self.guessed],
        }

    @classmethod
    def from_profile(cls, doc: Any, where: str = "calibration") -> Calibration:
        """Read and check the JSON form.

        Raises
        ------
        ConfigError
            A field is missing, of the wrong type or size, or the map is not monotone.
        """
        if not isinstance(doc, dict):
            raise ConfigError(f"{where}: expected an object")
        if doc.get("version") != CALIBRATION_VERSION:
            raise ConfigError(f"{where}.version: unsupported {doc.get('version')!r}")
        try:
            starts = tuple(float(v) for v in doc["starts"])
            rate = tuple(float(v) for v in doc["positive_rate"])
            rows = tuple(int(v) for v in doc["rows"])
            guessed = tuple((int(a), int(b)) for a, b in doc["guessed"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: malformed ({exc!r})") from None
        k = len(starts)
        if not k or not len(rate) == len(rows) == len(guessed) == k:
            raise ConfigError(f"{where}: starts, positive_rate, rows, guessed differ in size")
        if any(b <= a for a, b in pairwise(starts)):
            raise ConfigError(f"{where}.starts: not increasing")
        if any(not 0.0 <= r <= 1.0 for r in rate) or any(b < a for a, b in pairwise(rate)):
            raise ConfigError(f"{where}.positive_rate: not non-decreasing within [0, 1]")
        if any(r <= 0 for r in rows) or any(a < 0 or b < 0 for a, b in guessed):
            raise ConfigError(f"{where}: counts must be positive")
        return cls(starts, rate, rows, guessed)


def learn_calibration(
    scores: np.ndarray, truth: np.ndarray, guess: np.ndarray, min_rows: int = MIN_ROWS
) -> Calibration | None:
    """Isotonic calibration of 0/1 ``truth`` on ``scores`` (finite floats), bins of at least
    ``min_rows``; ``guess`` is each row's predicted class (0/1). None with fewer than
    :data:`MIN_LABELLED` rows or a single class.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s = rng.random(20_000)
    >>> y = (rng.random(20_000) < s).astype(float)
    >>> c = learn_calibration(s, y, (s >= 0.5).astype(float))
    >>> min(c.rows) >= MIN_ROWS, abs(c.positive_rate[c.bins(np.array([0.8]))[0]] - 0.8) < 0.05
    (True, True)
    """
    ok = np.isfinite(scores)
    scores, truth, guess = scores[ok], truth[ok], guess[ok]
    if len(scores) < MIN_LABELLED or truth.min() == truth.max():
        return None
    values, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    positives = np.bincount(inverse, weights=truth, minlength=len(values))
    guessed_pos = np.bincount(inverse, weights=guess, minlength=len(values))
    fit = isotonic_regression(positives / counts, weights=counts, increasing=True)
    # merge pieces with fewer than min_rows rows into the next (the last into the previous)
    edges = [int(b) for b in fit.blocks[:-1]]
    groups: list[int] = []
    size = 0
    for a, b in zip(edges, [*edges[1:], len(values)], strict=True):
        if not groups or size >= min_rows:
            groups.append(a)
            size = 0
        size += int(counts[a:b].sum())
    if len(groups) > 1 and size < min_rows:
        groups.pop()
    rows = np.add.reduceat(counts, groups)
    pos = np.add.reduceat(positives, groups)
    gpos = np.add.reduceat(guessed_pos, groups)
    return Calibration(
        starts=tuple(float(values[g]) for g in groups),
        positive_rate=tuple((pos / rows).tolist()),
        rows=tuple(int(r) for r in rows),
        guessed=tuple((int(r - g), int(g)) for r, g in zip(rows, np.rint(gpos), strict=True)),
    )


def calibration_from_rows(rows: list, threshold: float) -> Calibration | None:
    """The calibration of a baseline's labelled predictions ``(score, judged output,
    label)``: rows whose score is a float and whose label and predicted class are binary
    (the predicted class is the judged output, or ``score >= threshold`` for a float)."""
    kept = []
    for score, output, label in rows:
        if score.__class__ is not float:
            continue
        truth = as_truth(label)
        guess = output >= threshold if output.__class__ is float else as_truth(output)
        if truth is not None and guess is not None:
            kept.append((score, float(truth), float(guess)))
    if len(kept) < MIN_LABELLED:
        return None
    s, y, g = (np.array(c, dtype=np.float64) for c in zip(*kept, strict=True))
    return learn_calibration(s, y, g)
