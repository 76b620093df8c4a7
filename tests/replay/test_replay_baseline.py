"""``driftline baseline build`` and ``driftline replay --baseline``, through the real CLI.

The profile's content belongs to the detection core; what is tested here is the reading
(same inputs and bad-line rules as replay), the file written, and that replay accepts it.
"""

from __future__ import annotations

import orjson
import pytest

from driftline.replay._sample import DRIFT, DRIFT_AT
from driftline.schemas import Alert


@pytest.fixture(scope="module")
def training(tmp_path_factory, sample_lines):
    """The sample's first 40%: before the injected drift, like a training set."""
    path = tmp_path_factory.mktemp("train") / "train.jsonl"
    path.write_bytes(b"".join(sample_lines[: int(len(sample_lines) * DRIFT_AT * 0.66)]))
    return path


def test_build_writes_a_readable_profile_and_replay_uses_it(cli, training, sample_plain, tmp_path):
    profile = tmp_path / "profile.json"
    run = cli("baseline", "build", training, "-o", profile)
    assert run.status == 0, run.stderr
    assert "baseline: 2 profile(s)" in run.stderr
    text = profile.read_text()
    assert text.startswith("{\n"), "indented for people to read and diff"
    doc = orjson.loads(text)
    assert doc["format"] == "driftline.baseline"
    models = {p["model"]: p for p in doc["profiles"]}
    assert set(models) == {"fraud", "eta"}
    assert len(models["fraud"]["features"]) == 16
    # Deterministic: building again gives the same bytes.
    again = tmp_path / "again.json"
    assert cli("baseline", "build", training, "-o", again).status == 0
    assert again.read_bytes() == profile.read_bytes()

    replay = cli("replay", sample_plain, "--baseline", profile, "--out", "-")
    assert replay.status == 0, replay.stderr
    alerts = [Alert.from_json(line) for line in replay.stdout.splitlines()]
    named = {(a.model, a.feature) for a in alerts}
    for model, feature, _what in DRIFT:
        assert (model, feature) in named


def test_build_reports_bad_lines_like_replay(cli, bad_lines_file, tmp_path):
    out = tmp_path / "p.json"
    run = cli("baseline", "build", bad_lines_file, "-o", out)
    assert run.status == 0, run.stderr
    assert f"{bad_lines_file}:2:" in run.stderr and "invalid lines: 7" in run.stderr
    strict = cli("baseline", "build", bad_lines_file, "-o", tmp_path / "s.json", "--strict")
    assert strict.status == 1 and not (tmp_path / "s.json").exists()


def test_unusable_inputs_and_profiles_are_exit_2(cli, sample_plain, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    for run in (
        cli("baseline", "build", empty, "-o", tmp_path / "p.json"),
        cli("replay", sample_plain, "--baseline", tmp_path / "missing.json"),
    ):
        assert run.status == 2, run.stderr
        assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "something else"}')
    run = cli("replay", sample_plain, "--baseline", broken)
    assert run.status == 2 and "broken.json" in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_build_learns_labels_from_label_events_and_label_fields(cli, tmp_path):
    """Issue 12: labels joined by ``prediction_id`` (either order in the file) or carried in
    a training row's ``label`` field become the profile's outcomes; the summary says so."""
    rows = []
    for i in range(400):
        score = (i % 10) / 10
        truth = int(i % 10 >= 5) if i % 7 else 1 - int(i % 10 >= 5)  # every 7th row wrong
        pred = {"score": score, "label": int(score >= 0.5)}
        base = {"model": "m", "timestamp": 1_700_000_000 + i, "features": {"x": score}}
        if i % 2:
            rows.append({**base, "prediction": pred, "label": truth})
        else:
            rows.append(
                {
                    "model": "m",
                    "timestamp": 1_700_000_000 + i,
                    "prediction_id": f"p{i}",
                    "label": truth,
                }
            )
            rows.append({**base, "prediction": pred, "prediction_id": f"p{i}"})
    train = tmp_path / "train.jsonl"
    train.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    profile = tmp_path / "profile.json"
    run = cli("baseline", "build", train, "-o", profile)
    assert run.status == 0, run.stderr
    errors = sum(1 for i in range(400) if i % 7 == 0)
    assert f"400 labelled predictions (binary, accuracy {1 - errors / 400:.2%})" in run.stderr
    out = orjson.loads(profile.read_bytes())["profiles"][0]["outcomes"]
    assert out["aggregates"]["count"] == 400 and out["aggregates"]["loss"] == errors


def test_build_summary_says_how_many_were_dropped_unjoined(tmp_path, monkeypatch):
    """Waiting predictions and labels are bounded (``MAX_PENDING``); what the bound drops is
    counted and the summary says so."""
    from driftline.detectors import _baseline
    from driftline.replay import build_baseline_file

    monkeypatch.setattr(_baseline, "MAX_PENDING", 5)
    t0 = 1_700_000_000
    preds = [
        {
            "model": "m",
            "timestamp": t0 + i,
            "features": {"x": i},
            "prediction": 0.9,
            "prediction_id": f"p{i}",
        }
        for i in range(20)
    ]
    labels = [
        {"model": "m", "timestamp": t0 + 100 + i, "prediction_id": f"p{i}", "label": 1}
        for i in range(20)
    ]
    train = tmp_path / "train.jsonl"
    train.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in preds + labels))
    summary = build_baseline_file([str(train)], tmp_path / "profile.json", progress=False)
    # 15 predictions fell out while waiting; 10 of the 15 labels without one were dropped
    assert summary.unjoined == 25
    assert "25 predictions or labels dropped unjoined" in summary.format()
    assert "5 labelled predictions" in summary.format()
