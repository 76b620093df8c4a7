"""River's compiled ADWIN on sub-block means of the standardised location score.

Why ADWIN next to the CUSUMs: a CUSUM is tuned to one shift size (``2 * cusum_k``) and
measures everything against the frozen reference; ADWIN (Bifet & Gavalda 2007) needs no
shift size - it compares the means of every split of its own adaptive window - so it is the
natural second opinion for slow ramps and for re-referenced (univariate change-point) use.

Input
    Per numeric feature, one value per ``adwin_sub`` non-missing events: the mean of the
    standardised location score ``z = (u - 1/2 - centre) / spread`` (``_reference``) over
    those events. Under no drift ``z`` has mean 0 and variance 1 for any continuous feature,
    so the sub-block means are bounded, near-Gaussian and of known scale (variance
    ``1 / adwin_sub``); and ADWIN runs ``adwin_sub`` times less often, which keeps it within
    the cost budget (river's ``ADWIN.update`` costs about 0.45 us from Python). ``clock=1``:
    every input is checked (river's default of 32 would delay and quantize detections).
    The means are fed in units of their standard error times :data:`GAIN`: river's cut
    bound ``sqrt(2 m var dd) + 2/3 dd m`` has a range term that presumes inputs in [0, 1];
    for near-Gaussian means only the variance term is warranted, and at this scale the range
    term is negligible. (Fed unscaled, ADWIN took about 1,900 events to flag a ramp to one
    standard deviation over 2,000 events; scaled, about 900.)
False-alarm budget
    River's ADWIN cuts when a split's mean difference exceeds a bound whose failure
    probability, over all the splits checked at one update, is at most ``delta`` (the
    ``ln(2 ln(n) / delta)`` term of its bound spreads ``delta`` over the splits). With the
    detector's share ``rate`` of the budget per event and one check per ``adwin_sub`` events,
    the per-check ``delta = rate * adwin_sub`` keeps its false alarms within its share
    (``delta`` is fixed when the detector starts, with the feature's reference). The
    bound is conservative: on i.i.d. Gaussian sub-block means river cut about 6.5e-5 times
    per check at ``delta = 0.01`` and 5e-6 at ``1e-3`` (``benchmarks/quality.py`` prints
    this and the cuts on its stationary streams, where ``delta`` is about 4e-7).
Change point and confirmation
    A cut says that the window's mean moved, not where: river drops old buckets only while a
    split stays significant, so the window left after a cut can reach far back before the
    change. The change point is therefore taken from the location CUSUM pointing the same way
    (the start of its current excursion), and the signal carries the CUSUM confirmation's
    two-sample test of the reference against the data since then; the alert policy fires only
    if it rejects at ``confirm_alpha`` (``_numeric``). River's ADWIN restarts empty at the next
    update after a cut.
State
    River's ADWIN state is opaque bytes from its Rust core (``__getstate__``): no format tag,
    and corrupt bytes raise a ``BaseException`` (a Rust panic) or, worse, load silently. We
    keep those bytes exactly (so a dump/load in mid-stream gives identical alerts) inside
    the detectors' versioned state, with the river version that wrote them, ADWIN's
    parameters and a BLAKE2 digest: a digest mismatch, a panic or parameters that do not
    match after loading raise :class:`StateError`. Bytes written by another river version
    are not trusted: the detector then restarts empty (its window refills; the rest of the
    feature state is kept). ``delta`` and ``adwin_sub`` are part of the state: changed
    options apply from the feature's next reference. The digest catches damage, not
    forgery: a crafted blob with a valid digest can at worst give this feature's ADWIN a
    wrong window or fail to load; the bytes are parsed by river's deserializer, never
    executed.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
import river
from river.drift import ADWIN

from .exceptions import StateError

__all__ = ["ADWIN_FORMAT", "GAIN", "AdwinDetector", "adwin_delta", "adwin_inputs"]

#: Tag of the wrapped state layout (bumped if what we store around river's bytes changes).
ADWIN_FORMAT = 1
#: Scale of ADWIN's inputs in standard errors of a sub-block mean (see the module notes).
GAIN = 1000.0
#: ADWIN's own parameters besides delta: the smallest sub-window compared (inputs) and the
#: inputs before the first check.
MIN_WINDOW = 5
GRACE = 10
_MAX_BUCKETS = 5


def adwin_delta(rate: float, sub: int) -> float:
    """Per-check ``delta`` from the detector's false-alarm rate per event (module notes).

    Examples
    --------
    >>> adwin_delta(1e-7, 32)
    3.2e-06
    """
    return min(rate * sub, 0.5)


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class AdwinDetector:
    """One feature's ADWIN and the partial sub-block it is accumulating.

    Parameters
    ----------
    delta : float
        Per-check false-positive bound (see :func:`adwin_delta`).
    sub : int
        Non-missing events averaged into one ADWIN input.
    """

    __slots__ = ("acc_n", "acc_sum", "cuts", "det", "inputs", "sub")

    def __init__(self, delta: float, sub: int) -> None:
        self.det = ADWIN(
            delta=delta,
            clock=1,
            max_buckets=_MAX_BUCKETS,
            min_window_length=MIN_WINDOW,
            grace_period=GRACE,
        )
        self.sub = int(sub)
        self.acc_sum = 0.0  # score sum of the partial sub-block
        self.acc_n = 0  # its non-missing events
        self.inputs = 0  # values fed to ADWIN (checks made)
        self.cuts = 0  # cuts ADWIN made (before confirmation)

    @property
    def delta(self) -> float:
        return float(self.det.delta)

    def feed(self, values: list[float]) -> list[tuple[int, int, float]]:
        """Feed sub-block means; return ``(position, width, window mean)`` per cut.

        ``position`` indexes ``values``; ``width`` (inputs) and the mean (in score units)
        describe ADWIN's window right after the cut.
        """
        det = self.det
        update = det.update
        gain = math.sqrt(self.sub) * GAIN
        hits = []
        for i, v in enumerate(values):
            update(v * gain)
            if det.drift_detected:
                w = det.width
                hits.append((i, w, det.total / w / gain if w else 0.0))
        self.inputs += len(values)
        self.cuts += len(hits)
        return hits

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict:
        raw = self.det._helper.__getstate__()
        return {
            "format": ADWIN_FORMAT,
            "river": river.__version__,
            "params": [self.delta, 1, _MAX_BUCKETS, MIN_WINDOW, GRACE],
            "drift": bool(self.det.drift_detected),
            "bytes": raw,
            "digest": _digest(raw),
            "acc": [self.acc_sum, self.acc_n, self.inputs, self.cuts, self.sub],
        }

    @classmethod
    def from_state(cls, s: Any) -> AdwinDetector:
        """Restore a detector; raise :class:`StateError` on anything doubtful."""
        try:
            if s["format"] != ADWIN_FORMAT:
                raise StateError(f"state: unsupported ADWIN state format {s['format']!r}")
            delta = float(s["params"][0])
            acc_sum, acc_n, inputs, cuts, sub = s["acc"]
            raw = s["bytes"]
            if not isinstance(raw, bytes) or _digest(raw) != s["digest"]:
                raise StateError("state: ADWIN bytes do not match their digest")
            drift = bool(s["drift"])
            version = s["river"]
        except StateError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise StateError(f"state: corrupt ADWIN state ({exc!r})") from None
        if not (0.0 < delta < 1.0) or int(sub) < 1:
            raise StateError("state: ADWIN parameters out of range")
        d = cls(delta, int(sub))
        d.acc_sum, d.acc_n = float(acc_sum), int(acc_n)
        d.inputs, d.cuts = int(inputs), int(cuts)
        if version != river.__version__:
            return d  # another river's layout: restart the window rather than guess
        helper = d.det._helper
        try:
            helper.__setstate__(raw)
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as exc:  # a Rust panic is a BaseException
            raise StateError(f"state: corrupt ADWIN bytes ({type(exc).__name__})") from None
        params = tuple(type(helper).__getnewargs__(helper))
        width = helper.get_width()
        if (
            params != (delta, 1, _MAX_BUCKETS, MIN_WINDOW, GRACE)
            or not math.isfinite(helper.get_total())
            or not (0 <= width <= max(d.inputs, 0))
        ):
            raise StateError("state: ADWIN bytes inconsistent with their parameters")
        d.det._drift_detected = drift
        return d


def adwin_inputs(
    dets: list[AdwinDetector], z: np.ndarray, fin: np.ndarray | None
) -> list[tuple[list[float], np.ndarray]]:
    """Sub-block means of several features' scores in a block, vectorised over features.

    Parameters
    ----------
    dets : list of AdwinDetector
        One per row; their partial sub-blocks are consumed and updated, so the inputs do not
        depend on where blocks are cut.
    z : ndarray, shape (L, B)
        Standardised location scores, 0 where missing.
    fin : ndarray of bool, shape (L, B), or None
        Non-missing mask (``None``: all present).

    Returns
    -------
    list of (means, ends)
        Per row: the completed sub-block means and the block index of each one's last value.

    Examples
    --------
    >>> import numpy as np
    >>> d = AdwinDetector(1e-6, 2)
    >>> [(m, e.tolist()) for m, e in adwin_inputs([d], np.array([[1.0, 3.0, 5.0]]), None)]
    [([2.0], [1])]
    >>> d.acc_n, d.acc_sum
    (1, 5.0)
    """
    out: list = [None] * len(dets)
    groups: dict[tuple[int, int], list[int]] = {}
    for r, d in enumerate(dets):
        if fin is None or fin[r].all():
            groups.setdefault((d.sub, d.acc_n), []).append(r)
        else:  # missing values: the sub-blocks of the present ones, mapped back
            at = np.flatnonzero(fin[r])
            ((means, ends),) = _regular([d], z[r : r + 1, at], d.sub, d.acc_n)
            out[r] = (means, at[ends])
    for (sub, acc_n), rows in groups.items():
        res = _regular([dets[r] for r in rows], z[rows], sub, acc_n)
        for r, item in zip(rows, res, strict=True):
            out[r] = item
    return out


def _regular(dets, z, sub, acc_n):
    """:func:`adwin_inputs` for rows without missing values that share ``sub`` and ``acc_n``."""
    B = z.shape[1]
    ends = np.arange(sub - acc_n - 1, B, sub)
    if len(ends) == 0:
        tail = z.sum(axis=1).tolist()
        for d, t in zip(dets, tail, strict=True):
            d.acc_sum += t
            d.acc_n += B
        return [([], ends)] * len(dets)
    cuts = ends + 1
    k = len(ends)
    idx = np.concatenate(([0], cuts if cuts[-1] < B else cuts[:-1]))
    seg = np.add.reduceat(z, idx, axis=1)  # sub-block sums, then the new partial's sum
    seg[:, 0] += [d.acc_sum for d in dets]
    means = (seg[:, :k] / sub).tolist()
    tail = seg[:, k].tolist() if seg.shape[1] > k else [0.0] * len(dets)
    rest = int(B - cuts[-1])
    for d, t in zip(dets, tail, strict=True):
        d.acc_sum, d.acc_n = t, rest
    return [(m, ends) for m in means]
