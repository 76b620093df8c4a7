"""Public data with documented drift, read out of a package on PyPI: ``quality.py --public``.

Everything else in ``quality.py`` is generated here, so its figures cannot show what a user's
data will do. The NannyML wheel (``nannyml`` on PyPI, Apache-2.0) ships the synthetic model
logs its own tutorials monitor: a reference period (with targets) and an analysis period
whose targets come in a separate file. NannyML documents where these change: data drift
and the performance drop appear from the second half of the analysis period on (its
quickstart also names the four drifting features of the car loan data). The middle of the
analysis period is the truth used here; the accuracy per half printed beside it is measured
from the data, and confirms it.

Only the wheel is downloaded (``pip download --no-deps`` into ``~/.cache/driftline-bench``,
once); its CSV files are read with ``zipfile`` and ``csv``. nannyml itself and its
dependencies are never installed or imported. Needs the registry, so it is not part of the
test suite.

Per data set: the reference rows (each carrying its target as ``extra["label"]``) become a
baseline (``build_baseline``); the analysis rows become predictions (features, score,
predicted class, ``prediction_id``) on a one-second clock, each labelled ``LAG`` rows later by
a label event. ``Monitor`` runs over them with the default configuration.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path
from typing import NamedTuple

from driftline.detectors import DetectionConfig, Monitor, build_baseline
from driftline.schemas import LabelEvent, PredictionEvent, parse_timestamp

__all__ = ["CACHE", "DATASETS", "Dataset", "report"]

CACHE = Path.home() / ".cache" / "driftline-bench"
VERSION = "0.13.1"
WHEEL = f"nannyml=={VERSION}"
DATA = "nannyml/datasets/data/"
T0 = 1_700_000_000.0
LAG = 500  # rows between a prediction and its label
LABEL_KINDS = ("concept_drift", "performance")  # alerts dated by the label's time


class Dataset(NamedTuple):
    """One NannyML data set: its files and columns."""

    name: str
    reference: str
    analysis: str
    targets: str
    target: str  # the target column (reference file and targets file)
    score: str | None  # binary: the positive-class probability
    documented: str  # where the change is documented to start, in words
    drifted: tuple[str, ...] = ()  # features the documentation names as drifting


DATASETS = (
    Dataset(
        "car loan (binary)",
        "synthetic_car_loan_reference.csv",
        "synthetic_car_loan_analysis.csv",
        "synthetic_car_loan_analysis_target.csv",
        "repaid",
        "y_pred_proba",
        "second half of the analysis period (NannyML quickstart, car loan data set)",
        ("car_value", "loan_length", "repaid_loan_on_prev_car", "salary_range"),
    ),
    Dataset(
        "work from home (binary)",
        "synthetic_sample_reference.csv",
        "synthetic_sample_analysis.csv",
        "synthetic_sample_analysis_gt.csv",
        "work_home_actual",
        "y_pred_proba",
        "second half of the analysis period (NannyML tutorials, work-from-home data set)",
    ),
    Dataset(
        "credit card (multiclass)",
        "mc_reference.csv",
        "mc_analysis.csv",
        "mc_analysis_gt.csv",
        "y_true",
        None,
        "second half of the analysis period (NannyML tutorials, multiclass data set)",
    ),
)

#: Columns that are not model inputs.
_NOT_FEATURES = {"id", "timestamp", "period", "y_pred", "identifier", "partition"}


def wheel() -> Path:
    """The cached NannyML wheel, downloaded (no dependencies) on first use."""
    CACHE.mkdir(parents=True, exist_ok=True)
    found = sorted(CACHE.glob(f"nannyml-{VERSION}-*.whl"))
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
        subprocess.run([*cmd, "-q", "-d", str(CACHE), WHEEL], check=True)
        found = sorted(CACHE.glob(f"nannyml-{VERSION}-*.whl"))
    return found[-1]


def _rows(zf: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    with zf.open(DATA + name) as raw:
        return list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8")))


def _value(text: str) -> float | bool | str | None:
    """A CSV cell as the event would carry it: number, flag, category, or absent."""
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    try:
        return float(text)
    except ValueError:
        return text


def _label(text: str) -> int | str:
    """Targets and predicted classes compare equal: ``1.0`` and ``1`` are the class 1."""
    try:
        return int(float(text))
    except ValueError:
        return text


def _prediction(row: dict[str, str], ds: Dataset, t: float, pid: str) -> PredictionEvent:
    feats = {}
    for k, v in row.items():
        if k in _NOT_FEATURES or k == ds.target or k.startswith("y_pred_proba"):
            continue
        val = _value(v)
        if val is not None:
            feats[k] = val
    label = _label(row["y_pred"])
    score = float(row[ds.score]) if ds.score else None
    raw = {"score": score, "label": label} if ds.score else {"label": label}
    return PredictionEvent(
        model=ds.name.split(" (")[0].replace(" ", "_"),
        timestamp=t,
        features=feats,
        prediction=score if score is not None else label,
        prediction_raw=raw,
        prediction_id=pid,
    )


def _events(ds: Dataset, zf: zipfile.ZipFile) -> tuple[list, list, list[bool]]:
    """Reference predictions (labelled in ``extra``), serving stream, and per serving row
    whether the prediction was right."""
    ref = _rows(zf, ds.reference)
    reference = []
    for i, row in enumerate(ref):
        ev = _prediction(row, ds, T0 - len(ref) + i, f"r{row['id']}")
        ev.extra["label"] = _label(row[ds.target])
        reference.append(ev)
    analysis = _rows(zf, ds.analysis)
    truth = {r["id"]: _label(r[ds.target]) for r in _rows(zf, ds.targets)}
    stream: list = []
    right: list[bool] = []
    for i in range(len(analysis) + LAG):
        if i < len(analysis):
            row = analysis[i]
            stream.append(_prediction(row, ds, T0 + i, f"a{row['id']}"))
            right.append(truth.get(row["id"]) == _label(row["y_pred"]))
        j = i - LAG
        if 0 <= j < len(analysis) and analysis[j]["id"] in truth:
            model = stream[0].model
            pid, label = f"a{analysis[j]['id']}", truth[analysis[j]["id"]]
            stream.append(LabelEvent(model=model, timestamp=T0 + i, prediction_id=pid, label=label))
    return reference, stream, right


class Finding(NamedTuple):
    """One firing alert placed on the analysis rows."""

    kind: str
    feature: str | None
    row: int  # analysis row the alert names (labels: the prediction its label judged)


def _findings(alerts: list) -> list[Finding]:
    out = []
    for a in alerts:
        if a.status != "firing":
            continue
        row = round(parse_timestamp(a.event_time) - T0)
        if a.kind in LABEL_KINDS:
            row -= LAG
        out.append(Finding(a.kind, a.feature, row))
    return out


def _accuracy(right: list[bool]) -> str:
    return f"{sum(right) / len(right):.2%}" if right else "-"


def run(ds: Dataset, zf: zipfile.ZipFile, cfg: DetectionConfig, with_baseline: bool) -> None:
    """Print the figures of one data set, with a baseline from its reference period or
    (``with_baseline`` false) with the live warm-up as the reference."""
    reference, stream, right = _events(ds, zf)
    n = len(right)
    change = n // 2
    mon = Monitor(cfg, baseline=build_baseline(reference, cfg) if with_baseline else None)
    found = _findings(mon.process(stream))
    before = [f for f in found if f.row < change]
    after = [f for f in found if f.row >= change]
    print(
        f"  {ds.name}, {'baseline' if with_baseline else 'NO baseline (warm-up reference)'}: "
        f"{len(reference):,} reference rows{'' if with_baseline else ' (unused)'}, {n:,} "
        f"serving rows (labels {LAG} rows late); "
        f"documented change at serving row {change:,} ({ds.documented})"
    )
    if with_baseline:
        print(
            f"    realized accuracy: reference period {_ref_accuracy(reference)}, serving "
            f"before the change {_accuracy(right[:change])}, after {_accuracy(right[change:])}"
        )
    print(f"    false alarms before the change: {len(before)}")
    for f in before:
        print(f"      {f.kind} on {f.feature or '(model)'} at row {f.row:,}")
    by_kind: dict[str, list[Finding]] = {}
    for f in after:
        by_kind.setdefault(f.kind, []).append(f)
    if ds.drifted:
        seen = {f.feature for f in after if f.kind == "data_drift"}
        hit = [d for d in ds.drifted if d in seen]
        extra = sorted(x for x in seen if x not in ds.drifted)
        print(
            f"    documented drifting features alerted: {len(hit)}/{len(ds.drifted)} "
            f"(missed: {', '.join(d for d in ds.drifted if d not in seen) or 'none'}; "
            f"alerted but not documented: {', '.join(extra) or 'none'})"
        )
    if not by_kind:
        print("    alerts after the change: none (missed)")
    for kind, fs in sorted(by_kind.items()):
        feats = Counter(f.feature or "(model)" for f in fs)
        named = ", ".join(f"{k} {v}" for k, v in sorted(feats.items()))
        first = min(fs, key=lambda f: f.row)
        unit = "labels" if kind in LABEL_KINDS else "rows"
        print(
            f"    {kind}: {len(fs)} alert(s) ({named}); first {first.row - change:,} {unit} "
            f"after the change, on {first.feature or '(model)'}"
        )
    for kind in LABEL_KINDS:
        if kind not in by_kind:
            print(f"    {kind}: none after the change")


def _ref_accuracy(reference: list) -> str:
    return _accuracy([ev.prediction_raw["label"] == ev.extra["label"] for ev in reference])


def report(cfg: DetectionConfig | None = None) -> None:
    """Download (once) and run every data set."""
    cfg = cfg or DetectionConfig()
    path = wheel()
    print()
    print(
        f"Public data with documented drift (issue 12): NannyML's data sets read from "
        f"{path.name} (PyPI); baseline from the reference period with its targets, then no "
        f"baseline; default config (budget {cfg.false_alarms_per_million} per million events "
        "per model)"
    )
    with zipfile.ZipFile(path) as zf:
        for with_baseline in (True, False):
            for ds in DATASETS:
                run(ds, zf, cfg, with_baseline)
