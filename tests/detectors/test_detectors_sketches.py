from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.detectors._config import DetectionConfig
from driftline.detectors._heavy_hitters import HeavyHitters
from driftline.detectors._numeric import NumericFeature, update_numeric

keys = st.sampled_from([f"k{i}" for i in range(12)])
streams = st.lists(keys, max_size=300)


def _feed(hh, items, chunk=7):
    for i in range(0, len(items), chunk):
        hh.update(Counter(items[i : i + chunk]))


def _check_bounds(hh, items):
    true = Counter(items)
    n = len(items)
    assert hh.n == n
    assert len(hh.counts) <= hh.capacity
    for k, c in hh.counts.items():
        assert true[k] <= c <= true[k] + n / hh.capacity + 1e-9
        assert c - hh.errors[k] <= true[k]
    for k, c in true.items():
        if c > n / hh.capacity:
            assert k in hh.counts


@given(streams, st.integers(2, 8))
def test_space_saving_guarantees(items, capacity):
    hh = HeavyHitters(capacity)
    _feed(hh, items)
    _check_bounds(hh, items)


@given(streams, streams, st.integers(2, 8))
def test_space_saving_merge_keeps_the_guarantees(a, b, capacity):
    ha, hb = HeavyHitters(capacity), HeavyHitters(capacity)
    _feed(ha, a)
    _feed(hb, b)
    _check_bounds(ha.merge(hb), a + b)


def _numeric_from(values, blocks):
    f = NumericFeature("x")
    s = DetectionConfig(warmup=10**9).for_model("m")  # summaries only
    for part in np.array_split(np.asarray(values, dtype=float), blocks):
        if len(part):
            update_numeric([f], part[None, :], np.arange(len(part), dtype=float), 0, s, 1e-6, [()])
    return f


finite = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(st.lists(finite, min_size=1, max_size=400), st.lists(finite, min_size=1, max_size=400))
def test_numeric_summaries_merge_like_one_stream(a, b):
    fa, fb = _numeric_from(a, 3), _numeric_from(b, 2)
    fa.merge_summary(fb)
    both = np.array(a + b)
    assert fa.n == len(both)
    assert fa.min == both.min() and fa.max == both.max()
    np.testing.assert_allclose(fa.mean, both.mean(), rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(fa.m2 / fa.n, both.var(), rtol=1e-6, atol=1e-3)
    # KLL: the merged sketch holds every value and its median has a small rank error
    assert fa.sketch.n == len(both)
    med = fa.sketch.get_quantile(0.5)
    rank = np.mean(both <= med)
    assert abs(rank - 0.5) <= 0.05 or len(both) < 50


def test_kll_round_trips_through_state():
    f = _numeric_from(np.random.default_rng(0).lognormal(size=5000), 5)
    g = NumericFeature.from_state(f.to_state())
    assert g.sketch.serialize() == f.sketch.serialize()
    assert g.sketch.get_quantile(0.9) == f.sketch.get_quantile(0.9)


@given(st.lists(st.integers(0, 60).map(str), max_size=400), st.integers(2, 10))
def test_space_saving_bulk_updates_keep_the_guarantees(items, capacity):
    hh = HeavyHitters(capacity)
    _feed(hh, items, chunk=50)  # many distinct keys per update: the merge path
    _check_bounds(hh, items)
