"""``--preset changepoint`` (issue 12): the same detection as the preset's configuration, from
the command line and from ``preset = ...`` in a ``--config`` file; bad names are one line."""

from __future__ import annotations

import numpy as np
import orjson

from driftline.detectors import DetectionConfig, Monitor
from driftline.schemas import FeatureEvent


def _series(tmp_path):
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(m, 1.0, 120) for m in (0.0, 4.0, 0.0, 5.0)])
    lines = [
        orjson.dumps({"model": "s", "timestamp": 1_700_000_000 + i, "features": {"v": float(v)}})
        for i, v in enumerate(x)
    ]
    path = tmp_path / "series.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    events = [
        FeatureEvent(model="s", timestamp=1_700_000_000 + i, features={"v": float(v)})
        for i, v in enumerate(x)
    ]
    return path, events


def test_preset_from_the_command_line_and_from_a_config_file(cli, tmp_path):
    path, events = _series(tmp_path)
    want = [a.to_json() for a in Monitor(DetectionConfig.preset("changepoint")).process(events)]
    firing = [a for a in map(orjson.loads, want) if a["status"] == "firing"]
    assert len(firing) >= 3  # one report per change of level
    run = cli("replay", path, "--preset", "changepoint", "--out", "-")
    assert run.status == 0, run.stderr
    assert run.stdout.splitlines() == want
    toml = tmp_path / "cp.toml"
    toml.write_text('[detection]\npreset = "changepoint"\n')
    again = cli("replay", path, "--config", toml, "--out", "-")
    assert again.stdout == run.stdout
    # the default configuration does not report every level (a 120-value series is short)
    default = cli("replay", path, "--out", "-")
    assert default.stdout.count(b'"firing"') < len(firing)


def test_unknown_preset_is_one_line_and_status_2(cli, tmp_path):
    path, _ = _series(tmp_path)
    run = cli("replay", path, "--preset", "nope", "--out", "-")
    assert run.status == 2
    assert "unknown preset 'nope'" in run.stderr and run.stderr.count("\n") == 1
