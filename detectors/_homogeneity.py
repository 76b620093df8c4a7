"""Two-sample tests of binned data: reference counts against current-window counts.

One function serves both numeric features (counts in equiprobable reference bins, which
catches a change of variance or shape with an unchanged mean) and categorical features
(counts per category): a chi-square test of homogeneity of the 2 x K table, plus the
population stability index (PSI) as the effect size people in the field know.
"""

from __future__ import annotations

import numpy as np
from scipy.special import chdtrc

__all__ = ["chi2_homogeneity", "psi"]


def chi2_homogeneity(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson chi-square test that two count vectors come from one distribution.

    Parameters
    ----------
    ref, cur : ndarray, shape (..., K)
        Counts per cell; cells empty in both are dropped (they carry no information).

    Returns
    -------
    statistic, p_value : ndarray, shape (...)

    Examples
    --------
    >>> import numpy as np
    >>> stat, p = chi2_homogeneity(np.array([50, 50]), np.array([50, 50]))
    >>> float(stat), float(p)
    (0.0, 1.0)
    >>> float(chi2_homogeneity(np.array([500, 500]), np.array([300, 700]))[1]) < 1e-10
    True
    """
    ref = np.asarray(ref, dtype=np.float64)
    cur = np.asarray(cur, dtype=np.float64)
    na = ref.sum(-1, keepdims=True)
    nb = cur.sum(-1, keepdims=True)
    tot = ref + cur
    n = na + nb
    valid = tot > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ea = tot * na / n
        eb = tot * nb / n
        terms = (ref - ea) ** 2 / ea + (cur - eb) ** 2 / eb
    stat = np.where(valid, terms, 0.0).sum(-1)
    df = valid.sum(-1) - 1
    usable = (df > 0) & (na[..., 0] > 0) & (nb[..., 0] > 0)
    p = np.where(usable, chdtrc(np.maximum(df, 1), stat), 1.0)
    return np.where(usable, stat, 0.0), p


def psi(ref: np.ndarray, cur: np.ndarray, *, smoothing: float = 0.5) -> np.ndarray:
    """Population stability index ``sum((q - p) * log(q / p))`` with additive smoothing.

    Rule of thumb in credit scoring: below 0.1 stable, 0.1-0.25 moderate, above 0.25 a
    significant shift.

    Examples
    --------
    >>> import numpy as np
    >>> round(float(psi(np.array([100, 100]), np.array([100, 100]))), 6)
    0.0
    """
    ref = np.asarray(ref, dtype=np.float64) + smoothing
    cur = np.asarray(cur, dtype=np.float64) + smoothing
    p = ref / ref.sum(-1, keepdims=True)
    q = cur / cur.sum(-1, keepdims=True)
    return ((q - p) * np.log(q / p)).sum(-1)
