"""Synthetic event streams for the detector tests (fixed seeds, small sizes)."""

from __future__ import annotations

import itertools

import numpy as np

from driftline.schemas import FeatureEvent, LabelEvent, PredictionEvent

T0 = 1_700_000_000.0


def numeric_events(values, *, model="m", name="x", start=0, version=None):
    return [
        FeatureEvent(
            model=model, timestamp=T0 + start + i, features={name: float(v)}, model_version=version
        )
        for i, v in enumerate(values)
    ]


def mixed_events(n, *, seed=0, shift_at=None, shift=1.0, model="m"):
    """Events with a numeric, an integer, a categorical and a boolean feature."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, n)
    if shift_at is not None:
        x[shift_at:] += shift
    k = rng.poisson(3.0, n).tolist()
    c = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]).tolist()
    b = (rng.random(n) < 0.3).tolist()
    out = []
    for i in range(n):
        feats = {"x": float(x[i]), "k": k[i], "c": c[i], "b": b[i]}
        if i % 97 == 5:
            feats["x"] = None
        if i % 3 == 0:
            out.append(
                PredictionEvent(
                    model=model,
                    timestamp=T0 + i,
                    features=feats,
                    prediction=0.5,
                    prediction_id=f"p{i}",
                )
            )
        else:
            out.append(FeatureEvent(model=model, timestamp=T0 + i, features=feats))
        if i % 50 == 7:
            out.append(LabelEvent(model=model, timestamp=T0 + i, prediction_id="p0", label=1))
    return out


def process_in_pieces(config, events, cuts, dump_at):
    """Alert dicts of ``events`` processed in batches cut at ``cuts``, with the state dumped
    and loaded into a new Monitor at ``dump_at``: what batch- and restart-independence compare
    with one uninterrupted run."""
    from driftline.detectors import Monitor

    bounds = sorted({0, len(events), dump_at, *cuts})
    mon = Monitor(config)
    out = []
    for lo, hi in itertools.pairwise(bounds):
        if lo == dump_at:
            blobs = {m: mon.dump_model(m) for m in mon.models()}
            mon = Monitor(config)
            for m, b in blobs.items():
                mon.load_model(m, b)
        out.extend(mon.process(events[lo:hi]))
    return [a.to_dict() for a in out]


def assert_state_round_trips(config, events):
    """Every model's dump, loaded into a new Monitor, dumps to the same bytes."""
    from driftline.detectors import Monitor

    mon = Monitor(config)
    mon.process(events)
    for m in mon.models():
        blob = mon.dump_model(m)
        other = Monitor(config)
        other.load_model(m, blob)
        assert other.dump_model(m) == blob
