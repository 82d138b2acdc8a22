"""The approximate index of vectors/approximate_index.py, directly: over segments written here,
without a database (tests/test_search.py holds the searches through the kept index)."""

import shutil

import faiss
import numpy as np
import pytest

from vectors import approximate_index
from vectors.approximate_index import CANDIDATES, PROBES, build, extend, extensible, lists_for, load, top, usable
from vectors.index_segment import ROW, IndexSegment, IndexSegmentWriter


def _written(folder, name, files, windows=4, seed=0, masked=()):
    """A segment of ``files`` embeddings of ``windows`` random unit vectors each, written to ``folder``."""
    rng = np.random.default_rng(seed)
    writer = IndexSegmentWriter(folder, name, 16)
    for k in range(files):
        vectors = rng.standard_normal((windows, 16)).astype(np.float32)
        writer.add_embedding(k + 1, 1, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    segment = writer.close()
    segment.masked = [list(r) for r in masked]
    return segment


def _segment(name, rows, masked=(), vectors=None):
    """A segment held in memory: ``rows`` rows (of ``vectors``, else zeros), ``masked`` [start, stop)."""
    vectors = np.zeros((rows, 16), np.float32) if vectors is None else vectors
    return IndexSegment(name, vectors, np.zeros(rows, ROW), {}, {}, [list(r) for r in masked])


class _Sampled(np.ndarray):
    """A segment's vectors that note the rows read by an array of positions: the training sample."""

    reads: list[np.ndarray] = []

    def __getitem__(self, key):
        if isinstance(key, np.ndarray):
            _Sampled.reads.append(key)
        return np.asarray(super().__getitem__(key))


def _sampling(segment):
    _Sampled.reads = []
    segment.vectors = np.asarray(segment.vectors).view(_Sampled)
    return _Sampled.reads


def test_lists_grow_as_the_square_root_of_the_windows_between_16_and_4096():
    assert [lists_for(rows) for rows in (0, 1, 256, 1000, 4**6, 10**6, 10**9)] == [16, 16, 16, 32, 64, 1024, 4096]


def test_a_small_archive_trains_on_each_unmasked_window_once_without_polysemous_codes(tmp_path, monkeypatch):
    segment = _written(tmp_path, "a", 275, masked=[[0, 4], [400, 404]])
    sampled = _sampling(segment)
    made = []
    factory = faiss.index_factory
    monkeypatch.setattr(faiss, "index_factory", lambda *args: made.append(factory(*args)) or made[-1])
    entry = build(tmp_path, "small.faiss", [segment], 16)
    # Polysemous training adds tens of seconds at any size, for a filter this index never uses.
    assert [faiss.downcast_index(index).do_polysemous_training for index in made] == [False]
    live = np.r_[4:400, 404:1100]
    assert np.array_equal(np.sort(np.concatenate(sampled)), live)
    assert entry["rows"] == entry["trained"] == len(live) and entry["segments"] == ["a"]
    assert load(tmp_path, entry).ntotal == len(live)


def test_a_long_segment_is_indexed_whole_and_trained_on_64_windows_per_list(tmp_path):
    # Past 2**16 rows the rows are added in blocks; a live range of one row between two masked files.
    segment = _written(tmp_path, "long", 17_600, masked=[[0, 4], [5, 9]])
    sampled = _sampling(segment)
    entry = build(tmp_path, "long.faiss", [segment], 16)
    live = 17_600 * 4 - 8
    index = load(tmp_path, entry)
    assert index.ntotal == entry["rows"] == live
    assert index.nlist == lists_for(live) == 256
    drawn = np.concatenate(sampled)
    assert abs(len(drawn) - 256 * 64) <= 2 and len(np.unique(drawn)) == len(drawn)
    assert 4 in drawn and not np.isin(drawn, np.r_[0:4, 5:9]).any()
    # Every row, the last block's too, is found by its own vector among the candidates.
    for row in (9, 65_540, live + 7):
        assert (0, row) in {(k, r) for _, k, r in top(index, entry, [segment], segment.vectors[row], 10)}


def test_an_index_is_extended_with_the_unmasked_windows_of_the_segments_appended(tmp_path):
    first = _written(tmp_path, "a", 275)
    entry = build(tmp_path, "first.faiss", [first], 16)
    added = _written(tmp_path, "b", 10, seed=1, masked=[[0, 4]])
    extended = extend(tmp_path, entry, "second.faiss", [first, added])
    assert extended["segments"] == ["a", "b"] and extended["trained"] == 1100
    assert extended["rows"] == load(tmp_path, extended).ntotal == 1136


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("built")
    segment = _written(folder, "a", 275)
    return folder, build(folder, "built.faiss", [segment], 16)


def test_an_index_file_rewritten_as_it_was_is_loaded_mapped_not_read_whole(built, tmp_path):
    folder, entry = built
    shutil.copy(folder / entry["name"], tmp_path / entry["name"])  # another inode and ctime, the same bytes
    index = load(tmp_path, entry)
    assert index.ntotal == 1100 and index.nprobe == PROBES
    lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists)
    assert isinstance(lists, faiss.OnDiskInvertedLists)


