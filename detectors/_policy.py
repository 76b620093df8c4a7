"""The alert policy: budget, confirmation, deduplication, cooldown, resolution, alert ids.

Budget
    ``false_alarms_per_million`` is the expected number of false alerts per million events of
    one model stream (model and version) over all its features. It is split evenly over the
    stream's detector units (numeric feature: ``mean``, ``scale``, ``shape``; categorical:
    ``frequency``), a Bonferroni split: ``rate = budget / 1e6 / units`` per event and unit.
    A CUSUM pair (up, down) gets ``rate / 2`` per side and threshold
    ``h = log(2 / rate) / theta*`` (``_cusum``); a windowed test checked once per block of
    ``B`` events gets a per-check significance ``alpha = rate * B / 2``: every check counts
    against the budget (overlapping windows make this conservative), and the extra half is a
    margin for the chi-square approximation far in its tail (alpha is about 1e-5 by default),
    where it is least accurate.
Confirmation
    A CUSUM alarm fires only if a two-sample test of the reference against the data after the
    CUSUM's change point (the start of its excursion) rejects at ``confirm_alpha``. The test's
    variance includes the reference's own sampling error, so alarms produced by an unlucky
    (short) reference rather than by the stream are dropped. Windowed tests are not
    confirmed: requiring two consecutive rejections was measured to double their delay and to
    lose detections, while their false alarms mostly come from an unusual reference sample,
    which every later check shares (the budget already counts every check).
Deduplication and resolution
    One incident per feature and alert kind (``FeaturePolicy``): while an alert is firing,
    further alarms of that kind on the feature are counted, not emitted; an alarm of another
    kind opens its own incident unless the firing one explains it (a schema change explains
    everything else, a drift explains out-of-range values, unseen categories explain a
    frequency shift that only they make). The incident resolves when a full window after it
    matches the reference again (shape and location p-values both at least ``resolve_alpha``; a
    ``cooldown`` then keeps the feature quiet) or when the drift has lasted ``readapt_after``
    events and the new distribution has been adopted as the reference.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import orjson

from ._signal import Signal
from ._timefmt import rfc3339

__all__ = ["FeaturePolicy", "alert_id", "make_alert", "window_alpha"]

_CUSUM_DETECTORS = frozenset({"mean", "scale", "adwin"})  # confirmed by a two-sample test
_ORDER = {"mean": 0, "scale": 1, "shape": 2, "frequency": 3, "adwin": 4}
#: Which signal names the cause when several fire in one block: schema skew first (it makes
#: the values the other detectors see missing or odd), then missing values and unseen
#: categories (more specific than the frequency shift they cause), then drift, and last the
#: out-of-range rate (a symptom of most location and scale shifts; when a few wild values are
#: the whole change, as with a unit bug in some records, the drift detectors stay quiet).
_RANK = {
    "type_change": 0,
    "vanished": 0,
    "new_feature": 0,
    "missing_rate": 1,
    "unseen_categories": 1,
    "null_rate": 1,
    "out_of_range": 3,
}
KIND = "data_drift"


def alert_id(
    model: str,
    version: str | None,
    segment: dict | None,
    feature: str | None,
    kind: str,
    detector: str,
    status: str,
    event_time: str,
    seq: int,
) -> str:
    """Stable id: the same input and configuration give the same id after a redelivery.

    Examples
    --------
    >>> args = ("m", None, None, "x", "data_drift", "mean", "firing", "2024-01-01T00:00:00Z")
    >>> a = alert_id(*args, 7)
    >>> a == alert_id(*args, 7), a == alert_id(*args, 8), len(a)
    (True, False, 32)
    """
    key = orjson.dumps(
        [model, version, segment, feature, kind, detector, status, event_time, seq],
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(key).hexdigest()[:32]


def window_alpha(rate: float, block: int) -> float:
    """Per-check significance of a windowed test run once per block (see module notes).

    Examples
    --------
    >>> window_alpha(1e-7, 512)
    2.56e-05
    """
    return min(rate * block / 2.0, 0.5)


def _plain(obj: Any) -> Any:
    """JSON-able Python values (numpy scalars and arrays converted)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def make_alert(
    *,
    model: str,
    version: str | None,
    feature: str | None,
    detector: str,
    status: str,
    severity: str,
    event_time: float,
    seq: int,
    window: dict,
    statistics: dict,
    message: str,
    kind: str = KIND,
    segment: dict | None = None,
):
    """Build a contract :class:`~driftline.schemas.Alert` with its stable id."""
    from driftline.schemas import Alert

    when = rfc3339(event_time)
    return Alert(
        alert_id=alert_id(model, version, segment, feature, kind, detector, status, when, seq),
        status=status,
        kind=kind,
        severity=severity,
        model=model,
        model_version=version,
        segment=segment,
        feature=feature,
        detector=detector,
        event_time=when,
        window=_plain(window),
        statistics=_plain(statistics),
        message=message,
    )


