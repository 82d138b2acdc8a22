"""The index ``soundtag search`` ranks: the usable stored window embeddings of one database, model
and revision, kept as float32 matrices memory-mapped from ``Settings.index_dir``, so a query is one
matrix product over the page cache (about 80 ms at 1M windows × 512 on two cores) instead of
reading every vector from SQL (1.5 s per 100k windows). Exact: every window is compared.

The database stays the truth. Before each query the index takes in the rows newer than those it
holds, and is rebuilt when a row it holds was replaced, deleted or made unusable (its file changed):
``db.embeddings.embeddings_state`` summarises both sides in one statement. The hits are then resolved from
SQL (uri, window bounds) and checked against it, so a row changed behind the summary's back is
never returned: the index is rebuilt and asked again.

A folder holds ``manifest.json`` (its segments and the state they hold) and immutable segments,
``NAME.f32`` (rows × dim float32) and ``NAME.rows`` (embedding id, window, created_at per row).
Writers build segments under temporary names and replace the manifest atomically, under a file
lock that readers take too while they map the files, so no one sees a half-written index."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock
from sqlalchemy import Engine

from db.embeddings import (
    EmbeddingsState, StoredEmbeddings, Unreadable, embeddings_by_id, embeddings_state, latest_embedding_rows,
)
from soundtag.errors import SoundtagError

ROW = np.dtype([("embedding", "<i8"), ("window", "<i4"), ("stamp", "<i8")])
# Each update adds a segment; past this many they are merged into one, so a query stays a few
# large products rather than many small ones.
MAX_SEGMENTS = 8


@dataclass(frozen=True)
class Window:
    """One ranked window: its file's stored embeddings, the window's position in them, the cosine."""

    stored: StoredEmbeddings
    window: int
    similarity: float


@dataclass(frozen=True)
class _Segment:
    name: str
    vectors: np.ndarray
    rows: np.ndarray


def _folder_name(engine: Engine, model: str, revision: str) -> str:
    """The database (without its password; a SQLite file by absolute path), model and revision."""
    url = engine.url.set(drivername=engine.url.get_backend_name(), password=None)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        url = url.set(database=str(Path(url.database).resolve()))
    identity = "\n".join([url.render_as_string(hide_password=False), model, revision])
    return hashlib.sha256(identity.encode()).hexdigest()[:24]


class WindowIndex:
    """The kept index of one database's windows by ``model`` at ``revision``, under ``root``."""

    def __init__(self, engine: Engine, model: str, revision: str, root: Path):
        self.engine, self.model, self.revision = engine, model, revision
        self.folder = Path(root).expanduser() / _folder_name(engine, model, revision)
        self.damaged: list[str] = []  # one line for each row left out, damaged in the database

    def nearest(self, query: np.ndarray, limit: int) -> list[Window]:
        """The ``limit`` windows most similar to ``query`` (a unit vector), best first, as the
        database holds them now."""
        query = np.asarray(query, dtype=np.float32)
        # A row replaced or deleted since the summary was read: rebuild once; what still differs
        # after that was written during this query and is left out.
        windows = self._current(self._synced(), query, limit, strict=True)
        if windows is None:
            windows = self._current(self._synced(rebuild=True), query, limit, strict=False)
        return windows

    def _current(self, segments: list[_Segment], query: np.ndarray, limit: int, strict: bool) -> list[Window] | None:
        """The best windows of ``segments`` that SQL holds as indexed; None, if ``strict``, when
        one of them it does not."""
        best = _top(segments, query, limit)
        found = embeddings_by_id(self.engine, self.model, self.revision,
                                 {int(row["embedding"]) for _, row in best})
        current = [Window(found[int(row["embedding"])][1], int(row["window"]), similarity)
                   for similarity, row in best
                   if found.get(int(row["embedding"]), (None,))[0] == int(row["stamp"])]
        return None if strict and len(current) < len(best) else current

    def _synced(self, rebuild: bool = False) -> list[_Segment]:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with FileLock(self.folder / "lock"):
                manifest, segments = self._read()
                held_upto = 0 if manifest is None else manifest["state"]["upto"]
                held, now = embeddings_state(self.engine, self.model, self.revision, held_upto)
                self.damaged = [] if manifest is None else list(manifest.get("damaged", []))
                if rebuild or manifest is None or manifest["state"] != asdict(held):
                    self.damaged = []
                    return self._write([], 0, now)
                if now.upto > held.upto:
                    return self._write(segments, held.upto, now)
                return segments
        except OSError as exc:
            raise SoundtagError(f"{self.folder}: cannot keep the search index there ({exc.strerror or exc}); "
                                "set SOUNDTAG_INDEX_DIR to a writable folder") from None

    def _read(self) -> tuple[dict | None, list[_Segment]]:
        """The manifest and its mapped segments; (None, []) when missing or damaged, so that a
        truncated or garbled index is rebuilt rather than fatal."""
        try:
            manifest = json.loads((self.folder / "manifest.json").read_text())
            int(manifest["state"]["upto"])  # a manifest without its state is damaged too
            return manifest, [self._map(entry["name"], entry["rows"], manifest["dim"])
                              for entry in manifest["segments"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None, []

    def _map(self, name: str, rows: int, dim: int) -> _Segment:
        vectors, table = self.folder / f"{name}.f32", self.folder / f"{name}.rows"
        if vectors.stat().st_size != rows * dim * 4 or table.stat().st_size != rows * ROW.itemsize:
            raise ValueError(f"segment {name} has the wrong size")
        return _Segment(name, np.memmap(vectors, np.float32, "r", shape=(rows, dim)),
                        np.memmap(table, ROW, "r", shape=(rows,)))

    def _write(self, segments: list[_Segment], after: int, state: EmbeddingsState) -> list[_Segment]:
        """Add the usable rows with ``after < id <= state.upto`` to ``segments`` as a new one
        (merging them all past MAX_SEGMENTS), then commit the manifest for ``state``."""
        names = [(seg.name, len(seg.rows)) for seg in segments]
        dim = segments[0].vectors.shape[1] if segments else None
        added = self._segment(latest_embedding_rows(self.engine, self.model, self.revision, after, state.upto))
        if added is not None:
            names.append(added[:2])
            dim = added[2]
        if len(names) > MAX_SEGMENTS:
            names = [self._merged(names)]
        manifest = {"state": asdict(state), "dim": dim, "segments": [{"name": n, "rows": r} for n, r in names],
                    "damaged": self.damaged}
        staged = self.folder / f"manifest.{uuid.uuid4().hex}.tmp"
        staged.write_text(json.dumps(manifest))
        os.replace(staged, self.folder / "manifest.json")
        kept = {"lock", "manifest.json"} | {f"{n}{ext}" for n, _ in names for ext in (".f32", ".rows")}
        for path in self.folder.iterdir():
            # Mapped files stay readable to whoever mapped them after they are unlinked.
            if path.name not in kept:
                path.unlink(missing_ok=True)
        return [self._map(n, r, dim) for n, r in names]

    def _segment(self, chunks: Iterable[list[tuple[int, int, StoredEmbeddings]]]) -> tuple[str, int, int] | None:
        """Write the rows of ``chunks`` as a new segment; (name, rows, dim), or None when empty."""
        name, count, dim = uuid.uuid4().hex, 0, None
        staged = self.folder / f"{name}.f32.tmp", self.folder / f"{name}.rows.tmp"
        with open(staged[0], "wb") as vectors, open(staged[1], "wb") as table:
            for chunk in chunks:
                for embedding_id, stamp, stored in chunk:
                    if isinstance(stored, Unreadable):
                        self.damaged.append(stored.reason)
                        continue
                    rows = np.zeros(len(stored.vectors), ROW)
                    rows["embedding"], rows["window"], rows["stamp"] = embedding_id, np.arange(len(rows)), stamp
                    vectors.write(np.ascontiguousarray(stored.vectors, dtype=np.float32).tobytes())
                    table.write(rows.tobytes())
                    count, dim = count + len(rows), stored.vectors.shape[1]
        if not count:
            return None
        os.replace(staged[0], self.folder / f"{name}.f32")
        os.replace(staged[1], self.folder / f"{name}.rows")
        return name, count, dim

    def _merged(self, names: list[tuple[str, int]]) -> tuple[str, int]:
        merged = uuid.uuid4().hex
        for ext in (".f32", ".rows"):
            with open(self.folder / f"{merged}{ext}.tmp", "wb") as out:
                for name, _ in names:
                    with open(self.folder / f"{name}{ext}", "rb") as part:
                        shutil.copyfileobj(part, out, 1 << 24)
            os.replace(self.folder / f"{merged}{ext}.tmp", self.folder / f"{merged}{ext}")
        return merged, sum(rows for _, rows in names)


def _top(segments: list[_Segment], query: np.ndarray, limit: int) -> list[tuple[float, np.void]]:
    """(cosine, row) of the ``limit`` best rows of all segments, best first."""
    found: list[tuple[float, np.void]] = []
    for seg in segments:
        sims = seg.vectors @ query
        top = np.argpartition(-sims, limit - 1)[:limit] if len(sims) > limit else np.arange(len(sims))
        found += [(float(sims[i]), seg.rows[i]) for i in top]
    return sorted(found, key=lambda hit: -hit[0])[:limit]
