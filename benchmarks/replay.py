"""Replay throughput next to its ceiling, measured in the same run on the same file.

    .venv/bin/python benchmarks/replay.py [--quick] [--events N] [--input FILE] [--profile]
                                          [--no-segments] [--no-ids] [--baseline] [--publish]

(a) ceiling: reading the lines and ``orjson.loads`` alone, nothing else;
(b) decode: reading + ``decode_event`` (the contract's validation), no detection;
(b') bookkeeping: ``replay_files`` driving a monitor that does nothing, i.e. (b) plus
    replay's own work (batching, counting, progress, output);
(c) replay: ``replay_files`` end to end: decode + ``Monitor.process`` with the default
    configuration + writing the alerts, exactly what ``driftline replay`` does.

Each stage runs ``--repeat`` times interleaved and the best run is reported (the machine is
shared and noisy; the best run is the one least disturbed). The default input is the bundled
sample's generator with prediction events only: one model, 16 features (10 numeric, 4
categorical, 2 boolean), a score output and a latency, about 500 bytes a line; generated twice,
without and with a segment key (``region``, 3 values), and measured on each in turn.
``--profile`` prints where replay's time goes (cProfile, by own time).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time

import orjson
from _machine import describe

from driftline.replay import build_baseline_file, replay_files
from driftline.replay._inputs import open_lines
from driftline.replay._sample import write_sample
from driftline.schemas import decode_event


def machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{describe()}; one core used; load average at start {load} (shared machine)"


_RSS_CHILD = """
import resource, sys
from driftline.replay import replay_files
replay_files([sys.argv[1]], sys.argv[2], progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_mib(path: str, out: str) -> float:
    """Peak RSS of a fresh process that replays ``path`` (nothing else in it)."""
    proc = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, path, out],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stdout.split()[-1]) / 1024


def ceiling(path: str) -> int:
    loads = orjson.loads
    n = 0
    with open_lines(path) as lines:
        for line in lines:
            loads(line)
            n += 1
    return n


def decode_only(path: str) -> int:
    decode = decode_event
    n = 0
    with open_lines(path) as lines:
        for line in lines:
            decode(line)
            n += 1
    return n


class NullMonitor:
    """A monitor that detects nothing: isolates replay's own cost from detection's."""

    def process(self, events: list) -> list:
        return []


def bookkeeping(path: str, out: str) -> int:
    return replay_files([path], out, progress=False, monitor=NullMonitor()).events


def full_replay(path: str, out: str) -> int:
    summary = replay_files([path], out, progress=False)
    full_replay.alerts = summary.alerts  # type: ignore[attr-defined]
    return summary.events


def timed(fn, *args) -> tuple[float, int]:
    start = time.perf_counter()
    n = fn(*args)
    return time.perf_counter() - start, n


def publish_rate(path: str) -> str:
    """Publish the file at full speed into a fresh embedded broker; one line of figures."""
    from driftline.replay import publish_files
    from driftline.streams import KafkaSettings, TopicLayout
    from driftline.streams.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        topics = TopicLayout(predictions="bench.p", features="bench.f", labels="bench.l")
        broker.create_topics_sync({"bench.p": 4, "bench.f": 4, "bench.l": 4})
        summary = publish_files(
            [path], KafkaSettings(broker.bootstrap_servers), topics=topics, progress=False
        )
    return (
        f"publish --speed max to the embedded broker (4 partitions, loopback, acks=1): "
        f"{summary.messages:,} messages in {summary.elapsed_seconds:.2f} s, "
        f"{summary.messages_per_second:,.0f} messages/s"
    )


