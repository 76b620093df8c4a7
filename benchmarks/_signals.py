"""Issue-4 streams of ``quality.py``: schema, data quality, outputs, labels, latency, segments.

Every stream is one model of prediction events with eight features (normal, lognormal amount,
integer counts, a second normal, two categoricals of which one has 10% nulls, a boolean, and
an identifier-like string that is ignored by nothing), the model's score, ``latency_ms``, a
``region`` segment (four values, equally frequent) and delayed labels: a third of the
predictions get a label 200-800 events later (the label is drawn from the score, so the model
is calibrated until a concept drift). Exactly one thing changes at the onset:

=================  ===============================================  ========================
stream             change at the onset                              the alert must name
=================  ===============================================  ========================
type_change        integer ``count`` arrives as a string             schema, count
empty_string       ``channel``'s nulls arrive as empty strings        schema, channel
vanished           ``score2`` disappears from the events              schema, score2
new_feature        a feature ``promo`` appears                        schema, promo
missing_spike      ``x`` missing in 10% of events (was never)         data_quality, x
unseen_categories  5% of ``device`` values are new categories        data_quality, device
out_of_range       2% of ``amount`` values x1000 (a unit bug)          data_quality, amount
concept_drift      labels flip for a third of the inputs; inputs     concept_drift or
                   and scores unchanged (visible only via labels)    performance, no feature
version_change     model version v2 takes over with other scores     prediction_drift (v2)
null_outputs       10% of predictions have a null score             prediction_drift
latency            latency 40% slower (p50 and p99)                 latency
segment            ``score2`` +1 sd in region eu only               score2, segment eu
=================  ===============================================  ========================

A detection is the first firing alert at or after the onset whose kind, feature and segment
name the cause (for the segment stream: the slice alert; a model-wide alert on the same
feature after the onset is a true, less precise alarm, neither a detection nor a false one).
Any alert before the onset or on another feature is a false alarm. Long stationary streams
of the same generator (labels, segments, latency) measure false alarms per million events.
"""

from __future__ import annotations

import heapq
import statistics

import numpy as np

from driftline.detectors import DetectionConfig, Monitor
from driftline.schemas import LabelEvent, PredictionEvent, parse_timestamp

T0 = 1_700_000_000.0
REGIONS = ("eu", "us", "apac", "latam")
DEVICES = ("ios", "android", "web")
CHANNELS = ("mail", "ads", "direct", "social")

#: stream -> (kinds accepted, feature, segment)
EXPECTED = {
    "type_change": (("schema",), "count", None),
    "empty_string": (("schema",), "channel", None),
    "vanished": (("schema",), "score2", None),
    "new_feature": (("schema",), "promo", None),
    "missing_spike": (("data_quality",), "x", None),
    "unseen_categories": (("data_quality",), "device", None),
    "out_of_range": (("data_quality",), "amount", None),
    "concept_drift": (("concept_drift", "performance"), None, None),
    "version_change": (("prediction_drift",), None, None),
    "null_outputs": (("prediction_drift",), None, None),
    "latency": (("latency",), None, None),
    "segment": (("data_drift",), "score2", {"region": "eu"}),
}
SIGNALS = tuple(EXPECTED)


