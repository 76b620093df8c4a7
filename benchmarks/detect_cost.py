"""Cost of drift detection per event: ``Monitor.process`` on pre-built 20-feature events.

Usage: ``.venv/bin/python benchmarks/detect_cost.py [--quick] [--events N]``

Events are built before timing (parsing is the contract's cost, measured elsewhere); the
figure is the amortized time of ``Monitor.process`` per event, on one core, with the default
configuration (zero-config warm-up, all detectors on), after the warm-up so the steady state
is measured. Features: 16 numeric (normal, lognormal, integer counts, bounded) and 4
categorical (strings and a boolean), 1% missing values.
"""

from __future__ import annotations

import argparse
import os
import random
import time

from _machine import describe

from driftline.detectors import DetectionConfig, Monitor
from driftline.schemas import PredictionEvent


def make_events(n: int, seed: int = 1) -> list[PredictionEvent]:
    rnd = random.Random(seed)
    countries = ["US", "DE", "FR", "GB", "IN", "BR", "JP", "CN", "MX", "ES"]
    devices = ["ios", "android", "web"]
    events = []
    for i in range(n):
        f: dict = {}
        for j in range(6):
            f[f"num{j}"] = rnd.gauss(j, 1.0 + j)
        for j in range(4):
            f[f"amount{j}"] = rnd.lognormvariate(3.0, 1.0)
        for j in range(3):
            f[f"count{j}"] = int(rnd.expovariate(0.3))
        for j in range(3):
            f[f"ratio{j}"] = rnd.random()
        f["country"] = rnd.choice(countries)
        f["device"] = rnd.choice(devices)
        f["segment"] = f"s{int(rnd.expovariate(0.5))}"
        f["is_new"] = rnd.random() < 0.2
        if rnd.random() < 0.01:
            f[f"num{rnd.randrange(6)}"] = None
        events.append(
            PredictionEvent(
                model="bench", timestamp=1.7e9 + i * 0.01, features=f, prediction=rnd.random()
            )
        )
    return events


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer events (smoke run)")
    ap.add_argument("--events", type=int, default=None)
    ap.add_argument("--block", type=int, default=None, help="block size (default: the default)")
    ap.add_argument("--adwin", action="store_true", help="also run the opt-in ADWIN detector")
    ap.add_argument(
        "--estimate",
        action="store_true",
        help="cost of the estimated performance: a labelled baseline with and without its "
        "score calibration",
    )
    args = ap.parse_args()
    n = args.events or (60_000 if args.quick else 300_000)
    cfg = DetectionConfig() if args.block is None else DetectionConfig(block=args.block)
    if args.adwin:  # on every numeric feature of make_events
        from driftline.detectors import FeatureConfig

        numeric = [f"num{j}" for j in range(6)] + [f"amount{j}" for j in range(4)]
        numeric += [f"count{j}" for j in range(3)] + [f"ratio{j}" for j in range(3)]
        on = FeatureConfig(detectors=("mean", "scale", "shape", "adwin"))
        cfg = cfg.with_options(features=dict.fromkeys(numeric, on))
    warm = make_events(cfg.warmup + 2 * cfg.block, seed=2)
    events = make_events(n, seed=3)
    for e in events:
        e.timestamp += 100_000.0
    print(f"machine: {describe()}")
    print(
        f"input: {n} prediction events x 20 features (16 numeric, 4 categorical), "
        f"block={cfg.block}, warmup={cfg.warmup}"
        + (f", ADWIN on the 16 numeric features (adwin_sub={cfg.adwin_sub})" if args.adwin else "")
    )
    if args.estimate:
        estimate_cost(cfg, warm, events)
        return
    best, best_wall = timed(cfg, warm, events)
    print(
        f"detect cost: {best / n * 1e6:.2f} us CPU per 20-feature event (best of 5, one core; "
        f"wall best {best_wall / n * 1e6:.2f} us; load average {os.getloadavg()[0]:.1f})"
    )
    memory(cfg, events)


def timed(
    cfg: DetectionConfig, warm: list, events: list, baseline=None, reps: int = 5
) -> tuple[float, float]:
    """Best CPU and wall seconds of ``reps`` runs of ``Monitor.process`` over ``events``."""
    n = len(events)
    best = best_wall = float("inf")
    for rep in range(reps):
        mon = Monitor(cfg, baseline=baseline)
        mon.process(warm)
        chunk = 1000
        c0, t0 = time.process_time(), time.perf_counter()
        alerts = 0
        for i in range(0, n, chunk):
            alerts += len(mon.process(events[i : i + chunk]))
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        best, best_wall = min(best, cpu), min(best_wall, wall)
        print(
            f"run {rep + 1}: {cpu / n * 1e6:.2f} us/event CPU, {wall / n * 1e6:.2f} us/event wall "
            f"({n / wall:,.0f} events/s), {alerts} alerts"
        )
    return best, best_wall