def test_a_damaged_index_file_is_refused_by_its_checksum(built, tmp_path):
    folder, entry = built
    data = bytearray((folder / entry["name"]).read_bytes())
    data[-100:] = bytes(100)
    (tmp_path / entry["name"]).write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"{tmp_path / entry['name']} does not match its checksum"):
        load(tmp_path, entry)


def test_an_index_stays_usable_while_it_covers_four_fifths_of_the_unmasked_windows():
    covered, appended = _segment("a", 90, masked=[[0, 10]]), _segment("b", 30, masked=[[0, 10]])
    assert usable({"segments": ["a"]}, [covered, appended])  # 80 of 100
    assert not usable({"segments": ["a"]}, [_segment("a", 90, masked=[[0, 11]]), appended])  # 79 of 99
    assert not usable({"segments": ["a"]}, [covered, _segment("b", 21)])  # 80 of 101
    assert not usable(None, [covered]) and not usable({"segments": []}, [covered])


def test_an_index_is_extended_up_to_twice_the_windows_it_was_trained_on():
    entry = {"segments": ["a"], "trained": 100}
    assert extensible(entry, [_segment("a", 100), _segment("b", 110, masked=[[0, 10]])])  # 200 windows
    assert not extensible(entry, [_segment("a", 100), _segment("b", 101)])
    # Built before the count was kept, or over a segment merged away since: built again instead.
    assert not extensible({"segments": ["a"]}, [_segment("a", 100), _segment("b", 1)])
    assert not extensible({"segments": ["gone"], "trained": 100}, [_segment("a", 100)])
    assert not extensible(None, [_segment("a", 100)])


class _Candidates:
    """A faiss index that proposes ``labels`` (best first; -1 where it found too few)."""

    def __init__(self, labels):
        self.labels, self.asked = np.array(labels, np.int64), []

    def search(self, query, k):
        self.asked.append(k)
        return None, self.labels[None]


def test_candidates_are_ranked_by_exact_cosine_without_masked_rows_or_segments_gone():
    shift = approximate_index._SHIFT
    a = _segment("a", 3, vectors=np.eye(16, dtype=np.float32)[[0, 1, 2]] * [[0.9], [0.5], [0.1]])
    b = _segment("b", 7, masked=[[2, 5]], vectors=np.eye(16, dtype=np.float32)[[0] * 7] * np.arange(7)[:, None] / 10)
    query = np.eye(16, dtype=np.float32)[0]
    # Covered: a, a segment merged away since, b; labels are the covered position << _SHIFT | row.
    index = _Candidates([0, 1 << shift, (2 << shift) | 1, (2 << shift) | 2, (2 << shift) | 4,
                         (2 << shift) | 5, (2 << shift) | 6, -1, -1])
    found = top(index, {"segments": ["a", "gone", "b"]}, [b, a], query, 30)
    assert found == [(pytest.approx(0.9), 1, 0), (pytest.approx(0.6), 0, 6), (pytest.approx(0.5), 0, 5),
                     (pytest.approx(0.1), 0, 1)]
    assert index.asked == [300]  # ten candidates a hit
    assert len(top(index, {"segments": ["a", "gone", "b"]}, [b, a], query, 2)) == 2 and index.asked[-1] == CANDIDATES
