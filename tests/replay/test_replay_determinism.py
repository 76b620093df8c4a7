"""Replay is deterministic and drives the detectors exactly as a worker would.

The alerts must not depend on the batch size, on repetition, or on the wall clock; and they
must equal what ``Monitor.process`` gives when fed the same events directly.
"""

from __future__ import annotations

import io

import pytest

from driftline.detectors import DetectionConfig, Monitor
from driftline.replay import replay_files
from driftline.replay._sample import DRIFT
from driftline.schemas import Alert, decode_event


def _replay(path, **kwargs) -> bytes:
    out = io.BytesIO()
    replay_files([str(path)], out, progress=False, **kwargs)
    return out.getvalue()


@pytest.fixture(scope="module")
def reference_alerts(sample_plain) -> bytes:
    return _replay(sample_plain)


def test_two_runs_are_byte_identical(sample_plain, reference_alerts):
    assert reference_alerts, "the sample's injected drift must raise alerts"
    assert _replay(sample_plain) == reference_alerts


@pytest.mark.parametrize("batch_size", [1, 7, 5000])
def test_alerts_do_not_depend_on_batch_size(sample_plain, reference_alerts, batch_size):
    assert _replay(sample_plain, batch_size=batch_size) == reference_alerts


def test_same_alerts_as_driving_the_monitor_directly(sample_lines, reference_alerts):
    monitor = Monitor(DetectionConfig())
    alerts = []
    for line in sample_lines:
        alerts.extend(monitor.process([decode_event(line)]))
    assert b"".join(a.to_json() + b"\n" for a in alerts) == reference_alerts


def test_alerts_are_contract_alerts_naming_the_injected_drift(reference_alerts):
    lines = reference_alerts.splitlines()
    alerts = [Alert.from_json(line) for line in lines]
    assert [a.to_json() for a in alerts] == lines, "one contract alert per line, canonical"
    named = {(a.model, a.feature) for a in alerts}
    for model, feature, _what in DRIFT:
        assert (model, feature) in named, f"injected drift in {model}.{feature} not found"
