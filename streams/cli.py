"""The ``driftline`` command.

One entry point; each package registers the subcommands it owns, and every handler imports
its heavy dependencies (faust, river) only when it runs, so ``driftline --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import version

__all__ = ["build_parser", "main"]

# Modules that own subcommands; each exposes ``register(subparsers) -> None`` and sets a
# ``handler(args) -> int`` default on the parsers it adds.
_REGISTRARS = (
    "driftline.streams.commands",
    "driftline.streams.broker",
    "driftline.replay.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftline",
        description="Streaming drift detection for machine-learning models, on Kafka.",
    )
    parser.add_argument("--version", action="version", version=f"driftline {version('driftline')}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _REGISTRARS:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