class _Incident:
    """Incident state of one feature for one alert kind: which alert is firing, cooldown,
    re-adoption.

    All fields are plain numbers and strings (serialized as a dict).
    """

    __slots__ = (
        "active",
        "adopting",
        "cooldown_until",
        "detector",
        "fired_block",
        "fired_seq",
        "kind",
        "severity",
    )

    def __init__(self) -> None:
        self.active: str | None = None  # alert id of the firing alert
        self.detector = ""
        self.severity = ""
        self.fired_seq = 0
        self.fired_block = 0
        self.adopting = False
        self.cooldown_until = 0
        self.kind = KIND

    def to_state(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_state(cls, s: dict) -> _Incident:
        p = cls()
        for name in cls.__slots__:
            setattr(p, name, s.get(name, KIND) if name == "kind" else s[name])
        return p

    def step(
        self,
        feature: Any,
        signals: list[Signal],
        *,
        ctx: dict[str, Any],
        counters: dict[str, int],
        kind: str = KIND,
        name: Any = ...,
    ) -> list[tuple[int, Any]]:
        """Apply the policy to one feature's signals of one kind after one block; return
        ``(seq, alert)`` pairs.

        ``ctx`` holds ``model``, ``version``, ``settings``, ``seq0``, ``block`` (index),
        ``times`` (the block's event times) and optionally ``segment``. ``kind`` is the alert
        kind of the feature's drift signals (a signal may name its own in ``extra["kind"]``);
        ``name`` the alert's ``feature`` (default ``feature.name``; ``None`` for the model's
        outputs). Within a block, the signal that names the cause best wins (``_RANK``), then
        the earliest.
        """
        if name is ...:
            name = feature.name
        settings = ctx["settings"]
        seq0, times = ctx["seq0"], ctx["times"]
        end_seq = seq0 + len(times)
        out: list[tuple[int, Any]] = []
        confirmed = []
        for s in signals:
            if (
                s.detector in _CUSUM_DETECTORS
                and not s.statistics["p_value"] < settings.confirm_alpha
            ):
                counters["unconfirmed"] += 1
            else:
                confirmed.append(s)
        if self.active is None:
            eligible = [s for s in confirmed if seq0 + s.index >= self.cooldown_until]
            counters["suppressed"] += len(confirmed) - len(eligible)
            if eligible:
                sig = min(
                    eligible,
                    key=lambda s: (
                        _RANK.get(s.detector, 2),
                        s.index,
                        _ORDER.get(s.detector, 9),
                    ),
                )
                counters["suppressed"] += len(eligible) - 1
                seq = seq0 + sig.index
                alert = make_alert(
                    model=ctx["model"],
                    version=ctx["version"],
                    feature=name,
                    detector=sig.extra.get("detector", sig.detector),
                    status="firing",
                    severity=sig.severity,
                    event_time=float(times[sig.index]),
                    seq=seq,
                    window=sig.window,
                    statistics=sig.statistics,
                    message=sig.message,
                    kind=sig.extra.get("kind", kind),
                    segment=ctx.get("segment"),
                )
                out.append((seq, alert))
                self.active = alert.alert_id
                self.kind = alert.kind
                self.detector = alert.detector
                self.severity = sig.severity
                self.fired_seq = seq
                self.fired_block = ctx["block"]
                if settings.readapt_after == 0:
                    feature.restart_reference()
                    self.adopting = True
            return out
        if settings.readapt_after == 0 and confirmed:
            # change-point mode: each change is a report of its own, so a new change closes
            # the last one's incident (resolved, reason ``next_change``) and opens its own
            first = seq0 + min(s.index for s in confirmed)
            out.append(self._resolve(feature, ctx, first, "next_change", None, name))
            return out + self.step(
                feature, confirmed, ctx=ctx, counters=counters, kind=kind, name=name
            )
        counters["suppressed"] += len(confirmed)
        if self.adopting:
            if feature.live:
                out.append(self._resolve(feature, ctx, end_seq, "new_reference", None, name))
            return out
        if end_seq - self.fired_seq >= settings.readapt_after:
            feature.restart_reference()
            self.adopting = True
            return out
        if ctx["block"] - self.fired_block >= settings.window_blocks:
            pv = feature.window_pvalues()
            if pv is not None and min(pv) >= settings.resolve_alpha:
                reason = getattr(feature, "resolve_reason", "returned_to_reference")
                out.append(self._resolve(feature, ctx, end_seq, reason, pv, name))
                self.cooldown_until = end_seq + settings.cooldown
        return out

    def _resolve(self, feature, ctx, end_seq, reason, pv, name) -> tuple[int, Any]:
        times = ctx["times"]
        what = f"'{feature.name}'" if name is not None else f"the model's {feature.name}"
        label = "Drift" if self.kind == KIND else self.kind.replace("_", " ").capitalize()
        if reason == "next_change":
            msg = (
                f"{label} alert on {what} resolved: a further change was detected "
                "(change-point mode reports each change on its own)."
            )
        elif reason == "new_reference":
            msg = (
                f"{label} alert on {what} resolved: the new distribution, which lasted "
                f"{end_seq - self.fired_seq} events, was adopted as the reference."
            )
        elif reason == "labels_caught_up":
            msg = (
                f"{label} alert on {what} resolved: labels have caught up, the realized "
                "metrics (performance, concept_drift) now judge the model."
            )
        else:
            msg = (
                f"{label} alert on {what} resolved: the last values match the "
                f"reference again (p={min(pv):.2g})."
            )
        stats = {
            "reason": reason,
            "fired_alert_id": self.active,
            "events_active": end_seq - self.fired_seq,
            "p_value": None if pv is None else min(pv),
            "threshold_p": ctx["settings"].resolve_alpha if pv is not None else None,
        }
        span = feature.reference_span()
        reference = (
            {"count": 0}
            if span is None
            else {"start": rfc3339(span[0]), "end": rfc3339(span[1]), "count": span[2]}
        )
        window = {
            "reference": reference,
            "current": {
                "start": rfc3339(float(times[0])),
                "end": rfc3339(float(times[-1])),
                "count": len(times),
            },
        }
        seq = end_seq - 1
        alert = make_alert(
            model=ctx["model"],
            version=ctx["version"],
            feature=name,
            detector=self.detector,
            status="resolved",
            severity=self.severity,
            event_time=float(times[-1]),
            seq=seq,
            window=window,
            statistics=stats,
            message=msg,
            kind=self.kind,
            segment=ctx.get("segment"),
        )
        self.active = None
        self.adopting = False
        return seq, alert


class FeaturePolicy:
    """The incidents of one feature (or the outputs, or the error stream): one per alert kind.

    Why one per kind: a feature can break in several ways at once (new categories appear
    *and* the old ones' frequencies move; a performance drop *and* a change of error rate),
    and an incident of one kind must not hide the evidence of another from subscribers. So
    each kind (``data_drift``, ``data_quality``, ``schema``, ...) opens, deduplicates and
    resolves its own incident; within a kind, further alarms are counted, not emitted.
    """

    __slots__ = ("incidents",)

    def __init__(self) -> None:
        self.incidents: dict[str, _Incident] = {}  # kind -> its incident state

    @property
    def active(self) -> str | None:
        """The alert id of the earliest firing incident (None when none is firing)."""
        firing = [i for i in self.incidents.values() if i.active is not None]
        return min(firing, key=lambda i: i.fired_seq).active if firing else None

    @property
    def severity(self) -> str:
        """The highest severity among the firing incidents (``""`` when none is firing)."""
        firing = {i.severity for i in self.incidents.values() if i.active is not None}
        return "critical" if "critical" in firing else ("warning" if firing else "")

    @property
    def adopting(self) -> bool:
        return any(i.adopting for i in self.incidents.values())

    def firing(self) -> dict[str, str]:
        """Alert id of the firing incident per kind."""
        return {k: i.active for k, i in self.incidents.items() if i.active is not None}

    def to_state(self) -> dict:
        return {"incidents": {k: i.to_state() for k, i in self.incidents.items()}}

    @classmethod
    def from_state(cls, s: dict) -> FeaturePolicy:
        p = cls()
        if "incidents" in s:
            p.incidents = {k: _Incident.from_state(v) for k, v in s["incidents"].items()}
        else:  # one incident per feature, as states before per-kind incidents wrote it
            one = _Incident.from_state(s)
            p.incidents = {one.kind: one}
        return p

    def step(
        self,
        feature: Any,
        signals: list[Signal],
        *,
        ctx: dict[str, Any],
        counters: dict[str, int],
        kind: str = KIND,
        name: Any = ...,
    ) -> list[tuple[int, Any]]:
        """Apply each kind's incident policy to its signals (see ``_Incident.step``).

        Kinds are stepped in the order of their most specific signal (``_RANK``: schema,
        then missing values and unseen categories, then drift, then out-of-range values), and
        a signal explained by an incident already firing on the feature is dropped (counted
        as suppressed, see :meth:`_explained`). Kinds with an open incident and no signal are
        stepped too, so they can resolve.
        """
        groups: dict[str, list[Signal]] = {}
        for s in signals:
            groups.setdefault(s.extra.get("kind", kind), []).append(s)
        for k, inc in self.incidents.items():
            if inc.active is not None:
                groups.setdefault(k, [])

        def order(k: str) -> tuple:
            ranks = [_RANK.get(s.detector, 2) for s in groups[k]]
            return (min(ranks, default=9), k)

        out: list[tuple[int, Any]] = []
        for k in sorted(groups, key=order):
            sigs = [s for s in groups[k] if not self._explained(s, k, ctx["seq0"] + s.index)]
            counters["suppressed"] += len(groups[k]) - len(sigs)
            inc = self.incidents.get(k)
            if inc is None:
                if not sigs:
                    continue
                inc = self.incidents[k] = _Incident()
            out += inc.step(feature, sigs, ctx=ctx, counters=counters, kind=k, name=name)
        out.sort(key=lambda pair: pair[0])
        return out

    def _explained(self, s: Signal, kind: str, seq: int) -> bool:
        """Whether an incident of another kind, firing or in its cooldown at event ``seq``,
        already explains signal ``s``.

        - A schema incident (a type change, a vanished feature) explains everything else on
          the feature: the values the other detectors see are a symptom of it.
        - A drift incident explains out-of-range values (most location and scale shifts put
          some values outside the reference range).
        - An unseen-categories incident explains a frequency shift that only the new
          categories make (the pooled cell grew): the shift must also show among the
          reference's own categories (``p_known``, see ``_categorical``).
        """
        firing = {
            k: i
            for k, i in self.incidents.items()
            if k != kind and (i.active is not None or seq < i.cooldown_until)
        }
        if not firing:
            return False
        if "schema" in firing:
            return True
        if s.detector == "out_of_range":
            return any(k != "data_quality" for k in firing)
        dq = firing.get("data_quality")
        if s.detector == "frequency" and dq is not None and dq.detector == "unseen_categories":
            p_known = s.statistics.get("p_known")
            return not (p_known is not None and p_known < s.statistics["threshold_p"])
        return False
