"""One segment of the search index (``vectors.window_index``): two immutable files, ``NAME.f32``
(rows × dim float32, memory-mapped by queries) and ``NAME.rows`` (embedding id, window, created_at
of each row), written under temporary names, flushed to disk, then renamed. The rows of one stored
embedding are contiguous, window 0 first.

A segment is never rewritten in place: rows whose embedding was replaced or deleted since are
masked (ranges of rows listed in the manifest), and merged away once a segment is mostly masked.

Integrity: the manifest keeps each file's xxh3 checksum and its (size, inode, ctime) as written.
A file whose size differs is damaged; one whose inode or ctime differs (anything that wrote to it
since, which cannot restore a ctime) is read whole and checked against its checksum. Hashing runs
at about 10 GB/s, so a full check (``verify``) costs about 0.2 s per million windows from the
page cache."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xxhash

ROW = np.dtype([("embedding", "<i8"), ("window", "<i4"), ("stamp", "<i8")])
FILES = (".f32", ".rows")
_BLOCK = 1 << 24  # bytes per read when hashing, and per copy when merging


class DamagedIndexSegment(ValueError):
    """A segment's files are missing, of the wrong size, or not what was written."""


@dataclass
class IndexSegment:
    """A mapped segment and what its manifest entry says of it."""

    name: str
    vectors: np.ndarray
    rows: np.ndarray
    checksums: dict[str, str]
    stats: dict[str, list[int]]
    masked: list[list[int]] = field(default_factory=list)  # [start, stop) of rows no longer in the database

    @property
    def masked_rows(self) -> int:
        return sum(stop - start for start, stop in self.masked)

    def entry(self) -> dict:
        return {"name": self.name, "rows": len(self.rows), "checksums": self.checksums, "stats": self.stats,
                "masked": self.masked}

    def embeddings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(ids, created_at, first row, row after the last) of the unmasked embeddings held."""
        starts = np.flatnonzero(self.rows["window"] == 0)
        stops = np.append(starts[1:], len(self.rows))
        live = ~np.isin(starts, [start for start, _ in self.masked])
        starts, stops = starts[live], stops[live]
        return self.rows["embedding"][starts], self.rows["stamp"][starts], starts, stops

    def similarities(self, query: np.ndarray) -> np.ndarray:
        """The cosine of each row to ``query``; -inf for masked rows, and for NaN, which no hit may be."""
        sims = np.nan_to_num(self.vectors @ query, copy=False, nan=-np.inf)
        for start, stop in self.masked:
            sims[start:stop] = -np.inf
        return sims

    def live_ranges(self) -> list[tuple[int, int]]:
        ranges, at = [], 0
        for start, stop in sorted(self.masked) + [[len(self.rows), len(self.rows)]]:
            if start > at:
                ranges.append((at, start))
            at = max(at, stop)
        return ranges


def stat(path: Path) -> list[int]:
    info = path.stat()
    return [info.st_size, info.st_ino, info.st_ctime_ns]


def checksum(path: Path) -> str:
    digest = xxhash.xxh3_64()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def open_segment(folder: Path, entry: dict, dim: int, verify: bool = False) -> IndexSegment:
    """Map the segment of a manifest ``entry``; DamagedIndexSegment unless its files are as written
    (checked against their checksums when touched since, or always with ``verify``)."""
    name, rows, masked = entry["name"], entry["rows"], entry["masked"]
    if not (isinstance(name, str) and _count(rows) and isinstance(masked, list)
            and all(isinstance(r, list) and len(r) == 2 and all(map(_count, r)) and r[0] < r[1] <= rows
                    for r in masked)):
        raise DamagedIndexSegment(f"manifest entry of segment {name!r} holds values of the wrong type or range")
    stats = dict(entry["stats"])
    for ext, size in ((".f32", rows * dim * 4), (".rows", rows * ROW.itemsize)):
        path = folder / f"{name}{ext}"
        try:
            now = stat(path)
        except FileNotFoundError:
            raise DamagedIndexSegment(f"{path} is missing") from None
        if now[0] != size:
            raise DamagedIndexSegment(f"{path} has {now[0]} bytes, not {size}")
        if verify or now != stats[ext]:
            if checksum(path) != entry["checksums"][ext]:
                raise DamagedIndexSegment(f"{path} does not match its checksum")
            stats[ext] = now
    return IndexSegment(name, np.memmap(folder / f"{name}.f32", np.float32, "r", shape=(rows, dim)),
                   np.memmap(folder / f"{name}.rows", ROW, "r", shape=(rows,)), dict(entry["checksums"]), stats,
                   [list(r) for r in masked])


class IndexSegmentWriter:
    """Writes one new segment, row blocks at a time; ``close`` makes it durable and returns it
    mapped, or None when nothing was added."""

    def __init__(self, folder: Path, name: str, dim: int):
        self.folder, self.name, self.dim, self.count = folder, name, dim, 0
        self._files = {ext: open(folder / f"{name}{ext}.tmp", "wb") for ext in FILES}
        self._digests = {ext: xxhash.xxh3_64() for ext in FILES}

    def add(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        for ext, data in ((".f32", np.ascontiguousarray(vectors, dtype=np.float32)),
                          (".rows", np.ascontiguousarray(rows, dtype=ROW))):
            self._files[ext].write(data.data)
            self._digests[ext].update(data.data)
        self.count += len(rows)

    def add_embedding(self, embedding_id: int, stamp: int, vectors: np.ndarray) -> None:
        rows = np.zeros(len(vectors), ROW)
        rows["embedding"], rows["window"], rows["stamp"] = embedding_id, np.arange(len(rows)), stamp
        self.add(rows, vectors)

    def close(self) -> IndexSegment | None:
        for f in self._files.values():
            f.flush()
            if self.count:
                # On disk before the rename, so a crash leaves the old manifest's files or whole new ones.
                os.fsync(f.fileno())
            f.close()
        if not self.count:
            self.discard()
            return None
        for ext in FILES:
            os.replace(self.folder / f"{self.name}{ext}.tmp", self.folder / f"{self.name}{ext}")
        # The stats after the rename, which sets the ctime.
        entry = {"name": self.name, "rows": self.count, "masked": [],
                 "checksums": {ext: digest.hexdigest() for ext, digest in self._digests.items()},
                 "stats": {ext: stat(self.folder / f"{self.name}{ext}") for ext in FILES}}
        return open_segment(self.folder, entry, self.dim)

    def discard(self) -> None:
        for ext, f in self._files.items():
            f.close()
            (self.folder / f"{self.name}{ext}.tmp").unlink(missing_ok=True)


def merge(folder: Path, name: str, dim: int, segments: list[IndexSegment]) -> IndexSegment | None:
    """The unmasked rows of ``segments`` as one new segment (None when all are masked)."""
    writer = IndexSegmentWriter(folder, name, dim)
    try:
        step = _BLOCK // (dim * 4)
        for seg in segments:
            for start, stop in seg.live_ranges():
                for at in range(start, stop, step):
                    end = min(at + step, stop)
                    writer.add(seg.rows[at:end], seg.vectors[at:end])
    except BaseException:
        writer.discard()
        raise
    return writer.close()
