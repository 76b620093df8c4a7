"""The label join against its rules spelled out one prediction at a time."""

import math

import numpy as np
from driftline.detectors._outcomes import EXPIRED, LabelJoin
from driftline.detectors._state import decode_state, encode_state
from hypothesis import given, settings
from hypothesis import strategies as st

# small id alphabets make repeated ids, and small caps make eviction, common
_PIDS = [f"p{i}" for i in range(30)]
_ids = st.one_of(st.none(), st.sampled_from(_PIDS))
_outputs = st.one_of(
    st.floats(allow_nan=False), st.integers(0, 3), st.booleans(), st.just("cat"), st.none()
)
_segments = st.one_of(st.none(), st.just({"region": "eu"}), st.just({"region": "us"}))
_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.lists(st.tuples(_ids, _outputs, _segments, st.floats(0, 1)), max_size=20),
        ),
        st.tuples(st.just("take"), st.sampled_from(_PIDS)),
        st.tuples(st.just("expire"), st.floats(0, 30)),
        st.tuples(st.just("restore"), st.none()),
    ),
    max_size=40,
)


class _Reference:
    """The documented rules, one prediction at a time, one dict of tuples per generation."""

    def __init__(self, ttl: float, cap: int) -> None:
        self.ttl, self.cap = ttl, cap
        self.span = max(1, cap // LabelJoin.GENERATIONS)
        self.gens: list[list] = []  # [first index, latest time, {pid: (time, output, segment)}]
        self.counts = {"remembered": 0, "joined": 0, "expired": 0, "evicted": 0}

    def add(self, pid, time, output, segment):
        r = self.counts["remembered"]
        if not self.gens or r % self.span == 0:
            self.gens.append([r, -math.inf, {}])
        gen = self.gens[-1]
        gen[2][pid] = (time, output, segment)
        gen[1] = max(gen[1], time)
        self.counts["remembered"] = r + 1
        while self.gens[0][0] < r + 1 - self.cap:
            self.counts["evicted"] += len(self.gens.pop(0)[2])

    def expire(self, now):
        while self.gens and self.gens[0][1] < now - self.ttl:
            self.counts["expired"] += len(self.gens.pop(0)[2])

    def take(self, pid, time):
        for gen in reversed(self.gens):
            if pid in gen[2]:
                entry = gen[2].pop(pid)
                if time - entry[0] > self.ttl:
                    self.counts["expired"] += 1
                    return EXPIRED
                self.counts["joined"] += 1
                return entry
        return None

    def view(self):
        return [(g[0], g[1], list(g[2].items())) for g in self.gens], dict(self.counts)


def _view(j: LabelJoin):
    gens = []
    for g in j.gens:
        pids, times, outputs, segments = g.waiting()
        entries = list(zip(pids, zip(times, outputs, segments, strict=True), strict=True))
        gens.append((g.start, g.latest, entries))
    return gens, dict(j.counts)


def _restored(j: LabelJoin) -> LabelJoin:
    return LabelJoin.from_state(decode_state(encode_state(j.to_state())), j.ttl, j.cap)


def _same(a, b) -> bool:
    """Equal, with the output's type (1, 1.0 and True are different outputs)."""
    if a is None or a is EXPIRED or b is None or b is EXPIRED:
        return a is b
    return a == b and [type(v) for v in a] == [type(v) for v in b]


@settings(max_examples=400, deadline=None)
@given(ops=_ops, cap=st.integers(1, 40))
def test_the_join_keeps_its_rules_whatever_the_batches(ops, cap):
    bulk, single, ref = LabelJoin(5.0, cap), LabelJoin(5.0, cap), _Reference(5.0, cap)
    clock = 0.0
    for op, arg in ops:
        if op == "add":
            pids, outputs, segments, late = (
                (list(c) for c in zip(*arg, strict=True)) if arg else [[]] * 4
            )
            times = [clock + 0.1 * i - d for i, d in enumerate(late)]  # a little disorder
            if arg:
                bulk.add_many(pids, times, outputs, segments)
            for pid, t, out, seg in zip(pids, times, outputs, segments, strict=True):
                if pid is not None:
                    single.add(pid, t, out, seg)
                    ref.add(pid, t, out, seg)
            clock += 0.1 * len(arg)
        elif op == "take":
            expected = ref.take(arg, clock)
            assert _same(bulk.take(arg, clock), expected)
            assert _same(single.take(arg, clock), expected)
        elif op == "expire":
            clock += arg
            for j in (bulk, single, ref):
                j.expire(clock)
        else:
            bulk = _restored(bulk)
        assert _view(bulk) == _view(single) == ref.view()
        assert len(bulk) == sum(len(g[2]) for g in ref.gens) <= cap


def test_the_last_cap_minus_span_predictions_wait_for_their_labels():
    cap = 1000
    j = LabelJoin(ttl=1e9, cap=cap)
    n = 5 * cap + 37
    for start in range(0, n, 300):  # batches that straddle the generations
        ids = range(start, min(n, start + 300))
        j.add_many(
            [f"id{i}" for i in ids], [float(i) for i in ids], [0.5] * len(ids), [None] * len(ids)
        )
        assert len(j) <= cap
    kept = [i for i in range(n) if j.take(f"id{i}", float(n)) is not None]
    assert kept == list(range(kept[0], n))
    assert cap - j.span <= len(kept) <= cap
    assert j.counts["evicted"] == n - len(kept)


def test_a_label_later_than_the_time_to_live_is_refused_even_while_its_generation_is_kept():
    j = LabelJoin(ttl=10.0, cap=100)
    j.add_many(["a", "b"], [0.0, 9.0], [0.1, 0.2], [None, None])
    j.expire(15.0)  # "b" (9.0) is not yet expired, so the generation stays
    assert len(j) == 2
    assert j.take("a", 15.0) is EXPIRED
    assert j.take("b", 15.0) == (9.0, 0.2, None)
    assert j.counts == {"remembered": 2, "joined": 1, "expired": 1, "evicted": 0}


def test_a_state_of_the_single_table_format_is_restored_as_one_generation():
    old = {  # what LabelJoin.to_state wrote before generations
        "pids": ["a", "b", "c"],
        "times": np.array([1.0, 2.0, 3.0]),
        "predictions": [0.9, 1, "cat"],
        "segments": [None, {"region": "eu"}, None],
        "order": ["a", "b", "c"],
        "order_times": np.array([1.0, 2.0, 3.0]),
        "counts": {"remembered": 7, "joined": 4, "expired": 0, "evicted": 0},
    }
    j = LabelJoin.from_state(decode_state(encode_state(old)), ttl=100.0, cap=8)
    assert len(j) == 3
    assert _same(j.take("b", 4.0), (2.0, 1, {"region": "eu"}))
    j.add_many(["d"] * 6, [5.0] * 6, [0.1] * 6, [None] * 6)  # the old generation leaves
    assert j.take("a", 6.0) is None
    assert j.counts["evicted"] == 2
