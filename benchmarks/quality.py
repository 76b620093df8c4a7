"""Detection quality of driftline's feature-drift core against naive river, plus TCPD F1.

Usage: ``.venv/bin/python benchmarks/quality.py [--quick] [--seeds N] [--stationary N]``
(``--public``: only the public data sets with documented drift, see ``_public.py``)

1. Synthetic streams with known onsets. Each drift stream is one model with five features
   (one per distribution family: normal, lognormal, integer counts, bounded, bimodal) plus a
   categorical one; exactly one feature drifts at the onset, in one of six ways: abrupt mean
   shift of 1 and of 0.5 standard deviations, gradual drift (mean ramps to 1 sd over 2,000
   events), variance doubled with the mean unchanged, change of shape with mean and variance
   unchanged, and (for the categorical feature) a frequency shift. Every (kind, family)
   pair runs with several seeds. Long stationary streams of 20 features measure false alarms.
   A detection is the first firing alert on the drifting feature at or after the onset;
   delay is its event index minus the onset (the event the alert names; it is emitted when
   its block completes, at most ``block - 1`` events later). Any other firing alert is a false
   alarm; false alarms per million count stationary events (an event = one row of all its
   model's features) and stationary feature values.
2. Naive river: ADWIN() and PageHinkley() with default parameters on the raw values of each
   numeric feature (categories fed as their integer code), on the same streams, scored the
   same way (a detection is a drift flagged on the drifting feature after the onset).
3. TCPD F1 (van den Burg & Williams 2020; margin 5, precision against the union of the
   annotators, recall averaged over annotators, index 0 added to every set) on the seven
   series river bundles with annotations, with driftline in its univariate change-point
   configuration (``TCPD_CONFIG`` below: short warm-up, one-event blocks, new reference adopted
   right after each alert) and the same detection code. A predicted change point is the
   change point the alert reports (the start of the CUSUM excursion) or its event; alerts of
   several features of a series within 5 events of each other count as one change point.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import time
from datetime import datetime

import numpy as np
from _machine import describe

from driftline.detectors import DetectionConfig, Monitor
from driftline.schemas import FeatureEvent, parse_timestamp

FAMILIES = ("normal", "lognormal", "counts", "bounded", "bimodal")
KINDS = ("mean_1sd", "mean_0.5sd", "gradual", "variance", "shape", "categorical")
CATEGORIES = ["a", "b", "c", "d", "e", "f", "g", "h"]
CAT_P = np.array([0.30, 0.20, 0.15, 0.10, 0.10, 0.07, 0.05, 0.03])
CAT_P_DRIFT = np.array([0.22, 0.20, 0.15, 0.14, 0.10, 0.09, 0.06, 0.04])
T0 = 1_700_000_000.0

#: The univariate change-point configuration used on TCPD: ``--preset changepoint`` (a short
#: reference, decisions at every event, a new reference right after each alert; see
#: ``driftline.detectors.PRESETS``).
TCPD_CONFIG = DetectionConfig.preset("changepoint")


# --------------------------------------------------------------------------- generators
def family_draw(rng: np.random.Generator, family: str, n: int) -> np.ndarray:
    """Stationary values of a family, with its mean and sd known (see FAMILY_MOMENTS)."""
    if family == "normal":
        return rng.normal(10.0, 2.0, n)
    if family == "lognormal":
        return rng.lognormal(3.0, 0.8, n)
    if family == "counts":
        return rng.poisson(4.0, n).astype(float)
    if family == "bounded":
        return rng.beta(2.0, 5.0, n)
    if family == "bimodal":
        side = rng.random(n) < 0.5
        return np.where(side, rng.normal(-2.0, 1.0, n), rng.normal(2.0, 1.0, n))
    raise ValueError(family)


def _moments(family: str) -> tuple[float, float]:
    if family == "normal":
        return 10.0, 2.0
    if family == "lognormal":
        m = math.exp(3.0 + 0.32)
        return m, m * math.sqrt(math.exp(0.64) - 1.0)
    if family == "counts":
        return 4.0, 2.0
    if family == "bounded":
        a, b = 2.0, 5.0
        return a / (a + b), math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    return 0.0, math.sqrt(5.0)


FAMILY_MOMENTS = {f: _moments(f) for f in FAMILIES}


def drifted(rng: np.random.Generator, family: str, kind: str, n: int) -> np.ndarray:
    """Post-onset values of ``family`` under drift ``kind``."""
    mean, sd = FAMILY_MOMENTS[family]
    base = family_draw(rng, family, n)
    if kind == "mean_1sd":
        out = base + sd
    elif kind == "mean_0.5sd":
        out = base + 0.5 * sd
    elif kind == "gradual":
        ramp = np.minimum(np.arange(n) / 2000.0, 1.0)
        out = base + ramp * sd
    elif kind == "variance":
        out = mean + (base - mean) * math.sqrt(2.0)
    elif kind == "shape":
        if family == "normal":  # unimodal -> symmetric bimodal, same mean and variance
            side = np.where(rng.random(n) < 0.5, -1.0, 1.0)
            std = side * 0.9 + rng.normal(0.0, math.sqrt(1 - 0.81), n)
        elif family == "bimodal":  # bimodal -> normal, same mean and variance
            std = rng.normal(0.0, 1.0, n)
        else:  # skewed or bounded -> mirrored: same mean and variance, opposite skew
            std = -(base - mean) / sd
        out = mean + sd * std
    else:
        raise ValueError(kind)
    if family == "counts":
        out = np.maximum(np.round(out), 0.0)
    return out


def cat_draw(rng: np.random.Generator, n: int, p: np.ndarray) -> np.ndarray:
    return rng.choice(len(CATEGORIES), size=n, p=p)


def build_events(model: str, columns: dict[str, np.ndarray], t0: float) -> list[FeatureEvent]:
    names = list(columns)
    lists = []
    for name in names:
        col = columns[name]
        if col.dtype.kind in "iu" and name.startswith("cat"):
            lists.append([CATEGORIES[i] for i in col.tolist()])
        elif name.startswith("counts"):
            lists.append([int(v) for v in col.tolist()])
        else:
            lists.append(col.tolist())
    rows = zip(*lists, strict=True)
    return [
        FeatureEvent(model=model, timestamp=t0 + i, features=dict(zip(names, row, strict=True)))
        for i, row in enumerate(rows)
    ]


# --------------------------------------------------------------------------- scoring
def index_of(alert) -> int:
    return round(parse_timestamp(alert.event_time) - T0)


#: ADWIN's statistics summed over the stationary streams of a run: inputs (= cut checks),
#: raw cuts (before confirmation) and the per-check delta of one detector.
ADWIN_STATS: dict[str, float] = {"checks": 0, "cuts": 0, "delta": math.nan}


def run_driftline(
    events: list[FeatureEvent], cfg: DetectionConfig, adwin_stats: dict | None = None
) -> list:
    mon = Monitor(cfg)
    out = []
    for i in range(0, len(events), 997):  # arbitrary batches: results must not depend on them
        out.extend(mon.process(events[i : i + 997]))
    if adwin_stats is not None:
        for stream in mon._models[events[0].model].values():
            for f in stream.features.values():
                det = getattr(f, "adwin", None)
                if det is not None:
                    adwin_stats["checks"] += det.inputs
                    adwin_stats["cuts"] += det.cuts
                    adwin_stats["delta"] = det.delta
    return [a for a in out if a.status == "firing"]


def adwin_calibration(checks: int = 200_000) -> str:
    """Realised cuts per check of the ADWIN detector on i.i.d. sub-block means, by delta.

    The inputs are what a stationary feature feeds it (means of 32 standardised scores,
    drawn Gaussian here); the ratio to delta shows how conservative river's bound is.
    """
    from driftline.detectors._adwin import AdwinDetector

    rng = np.random.default_rng(99)
    parts = []
    for delta in (1e-2, 1e-3, 1e-4):
        det = AdwinDetector(delta, 32)
        det.feed(rng.normal(0.0, 1.0 / math.sqrt(32), checks).tolist())
        parts.append(f"delta {delta:g}: {det.cuts / checks:.2g}")
    return f"ADWIN cuts per check on {checks} stationary inputs, " + ", ".join(parts)


def with_adwin(cfg: DetectionConfig, *, only: bool = False) -> DetectionConfig:
    """``cfg`` with the opt-in ADWIN detector on every numeric feature of these streams."""
    from driftline.detectors import FeatureConfig

    names = list(FAMILIES) + [
        f"{fam}{j}" if fam != "counts" else f"counts{j}"
        for j, fam in ((j, FAMILIES[j % len(FAMILIES)]) for j in range(18))
    ]
    dets = ("adwin",) if only else ("mean", "scale", "shape", "adwin")
    return cfg.with_options(features={n: FeatureConfig(detectors=dets) for n in names})


def run_river(columns: dict[str, np.ndarray]) -> dict[str, dict[str, list[int]]]:
    """Indices where naive ADWIN / PageHinkley flag drift, per detector and feature."""
    from river.drift import ADWIN, PageHinkley

    res: dict[str, dict[str, list[int]]] = {"ADWIN": {}, "PageHinkley": {}}
    for name, col in columns.items():
        for label, cls in (("ADWIN", ADWIN), ("PageHinkley", PageHinkley)):
            det = cls()
            hits = []
            update = det.update
            for i, v in enumerate(col.tolist()):
                update(v)
                if det.drift_detected:
                    hits.append(i)
            res[label][name] = hits
    return res


class Score:
    def __init__(self) -> None:
        self.detected: dict[tuple[str, str], list[bool]] = {}
        self.delays: dict[str, list[int]] = {}
        self.false_alarms = 0
        self.false_alarm_examples: list[str] = []
        self.stationary_events = 0
        self.stationary_values = 0

    def add(self, kind, family, hit_index, onset):
        ok = hit_index is not None
        self.detected.setdefault((kind, family), []).append(ok)
        if ok:
            self.delays.setdefault(kind, []).append(hit_index - onset)

    def recall(self) -> float:
        flat = [x for v in self.detected.values() for x in v]
        return sum(flat) / max(len(flat), 1)

    def kind_recall(self, kind: str) -> float:
        flat = [x for (k, _), v in self.detected.items() if k == kind for x in v]
        return sum(flat) / max(len(flat), 1)

    def fa_per_million_events(self) -> float:
        return self.false_alarms / max(self.stationary_events, 1) * 1e6

    def fa_per_million_values(self) -> float:
        return self.false_alarms / max(self.stationary_values, 1) * 1e6

    def median_delay(self, kind: str) -> float:
        d = self.delays.get(kind)
        return float(statistics.median(d)) if d else math.nan


def drift_stream(seed: int, kind: str, family: str, n_pre: int, n_post: int):
    """Columns of one drift stream and the name of the drifting feature."""
    rng = np.random.default_rng(seed)
    n = n_pre + n_post
    cols: dict[str, np.ndarray] = {}
    for fam in FAMILIES:
        cols[f"{fam}"] = family_draw(rng, fam, n)
    cols["cat"] = cat_draw(rng, n, CAT_P)
    if kind == "categorical":
        target = "cat"
        cols["cat"][n_pre:] = cat_draw(rng, n_post, CAT_P_DRIFT)
    else:
        target = family
        cols[family][n_pre:] = drifted(rng, family, kind, n_post)
    return cols, target


def score_drift(score: Score, river_scores: dict[str, Score], args, cfg) -> None:
    n_pre, n_post = args.pre, args.post
    onset = n_pre
    kinds_families = [(k, f) for k in KINDS if k != "categorical" for f in FAMILIES]
    kinds_families += [("categorical", "categorical")]
    for kind, family in kinds_families:
        for s in range(args.seeds):
            seed = _seed(kind, family, s)
            cols, target = drift_stream(seed, kind, family, n_pre, n_post)
            events = build_events(f"{kind}-{family}-{s}", cols, T0)
            nfeat = len(cols)
            alerts = run_driftline(events, cfg)
            hit = None
            for a in alerts:
                i = index_of(a)
                if a.feature == target and i >= onset and hit is None:
                    hit = i
                elif not (a.feature == target and i >= onset):
                    score.false_alarms += 1
                    score.false_alarm_examples.append(
                        f"{a.model}/{a.feature} {a.detector} at event {i}: {a.message}"
                    )
            score.add(kind, family, hit, onset)
            # stationary part: every feature before the onset, the others after it
            score.stationary_events += n_pre
            score.stationary_values += n_pre * nfeat + n_post * (nfeat - 1)
            if river_scores is not None:
                numeric = {k: (v.astype(float)) for k, v in cols.items()}
                res = run_river(numeric)
                for label, per_feature in res.items():
                    rs = river_scores[label]
                    rhit = None
                    for name, idx in per_feature.items():
                        for i in idx:
                            if name == target and i >= onset and rhit is None:
                                rhit = i
                            elif not (name == target and i >= onset):
                                rs.false_alarms += 1
                    rs.add(kind, family, rhit, onset)
                    rs.stationary_events += n_pre
                    rs.stationary_values += n_pre * nfeat + n_post * (nfeat - 1)


def _seed(kind: str, family: str, s: int) -> int:
    return (KINDS.index(kind) * 1000 + (*FAMILIES, "categorical").index(family)) * 100 + s


def stationary_columns(seed: int, n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cols = {}
    for j in range(18):
        fam = FAMILIES[j % len(FAMILIES)]
        cols[f"{fam}{j}" if fam != "counts" else f"counts{j}"] = family_draw(rng, fam, n)
    cols["cat_a"] = cat_draw(rng, n, CAT_P)
    cols["cat_b"] = cat_draw(rng, n, np.array([0.5, 0.3, 0.1, 0.05, 0.03, 0.01, 0.007, 0.003]))
    return cols


def score_stationary(score: Score, river_scores, args, cfg) -> None:
    for m in range(args.stationary_models):
        cols = stationary_columns(10_000 + m, args.stationary)
        events = build_events(f"stationary-{m}", cols, T0)
        alerts = run_driftline(events, cfg, ADWIN_STATS)
        score.false_alarms += len(alerts)
        score.false_alarm_examples += [
            f"{a.model}/{a.feature} {a.detector} at event {index_of(a)}: {a.message}"
            for a in alerts
        ]
        score.stationary_events += args.stationary
        score.stationary_values += args.stationary * len(cols)
        if river_scores is not None and m < args.river_stationary_models:
            n = min(args.stationary, args.river_stationary)
            res = run_river({k: v[:n].astype(float) for k, v in cols.items()})
            for label, per_feature in res.items():
                rs = river_scores[label]
                rs.false_alarms += sum(len(v) for v in per_feature.values())
                rs.stationary_events += n
                rs.stationary_values += n * len(cols)


# --------------------------------------------------------------------------- TCPD
def true_positives(truth: set[int], pred: set[int], margin: int = 5) -> set[int]:
    """TCPD's matching: each true change point takes the closest unused prediction."""
    pred = set(pred)
    tp = set()
    for tau in sorted(truth):
        close = sorted((abs(tau - x), x) for x in pred if abs(tau - x) <= margin)
        if not close:
            continue
        tp.add(tau)
        pred.remove(close[0][1])
    return tp


