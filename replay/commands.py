"""``driftline replay`` and ``driftline baseline``: argument parsing and exit statuses.

Only argparse is imported at module level so that ``driftline --help`` stays fast; the
handlers import the replay engine, the detectors and aiokafka when they run. Every failure a
user can cause ends in one line on stderr and a documented exit status, never a traceback:
0 done (bad lines skipped and reported), 1 bad line under ``--strict``, 2 unusable input,
configuration or broker.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from driftline.streams.commands import add_kafka_arguments

__all__ = ["register"]

_PROG = "driftline replay"


def register(subparsers: Any) -> None:
    """Add the ``replay`` and ``baseline`` subcommands to the ``driftline`` parser."""
    p = subparsers.add_parser(
        "replay",
        help="run detection over historical logs, or re-publish them to Kafka",
        description=(
            "Replay JSON Lines logs (plain, .gz, '-' for stdin; Parquet if pyarrow is "
            "installed) through the same detection as the workers and write the alerts, one "
            "JSON object per line. Output is deterministic. Bad lines are skipped and reported "
            "as FILE:LINE: reason. Exit status: 0 done, 1 bad line under --strict, 2 unusable "
            "input or settings."
        ),
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="log file(s), or - for stdin")
    p.add_argument(
        "-o",
        "--out",
        default="-",
        metavar="ALERTS.jsonl",
        help="where alerts go (default: standard output); a file is replaced only on success",
    )
    p.add_argument("--config", metavar="TOML", help="detection settings (driftline.toml)")
    _add_preset(p)
    p.add_argument("--baseline", metavar="PROFILE", help="reference profile (baseline build)")
    p.add_argument("--strict", action="store_true", help="stop with exit 1 at the first bad line")
    p.add_argument(
        "--report",
        metavar="REPORT.html",
        help="also write a self-contained HTML report (statistics against thresholds over "
        "event time, distributions, alerts, bad lines); opens with no network",
    )
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        metavar="N",
        help="events per detection call (speed only; alerts do not depend on it; by default "
        "the size measured fastest)",
    )
    p.add_argument(
        "--show-bad",
        type=int,
        default=10,
        metavar="N",
        help="bad lines reported one by one before only counting (default 10)",
    )
    bar = p.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="always show the progress bar (default: only on a terminal)",
    )
    bar.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")

    pub = p.add_argument_group("publishing to Kafka instead of detecting")
    pub.add_argument(
        "--publish",
        action="store_true",
        help="send the events to the contract's topics instead of replaying them",
    )
    pub.add_argument(
        "--speed",
        type=_speed,
        default=None,
        metavar="X|max",
        help="keep event-time gaps divided by X (2 = twice as fast); "
        "max (default) sends as fast as possible",
    )
    pub.add_argument("--topic-predictions", metavar="NAME", help="default driftline.predictions")
    pub.add_argument("--topic-features", metavar="NAME", help="default driftline.features")
    pub.add_argument("--topic-labels", metavar="NAME", help="default driftline.labels")
    pub.add_argument(
        "--acks",
        choices=("0", "1", "all"),
        default="1",
        help="producer acknowledgements (default 1)",
    )
    add_kafka_arguments(p)  # --broker, TLS and SASL: the same options as the worker
    p.set_defaults(handler=_run_replay)

    b = subparsers.add_parser(
        "baseline",
        help="reference profiles from training data",
        description="Build reference profiles that turn on training-serving skew detection.",
    )
    bsub = b.add_subparsers(dest="baseline_command", required=True, metavar="ACTION")
    build = bsub.add_parser(
        "build",
        help="build a profile from training or validation data",
        description=(
            "Read training or validation events (the replay input formats) and write a "
            "versioned, human-readable JSON reference profile for --baseline."
        ),
    )
    build.add_argument("inputs", nargs="+", metavar="INPUT", help="data file(s), or - for stdin")
    build.add_argument("-o", "--out", required=True, metavar="PROFILE.json")
    build.add_argument("--config", metavar="TOML", help="detection settings (driftline.toml)")
    _add_preset(build)
    build.add_argument("--strict", action="store_true", help="stop at the first bad line")
    build.add_argument("--show-bad", type=int, default=10, metavar="N")
    build.add_argument("-q", "--quiet", action="store_true")
    build.set_defaults(handler=_run_baseline_build)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _speed(text: str) -> float | None:
    if text.lower() == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0 or 'max', got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0 or 'max', got {text!r}")
    return value


def _fail(message: str, status: int = 2) -> int:
    print(f"driftline: error: {message}", file=sys.stderr)
    return status


def _add_preset(p: argparse.ArgumentParser) -> None:
    # names checked by load_config (importing the detectors here would slow every command)
    p.add_argument(
        "--preset",
        metavar="NAME",
        default=None,
        help="start from a named detection preset (changepoint: short univariate series, "
        "a report at each change of level); --config options override it",
    )


def _load_detection(
    config: str | None, baseline: str | None, preset: str | None = None
) -> tuple[Any, Any]:
    """Load ``--config`` (from ``--preset``) and ``--baseline``; raises ValueError/OSError
    with a clear message."""
    from driftline.detectors import load_config

    cfg = load_config(config or None, preset)
    profile = None
    if baseline:
        from driftline.replay._baseline import load_baseline

        profile = load_baseline(baseline)
    return cfg, profile


def _run_replay(args: argparse.Namespace) -> int:
    from driftline.replay._inputs import check_inputs
    from driftline.replay.exceptions import ReplayError

    progress = False if args.quiet else args.progress
    try:
        # Inputs first: a typo in a file name is reported before the detectors (river, scipy:
        # most of a second) are even imported.
        check_inputs(args.inputs)
        if args.publish:
            if args.report:
                return _fail("--report describes a detection run; it does not apply to --publish")
            return _run_publish(args, progress)
        if args.report:
            folder = os.path.dirname(os.path.abspath(args.report))
            if not os.access(folder, os.W_OK | os.X_OK):
                # before the run, not after it: a long replay should not end in this error
                return _fail(f"{args.report}: cannot write the report there ({folder})")
        try:
            cfg, profile = _load_detection(args.config, args.baseline, args.preset)
        except (OSError, ValueError) as exc:
            return _fail(_describe(exc))
        from driftline.replay._replay import DEFAULT_BATCH_SIZE, replay_files

        summary = replay_files(
            args.inputs,
            args.out,
            config=cfg,
            baseline=profile,
            strict=args.strict,
            batch_size=args.batch_size or DEFAULT_BATCH_SIZE,
            progress=progress,
            show_bad=args.show_bad,
            report=args.report,
        )
    except ReplayError as exc:
        return _fail(str(exc), exc.exit_status)
    except BrokenPipeError:
        # `driftline replay ... | head`: the reader left. Point stdout at /dev/null so the
        # interpreter's final flush does not print a second error, and exit like a shell tool.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    if not args.quiet:
        print(summary.format(), file=sys.stderr)
        if args.report:
            print(f"report: {args.report}", file=sys.stderr)
    return 0


def _run_publish(args: argparse.Namespace, progress: bool | None) -> int:
    from driftline.replay._publish import PublishOptions, publish_files

    if args.out != "-":
        return _fail("--out does not apply to --publish (events go to Kafka)")
    # aiokafka logs connection failures itself before raising; the raised error is reported
    # as our one line, so its log records would only repeat it (and break the one-line rule).
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    try:
        from driftline.streams import TopicLayout
        from driftline.streams.commands import kafka_settings_from_args

        settings = kafka_settings_from_args(args, client_id="driftline-replay")
        defaults = TopicLayout()
        topics = TopicLayout(
            predictions=args.topic_predictions or defaults.predictions,
            features=args.topic_features or defaults.features,
            labels=args.topic_labels or defaults.labels,
        )
    except ValueError as exc:
        return _fail(str(exc))
    acks: int | str = "all" if args.acks == "all" else int(args.acks)
    summary = publish_files(
        args.inputs,
        settings,
        topics=topics,
        options=PublishOptions(speed=args.speed, acks=acks),
        strict=args.strict,
        progress=progress,
        show_bad=args.show_bad,
    )
    if not args.quiet:
        print(summary.format(), file=sys.stderr)
    return 0


def _run_baseline_build(args: argparse.Namespace) -> int:
    from driftline.replay._inputs import check_inputs
    from driftline.replay.exceptions import ReplayError

    progress = False if args.quiet else None
    try:
        check_inputs(args.inputs)
        try:
            cfg, _ = _load_detection(args.config, None, args.preset)
        except (OSError, ValueError) as exc:
            return _fail(_describe(exc))
        from driftline.replay._baseline import build_baseline_file

        summary = build_baseline_file(
            args.inputs,
            args.out,
            config=cfg,
            strict=args.strict,
            progress=progress,
            show_bad=args.show_bad,
        )
    except ReplayError as exc:
        return _fail(str(exc), exc.exit_status)
    if not args.quiet:
        print(summary.format(), file=sys.stderr)
    return 0


def _describe(exc: BaseException) -> str:
    """One line for a configuration error: file errors name the file and the reason."""
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc)
