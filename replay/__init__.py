"""Historical logs through the same detection as the workers, or re-published to Kafka.

``replay_files`` runs ``driftline.detectors.Monitor`` over JSON Lines logs (plain, gzipped,
standard input; Parquet when pyarrow is installed) and writes the alerts, deterministically:
the same input and configuration give byte-identical output, as a streaming worker would emit.
``publish_files`` sends the same logs to the contract's Kafka topics instead, optionally
paced by their event times, for load tests, demos and backfills. ``build_baseline_file``
reads training data the same way and writes the detection core's reference profile, which
``replay_files(baseline=load_baseline(path))`` and the workers accept.
"""

from driftline.replay._badlines import BadLine
from driftline.replay._baseline import BaselineSummary, build_baseline_file, load_baseline
from driftline.replay._publish import PublishOptions, publish_files
from driftline.replay._replay import replay_files
from driftline.replay._sample import sample_path
from driftline.replay._summary import PublishSummary, ReplaySummary
from driftline.replay.exceptions import BadLineError, InputError, PublishError, ReplayError

__all__ = [
    "BadLine",
    "BadLineError",
    "BaselineSummary",
    "InputError",
    "PublishError",
    "PublishOptions",
    "PublishSummary",
    "ReplayError",
    "ReplaySummary",
    "build_baseline_file",
    "load_baseline",
    "publish_files",
    "replay_files",
    "sample_path",
]
