"""Vectorised one-sided CUSUM and its threshold from a false-alarm rate.

A CUSUM on increments ``x_t = s_t - k`` is ``S_t = max(0, S_{t-1} + x_t)``. Unrolled, it is
the cumulative sum minus its running minimum (clipped at zero), so a whole block of events
and several statistics are updated with ``np.cumsum`` and ``np.minimum.accumulate`` instead
of a Python loop per event. Page-Hinkley is the same recursion with a running-mean centre; we
centre on the frozen reference instead, which is what makes the false-alarm rate computable.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NEXT_TIME", "cusum_path", "cusum_threshold", "lundberg_theta"]

#: The start time of a CUSUM excursion that begins at the next block's first event, not known
#: until that block arrives (-inf, not nan, so that equal detector states compare equal).
NEXT_TIME = float("-inf")

#: Largest exponent used for a threshold: keeps ``h`` meaningful when a reference is constant
#: (every score equal), where the exact exponent would be infinite and ``h`` zero.
THETA_MAX = 1.0


def cusum_path(start: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """CUSUM values after each event of a block.

    Parameters
    ----------
    start : ndarray, shape (...)
        CUSUM values before the block (>= 0), one per independent statistic.
    steps : ndarray, shape (..., n)
        Increments ``s - k`` per statistic and event, events along the last (contiguous)
        axis; 0 for a missing value.

    Returns
    -------
    ndarray, shape (..., n)
        ``S_t`` for every event of the block.

    Examples
    --------
    >>> import numpy as np
    >>> cusum_path(np.array([1.0]), np.array([[-2.0, 0.5, 1.0, -0.2]])).ravel().tolist()
    [0.0, 0.5, 1.5, 1.3]
    """
    c = np.cumsum(steps, axis=-1)
    c += start[..., None]
    low = np.minimum.accumulate(c, axis=-1)
    np.minimum(low, 0.0, out=low)
    c -= low
    return c


def lundberg_theta(scores: np.ndarray, k: float, *, iterations: int = 60) -> np.ndarray:
    """The adjustment coefficient ``theta* > 0`` with ``mean(exp(theta* (s - k))) = 1``.

    For i.i.d. increments ``s - k`` under no drift, Wald's martingale bounds the probability
    that one CUSUM excursion reaches ``h`` by ``exp(-theta* h)``; every excursion lasts at
    least one event, so the false-alarm rate per event is at most ``exp(-theta* h)``. The
    expectation is taken over the reference scores themselves, which calibrates the bound to
    the feature (continuous, discrete, constant) instead of assuming normality.

    Parameters
    ----------
    scores : ndarray, shape (n, m)
        Reference scores (standardised), one column per statistic.
    k : float
        CUSUM allowance.

    Returns
    -------
    ndarray, shape (m,)
        ``theta*`` per column, capped at :data:`THETA_MAX`.

    Examples
    --------
    >>> import numpy as np
    >>> z = np.random.default_rng(0).standard_normal((200_000, 1))
    >>> round(float(lundberg_theta(z, 0.25)[0]), 1)  # 2k for a normal score
    0.5
    """
    lo = np.zeros(scores.shape[1])
    hi = np.full(scores.shape[1], THETA_MAX)
    centred = scores - k
    top = centred.max(axis=0)

    def excess(theta: np.ndarray) -> np.ndarray:
        # log mean exp, stabilised by the column maximum
        a = theta * centred
        m = a.max(axis=0)
        return m + np.log(np.mean(np.exp(a - m), axis=0))

    # where the largest step is below zero no excursion can ever grow: theta is unbounded
    ok = excess(hi) > 0
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        pos = excess(mid) > 0
        hi = np.where(pos, mid, hi)
        lo = np.where(pos, lo, mid)
    theta = np.where(ok, hi, THETA_MAX)
    return np.where(top > 0, theta, THETA_MAX)


def cusum_threshold(theta: np.ndarray, rate: float) -> np.ndarray:
    """Threshold ``h`` with false alarms at most ``rate`` per event: ``log(1/rate) / theta``.

    Examples
    --------
    >>> import numpy as np
    >>> round(float(cusum_threshold(np.array([0.5]), 1e-8)[0]), 2)
    36.84
    """
    return np.log(1.0 / rate) / theta
