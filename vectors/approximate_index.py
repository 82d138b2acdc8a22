"""Approximate search over the search index's segments (``vectors.window_index``), for archives
past ``Settings.search_approximate_above`` windows or on ``soundtag search --approximate``.

A faiss IVF-PQ index: the windows are grouped around ``lists`` k-means centroids, and each is kept
as 64 bytes (a 512-dim vector's product-quantized code) instead of 2 KB, so 10M windows take
about 0.7 GB of memory. A query compares itself with the centroids, scans the codes of the
``PROBES`` nearest lists, and the best ``candidates`` are ranked again by their exact cosine,
read from the segments: the similarities returned are exact, only the candidates are approximate.
Chosen over HNSW graphs (faiss, usearch) for its recall on windows of one recording, near-ties
that the exact re-ranking settles (1.000 at 10M, where graphs found 0.45–0.84 of the true ten at
1M), and its memory: a graph holds the vectors, 20 GB at 10M (see docs/benchmarks.md).

The index covers the segments it was built from: rows masked in them since are dropped from its
candidates, and segments appended (or merged) since are searched exactly beside it. It is rebuilt
once the segments it covers hold less than ``STALE_SHARE`` of the index's rows. Built ahead of the
queries (``WindowIndex.prepare_approximate``, a worker's task at a job's end), it is extended with
the segments appended since, without training again, while they stay within ``GROWTH`` times the
rows it was trained on."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vectors.index_segment import IndexSegment, checksum, stat

# Lists to scan per query, and the best candidates by code ranked again exactly; measured on 1M
# and 10M clustered windows for recall@10 ≥ 0.95 (docs/benchmarks.md).
PROBES = 32
CANDIDATES = 200
# Fewer windows than this are compared exactly, whatever is asked: too few to train lists on.
MIN_ROWS = 1000
# Segments it covers holding less than this share of the rows: rebuild.
STALE_SHARE = 0.8
# An index extended past this many times the rows it was trained on is built again instead.
GROWTH = 2.0
_SAMPLE_PER_LIST = 64  # training rows per list: faiss wants 39 at least
_SHIFT = 40  # a label is the segment's position among those covered << 40 | its row


def lists_for(rows: int) -> int:
    """About √rows lists (a power of two, 16 to 4096): lists of a few thousand windows."""
    return int(2 ** np.clip(np.round(np.log2(max(rows, 1)) / 2), 4, 12))


def build(folder: Path, name: str, segments: list[IndexSegment], dim: int) -> dict:
    """Index the unmasked rows of ``segments`` as ``folder/name``; its manifest entry."""
    import faiss

    live = sum(len(seg.rows) - seg.masked_rows for seg in segments)
    lists = lists_for(live)
    index = faiss.index_factory(dim, f"IVF{lists},PQ{dim // 8}", faiss.METRIC_INNER_PRODUCT)
    # index_factory trains polysemous codes, for a Hamming pre-filter this index never sets: 48 s
    # of the build at any size, on two cores. The codes' centroids are the same without them.
    faiss.downcast_index(index).do_polysemous_training = False
    rng = np.random.default_rng(0)
    share = min(1.0, lists * _SAMPLE_PER_LIST / max(live, 1))
    index.train(np.concatenate([seg.vectors[np.sort(rng.choice(np.arange(start, stop), max(1, int((stop - start) * share)),
                                                                replace=False))]
                                for seg in segments for start, stop in seg.live_ranges()]))
    _add(index, segments, 0)
    return {**_written(index, folder, name, segments, live), "trained": live}


def extensible(entry: dict | None, segments: list[IndexSegment]) -> bool:
    """Whether the index of ``entry`` can take the segments appended since by adding their rows to
    its lists, untrained again: it covers only segments still there, and the rows would stay
    within ``GROWTH`` times those it was trained on (past that its lists grow long)."""
    if not entry or "trained" not in entry:
        return False
    names = {seg.name for seg in segments}
    live = sum(len(seg.rows) - seg.masked_rows for seg in segments)
    return set(entry["segments"]) <= names and live <= GROWTH * entry["trained"]


def extend(folder: Path, entry: dict, name: str, segments: list[IndexSegment]) -> dict:
    """The index of ``entry`` with the rows of the ``segments`` it does not cover added, as
    ``folder/name``; its manifest entry."""
    import faiss

    covered = set(entry["segments"])
    added = [seg for seg in segments if seg.name not in covered]
    index = faiss.read_index(str(folder / entry["name"]))
    _add(index, added, len(entry["segments"]))
    live = entry["rows"] + sum(len(seg.rows) - seg.masked_rows for seg in added)
    return {**_written(index, folder, name, [], live), "segments": entry["segments"] + [seg.name for seg in added],
            "trained": entry["trained"]}


def _add(index, segments: list[IndexSegment], first: int) -> None:
    """Add the unmasked rows of ``segments``, labelled as the ``first``-th covered segment onward."""
    for k, seg in enumerate(segments, first):
        for start, stop in seg.live_ranges():
            for at in range(start, stop, 1 << 16):
                end = min(at + (1 << 16), stop)
                index.add_with_ids(np.ascontiguousarray(seg.vectors[at:end]), (k << _SHIFT) + np.arange(at, end))


def _written(index, folder: Path, name: str, segments: list[IndexSegment], live: int) -> dict:
    import faiss

    staged = folder / f"{name}.tmp"
    faiss.write_index(index, str(staged))
    with open(staged, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(staged, folder / name)
    return {"name": name, "segments": [seg.name for seg in segments], "rows": live,
            "checksum": checksum(folder / name), "stat": stat(folder / name)}


def usable(entry: dict | None, segments: list[IndexSegment]) -> bool:
    """Whether the index of ``entry`` still covers enough of ``segments``."""
    if not entry:
        return False
    covered = set(entry["segments"])
    held = sum(len(seg.rows) - seg.masked_rows for seg in segments if seg.name in covered)
    return held >= STALE_SHARE * sum(len(seg.rows) - seg.masked_rows for seg in segments)


def load(folder: Path, entry: dict):
    """The faiss index of ``entry``, memory-mapped; ValueError when it is not as written."""
    import faiss

    path = folder / entry["name"]
    if stat(path) != entry["stat"] and checksum(path) != entry["checksum"]:
        raise ValueError(f"{path} does not match its checksum")
    index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP)
    index.nprobe = PROBES
    return index


def top(index, entry: dict, segments: list[IndexSegment], query: np.ndarray, limit: int) -> list[tuple[float, int, int]]:
    """(exact cosine, segment position in ``segments``, row) of the best ``limit`` candidates of
    ``index`` that are not masked, in the covered segments still there."""
    position = {seg.name: k for k, seg in enumerate(segments)}
    covered = [position.get(name) for name in entry["segments"]]
    _, labels = index.search(query[None], max(CANDIDATES, 10 * limit))
    labels = labels[0][labels[0] >= 0]
    found = []
    for k in np.unique(labels >> _SHIFT):
        if covered[int(k)] is None:
            continue
        seg = segments[covered[int(k)]]
        rows = np.sort(labels[(labels >> _SHIFT) == k] & ((1 << _SHIFT) - 1))
        for start, stop in seg.masked:
            rows = rows[(rows < start) | (rows >= stop)]
        sims = seg.vectors[rows] @ query
        found += [(float(s), covered[int(k)], int(r)) for s, r in zip(sims, rows) if np.isfinite(s)]
    return sorted(found, reverse=True)[:limit]
