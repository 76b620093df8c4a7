"""Cost of one block of a feature-name flood in the detectors (the heavy part of a block).

Usage::

    .venv/bin/python benchmarks/flood.py

Three rounds of 512 events of one model, each event with 2,000 feature names never seen
before (issue 18's flood): decoding, then ``Monitor.process`` of the block, which keeps the
first ``max_features`` (256) names and counts the rest. The first round creates the kept
features; the later ones only refuse names. A worker's ``/health`` waits while a block runs.
"""

from __future__ import annotations

import time

import orjson
from _machine import describe


def main() -> None:
    from driftline.detectors import Monitor
    from driftline.schemas import decode_event

    print(describe())
    monitor = Monitor()
    for r in range(3):
        raws = [
            orjson.dumps(
                {
                    "model": "flood",
                    "timestamp": 1.7e9 + i,
                    "features": {f"new{r}_{i}_{k}": 1.0 for k in range(2000)},
                    "prediction": 1,
                }
            )
            for i in range(512)
        ]
        start = time.perf_counter()
        events = [decode_event(raw, "prediction") for raw in raws]
        decoded = time.perf_counter()
        monitor.process(events)
        done = time.perf_counter()
        print(
            f"round {r}: decode 512 events {decoded - start:.3f} s, "
            f"process the block {done - decoded:.3f} s"
        )


if __name__ == "__main__":
    main()
