"""The bundled sample is what its generator makes, and has the promised shape."""

from __future__ import annotations

from collections import Counter

from driftline.replay import sample_path
from driftline.replay._sample import generate_lines
from driftline.schemas import LabelEvent, PredictionEvent, decode_event


def test_bundled_sample_matches_its_generator(sample_lines):
    # Compared uncompressed: gzip bytes may differ between zlib builds, the log may not.
    assert list(generate_lines()) == sample_lines


def test_sample_shape(sample_lines):
    assert sample_path().stat().st_size < 1_000_000
    events = [decode_event(line) for line in sample_lines]
    predictions = [e for e in events if isinstance(e, PredictionEvent)]
    labels = [e for e in events if isinstance(e, LabelEvent)]
    assert len(predictions) + len(labels) == len(events)
    assert 0.28 < len(labels) / len(predictions) < 0.38  # about a third labelled
    features = {e.model: len(e.features) for e in predictions}
    assert features == {"fraud": 16, "eta": 15}
    assert Counter(e.model for e in predictions) == {"fraud": 12_000, "eta": 6_000}
    # Delayed labels: each arrives after its prediction, hundreds of events later.
    position = {e.prediction_id: i for i, e in enumerate(events) if isinstance(e, PredictionEvent)}
    lags = sorted(
        i - position[e.prediction_id] for i, e in enumerate(events) if isinstance(e, LabelEvent)
    )
    assert lags[0] > 0 and lags[len(lags) // 2] > 200
    # Event-time order (labels are emitted at their own arrival time).
    times = [e.timestamp for e in events]
    assert times == sorted(times)
