"""db/packing.py against fixed bytes: rows already stored must read back the same after any
change, so the layout (byte planes, lowest first, then deflate) is pinned here, not only the
round trip."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from db.packing import pack, unpack
from soundtag.errors import DamagedData

# fp16 1.0, -2.5, 0.5, 3.0 are 0x3C00, 0xC100, 0x3800, 0x4200: the four low bytes, then the four high.
FP16 = np.array([1.0, -2.5, 0.5, 3.0], np.float16)
FP16_PLANES = bytes.fromhex("00000000" "3cc13842")
# The same planes as a row stored them (zlib level 1).
FP16_STORED = bytes.fromhex("780163606060b03968e1040003ed0178")
# fp32 1.0, -2.0, 0.25 are 0x3F800000, 0xC0000000, 0x3E800000.
FP32 = np.array([1.0, -2.0, 0.25], np.float32)
FP32_PLANES = bytes.fromhex("000000" "000000" "800080" "3fc03e")


def test_pack_lays_out_byte_planes_lowest_first():
    assert zlib.decompress(pack(FP16)) == FP16_PLANES
    assert zlib.decompress(pack(FP32)) == FP32_PLANES


def test_stored_bytes_unpack_to_the_vector_they_were():
    assert unpack(FP16_STORED, np.float16, packed=True).tolist() == FP16.tolist()
    assert unpack(zlib.compress(FP32_PLANES), np.float32, packed=True).tolist() == FP32.tolist()
    assert unpack(FP32.tobytes(), np.float32, packed=False).tolist() == FP32.tolist()


@given(hnp.arrays(st.sampled_from([np.float16, np.float32, np.float64, np.int32, np.uint8]),
                  hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=9)))
def test_any_array_packs_and_unpacks_to_the_same_bytes(values):
    back = unpack(pack(values), values.dtype, packed=True)
    assert back.dtype == values.dtype and back.tobytes() == values.tobytes()


def test_damaged_bytes_raise_damaged_data_not_garbage():
    stored = pack(FP32)
    for damaged in (stored[:-3], b"not deflated", zlib.compress(FP32_PLANES[:-1])):
        with pytest.raises(DamagedData) as raised:
            unpack(damaged, np.float32, packed=True)
        assert str(raised.value) not in ("", "None")  # the reason a damaged row is reported with
    with pytest.raises(DamagedData):
        unpack(FP32.tobytes()[:-1], np.float32, packed=False)