def make_stream(n: int, onset: int | None, what: str | None, seed: int) -> list:
    """Events (predictions and delayed labels) of one stream, in stream order."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, n)
    amount = rng.lognormal(3.0, 0.8, n)
    count = rng.poisson(4.0, n)
    score2 = rng.normal(10.0, 2.0, n)
    device = rng.choice(len(DEVICES), n, p=[0.5, 0.3, 0.2])
    channel = rng.choice(len(CHANNELS), n)
    chan_null = rng.random(n) < 0.1
    flag = rng.random(n) < 0.3
    u = rng.random(n)
    lat = rng.lognormal(3.0, 0.3, n)
    logit = 1.5 * x + 0.4 * (score2 - 10.0) / 2.0 + 0.5 * flag
    score = 1.0 / (1.0 + np.exp(-logit))
    label = (rng.random(n) < score).astype(int)
    labelled = rng.random(n) < 1.0 / 3.0
    delay = rng.integers(200, 800, n)
    on = onset if onset is not None else n
    post = np.arange(n) >= on
    version = np.where(post & (what == "version_change"), "v2", "v1")
    if what == "segment":
        eu = np.arange(n) % 4 == 0
        score2 = np.where(post & eu, score2 + 2.0, score2)
    if what == "latency":
        lat = np.where(post, lat * 1.4, lat)
    if what == "concept_drift":  # a third of the inputs get the opposite outcome
        flip = post & (u < 1.0 / 3.0)
        label = np.where(flip, 1 - label, label)
    if what == "version_change":
        score = np.where(post, score**2, score)
    events = []
    due: list[tuple[int, int]] = []
    dl = delay.tolist()
    for i in range(n):
        f = {
            "x": float(x[i]),
            "amount": float(amount[i]),
            "count": int(count[i]),
            "score2": float(score2[i]),
            "device": DEVICES[device[i]],
            "channel": None if chan_null[i] else CHANNELS[channel[i]],
            "returning": bool(flag[i]),
        }
        pred: float | None = float(score[i])
        if i >= on:
            if what == "type_change":
                f["count"] = str(f["count"])
            elif what == "empty_string" and f["channel"] is None:
                f["channel"] = ""
            elif what == "vanished":
                del f["score2"]
            elif what == "new_feature":
                f["promo"] = float(u[i])
            elif what == "missing_spike" and u[i] < 0.1:
                f["x"] = None
            elif what == "unseen_categories" and u[i] < 0.05:
                f["device"] = f"tv{int(u[i] * 1000) % 7}"
            elif what == "out_of_range" and u[i] < 0.02:
                f["amount"] *= 1000.0
            elif what == "null_outputs" and u[i] < 0.1:
                pred = None
        events.append(
            PredictionEvent(
                model="m",
                timestamp=T0 + i,
                features=f,
                prediction=pred,
                prediction_id=f"p{i}",
                latency_ms=float(lat[i]),
                model_version=str(version[i]),
                segment={"region": REGIONS[i % 4]},
            )
        )
        if labelled[i]:
            heapq.heappush(due, (i + dl[i], i))
        while due and due[0][0] <= i:
            _, j = heapq.heappop(due)
            events.append(
                LabelEvent(model="m", timestamp=T0 + i, prediction_id=f"p{j}", label=int(label[j]))
            )
    return events


def _index(alert) -> int:
    return round(parse_timestamp(alert.event_time) - T0)


def _run(events: list, cfg: DetectionConfig) -> list:
    mon = Monitor(cfg)
    out = []
    for i in range(0, len(events), 997):
        out.extend(mon.process(events[i : i + 997]))
    return [a for a in out if a.status == "firing"]


class SignalScore:
    def __init__(self) -> None:
        self.detected: dict[str, list[bool]] = {s: [] for s in SIGNALS}
        self.first_named: dict[str, list[bool]] = {s: [] for s in SIGNALS}
        self.delays: dict[str, list[int]] = {s: [] for s in SIGNALS}
        self.false_alarms = 0
        self.examples: list[str] = []
        self.stationary_events = 0

    def recall(self) -> float:
        flat = [x for v in self.detected.values() for x in v]
        return sum(flat) / max(len(flat), 1)


def _matches(a, signal: str) -> bool:
    kinds, feature, segment = EXPECTED[signal]
    return a.kind in kinds and a.feature == feature and a.segment == segment


def _related(a, signal: str) -> bool:
    """A true alarm that is not the named cause (model-wide view of a sliced drift)."""
    _, feature, _ = EXPECTED[signal]
    return signal == "segment" and a.feature == feature and a.segment is None


def score_signals(score: SignalScore, seeds: int, n_pre: int, n_post: int, cfg) -> None:
    for k, signal in enumerate(SIGNALS):
        for s in range(seeds):
            events = make_stream(n_pre + n_post, n_pre, signal, seed=50_000 + 100 * k + s)
            alerts = _run(events, cfg)
            hit = None
            first = True
            named_first = False
            for a in alerts:
                i = _index(a)
                if i >= n_pre and _matches(a, signal):
                    if hit is None:
                        hit = i
                        named_first = first
                elif i >= n_pre and _related(a, signal):
                    first = False
                else:
                    score.false_alarms += 1
                    score.examples.append(f"{signal}: {a.kind}/{a.feature} at {i}: {a.message}")
            score.detected[signal].append(hit is not None)
            score.first_named[signal].append(hit is not None and named_first)
            if hit is not None:
                score.delays[signal].append(hit - n_pre)
            score.stationary_events += n_pre


def score_stationary(score: SignalScore, models: int, n: int, cfg) -> None:
    for m in range(models):
        alerts = _run(make_stream(n, None, None, seed=90_000 + m), cfg)
        score.false_alarms += len(alerts)
        score.examples += [
            f"stationary: {a.kind}/{a.feature} at {_index(a)}: {a.message}" for a in alerts
        ]
        score.stationary_events += n


def report(score: SignalScore) -> None:
    print()
    print("Issue-4 signals (recall; the first alert after the onset names kind, feature and")
    print("segment of the cause; median delay in events after the onset):")
    for signal in SIGNALS:
        d = score.detected[signal]
        f = score.first_named[signal]
        delay = statistics.median(score.delays[signal]) if score.delays[signal] else float("nan")
        print(
            f"  {signal:<18} detected {sum(d)}/{len(d)}  named first {sum(f)}/{len(f)}  "
            f"median delay {delay:>6.0f}"
        )
    print(
        f"  recall {score.recall():.3f}; false alarms {score.false_alarms} in "
        f"{score.stationary_events} stationary events "
        f"({score.false_alarms / max(score.stationary_events, 1) * 1e6:.2f} per million)"
    )
    for line in score.examples[:10]:
        print(f"    false alarm: {line}")
