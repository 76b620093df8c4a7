"""Pickle-free, versioned binary encoding of detector state.

Layout of a blob::

    b"DLST" | u16 format version | u32 length of the JSON header | JSON header
            | u32 length of the blob sizes | JSON blob sizes | blobs | u32 CRC-32 (version 2)

Version 2 ends with the CRC-32 of everything before it, checked before anything is parsed: a
bit flip or a truncation anywhere is a :class:`StateError`, never a silently different
state (CRC-32 catches every single-bit flip and every burst of up to 32 bits). Version 1
(no checksum) still decodes, so checkpoints written before it load.

The JSON header (orjson) holds the plain values; numpy arrays and opaque byte strings (KLL
sketches) are stored after it as raw bytes and referenced from the header as
``{"$a": [index, dtype, shape]}`` or ``{"$b": index}``. Python floats that JSON cannot
represent (nan, inf) are written as ``{"$f": "nan"}``. Decoding never executes anything from
the blob: the worst a corrupt or hostile blob can do is raise :class:`StateError`.
"""

from __future__ import annotations

import math
import struct
import zlib
from typing import Any

import numpy as np
import orjson

from .exceptions import StateError

__all__ = ["FORMAT_VERSION", "decode_state", "encode_state"]

MAGIC = b"DLST"
FORMAT_VERSION = 2
_CRC = struct.Struct("<I")
_HEADER = struct.Struct("<4sHI")
_DTYPES = frozenset({"<f8", "<f4", "<i8", "<i4", "|i1", "|u1", "|b1", "<u8"})


def _pack(obj: Any, blobs: list[bytes]) -> Any:
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        dtype = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        arr = arr.astype(dtype, copy=False)
        if dtype.str not in _DTYPES:
            raise TypeError(f"cannot encode arrays of dtype {dtype.str}")
        blobs.append(arr.tobytes())
        return {"$a": [len(blobs) - 1, dtype.str, list(arr.shape)]}
    if isinstance(obj, (bytes, bytearray, memoryview)):
        blobs.append(bytes(obj))
        return {"$b": len(blobs) - 1}
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"$f": repr(obj)}
    if isinstance(obj, dict):
        return {str(k): _pack(v, blobs) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_pack(v, blobs) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return _pack(obj.item(), blobs)
    return obj


def encode_state(obj: Any) -> bytes:
    """Encode a tree of dicts, lists, scalars, numpy arrays and bytes.

    Examples
    --------
    >>> import numpy as np
    >>> blob = encode_state({"n": 3, "x": np.arange(3.0), "s": b"raw", "z": float("nan")})
    >>> back = decode_state(blob)
    >>> back["x"].tolist(), back["s"], back["n"], math.isnan(back["z"])
    ([0.0, 1.0, 2.0], b'raw', 3, True)
    """
    blobs: list[bytes] = []
    header = orjson.dumps(_pack(obj, blobs))
    sizes = orjson.dumps([len(b) for b in blobs])
    head = _HEADER.pack(MAGIC, FORMAT_VERSION, len(header)) + header
    body = head + struct.pack("<I", len(sizes)) + sizes + b"".join(blobs)
    return body + _CRC.pack(zlib.crc32(body))


def _unpack(obj: Any, blobs: list[bytes]) -> Any:
    if isinstance(obj, dict):
        if len(obj) == 1:
            if "$a" in obj:
                index, dtype, shape = obj["$a"]
                if dtype not in _DTYPES:
                    raise StateError(f"state: array of unsupported dtype {dtype!r}")
                arr = np.frombuffer(blobs[index], dtype=np.dtype(dtype))
                if not all(type(n) is int and n >= 0 for n in shape) or math.prod(shape) != len(
                    arr
                ):  # checked before reshape: the header bounds nothing it does not hold
                    raise StateError(f"state: array shape {shape!r} does not fit its bytes")
                return arr.reshape(shape).copy()
            if "$b" in obj:
                return blobs[obj["$b"]]
            if "$f" in obj:
                if obj["$f"] not in ("nan", "inf", "-inf"):
                    raise StateError("state: bad float marker")
                return float(obj["$f"])
        return {k: _unpack(v, blobs) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unpack(v, blobs) for v in obj]
    return obj


def decode_state(data: bytes) -> Any:
    """Decode a blob written by :func:`encode_state`; raise :class:`StateError` if it is bad."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise StateError(f"state: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    try:
        magic, version, hlen = _HEADER.unpack_from(data, 0)
    except struct.error as exc:
        raise StateError("state: truncated header") from exc
    if magic != MAGIC:
        raise StateError("state: not a driftline detector state (bad magic)")
    if version == 2:
        if len(data) < _HEADER.size + _CRC.size:
            raise StateError("state: truncated")
        (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
        data = data[: -_CRC.size]
        if zlib.crc32(data) != crc:
            raise StateError("state: checksum mismatch (corrupt or truncated)")
    elif version != 1:
        raise StateError(f"state: unsupported format version {version} (this build reads 1, 2)")
    try:
        pos = _HEADER.size
        header = orjson.loads(data[pos : pos + hlen])
        pos += hlen
        (slen,) = struct.unpack_from("<I", data, pos)
        pos += 4
        sizes = orjson.loads(data[pos : pos + slen])
        pos += slen
        blobs = []
        for size in sizes:
            if not isinstance(size, int) or size < 0 or pos + size > len(data):
                raise StateError("state: truncated data")
            blobs.append(data[pos : pos + size])
            pos += size
        if pos != len(data):
            raise StateError("state: trailing bytes")
        return _unpack(header, blobs)
    except StateError:
        raise
    except (
        orjson.JSONDecodeError,
        struct.error,
        ValueError,
        TypeError,
        IndexError,
        KeyError,
        MemoryError,
        OverflowError,
        RecursionError,
    ) as exc:
        raise StateError(f"state: corrupt ({exc})") from exc
