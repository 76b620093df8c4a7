"""The opt-in ADWIN detector: detection, silence, exact state round trips, corrupt state."""

import contextlib
import itertools

import numpy as np
import pytest
from _streams import T0, numeric_events
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.detectors import DetectionConfig, FeatureConfig, Monitor, StateError
from driftline.detectors._adwin import AdwinDetector, adwin_inputs
from driftline.detectors._state import decode_state, encode_state
from driftline.schemas import FeatureEvent, parse_timestamp

ONSET = 3000
ADWIN_ONLY = DetectionConfig(
    warmup=1000, block=256, features={"x": FeatureConfig(detectors=("adwin",))}
)
WITH_ADWIN = DetectionConfig(
    warmup=1000,
    block=256,
    window_blocks=2,
    features={"x": FeatureConfig(detectors=("mean", "scale", "shape", "adwin"))},
)


def _gradual(seed=3, n=9000, missing_every=0):
    """Normal values whose mean ramps by one sd over 2,000 events from ``ONSET``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, n) + np.clip((np.arange(n) - ONSET) / 2000.0, 0.0, 1.0)
    events = numeric_events(x)
    if missing_every:
        for e in events[::missing_every]:
            e.features["x"] = None
    return events


def _index(alert):
    return round(parse_timestamp(alert.event_time) - T0)


def _feature(mon, name="x"):
    return mon._models["m"][None].features[name]


def test_adwin_detects_a_gradual_drift():
    mon = Monitor(ADWIN_ONLY)
    firing = [a for a in mon.process(_gradual()) if a.status == "firing"]
    assert len(firing) >= 1
    first = firing[0]
    assert first.detector == "adwin" and first.feature == "x"
    assert ONSET < _index(first) < ONSET + 2500
    stats = first.statistics
    assert stats["statistic"] == "adwin_mean" and stats["p_value"] < ADWIN_ONLY.confirm_alpha
    assert stats["change_seq"] >= ONSET - ADWIN_ONLY.block and stats["after"] > stats["before"]
    assert 0 < stats["adwin_delta"] < 1e-3 and "ADWIN" in first.message


def test_adwin_is_opt_in():
    mon = Monitor(DetectionConfig(warmup=1000, block=256))
    mon.process(_gradual(n=4000))
    assert _feature(mon).adwin is None
    mon = Monitor(ADWIN_ONLY)
    mon.process(_gradual(n=4000))
    done = 4000 // 256 * 256  # events in completed blocks
    assert _feature(mon).adwin.inputs == (done - 1024) // 32


def test_adwin_stays_quiet_on_a_long_stationary_stream():
    rng = np.random.default_rng(8)
    n = 150_000
    cols = {"l": rng.lognormal(2.0, 1.0, n).tolist(), "k": rng.poisson(2.0, n).tolist()}
    ev = [
        FeatureEvent(model="m", timestamp=T0 + i, features={"l": a, "k": b})
        for i, (a, b) in enumerate(zip(cols["l"], cols["k"], strict=True))
    ]
    only = FeatureConfig(detectors=("adwin",))
    mon = Monitor(DetectionConfig(features={"l": only, "k": only}))
    assert mon.process(ev) == []
    for name in ("l", "k"):
        det = _feature(mon, name).adwin
        assert det.inputs > 4000  # it did run, once per 32 values after the warm-up
        assert det.cuts <= 1


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 300),
    cuts=st.lists(st.integers(0, 300), max_size=6),
    sub=st.sampled_from([1, 4, 32]),
    seed=st.integers(0, 1000),
)
def test_sub_block_means_do_not_depend_on_block_cuts(n, cuts, sub, seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(2, n))
    fin = np.ones((2, n), dtype=bool)
    fin[0] = rng.random(n) > 0.2  # row 0 has missing values, row 1 none
    z[~fin] = 0.0

    def run(bounds, with_mask):
        dets = [AdwinDetector(1e-6, sub), AdwinDetector(1e-6, sub)]
        got = [[], []]
        for lo, hi in itertools.pairwise(bounds):
            for r, (means, _) in enumerate(
                adwin_inputs(dets, z[:, lo:hi], fin[:, lo:hi] if with_mask else None)
            ):
                got[r] += means
        return got

    whole = run([0, n], True)
    bounds = sorted({0, n, *(c for c in cuts if c <= n)})
    for with_mask in (True, False):
        got = run(bounds, with_mask)
        assert np.allclose(got[1], whole[1])
        if with_mask:
            assert np.allclose(got[0], whole[0])
    assert [len(w) for w in whole] == [int(fin[0].sum()) // sub, n // sub]
    if whole[0]:
        assert whole[0][0] == pytest.approx(z[0][fin[0]][:sub].mean())


@pytest.mark.parametrize("dump_at", [1100, 3333, 3900, 4417, 6001])
@pytest.mark.parametrize("cfg", [ADWIN_ONLY, WITH_ADWIN], ids=["adwin", "all"])
def test_dump_load_mid_stream_gives_identical_alerts(cfg, dump_at):
    events = _gradual(missing_every=7)  # missing values: sub-blocks straddle blocks
    expect = [a.to_dict() for a in Monitor(cfg).process(events)]
    assert expect and expect[0]["detector"] == ("adwin" if cfg is ADWIN_ONLY else "mean")
    mon = Monitor(cfg)
    out = mon.process(events[:dump_at])
    blob = mon.dump_model("m")
    again = Monitor(cfg)
    again.load_model("m", blob)
    assert again.dump_model("m") == blob
    out += again.process(events[dump_at:])
    assert [a.to_dict() for a in out] == expect


def _adwin_state():
    mon = Monitor(ADWIN_ONLY)
    mon.process(_gradual(n=2600))
    state = decode_state(mon.dump_model("m"))
    (feat,) = state["streams"][0]["features"]
    assert feat["adwin"] is not None
    return state, feat["adwin"]


def _reload(state):
    Monitor(ADWIN_ONLY).load_model("m", encode_state(state))


def test_corrupt_adwin_bytes_raise_state_error():
    state, ad = _adwin_state()
    raw = bytearray(ad["bytes"])
    raw[len(raw) // 2] ^= 0xFF
    ad["bytes"] = bytes(raw)
    with pytest.raises(StateError, match="digest"):
        _reload(state)


def test_adwin_bytes_river_cannot_read_raise_state_error():
    from driftline.detectors._adwin import _digest

    state, ad = _adwin_state()
    ad["bytes"] = ad["bytes"][:12]  # a valid digest over truncated bytes: river panics
    ad["digest"] = _digest(ad["bytes"])
    with pytest.raises(StateError, match="ADWIN"):
        _reload(state)


def test_adwin_bytes_of_other_parameters_raise_state_error():
    from driftline.detectors._adwin import _digest

    state, ad = _adwin_state()
    other = AdwinDetector(0.25, 32)
    other.feed([0.1] * 40)
    ad["bytes"] = other.to_state()["bytes"]
    ad["digest"] = _digest(ad["bytes"])
    with pytest.raises(StateError, match="inconsistent"):
        _reload(state)


@pytest.mark.parametrize("field", ["format", "params", "acc", "digest"])
def test_malformed_adwin_fields_raise_state_error(field):
    state, ad = _adwin_state()
    ad[field] = "?"
    with pytest.raises(StateError):
        _reload(state)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_random_byte_damage_of_adwin_state_never_escapes_as_another_error(data):
    mon = Monitor(ADWIN_ONLY)
    mon.process(_gradual(n=2600))
    blob = bytearray(mon.dump_model("m"))
    pos = data.draw(st.integers(0, len(blob) - 1))
    blob[pos] = data.draw(st.integers(0, 255))
    with contextlib.suppress(StateError):
        Monitor(ADWIN_ONLY).load_model("m", bytes(blob))


def test_adwin_bytes_of_another_river_version_restart_the_window():
    state, ad = _adwin_state()
    ad["river"] = "0.0.1"
    mon = Monitor(ADWIN_ONLY)
    mon.load_model("m", encode_state(state))
    det = _feature(mon).adwin
    assert det.det.width == 0 and det.inputs == ad["acc"][2]
