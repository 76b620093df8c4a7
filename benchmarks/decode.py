"""Cost of decoding + validating a contract event, against ``orjson.loads`` of the same bytes.

The contract's budget (issue 2): decode plus validation of a 20-feature prediction event costs
at most about twice ``orjson.loads`` alone. This prints both figures, per event and per
second, for events with an RFC 3339 timestamp and with an epoch-milliseconds timestamp.

    .venv/bin/python benchmarks/decode.py [--quick] [--events N] [--repeats R]

Input: N distinct, realistic prediction events (20 features: 15 numbers, 5 categories;
segment, model version, ids, latency, a score-and-label prediction object), about 650 bytes
each, generated with a fixed seed; the third scenario adds two unknown fields, which take
the slower reference path (the budget is stated for the first two). Each repeat times one
pass over all N messages for each decoder, interleaved so that machine noise hits both alike;
the best repeat is reported.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from collections.abc import Callable

import orjson
from _machine import describe

from driftline.schemas import decode_event, format_timestamp, parse_event
from driftline.schemas._parse import decode_reference

CATEGORIES = ["FR", "DE", "US", "GB", "JP", "BR", "IN", "web", "ios", "android"]


def make_events(count: int, iso_time: bool, extra: bool = False, seed: int = 7) -> list[bytes]:
    """Realistic prediction events, as the wire bytes a model server would publish.

    ``extra`` adds two fields the contract does not know (a request id and a trace object),
    which ``decode_event`` keeps in ``extra`` through its reference path.
    """
    rng = random.Random(seed)
    start = 1_714_564_800.0
    events = []
    for i in range(count):
        features: dict[str, object] = {}
        for j in range(20):
            if j % 4 == 3:
                features[f"cat_{j:02d}"] = rng.choice(CATEGORIES)
            else:
                features[f"num_{j:02d}"] = round(rng.gauss(50, 15), 4)
        moment = start + i * 0.05
        unknown = {"request_id": f"req-{i:08d}", "trace": {"span": i, "sampled": True}}
        events.append(
            orjson.dumps(
                {
                    **(unknown if extra else {}),
                    "type": "prediction",
                    "model": "card-fraud",
                    "model_version": "2024-05-01.3",
                    "timestamp": format_timestamp(round(moment, 3))
                    if iso_time
                    else int(moment * 1000),
                    "event_id": f"evt-{i:012d}",
                    "segment": {"region": rng.choice(["eu", "us", "apac"]), "channel": "web"},
                    "features": features,
                    "prediction": {"score": round(rng.random(), 6), "label": "legit"},
                    "prediction_id": f"pred-{i:012d}",
                    "latency_ms": round(rng.uniform(2, 40), 2),
                }
            )
        )
    return events


def best_pass_ns(
    functions: dict[str, Callable[[object], object]], inputs: dict[str, list], repeats: int
) -> dict[str, float]:
    """Best-of-``repeats`` nanoseconds per item for each function over its inputs."""
    best = {name: float("inf") for name in functions}
    gc.disable()  # collections triggered by the other function's garbage would be noise
    try:
        for _ in range(repeats):
            for name, function in functions.items():
                items = inputs[name]
                started = time.perf_counter_ns()
                for item in items:
                    function(item)
                elapsed = time.perf_counter_ns() - started
                best[name] = min(best[name], elapsed / len(items))
            gc.collect()
    finally:
        gc.enable()
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 events, 5 repeats")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    count, repeats = (2_000, 5) if args.quick else (args.events, args.repeats)

    print(f"machine: {describe()}")
    print(f"orjson {orjson.__version__}; {count} distinct events per pass, best of {repeats}")
    ratios = []
    scenarios = (
        ("RFC 3339 timestamp", True, False),
        ("epoch-ms timestamp", False, False),
        ("RFC 3339 timestamp, 2 unknown fields", True, True),
    )
    for label, iso, extra in scenarios:
        messages = make_events(count, iso, extra)
        objects = [orjson.loads(m) for m in messages]
        size = statistics.mean(len(m) for m in messages)
        functions = {"orjson.loads": orjson.loads, "decode_event": decode_event}
        functions.update(decode_reference=decode_reference, parse_event=parse_event)
        inputs = {name: messages for name in functions}
        inputs["parse_event"] = objects
        results = best_pass_ns(functions, inputs, repeats)
        ratio = results["decode_event"] / results["orjson.loads"]
        if not extra:
            ratios.append(ratio)
        print(f"\n20-feature prediction events, {label}, {size:.0f} bytes on average:")
        notes = {
            "decode_reference": " (orjson + Python checks, without the msgspec fast path)",
            "parse_event": " (validation of an already decoded object)",
        }
        for name, ns in results.items():
            note = notes.get(name, "")
            print(f"  {name:16s} {ns:8.0f} ns/event  {1e9 / ns:12,.0f} events/s{note}")
        print(f"  ratio decode_event / orjson.loads = {ratio:.2f}")
    print(f"\nworst ratio of the contract events: {max(ratios):.2f} (budget: about 2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
