"""One incident per feature and alert kind (issue 12, case 4): a different signal on a feature
with an open incident reaches subscribers; symptoms of the open incident do not."""

from __future__ import annotations

import numpy as np

from driftline.detectors import DetectionConfig, Monitor
from driftline.detectors._policy import FeaturePolicy
from driftline.schemas import FeatureEvent

T0 = 1_700_000_000.0
CATS = ["a", "b", "c", "d", "e"]


def _cat_events(seed: int, n_pre: int, n_post: int, post_p: list[float], new: float) -> list:
    rng = np.random.default_rng(seed)
    pre = rng.choice(CATS, n_pre, p=[0.4, 0.25, 0.15, 0.12, 0.08])
    post = rng.choice(CATS, n_post, p=post_p).astype(object)
    post[rng.random(n_post) < new] = "brand-new"
    values = [*pre.tolist(), *post.tolist()]
    rng2 = np.random.default_rng(seed + 1)
    return [
        FeatureEvent(model="m", timestamp=T0 + i, features={"cat": v, "x": float(rng2.normal())})
        for i, v in enumerate(values)
    ]


def _firing(alerts) -> list[tuple[str, str, str]]:
    return [(a.kind, a.feature, a.detector) for a in alerts if a.status == "firing"]


def test_frequency_shift_reaches_subscribers_while_unseen_categories_are_open():
    # the case: the top category falls from 40% to 20% and a new one appears
    evs = _cat_events(1, 6000, 8000, [0.2, 0.3, 0.2, 0.18, 0.12], 0.01)
    got = _firing(Monitor(DetectionConfig()).process(evs))
    assert ("data_quality", "cat", "unseen_categories") in got
    assert ("data_drift", "cat", "frequency") in got
    assert len(got) == 2


def test_new_categories_alone_open_one_incident():
    evs = _cat_events(2, 6000, 8000, [0.4, 0.25, 0.15, 0.12, 0.08], 0.02)
    assert _firing(Monitor(DetectionConfig()).process(evs)) == [
        ("data_quality", "cat", "unseen_categories")
    ]


def test_a_mean_shift_is_one_incident_not_two():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0, 1, 5000), rng.normal(1.5, 1, 8000)])
    evs = [
        FeatureEvent(model="m", timestamp=T0 + i, features={"x": float(v)}) for i, v in enumerate(x)
    ]
    # out-of-range values come with the shift: a symptom, not a second incident
    assert _firing(Monitor(DetectionConfig()).process(evs)) == [("data_drift", "x", "mean")]


def test_policy_state_of_one_incident_per_feature_is_read():
    # states written before per-kind incidents held one incident's fields at the top level
    old = {
        "active": "abc",
        "adopting": False,
        "cooldown_until": 0,
        "detector": "mean",
        "fired_block": 3,
        "fired_seq": 700,
        "kind": "data_drift",
        "severity": "warning",
    }
    p = FeaturePolicy.from_state(old)
    assert p.active == "abc" and p.firing() == {"data_drift": "abc"}
    again = FeaturePolicy.from_state(p.to_state())
    assert again.firing() == {"data_drift": "abc"}
