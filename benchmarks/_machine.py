"""The machine line every benchmark prints, so figures are only compared like with like.

Benchmark scripts run as ``.venv/bin/python benchmarks/NAME.py``, so this directory is on
``sys.path`` and they import it as ``from _machine import describe``.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["describe"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.0f} GiB RAM"
    except (OSError, ValueError):
        pass
    return "unknown RAM"


def describe() -> str:
    """Platform, Python, CPU model (from /proc/cpuinfo), core count and memory, on one line.

    The core count is what this process may use (its CPU affinity), which is what bounds a
    benchmark, not what the host has.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 0
    return (
        f"{platform.platform()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {_cpu_model()}, {cores} cores, {_memory()}"
    )
