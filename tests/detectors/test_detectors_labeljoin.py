"""The label join's bulk path against adding one prediction at a time."""

from driftline.detectors._outcomes import LabelJoin
from hypothesis import given, settings
from hypothesis import strategies as st

# small id alphabets make repeated ids, and a small cap makes eviction, common
_ids = st.one_of(st.none(), st.sampled_from([f"p{i}" for i in range(12)]))
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.lists(_ids, max_size=12)),
        st.tuples(st.just("take"), st.sampled_from([f"p{i}" for i in range(12)])),
        st.tuples(st.just("expire"), st.floats(0, 30)),
    ),
    max_size=40,
)


class _OneByOne(LabelJoin):
    """The join's rules spelled out one id at a time (the definition the fast paths keep)."""

    __slots__ = ()

    def add(self, pid, time, prediction, segment):
        self.table[pid] = (time, prediction, segment)
        self.order.append((time, pid))
        self.counts["remembered"] += 1
        while len(self.table) > self.cap:
            _, old = self.order.popleft()
            if self.table.pop(old, None) is not None:
                self.counts["evicted"] += 1
        while len(self.order) > 2 * self.cap:
            t, old = self.order.popleft()
            if old in self.table:
                self.order.appendleft((t, old))
                break


def _state(j: LabelJoin) -> tuple:
    return dict(j.table), list(j.order), dict(j.counts)


@settings(max_examples=500, deadline=None)
@given(ops=_ops, cap=st.integers(1, 8))
def test_bulk_adds_leave_the_state_of_single_adds(ops, cap):
    bulk, single = LabelJoin(ttl=5.0, cap=cap), _OneByOne(ttl=5.0, cap=cap)
    clock = 0.0
    for op, arg in ops:
        if op == "add":
            times = [clock + 0.1 * i for i in range(len(arg))]
            preds = [float(i) for i in range(len(arg))]
            segs = [None] * len(arg)
            bulk.add_many(list(arg), times, preds, segs)
            for pid, t, p, s in zip(arg, times, preds, segs, strict=True):
                if pid is not None:
                    single.add(pid, t, p, s)
            clock += 0.1 * len(arg)
        elif op == "take":
            assert bulk.take(arg, clock) == single.take(arg, clock)
        else:
            clock += arg
            bulk.expire(clock)
            single.expire(clock)
        assert _state(bulk) == _state(single)
    assert len(bulk.table) <= cap
