"""The label join against its rules spelled out one prediction at a time."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.detectors._outcomes import EXPIRED, LabelJoin
from driftline.detectors._state import decode_state, encode_state

# small id alphabets make repeated ids, and small caps make eviction, common
_PIDS = [f"p{i}" for i in range(30)]
_ids = st.one_of(st.none(), st.sampled_from(_PIDS))
_outputs = st.one_of(
    st.floats(allow_nan=False), st.integers(0, 3), st.booleans(), st.just("cat"), st.none()
)
_segments = st.one_of(
    st.none(),
    st.just({"region": "eu"}),
    st.just({"region": "us"}),
    st.just({"region": "eu", "device": "ios"}),
    st.just({"tags": ["a"]}),  # outside the contract (unhashable), still kept
)
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
    """The documented rules, one prediction at a time: a generation is a list of positions
    ``[id, (time, output, segment), taken]``, and a label takes the last position of its id
    in the newest generation that has one, unless that position was taken already."""

    def __init__(self, ttl: float, cap: int) -> None:
        self.ttl, self.cap = ttl, cap
        self.span = max(1, cap // LabelJoin.GENERATIONS)
        self.gens: list[list] = []  # [first index, latest time, positions]
        self.counts = {"remembered": 0, "joined": 0, "expired": 0, "evicted": 0}

    @staticmethod
    def _waiting(gen) -> int:
        return sum(1 for _, _, taken in gen[2] if not taken)

    def add(self, pid, time, output, segment):
        r = self.counts["remembered"]
        if not self.gens or r % self.span == 0:
            self.gens.append([r, -math.inf, []])
        gen = self.gens[-1]
        gen[2].append([pid, (time, output, segment), False])
        gen[1] = max(gen[1], time)
        self.counts["remembered"] = r + 1
        while self.gens[0][0] < r + 1 - self.cap:
            self.counts["evicted"] += self._waiting(self.gens.pop(0))

    def expire(self, now):
        while self.gens and self.gens[0][1] < now - self.ttl:
            self.counts["expired"] += self._waiting(self.gens.pop(0))

    def take(self, pid, time):
        for gen in reversed(self.gens):
            mine = [p for p in gen[2] if p[0] == pid]
            if mine and not mine[-1][2]:
                mine[-1][2] = True
                entry = mine[-1][1]
                if time - entry[0] > self.ttl:
                    self.counts["expired"] += 1
                    return EXPIRED
                self.counts["joined"] += 1
                return entry
        return None

    def view(self):
        waiting = [[(p[0], p[1], type(p[1][1])) for p in g[2] if not p[2]] for g in self.gens]
        return [(g[0], g[1]) for g in self.gens], waiting, dict(self.counts)

    def __len__(self):
        return sum(map(self._waiting, self.gens))


def _view(j: LabelJoin):
    waiting = []
    for g in j.gens:
        pids, times, outputs, segments = g.columns()
        taken = g.taken or bytes(len(pids))
        entries = zip(pids, zip(times, outputs, segments, strict=True), taken, strict=True)
        waiting.append([(pid, e, type(e[1])) for pid, e, t in entries if not t])
    return [(g.start, g.latest) for g in j.gens], waiting, dict(j.counts)


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
        assert len(bulk) == len(single) == len(ref) <= cap
    counts = bulk.counts  # every prediction remembered is counted once it leaves
    assert counts["remembered"] == counts["joined"] + counts["expired"] + counts["evicted"] + len(
        bulk
    )


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


def _single_table_state(n: int, counts: dict) -> dict:
    """What LabelJoin.to_state wrote before generations: the waiting entries, oldest first."""
    return {
        "pids": [f"i{i}" for i in range(n)],
        "times": np.arange(n, dtype=np.float64),
        "predictions": [0.9, 1, "cat", None, True, *[0.5] * max(0, n - 5)][:n],
        "segments": [None, {"region": "eu"}, *[None] * max(0, n - 2)][:n],
        "order": [f"i{i}" for i in range(n)],
        "order_times": np.arange(n, dtype=np.float64),
        "counts": counts,
    }


def test_a_single_table_state_is_restored_as_the_latest_generations():
    counts = {"remembered": 5000, "joined": 3000, "expired": 0, "evicted": 1000}
    old = _single_table_state(1000, counts)
    j = LabelJoin.from_state(decode_state(encode_state(old)), ttl=1e9, cap=1000)
    assert len(j) == 1000
    assert _same(j.take("i1", 2000.0), (1.0, 1, {"region": "eu"}))
    assert _same(j.take("i2", 2000.0), (2.0, "cat", None))
    j.add("new", 1000.0, 0.5, None)  # one more: only the oldest eighth leaves
    assert len(j) == 1000 - j.span + 1  # the two taken were in the eighth that left
    assert j.take("i999", 2000.0) == (999.0, 0.5, None)
    c = j.counts
    assert c["remembered"] == c["joined"] + c["expired"] + c["evicted"] + len(j)


def test_a_state_older_still_without_the_remembered_count_keeps_the_cap():
    old = _single_table_state(100, {"joined": 7, "expired": 2, "evicted": 1})
    j = LabelJoin.from_state(decode_state(encode_state(old)), ttl=1e9, cap=100)
    for i in range(150):
        j.add(f"n{i}", 100.0 + i, 0.5, None)
        assert len(j) <= 100
    assert j.counts["remembered"] == 100 + 10 + 150


def test_a_smaller_cap_on_restore_applies_at_once():
    j = LabelJoin(ttl=1e9, cap=1000)
    j.add_many(
        [f"i{i}" for i in range(1000)], [float(i) for i in range(1000)], [0.5] * 1000, [None] * 1000
    )
    r = LabelJoin.from_state(decode_state(encode_state(j.to_state())), ttl=1e9, cap=100)
    assert len(r) <= 100  # whole generations go: here all of them
    c = r.counts
    assert c["remembered"] == c["joined"] + c["expired"] + c["evicted"] + len(r)


def test_segments_equal_in_python_but_not_as_text_stay_apart():
    """``_route`` sends an outcome to the slice named ``str(value)``: 1 and True differ."""
    j = LabelJoin(ttl=1e9, cap=80)
    j.add_many(["a", "b", "c"], [1.0, 2.0, 3.0], [0.5] * 3, [{"k": 1}, {"k": True}, {"k": 1}])
    assert [type(j.take(p, 4.0)[2]["k"]) for p in "abc"] == [int, bool, int]


def test_odd_ids_and_times_outside_the_contract_do_not_break_the_join():
    j = LabelJoin(ttl=10.0, cap=80)
    j.add_many([7, "8"], [float("nan"), 1.0], [0.5, 0.6], [None, None])
    j.expire(10.5)  # the generation's latest time is 1.0: a nan does not hide it
    assert len(j) == 2
    t, out, seg = j.take(7, 3.0)  # the id was kept as its text
    assert math.isnan(t) and (out, seg) == (0.5, None)
    assert j.take("8", 3.0) == (1.0, 0.6, None)


def test_a_restored_join_tells_a_taken_copy_from_a_later_one():
    j = LabelJoin(ttl=100.0, cap=80)  # one generation of 10
    j.add_many(["x", "y"], [1.0, 2.0], [0.1, 0.2], [None, None])
    assert j.take("x", 3.0) == (1.0, 0.1, None)
    j.add_many(["x", "y"], [4.0, 5.0], [0.4, 0.5], [None, None])  # x again; y supersedes y
    r = _restored(j)
    assert _view(r) == _view(j)
    assert r.take("x", 6.0) == (4.0, 0.4, None)  # the later copy waits
    assert r.take("y", 6.0) == (5.0, 0.5, None)
    assert r.take("y", 6.0) is None  # its superseded copy is unreachable
    assert len(r) == 1  # ... yet waits, to be counted as evicted or expired


def test_waiting_predictions_are_flat_columns_not_objects():
    """The reason for the design (see ``_Generation``): the objects a join keeps alive grow
    with its generations, never with its predictions, and a waiting prediction costs a few
    dozen bytes."""
    import gc
    import tracemalloc

    n = 20_000
    pids = [f"fr-{i:06d}" for i in range(2 * n)]
    segments = [{"region": "eu" if i % 2 else "us"} for i in range(2 * n)]
    gc.collect()
    tracked = len(gc.get_objects())
    tracemalloc.start()
    try:
        j = LabelJoin(ttl=1e12, cap=n)
        for a in range(0, 2 * n, 512):
            b = a + 512
            j.add_many(pids[a:b], [float(i) for i in range(a, b)], [0.25] * 512, segments[a:b])
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    gc.collect()
    assert n - j.span <= len(j) <= n
    assert len(gc.get_objects()) - tracked < 20 * LabelJoin.GENERATIONS
    assert held / len(j) < 64
