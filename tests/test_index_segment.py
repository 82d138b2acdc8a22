"""The segments of the search index (vectors/index_segment.py), directly, as numpy arrays and files."""

import numpy as np
import pytest
import xxhash

from vectors import index_segment
from vectors.index_segment import ROW, DamagedIndexSegment, IndexSegment, IndexSegmentWriter, checksum, open_segment


def _segment(windows, masked=(), vectors=None):
    """Embeddings of ``windows`` windows each, one after the other, ids 1, 2, ...; ``masked`` [start, stop)."""
    rows = np.zeros(sum(windows), ROW)
    rows["embedding"] = np.repeat(np.arange(1, len(windows) + 1), windows)
    rows["window"] = np.concatenate([np.arange(count) for count in windows])
    rows["stamp"] = 7
    vectors = np.zeros((len(rows), 4), np.float32) if vectors is None else vectors
    return IndexSegment("s", vectors, rows, {}, {}, [list(r) for r in masked])


def test_the_embeddings_held_are_the_unmasked_ones_the_last_one_to_the_segments_end():
    ids, stamps, starts, stops = _segment([4, 3, 3], masked=[[4, 7]]).embeddings()
    assert ids.tolist() == [1, 3] and stamps.tolist() == [7, 7]
    assert starts.tolist() == [0, 7] and stops.tolist() == [4, 10]


def test_masked_rows_and_nan_rows_are_never_similar():
    vectors = np.eye(4, dtype=np.float32)[[0, 0, 1, 0]]
    vectors[3] = np.nan  # a damaged row
    sims = _segment([2, 2], masked=[[0, 1]], vectors=vectors).similarities(np.eye(4, dtype=np.float32)[0])
    assert sims.tolist() == [-np.inf, 1.0, 0.0, -np.inf]


def test_live_ranges_are_the_rows_between_masked_ranges():
    assert _segment([4, 2, 2, 2]).live_ranges() == [(0, 10)]
    assert _segment([4, 2, 2, 2], masked=[[6, 8], [0, 4]]).live_ranges() == [(4, 6), (8, 10)]
    assert _segment([4, 2], masked=[[0, 4], [4, 6]]).live_ranges() == []


def test_a_segment_is_hashed_in_blocks_not_read_whole(tmp_path, monkeypatch):
    path = tmp_path / "s.f32"
    path.write_bytes(bytes(range(256)) * 40)
    reads = []

    class Reading:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def read(self, size=-1):
            reads.append(size)
            return self.f.read(size)

    monkeypatch.setattr(index_segment, "_BLOCK", 4096)
    monkeypatch.setattr(index_segment, "open", lambda *args: Reading(open(*args)), raising=False)
    assert checksum(path) == xxhash.xxh3_64(path.read_bytes()).hexdigest()
    assert reads == [4096] * 4


def _written(folder):
    """A segment of two embeddings of 3 windows each, written; its manifest entry."""
    writer = IndexSegmentWriter(folder, "s", 4)
    for embedding in (1, 2):
        writer.add_embedding(embedding, 7, np.ones((3, 4), np.float32))
    return writer.close().entry()


@pytest.mark.parametrize("masked", [[[0, 6]], [[0, 3], [3, 6]], []])
def test_a_segment_masked_in_any_whole_ranges_opens(tmp_path, masked):
    entry = {**_written(tmp_path), "masked": masked}
    assert open_segment(tmp_path, entry, 4).masked_rows == sum(stop - start for start, stop in masked)


@pytest.mark.parametrize("wrong", [
    {"rows": True}, {"rows": -6}, {"rows": 6.0}, {"masked": [[0, 2.5]]}, {"masked": [[-1, 2]]}, {"masked": [[3, 3]]},
    {"masked": [[4, 2]]}, {"masked": [[0, 7]]}, {"masked": [[0, True]]}, {"name": 5},
], ids=str)
def test_a_manifest_entry_of_the_wrong_type_or_range_is_refused(tmp_path, wrong):
    entry = {**_written(tmp_path), **wrong}
    with pytest.raises(DamagedIndexSegment, match=r"^manifest entry of segment .* holds values of the wrong type or range$"):
        open_segment(tmp_path, entry, 4)


def test_a_segment_whose_file_is_gone_is_named_missing(tmp_path):
    entry = _written(tmp_path)
    (tmp_path / "s.rows").unlink()
    with pytest.raises(DamagedIndexSegment, match=f"^{tmp_path / 's.rows'} is missing$"):
        open_segment(tmp_path, entry, 4)


def test_a_segment_is_written_as_float32_and_mapped_read_only(tmp_path):
    writer = IndexSegmentWriter(tmp_path, "s", 4)
    writer.add_embedding(1, 7, np.full((3, 4), 0.5, np.float64))
    segment = open_segment(tmp_path, writer.close().entry(), 4)
    assert segment.vectors.tolist() == [[0.5] * 4] * 3 and segment.rows["window"].tolist() == [0, 1, 2]
    assert not segment.vectors.flags.writeable and not segment.rows.flags.writeable


def test_a_segment_file_of_the_wrong_size_is_named_with_its_size(tmp_path):
    entry = _written(tmp_path)
    with open(tmp_path / "s.f32", "r+b") as f:
        f.truncate(40)
    with pytest.raises(DamagedIndexSegment, match=f"^{tmp_path / 's.f32'} has 40 bytes, not 96$"):
        open_segment(tmp_path, entry, 4)
