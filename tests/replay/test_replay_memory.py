"""Replay reads in a stream: its memory does not grow with the size of the input.

Two fresh processes replay a file and a four times longer one (same generator, same
models) and report their peak RSS; beyond the warm-up (interpreter, numpy, detector state of
a bounded number of models) the longer input must not cost more memory. A ratio within one
run, never an absolute figure, so the test holds on any machine.
"""

from __future__ import annotations

import subprocess
import sys

from driftline.replay._sample import write_sample

_CHILD = """
import resource, sys
from driftline.replay import replay_files
summary = replay_files([sys.argv[1]], sys.argv[2], progress=False)
assert summary.events > 0
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak_rss_kib(path, out) -> int:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return int(proc.stdout.strip().splitlines()[-1])


def test_peak_memory_does_not_grow_with_input_size(tmp_path):
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    write_sample(small, n_predictions=15_000, models=("fraud",), label_fraction=0.3, seed=1)
    write_sample(large, n_predictions=60_000, models=("fraud",), label_fraction=0.3, seed=1)
    assert large.stat().st_size > 3.5 * small.stat().st_size
    small_rss = _peak_rss_kib(small, tmp_path / "a.jsonl")
    large_rss = _peak_rss_kib(large, tmp_path / "b.jsonl")
    # 4x the input; a full load would add ~4x the file size (tens of MiB) to the peak.
    growth_kib = large_rss - small_rss
    file_growth_kib = (large.stat().st_size - small.stat().st_size) / 1024
    assert growth_kib < 0.1 * file_growth_kib + 8 * 1024, (small_rss, large_rss)
