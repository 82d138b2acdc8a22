"""How audio embeddings and their window bounds are kept as bytes: byte-shuffled (the k-th bytes
of all the numbers together, as HDF5's and Blosc's shuffle filters do) and deflated. The high
bytes of a unit vector's halves (sign and exponent) take few values, so a long recording's
vectors shrink by about 13% and its window bounds, evenly spaced, by almost 90%; a clip of one
window gains nothing (deflate needs more bytes than that to learn them). Lossless.

Rows written before packing keep their raw bytes; their ``dtype`` (fp16, fp32) has no ``z``."""

from __future__ import annotations

import zlib

import numpy as np

from soundtag.errors import DamagedData

DTYPES = {"fp16": np.float16, "fp32": np.float32}
PACKED = "z"  # the suffix of a stored dtype whose bytes are packed: fp16z, fp32z


def pack(values: np.ndarray) -> bytes:
    data = np.ascontiguousarray(values).ravel()
    # Level 1: a long recording's vectors pack at about 60 MB/s on one core, within 1% of level 6's size.
    return zlib.compress(data.view(np.uint8).reshape(-1, data.itemsize).T.tobytes(), 1)


def unpack(data: bytes, dtype: type, packed: bool) -> np.ndarray:
    """The flat array of ``dtype`` that ``pack`` made of it, or that raw bytes hold. Raises
    DamagedData when the bytes are not that (truncated, corrupted), or not bytes at all (SQLite
    keeps whatever was written into a blob column, text too)."""
    kind = np.dtype(dtype)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DamagedData(f"{type(data).__name__} where bytes were stored")
    try:
        if not packed:
            return np.frombuffer(data, dtype=kind)
        planes = np.frombuffer(zlib.decompress(data), np.uint8).reshape(kind.itemsize, -1)
    except (zlib.error, ValueError) as exc:
        raise DamagedData(str(exc)) from None
    values = np.empty(planes.shape[1], kind)
    # Plane by plane: reading each contiguously is 5× faster than copying the transposed planes.
    for k, plane in enumerate(planes):
        values.view(np.uint8)[k::kind.itemsize] = plane
    return values
