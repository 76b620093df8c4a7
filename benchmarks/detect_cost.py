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
    best = best_wall = float("inf")
    for rep in range(5):
        mon = Monitor(cfg)
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
    print(
        f"detect cost: {best / n * 1e6:.2f} us CPU per 20-feature event (best of 5, one core; "
        f"wall best {best_wall / n * 1e6:.2f} us; load average {os.getloadavg()[0]:.1f})"
    )
    memory(cfg, events)


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