def estimate_cost(cfg: DetectionConfig, warm: list, events: list) -> None:
    """Cost added by the estimated performance (issue 17): the same baseline profile (20,000
    training predictions labelled from their calibrated score) with and without its score
    calibration, so only the estimate differs."""
    import copy
    import random

    import orjson

    from driftline.detectors import Baseline, build_baseline

    rnd = random.Random(7)
    train = make_events(20_000, seed=4)
    for e in train:
        e.extra = {"label": int(rnd.random() < e.prediction)}
    on = build_baseline(train)
    doc = orjson.loads(on.to_json())
    for p in doc["profiles"]:
        p["outcomes"].pop("calibration")
    off = Baseline.from_json(orjson.dumps(doc))
    n = len(events)
    res = {"without calibration": float("inf"), "with the estimate": float("inf")}
    for rep in range(5):  # interleaved, alternating which goes first
        pairs = (("without calibration", off), ("with the estimate", on))
        for label, base in pairs if rep % 2 == 0 else pairs[::-1]:
            print(f"baseline {label}:", end=" ")
            cpu = timed(cfg, copy.deepcopy(warm), events, base, reps=1)[0] / n * 1e6
            res[label] = min(res[label], cpu)
    a, b = res["without calibration"], res["with the estimate"]
    print(
        f"whole-monitor difference: {b - a:+.3f} us CPU per prediction ({a:.2f} -> {b:.2f} us "
        f"per 20-feature prediction event, best of 5 interleaved runs each; load average "
        f"{os.getloadavg()[0]:.1f})"
    )
    # the added work alone: the stream's estimate step on each block of predictions
    import numpy as np

    mon = Monitor(cfg, baseline=on)
    mon.process(copy.deepcopy(warm))
    st = mon._models["bench"][None]
    B = cfg.block
    blocks = [events[i : i + B] for i in range(0, n - B + 1, B)]
    cols = [
        (np.array([e.timestamp for e in p]), np.array([e.prediction for e in p])) for p in blocks
    ]
    rate = st.rate_per_unit()
    best = float("inf")
    for _ in range(5):
        c0 = time.process_time()
        for k, (preds, (times, scores)) in enumerate(zip(blocks, cols, strict=True)):
            st._run_estimate(preds, scores, times, rate, st._context(k * B, times, k))
        best = min(best, time.process_time() - c0)
    print(
        f"estimate cost: {best / (len(blocks) * B) * 1e6:.3f} us CPU per prediction (the "
        f"estimate step alone, on {len(blocks)} blocks of {B} predictions, "
        f"{len(st.estimator.cal.starts)} calibration bins, best of 5)"
    )


def memory(cfg: DetectionConfig, events: list[PredictionEvent]) -> None:
    """Memory per monitored feature, after the warm-up (steady state) and during it."""
    import tracemalloc

    def measure(evts):
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        mon = Monitor(cfg)
        mon.process(evts)
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        blob = mon.dump_model("bench")
        status = mon.status("bench")["streams"][0]
        return mon, after - before, len(blob), status["buffered"]

    # steady state: a whole number of blocks after the warm-up, so no events are buffered
    n = (cfg.warmup // cfg.block + 8) * cfg.block
    mon, py_bytes, state_bytes, buffered = measure(events[:n])
    stream = mon._models["bench"][None]
    sketch_bytes = sum(
        len(f.sketch.serialize()) if f.kind == "numeric" else len(f.hll.serialize_compact())
        for f in stream.features.values()
    )
    print(
        f"memory after warm-up ({n} events, {buffered} buffered): "
        f"{py_bytes / 20 / 1024:.1f} KiB Python heap per feature (tracemalloc) + "
        f"{sketch_bytes / 20 / 1024:.1f} KiB of C++ sketches per feature; "
        f"dumped state {state_bytes / 20 / 1024:.1f} KiB per feature"
    )
    # during the warm-up the raw reference values are held too
    n = cfg.warmup - cfg.block
    mon, py_bytes, state_bytes, buffered = measure(events[:n])
    print(
        f"memory during warm-up ({n} events, {buffered} of them buffered): "
        f"{py_bytes / 20 / 1024:.1f} KiB Python heap per feature (incl. the buffered events); "
        f"dumped state {state_bytes / 20 / 1024:.1f} KiB per feature"
    )


if __name__ == "__main__":
    main()
