"""Corrupt detector state is refused loudly: 10,000 random bit flips and truncations of a
real model state, none accepted; states written before the checksum still load."""

import random
import struct
import zlib

import numpy as np
import pytest

from driftline.detectors import DetectionConfig, Monitor
from driftline.detectors._state import decode_state, encode_state
from driftline.detectors.exceptions import StateError
from driftline.schemas import LabelEvent, PredictionEvent

T0 = 1_700_000_000.0
CFG = DetectionConfig(warmup=200, block=64, outcome_block=32)


def _model_state() -> bytes:
    rng = np.random.default_rng(4)
    events = []
    for i in range(700):
        features = {"x": float(rng.normal()), "c": str(rng.choice(["a", "b"])), "k": i % 5}
        events.append(
            PredictionEvent(model="m", timestamp=T0 + i, features=features,
                            prediction=float(rng.random()), prediction_id=f"p{i}",
                            segment={"region": "eu" if i % 2 else "us"})
        )  # fmt: skip
        if i % 3 == 0 and i > 50:
            events.append(
                LabelEvent(model="m", timestamp=T0 + i, prediction_id=f"p{i - 40}", label=1)
            )
    mon = Monitor(CFG)
    mon.process(events)
    mon.process([LabelEvent(model="m", timestamp=T0 + 800, prediction_id="later", label=0)])
    return mon.dump_model("m")


def test_ten_thousand_bit_flips_and_truncations_are_all_refused():
    blob = _model_state()
    Monitor(CFG).load_model("m", blob)  # the intact state loads
    rnd = random.Random(18)
    accepted = []
    for trial in range(10_000):
        data = bytearray(blob)
        if trial % 5 == 4:  # a truncation
            data = data[: rnd.randrange(len(data))]
        else:  # one to four flipped bits anywhere
            for _ in range(1 + trial % 4):
                pos = rnd.randrange(len(data) * 8)
                data[pos // 8] ^= 1 << (pos % 8)
        try:
            Monitor(CFG).load_model("m", bytes(data))
        except StateError:
            continue
        accepted.append(trial)
    assert accepted == [], f"{len(accepted)} corrupt states loaded silently"


def test_a_state_without_checksum_still_loads_and_version_1_is_read():
    blob = _model_state()
    body = blob[:-4]
    old = b"DLST" + struct.pack("<H", 1) + body[6:]  # format version 1: no trailer
    mon = Monitor(CFG)
    mon.load_model("m", old)
    assert mon.dump_model("m") == blob  # the same state, now written with its checksum
    with pytest.raises(StateError, match="checksum"):
        decode_state(blob[:-1] + bytes([blob[-1] ^ 1]))


@pytest.mark.parametrize("shape", [[10**12], [2**31, 2**31], [-1]])
def test_an_array_whose_header_claims_more_than_its_bytes_is_refused(shape):
    blob = encode_state({"x": np.zeros(4)})
    head_len = struct.unpack_from("<I", blob, 6)[0]
    header = blob[10 : 10 + head_len].replace(b"[4]", str(shape).replace(" ", "").encode())
    body = blob[:6] + struct.pack("<I", len(header)) + header + blob[10 + head_len : -4]
    forged = body + struct.pack("<I", zlib.crc32(body))  # a forger recomputes the checksum
    with pytest.raises(StateError):
        decode_state(forged)
