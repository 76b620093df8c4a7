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

import numpy as np
from scipy.stats import betabinom

__all__ = ["rate_pvalues"]

#: Rates whose standardised excess is below this are not tested exactly (their p-value is
#: far above any budgeted significance level).
_SCREEN = 2.5


def rate_pvalues(
    k: np.ndarray, m: np.ndarray, a: np.ndarray, b: np.ndarray, *, two_sided: bool = False
) -> np.ndarray:
    """P-values of counts ``k`` out of ``m`` under ``BetaBinom(m, a, b)``.

    Parameters
    ----------
    k, m : ndarray
        Current hits and trials.
    a, b : ndarray
        Beta parameters of the reference rate (hits + prior, misses + prior).
    two_sided : bool
        Test both a rise and a fall (twice the smaller tail); else only a rise.

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
    cand = (m > 0) & ((np.abs(z) > _SCREEN) if two_sided else (z > _SCREEN))
    if cand.any():
        kk, mm, aa, bb = k[cand], m[cand], a[cand], b[cand]
        upper = betabinom.sf(kk - 1.0, mm, aa, bb)
        if two_sided:
            lower = betabinom.cdf(kk, mm, aa, bb)
            p = np.minimum(2.0 * np.minimum(upper, lower), 1.0)
        else:
            p = upper
        out[cand] = p
    return out
