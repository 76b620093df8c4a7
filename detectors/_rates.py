"""Tests of event rates (missing values, foreign types, out-of-range values, unseen categories).

A rate measured on a reference of ``n0`` events with ``k0`` hits is itself uncertain, most of
all when ``k0`` is zero: a feature never missing in 2,000 reference events may still be
missing once in 10,000. Testing the current count against the point estimate ``k0 / n0``
would fire on every unlucky reference. The predictive distribution of the current count
``k`` out of ``m`` under "same process" is beta-binomial, ``BetaBinom(m, k0 + a, n0 - k0 +
a)`` (a Bayesian posterior with a Jeffreys prior, ``a = 1/2``), which carries the reference's
sampling error into the test. For order statistics it is exact under exchangeability: the
number of new values above the reference maximum is ``BetaBinom(m, 1, n0)``.

Each check screens all rates at once with a normal bound (cheap, numpy) and computes exact
beta-binomial tails only for the few candidates.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import betaln, gammaln

__all__ = ["rate_pvalues"]

#: Rates whose standardised excess is below this are not tested exactly: their p-value is
#: far above any budgeted significance level (a normal tail at 3.5 is 2e-4; the skewed
#: beta-binomial's upper tail is heavier still, while budgeted levels are below 1e-4).
_SCREEN = 3.5


def rate_pvalues(
    k: np.ndarray, m: np.ndarray, a: np.ndarray, b: np.ndarray, *, two_sided: Any = False
) -> np.ndarray:
    """P-values of counts ``k`` out of ``m`` under ``BetaBinom(m, a, b)``.

    Parameters
    ----------
    k, m : ndarray
        Current hits and trials.
    a, b : ndarray
        Beta parameters of the reference rate (hits + prior, misses + prior).
    two_sided : bool or ndarray of bool
        Test both a rise and a fall (twice the smaller tail); else only a rise (per rate
        when an array).

    Returns
    -------
    ndarray
        P-values (1.0 where the screen clears the count).

    Examples
    --------
    >>> import numpy as np
    >>> p = rate_pvalues(np.array([0, 30]), np.array([2000, 2000]),
    ...                  np.array([0.5, 0.5]), np.array([2000.5, 2000.5]))
    >>> float(p[0]), bool(p[1] < 1e-6)
    (1.0, True)
    """
    k = np.asarray(k, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    s = a + b
    mean = m * a / s
    var = m * a * b * (s + m) / (s * s * (s + 1.0))
    z = (k - mean) / np.sqrt(np.maximum(var, 1e-12))
    out = np.ones(k.shape)
    two = np.broadcast_to(np.asarray(two_sided, dtype=bool), k.shape)
    cand = (m > 0) & (np.where(two, np.abs(z), z) > _SCREEN)
    if cand.any():
        kk, mm, aa, bb = k[cand], m[cand], a[cand], b[cand]
        up = z[cand] > 0  # the tail beyond the count: sum the shorter side exactly
        lower = _bb_cdf(kk, mm, aa, bb)  # P(K <= k)
        upper = 1.0 - _bb_cdf(kk - 1.0, mm, aa, bb)  # P(K >= k)
        p = np.where(up, upper, lower)
        tw = two[cand]
        p = np.where(tw, np.minimum(2.0 * p, 1.0), np.where(up, upper, 1.0))
        out[cand] = np.clip(p, 0.0, 1.0)
    return out


def _bb_cdf(k: np.ndarray, m: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``P(K <= k)`` of ``BetaBinom(m, a, b)`` by summing the pmf (vectorised; the counts
    tested are at most a window of events, a few thousand terms).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.stats import betabinom
    >>> k, m = np.array([3.0, 40.0]), np.array([100.0, 2048.0])
    >>> a, b = np.array([0.5, 2.0]), np.array([50.0, 2000.0])
    >>> bool(np.allclose(_bb_cdf(k, m, a, b), betabinom.cdf(k, m, a, b)))
    True
    """
    top = int(max(k.max(), 0.0))
    j = np.arange(top + 1, dtype=np.float64)[None, :]
    mm, aa, bb = m[:, None], a[:, None], b[:, None]
    ok = (j <= k[:, None]) & (j <= mm)
    jj = np.where(ok, j, 0.0)
    logp = (
        gammaln(mm + 1.0)
        - gammaln(jj + 1.0)
        - gammaln(mm - jj + 1.0)
        + betaln(jj + aa, mm - jj + bb)
        - betaln(aa, bb)
    )
    return np.where(k < 0, 0.0, np.where(ok, np.exp(logp), 0.0).sum(axis=1))