def f_measure(annotations: dict[str, list[int]], predictions: list[int], margin: int = 5) -> float:
    """F1 of van den Burg & Williams (2020), as in TCPD's ``metrics.f_measure``."""
    tks = [set(v) | {0} for v in annotations.values()]
    x = set(predictions) | {0}
    union = set().union(*tks)
    p = len(true_positives(union, x, margin)) / len(x)
    r = sum(len(true_positives(tk, x, margin)) / len(tk) for tk in tks) / len(tks)
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def tcpd_series() -> list[tuple[str, np.ndarray, dict[str, list[int]], str]]:
    """(name, values (n, d), annotations, note) for the seven bundled series."""
    from river.drift import datasets as ds

    out = []
    specs = [
        ("airline_passengers", ds.AirlinePassengers, ["Total Passengers"], None),
        ("apple", ds.Apple, ["Close", "Volume"], "every 3rd row (TCPD's sampling)"),
        ("bitcoin", ds.Bitcoin, ["price"], "river's file as is (differs from TCPD)"),
        ("brent_spot", ds.BrentSpotPrice, ["DPB"], "from 2000, every 10th row (TCPD's sampling)"),
        ("occupancy", ds.Occupancy, ["V1", "V2", "V3", "V4"], None),
        ("run_log", ds.RunLog, ["Pace", "Distance"], None),
        ("uk_coal_employment", ds.UKCoalEmploy, ["Employment"], None),
    ]
    for name, cls, cols, note in specs:
        d = cls()
        with open(d.path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        if name == "apple":
            rows = rows[::3]
        if name == "brent_spot":
            rows = [r for r in rows if datetime.strptime(r["day"], "%m/%d/%Y").year >= 2000]
            rows = rows[::10]
        values = np.array([[float(r[c]) for c in cols] for r in rows])
        out.append((name, values, d.annotations, note or ""))
    return out


def tcpd_predictions(values: np.ndarray, cfg: DetectionConfig) -> list[int]:
    names = [f"v{j}" for j in range(values.shape[1])]
    events = [
        FeatureEvent(model="tcpd", timestamp=T0 + i, features=dict(zip(names, row, strict=True)))
        for i, row in enumerate(values.tolist())
    ]
    mon = Monitor(cfg)
    alerts = [a for a in mon.process(events) if a.status == "firing"]
    cps = []
    for a in alerts:
        cp = a.statistics.get("change_seq")
        cps.append(int(cp) if cp is not None else index_of(a))
    # several features reporting one change within the margin are one change point
    merged: list[int] = []
    for cp in sorted(set(cps)):
        if not merged or cp - merged[-1] > 5:
            merged.append(cp)
    return merged


def river_tcpd(values: np.ndarray, label: str) -> list[int]:
    from river.drift import ADWIN, PageHinkley

    cps = set()
    for j in range(values.shape[1]):
        det = ADWIN() if label == "ADWIN" else PageHinkley()
        for i, v in enumerate(values[:, j].tolist()):
            det.update(v)
            if det.drift_detected:
                cps.add(i)
    return sorted(cps)


# --------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run (seconds)")
    ap.add_argument("--seeds", type=int, default=None, help="repetitions per (kind, family)")
    ap.add_argument("--stationary", type=int, default=None, help="events per stationary model")
    ap.add_argument("--stationary-models", type=int, default=None)
    ap.add_argument("--no-river", action="store_true", help="skip the naive-river columns")
    ap.add_argument("--no-adwin", action="store_true", help="skip the opt-in ADWIN rows")
    ap.add_argument("--signals-only", action="store_true", help="only the issue-4 streams")
    ap.add_argument(
        "--estimation-only", action="store_true", help="only the estimated-performance cases"
    )
    ap.add_argument(
        "--public",
        action="store_true",
        help="only public data with documented drift (downloads the nannyml wheel once)",
    )
    args = ap.parse_args()
    quick = args.quick
    args.seeds = args.seeds or (2 if quick else 6)
    args.stationary = args.stationary or (100_000 if quick else 500_000)
    args.stationary_models = args.stationary_models or (1 if quick else 4)
    args.pre = 8_000
    args.post = 6_000
    args.river_stationary = 100_000 if quick else 250_000
    args.river_stationary_models = 1 if quick else 2
    cfg = DetectionConfig()
    print(f"machine: {describe()}")
    if args.signals_only:
        signals_part(args, None)
        return
    if args.estimation_only:
        estimation_part(args)
        return
    if args.public:
        public_part()
        return
    print(
        f"input: drift streams {len(KINDS)} kinds x {len(FAMILIES)} families (categorical: 1) x "
        f"{args.seeds} seeds, {args.pre} events before and {args.post} after the onset, "
        f"6 features each; stationary: {args.stationary_models} models x {args.stationary} "
        f"events x 20 features; driftline default config (warmup {cfg.warmup}, block "
        f"{cfg.block}, budget {cfg.false_alarms_per_million} per million events per model)"
    )
    t0 = time.perf_counter()
    ours = Score()
    river = None if args.no_river else {"ADWIN": Score(), "PageHinkley": Score()}
    score_drift(ours, river, args, cfg)
    score_stationary(ours, river, args, cfg)
    adwin_runs: dict[str, tuple[Score, dict]] = {}
    if not args.no_adwin:
        for label, variant in (
            ("driftline + ADWIN", with_adwin(cfg)),
            ("ADWIN alone (numeric)", with_adwin(cfg, only=True)),
        ):
            ADWIN_STATS.update(checks=0, cuts=0, delta=math.nan)
            sc = Score()
            score_drift(sc, None, args, variant)
            score_stationary(sc, None, args, variant)
            adwin_runs[label] = (sc, dict(ADWIN_STATS))
    elapsed = time.perf_counter() - t0

    def row(label: str, s: Score) -> str:
        d1, d05 = s.median_delay("mean_1sd"), s.median_delay("mean_0.5sd")
        return (
            f"{label:<22} {s.recall():>6.3f} {s.fa_per_million_events():>10.2f} "
            f"{s.fa_per_million_values():>10.3f} {d1:>8.0f} {d05:>8.0f} "
            f"{s.median_delay('gradual'):>8.0f} {s.median_delay('variance'):>8.0f} "
            f"{s.median_delay('shape'):>8.0f} {s.median_delay('categorical'):>8.0f}"
        )

    print()
    print("Synthetic streams (recall over all drift streams; false alarms per million")
    print("stationary events / feature values; median delay in events per drift kind)")
    print(
        f"{'detector':<22} {'recall':>6} {'FA/M ev':>10} {'FA/M val':>10} {'d 1sd':>8} "
        f"{'d 0.5sd':>8} {'d grad':>8} {'d var':>8} {'d shape':>8} {'d cat':>8}"
    )
    print(row("driftline", ours))
    for label, (sc, _) in adwin_runs.items():
        print(row(label, sc))
    if river:
        for label, s in river.items():
            print(row(f"naive river {label}", s))
    for label, (sc, st) in adwin_runs.items():
        per_check = st["cuts"] / max(st["checks"], 1)
        print(
            f"  {label}: ADWIN (opt-in; one input per {cfg.adwin_sub} values) made "
            f"{st['cuts']} raw cuts in {st['checks']} checks on the stationary streams "
            f"({per_check:.2g} per check; its delta per check {st['delta']:.2g}); "
            f"{sc.false_alarms} false alerts after confirmation, all detectors"
        )
    if adwin_runs:
        print(f"  {adwin_calibration()}")
    print()
    print("Recall per drift kind and family (driftline):")
    for kind in KINDS:
        fams = FAMILIES if kind != "categorical" else ("categorical",)
        parts = []
        for fam in fams:
            v = ours.detected.get((kind, fam), [])
            parts.append(f"{fam} {sum(v)}/{len(v)}")
        print(f"  {kind:<12} recall {ours.kind_recall(kind):.3f}: " + ", ".join(parts))
    print(
        f"  false alarms: {ours.false_alarms} in {ours.stationary_events} stationary events "
        f"({ours.stationary_values} feature values)"
    )
    for line in ours.false_alarm_examples[:10]:
        print(f"    false alarm: {line}")
    if river:
        print(
            "Recall per drift kind (naive river ADWIN / PageHinkley): "
            + ", ".join(
                f"{k} {river['ADWIN'].kind_recall(k):.2f}/{river['PageHinkley'].kind_recall(k):.2f}"
                for k in KINDS
            )
        )
        print(
            "  (naive river's false alarms measured on "
            f"{river['ADWIN'].stationary_events} stationary events)"
        )
    print(f"(synthetic part: {elapsed:.0f} s)")

    signals_part(args, ours)
    issue12_part(args)
    estimation_part(args)
    tcpd()


# --------------------------------------------------------------------------- issue-4 signals
def signals_part(args, ours: Score | None) -> None:
    """Schema, data quality, outputs, labels, latency and segments (``_signals``), and the
    targets over the feature-drift streams above and these together."""
    import _signals as sig

    seeds = 2 if args.quick else 5
    n_stat, models = (100_000, 1) if args.quick else (500_000, 2)
    cfg = DetectionConfig()
    print()
    print(
        f"input (issue-4 streams): {len(sig.SIGNALS)} signals x {seeds} seeds, 16000 events "
        "before and 6000 after the onset, 7 features + score + latency + 4 segments, a third "
        f"of predictions labelled 200-800 events late; stationary: {models} x {n_stat} events "
        "of the same generator"
    )
    t0 = time.perf_counter()
    sc = sig.SignalScore()
    sig.score_signals(sc, seeds, 16_000, 6_000, cfg)
    sig.score_stationary(sc, models, n_stat, cfg)
    sig.report(sc)
    print(f"(issue-4 part: {time.perf_counter() - t0:.0f} s)")
    if ours is None:
        return
    hits = [x for v in ours.detected.values() for x in v]
    hits += [x for v in sc.detected.values() for x in v]
    fa = ours.false_alarms + sc.false_alarms
    events = ours.stationary_events + sc.stationary_events
    kinds_ok = all(any(v) for v in ours.detected.values()) and all(
        any(v) for v in sc.detected.values()
    )
    print(
        f"All streams together (issue 3 + issue 4): recall {sum(hits) / len(hits):.3f} over "
        f"{len(hits)} drifts, every kind and signal detected: {'yes' if kinds_ok else 'NO'}, "
        f"{fa} false alarms in {events} stationary events "
        f"({fa / max(events, 1) * 1e6:.2f} per million)"
    )


# --------------------------------------------------------------------------- issue-12 cases
def issue12_part(args) -> None:
    """Tied and discrete stationary features (live and baseline references) and the outcome
    monitoring cases (``_tied``, ``_performance``)."""
    import _performance
    import _tied

    models, n = (1, 100_000) if args.quick else (2, 250_000)
    t0 = time.perf_counter()
    fa, events, examples = _tied.run(models, n, DetectionConfig())
    print()
    print(
        f"Tied and discrete features (issue 12): {models} models x {n} stationary events x 20 "
        "features (rounded scores, counts, zero-inflated amounts, few-valued codes, "
        "percentages, prices in cents, a 0/1 flag) and a rounded score, each run with the "
        f"warm-up reference and with a baseline profile: {fa} false alarms in {events} events "
        f"({fa / max(events, 1) * 1e6:.2f} per million)"
    )
    for line in examples[:5]:
        print(f"    false alarm: {line}")
    _performance.report(2 if args.quick else 6, args.quick)
    print(f"(issue-12 part: {time.perf_counter() - t0:.0f} s)")


def estimation_part(args) -> None:
    """Estimated performance with no labels (issue 17, ``_estimation``)."""
    import _estimation

    t0 = time.perf_counter()
    _estimation.report(2 if args.quick else 6, args.quick)
    print(f"(estimation part: {time.perf_counter() - t0:.0f} s)")


def public_part() -> None:
    """NannyML's public data sets with documented drift (``_public``; needs PyPI once)."""
    import _public

    t0 = time.perf_counter()
    _public.report(DetectionConfig())
    print(f"(public part: {time.perf_counter() - t0:.0f} s)")


def tcpd() -> None:
    """TCPD F1 per series: driftline's ``--preset changepoint`` on the series as one
    univariate feature (its first column) and on all its columns, naive river on the same
    univariate series, and the zero baseline."""
    print()
    print(
        "TCPD F1 (margin 5; driftline --preset changepoint: Bayesian online change-point "
        f"detection, hazard {TCPD_CONFIG.bocpd_hazard:g}, standardised by the first "
        f"{TCPD_CONFIG.warmup} values, block {TCPD_CONFIG.block}, each change reported; "
        "'uni': the first column as one feature, 'all': every column as a feature of one model; "
        "naive river on the univariate series)"
    )
    print(
        f"{'series':<20} {'n':>5} {'d':>2} {'zero':>6} {'uni':>6} {'all':>6} {'ADWIN':>6} "
        f"{'PH':>6}  note"
    )
    data = tcpd_series()
    cols: dict[str, list[float]] = {k: [] for k in ("zero", "uni", "all", "ad", "ph")}
    for name, values, ann, note in data:
        uni = values[:, :1]
        row = {
            "zero": f_measure(ann, []),
            "uni": f_measure(ann, tcpd_predictions(uni, TCPD_CONFIG)),
            "all": f_measure(ann, tcpd_predictions(values, TCPD_CONFIG)),
            "ad": f_measure(ann, river_tcpd(uni, "ADWIN")),
            "ph": f_measure(ann, river_tcpd(uni, "PageHinkley")),
        }
        for k, v in row.items():
            cols[k].append(v)
        print(
            f"{name:<20} {len(values):>5} {values.shape[1]:>2} {row['zero']:>6.3f} "
            f"{row['uni']:>6.3f} {row['all']:>6.3f} {row['ad']:>6.3f} {row['ph']:>6.3f}  {note}"
        )
    m = {k: float(np.mean(v)) for k, v in cols.items()}
    print(
        f"{'mean':<20} {'':>5} {'':>2} {m['zero']:>6.3f} {m['uni']:>6.3f} {m['all']:>6.3f} "
        f"{m['ad']:>6.3f} {m['ph']:>6.3f}  (published zero baseline: 0.48)"
    )
    # how much the univariate mean depends on the two numbers of the preset
    parts = []
    for hazard in (0.005, 0.01, 0.02):
        for warmup in (15, 25, 40):
            cfg = TCPD_CONFIG.with_options(warmup=warmup, bocpd_hazard=hazard)
            f = np.mean([f_measure(ann, tcpd_predictions(v[:, :1], cfg)) for _, v, ann, _ in data])
            parts.append(f"h{hazard:g} w{warmup} {f:.3f}")
    print("sensitivity of the univariate mean (hazard, warm-up): " + ", ".join(parts))
    cusum = TCPD_CONFIG.with_options(bocpd_hazard=0.0, detectors=None)
    f = np.mean([f_measure(ann, tcpd_predictions(v[:, :1], cusum)) for _, v, ann, _ in data])
    print(f"the same preset with the reference CUSUMs instead of BOCPD: univariate mean {f:.3f}")


if __name__ == "__main__":
    main()