def without_prediction_ids(src: str, dst: str) -> None:
    """Copy a log without its events' ``prediction_id`` (so nothing waits for a label)."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for line in fin:
            doc = orjson.loads(line)
            doc.pop("prediction_id", None)
            fout.write(orjson.dumps(doc) + b"\n")


def measure(path: str, out: str, repeat: int) -> int:
    """Stages (a)-(c) on one file, interleaved, best of ``repeat``; prints them, returns lines."""
    size = os.path.getsize(path)
    best: dict[str, tuple[float, int]] = {}
    for _ in range(repeat):
        for name, fn, fargs in (
            ("ceiling", ceiling, (path,)),
            ("decode", decode_only, (path,)),
            ("bookkeeping", bookkeeping, (path, out)),
            ("replay", full_replay, (path, out)),
        ):
            elapsed, n = timed(fn, *fargs)
            if name not in best or elapsed < best[name][0]:
                best[name] = (elapsed, n)
    lines = best["ceiling"][1]
    print(
        f"input: {path}: {lines:,} lines, {size / 1e6:.1f} MB, "
        f"{size / max(lines, 1):.0f} bytes/line; best of {repeat} runs each"
    )
    rates = {}
    for name, label in (
        ("ceiling", "(a) ceiling: read + orjson.loads"),
        ("decode", "(b) read + decode_event (contract)"),
        ("bookkeeping", "(b') replay with a null monitor"),
        ("replay", "(c) full replay (decode + Monitor + write)"),
    ):
        elapsed, n = best[name]
        rates[name] = n / elapsed
        print(f"{label:<44} {n:>10,} events {elapsed:7.2f} s {rates[name]:>12,.0f} events/s")
    per = {k: 1e6 / v for k, v in rates.items()}
    print(f"ratio replay/ceiling: {rates['replay'] / rates['ceiling']:.3f}")
    print(
        f"per event: read+loads {per['ceiling']:.2f} us, validation "
        f"{per['decode'] - per['ceiling']:.2f} us, replay bookkeeping "
        f"{per['bookkeeping'] - per['decode']:.2f} us, detection+alerts "
        f"{per['replay'] - per['bookkeeping']:.2f} us, total {per['replay']:.2f} us"
    )
    print(f"alerts: {getattr(full_replay, 'alerts', 0)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="50k events, 2 repeats")
    parser.add_argument("--events", type=int, default=300_000, help="events to generate")
    parser.add_argument("--input", help="replay this file instead of a generated one")
    parser.add_argument(
        "--labels",
        type=float,
        default=0.0,
        help="fraction of predictions followed by a label event (default 0)",
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--no-segments",
        action="store_true",
        help="only the input without a segment key (default: both inputs, one after the other)",
    )
    parser.add_argument(
        "--no-ids",
        action="store_true",
        help="also measure the input without a segment key stripped of its prediction_ids "
        "(isolates the cost of remembering predictions for their labels)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile one replay")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also time `driftline baseline build` on the same file",
    )
    parser.add_argument(
        "--publish",
        action="store_true",
        help="also time `replay --publish --speed max` into the embedded broker (loopback)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.repeat = 50_000, 2

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="driftline-bench-") as tmp:
        out = os.path.join(tmp, "alerts.jsonl")
        if args.input:
            inputs = [("given input", args.input)]
        else:
            inputs = []
            for segments in (False, True) if not args.no_segments else (False,):
                path = os.path.join(tmp, f"bench-{'seg' if segments else 'plain'}.jsonl")
                start = time.perf_counter()
                write_sample(
                    path,
                    n_predictions=args.events,
                    models=("fraud",),
                    label_fraction=args.labels,
                    seed=7,
                    segments=segments,
                )
                print(f"generated {path} in {time.perf_counter() - start:.1f} s")
                title = (
                    "with a segment key (region: 3 values; each event is detected model-wide "
                    "and again in its region's slice)"
                    if segments
                    else "without a segment key (the 16 features, the output and the latency)"
                )
                inputs.append((title, path))
                if args.no_ids and not segments:
                    bare = os.path.join(tmp, "bench-plain-no-ids.jsonl")
                    without_prediction_ids(path, bare)
                    title = "the same events without prediction_id (nothing waits for a label)"
                    inputs.append((title, bare))
        for title, path in inputs:
            print(f"\n== {title}")
            lines = measure(path, out, args.repeat)
        path = inputs[0][1]
        quarter = os.path.join(tmp, "quarter.jsonl")
        with open(path, "rb") as src, open(quarter, "wb") as dst:
            for i, line in enumerate(src):
                if i >= lines // 4:
                    break
                dst.write(line)
        small, large = peak_rss_mib(quarter, out), peak_rss_mib(path, out)
        print(
            f"peak RSS of a process replaying {lines // 4:,} lines: {small:.0f} MiB; "
            f"{lines:,} lines: {large:.0f} MiB (bounded: the input is streamed)"
        )
        if args.baseline:
            start = time.perf_counter()
            built = build_baseline_file([path], os.path.join(tmp, "profile.json"), progress=False)
            elapsed = time.perf_counter() - start
            events = sum(built.events_by_kind.values())
            print(
                f"baseline build: {events:,} events in {elapsed:.2f} s, "
                f"{events / elapsed:,.0f} events/s (read + decode + profile + write)"
            )
        if args.publish:
            print(publish_rate(path))
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            full_replay(path, out)
            prof.disable()
            text = io.StringIO()
            pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(25)
            print(text.getvalue(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
