"""The index ``soundtag search`` ranks: the usable stored window embeddings of one database, model
and revision, kept as float32 segments memory-mapped from ``Settings.index_dir`` (see
``vectors.index_segment``), so a query is a few matrix products over the page cache (about 80 ms
at 1M windows × 512 on two cores) instead of reading every vector from SQL (1.5 s per 100k
windows). Exact: every window is compared.

The database stays the truth. Before each query ``db.embeddings.embeddings_state`` summarises the rows the
index holds and the rows there are, in one statement. When only new rows came, they are appended
as a new segment. When a held row was replaced, deleted or made unusable (its file changed), the
ids and stamps of every usable row (small columns, no vectors) are compared with those held: the
stale ones are masked in their segments, the new versions appended. Nothing is rebuilt whole for
a few changed files. Once a segment is mostly masked, or there are more than MAX_SEGMENTS, the
query answers first and compacts after, in a thread (``compact``): the merged segment is written
outside the lock, so other queries go on meanwhile, and is swapped in only if the segments it
replaces were not masked further in the meantime (else it is dropped, and a later query tries
again). The hits are then resolved from SQL and checked against it (the row's stamp and the
window's cosine), so a row changed behind the summary's back, or a segment damaged without
anything noticing, is never returned: every segment is checked, the index brought up to date
and asked again.

Past ``approximate_above`` windows a query ranks the candidates of ``vectors.approximate_index``.
A worker builds it ahead when a job ends (``prepare_approximate``); a query that finds it stale
while that build runs answers exactly rather than waiting, and one that finds it stale with no
build running builds it inline.

``manifest.json`` lists the segments, their checksums and masked rows, the summary they hold and
the rows that hold nothing (damaged or empty rows, skipped until they change). It is replaced
atomically, under a file lock that readers take while they map the files, so no one sees a
half-written index."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout
from sqlalchemy import Engine

from db import embeddings
from soundtag.errors import SoundtagError
from vectors import approximate_index
from vectors.index_segment import FILES, DamagedIndexSegment, IndexSegment, IndexSegmentWriter, merge, open_segment

log = logging.getLogger(__name__)

FORMAT = 2
# Each update adds a segment; past this many all but the largest are merged, so a query stays a
# few large products rather than many small ones.
MAX_SEGMENTS = 8
# A segment with more of its rows masked than this is rewritten without them.
COMPACT_SHARE = 0.2
COMPACTION_THREAD = "soundtag-index-compaction"
# A compaction's segment is named so: spared by the clean-up of other queries while it runs.
_MERGING = "merged-"
# An approximate index built ahead is named so: spared by the clean-up of queries while it is written.
_AHEAD = "ahead-"
# A hit whose cosine differs more than this from the one its vector in SQL gives (both are the
# same float32 numbers, summed in another order) comes from a damaged segment.
_TOLERANCE = 1e-4


@dataclass(frozen=True)
class WindowHit:
    """One ranked window: its file's stored embeddings, the window's position in them, the cosine."""

    stored: embeddings.StoredEmbeddings
    window: int
    similarity: float


def _folder_name(engine: Engine, model: str, revision: str) -> str:
    """The database (without its password; a SQLite file by absolute path), model and revision."""
    # URL.set(password=None) keeps the password: rendered hidden, a new password keeps the index.
    url = engine.url.set(drivername=engine.url.get_backend_name())
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        url = url.set(database=str(Path(url.database).resolve()))
    identity = "\n".join([url.render_as_string(hide_password=True), model, revision])
    return hashlib.sha256(identity.encode()).hexdigest()[:24]


def _present(ids: np.ndarray, stamps: np.ndarray, among_ids: np.ndarray, among_stamps: np.ndarray) -> np.ndarray:
    """Whether each (id, stamp) is one of ``among`` (sorted by id, ids unique)."""
    if not len(among_ids):
        return np.zeros(len(ids), bool)
    at = np.searchsorted(among_ids, ids).clip(max=len(among_ids) - 1)
    return (among_ids[at] == ids) & (among_stamps[at] == stamps)


class WindowIndex:
    """The kept index of one database's windows by ``model`` at ``revision``, under ``root``."""

    def __init__(self, engine: Engine, model: str, revision: str, root: Path,
                 approximate_above: int = 10_000_000):
        self.engine, self.model, self.revision = engine, model, revision
        self.folder = Path(root).expanduser() / _folder_name(engine, model, revision)
        self.approximate_above = approximate_above
        self.damaged: list[str] = []  # one line for each row left out, damaged in the database

    def nearest(self, query: np.ndarray, limit: int, approximate: bool | None = None) -> list[WindowHit]:
        """The ``limit`` windows most similar to ``query`` (a unit vector), best first, as the
        database holds them now: all compared, or with ``approximate`` (by default past
        ``approximate_above`` windows) the candidates of ``vectors.approximate_index``."""
        query = np.asarray(query, dtype=np.float32)
        segments, ann = self.synced(approximate=approximate)
        windows = self._current(segments, ann, query, limit, strict=True)
        if windows is None:
            # A hit SQL holds otherwise: check every segment and take in every change, once;
            # what still differs after that was written during this query and is left out.
            segments, ann = self.synced(check=True, approximate=approximate)
            windows = self._current(segments, ann, query, limit, strict=False)
        if _to_merge(segments):
            # Not a daemon: a process that answered waits for it before exiting.
            threading.Thread(target=self._compact_quietly, name=COMPACTION_THREAD).start()
        return windows

    def _current(self, segments: list[IndexSegment], ann, query: np.ndarray, limit: int,
                 strict: bool) -> list[WindowHit] | None:
        """The best windows of ``segments`` (and of ``ann``, an approximate index and its manifest
        entry, when given) that SQL holds as indexed; None, if ``strict``, when one of them it does not."""
        best = _top(segments, query, limit) if ann is None else _approximate_top(segments, *ann, query, limit)
        found = embeddings.embeddings_by_id(self.engine, self.model, self.revision,
                                       {int(row["embedding"]) for _, row in best})
        current = []
        for similarity, row in best:
            stamp, stored = found.get(int(row["embedding"]), (None, None))
            if (stamp == int(row["stamp"]) and int(row["window"]) < len(stored.vectors)
                    and abs(float(stored.vectors[int(row["window"])] @ query) - similarity) < _TOLERANCE):
                current.append(WindowHit(stored, int(row["window"]), similarity))
        return None if strict and len(current) < len(best) else current

    def synced(self, check: bool = False, approximate: bool | None = False) -> tuple[list[IndexSegment], tuple | None]:
        """The segments, brought up to date with the database, and the approximate index over
        them with its manifest entry when ``approximate`` (None: past ``approximate_above``
        windows), built when missing or stale. With ``check``, every segment's checksum is
        verified and every row compared, whatever the summary says."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with FileLock(self.folder / "lock"):
                manifest = self._manifest()
                segments, damaged = self._open(manifest, check)
                if not damaged and manifest and [seg.entry() for seg in segments] != manifest["segments"]:
                    # Files touched but intact: their new stats spare the next query their checksums.
                    manifest = {**manifest, "segments": [seg.entry() for seg in segments]}
                    self._commit(manifest)
                held_upto = manifest["state"]["upto"] if manifest else 0
                held, now = embeddings.embeddings_state(self.engine, self.model, self.revision, held_upto)
                if manifest and not damaged and not check and manifest["state"] == asdict(held):
                    if now.upto > held.upto:
                        manifest, segments = self._update(manifest, segments, held.upto, now)
                else:
                    manifest, segments = self._update(manifest, segments, 0, now)
                self.damaged = list(manifest.get("damaged", {}).values())
                live = sum(len(seg.rows) - seg.masked_rows for seg in segments)
                if approximate is None:
                    approximate = live > self.approximate_above
                return segments, (self._approximate(manifest, segments)
                                  if approximate and live >= approximate_index.MIN_ROWS else None)
        except OSError as exc:
            raise SoundtagError(f"{self.folder}: cannot keep the search index there ({exc.strerror or exc}); "
                                "set SOUNDTAG_INDEX_DIR to a writable folder") from None

    def _manifest(self) -> dict | None:
        """The manifest; None when missing, damaged or of another format, so the index is built anew."""
        try:
            manifest = json.loads((self.folder / "manifest.json").read_text())
            if manifest["format"] != FORMAT or not isinstance(manifest["state"]["upto"], int):
                return None
            return manifest
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _open(self, manifest: dict | None, verify: bool) -> tuple[list[IndexSegment], bool]:
        """The manifest's segments that are as written, and whether any was not (left out: its
        rows are then missing from the index, and fetched again)."""
        segments, damaged = [], False
        for entry in manifest["segments"] if manifest else ():
            try:
                segments.append(open_segment(self.folder, entry, manifest["dim"], verify))
            except (DamagedIndexSegment, KeyError, TypeError) as exc:
                log.warning("search index: %s; rebuilding its rows", exc)
                damaged = True
        return segments, damaged

    def _approximate(self, manifest: dict, segments: list[IndexSegment]) -> tuple | None:
        """The approximate index over ``segments`` and its entry; None while one is built ahead
        (``prepare_approximate``), so the query answers exactly meanwhile rather than waiting; else
        built anew here when it is missing, damaged or covers too little of them."""
        entry = manifest.get("approximate")
        if approximate_index.usable(entry, segments):
            try:
                return approximate_index.load(self.folder, entry), entry
            except (OSError, ValueError, RuntimeError) as exc:
                log.warning("search index: %s; rebuilding the approximate index", exc)
        if _building(self.folder):
            log.info("search index: the approximate index is being built; answering exactly meanwhile")
            return None
        entry = approximate_index.build(self.folder, f"{uuid.uuid4().hex}.faiss", segments, manifest["dim"])
        self._commit({**manifest, "approximate": entry})
        return approximate_index.load(self.folder, entry), entry

    def prepare_approximate(self) -> bool:
        """Bring the segments up to date with the database and build the approximate index over
        them (or extend it with the segments appended since), so that the next approximate query
        finds it ready. Built outside the index's lock: queries meanwhile answer exactly. Returns
        whether it changed; False at once while another process or thread builds it."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with FileLock(self.folder / "ahead.lock", timeout=0):
                segments, _ = self.synced(approximate=False)
                with FileLock(self.folder / "lock"):
                    manifest = self._manifest()
                live = sum(len(seg.rows) - seg.masked_rows for seg in segments)
                entry = manifest.get("approximate") if manifest else None
                if live < approximate_index.MIN_ROWS or (
                        entry and {seg.name for seg in segments} <= set(entry["segments"])
                        and approximate_index.usable(entry, segments)):
                    return False
                name = f"{_AHEAD}{uuid.uuid4().hex}.faiss"
                if approximate_index.usable(entry, segments) and approximate_index.extensible(entry, segments):
                    entry = approximate_index.extend(self.folder, entry, name, segments)
                else:
                    entry = approximate_index.build(self.folder, name, segments, manifest["dim"])
                with FileLock(self.folder / "lock"):
                    self._commit({**self._manifest(), "approximate": entry}, ahead=True)
                return True
        except Timeout:
            return False

    def _update(self, manifest: dict | None, segments: list[IndexSegment], after: int,
                state: embeddings.EmbeddingsState) -> tuple[dict, list[IndexSegment]]:
        """Compare the usable rows with ``id > after`` with those held: mask the stale, append
        the missing, compact, and commit the manifest for ``state``."""
        dim = manifest["dim"] if manifest and segments else None
        empty = np.array(manifest["empty"] if manifest else [], np.int64).reshape(-1, 2)
        ids, stamps = embeddings.embedding_stamps(self.engine, self.model, self.revision, after)
        held = [(k, *seg.embeddings()) for k, seg in enumerate(segments)]
        for k, held_ids, held_stamps, starts, stops in held:
            for start, stop in zip(*(side[(held_ids > after) & ~_present(held_ids, held_stamps, ids, stamps)]
                                     for side in (starts, stops))):
                segments[k].masked.append([int(start), int(stop)])
        empty = empty[(empty[:, 0] <= after) | _present(empty[:, 0], empty[:, 1], ids, stamps)]
        still_empty = set(empty[:, 0].tolist())
        damaged = {key: reason for key, reason in (manifest.get("damaged", {}) if manifest else {}).items()
                   if int(key) in still_empty}
        held_ids = np.concatenate([h[1] for h in held] + [empty[:, 0]])
        held_stamps = np.concatenate([h[2] for h in held] + [empty[:, 1]])
        order = np.argsort(held_ids)
        missing = ~_present(ids, stamps, held_ids[order], held_stamps[order])
        added, skipped, dim = self._fetched(ids[missing], dim, damaged)
        segments += [added] if added else []
        manifest = {"format": FORMAT, "dim": dim, "state": asdict(state), "segments": [seg.entry() for seg in segments],
                    "empty": empty.tolist() + skipped, "damaged": damaged,
                    "approximate": manifest.get("approximate") if manifest else None}
        self._commit(manifest)
        return manifest, segments

    def _fetched(self, ids: np.ndarray, dim: int | None,
                 damaged: dict[str, str]) -> tuple[IndexSegment | None, list[list[int]], int | None]:
        """The rows ``ids`` as a new segment; the (id, stamp) of those that hold no window (a
        damaged row is left out until it changes, and named in ``damaged`` by id); the vectors'
        dimension."""
        writer, skipped = None, []
        try:
            with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
                chunks = iter(embeddings.embedding_rows(self.engine, self.model, self.revision, ids))
                ahead = pool.submit(next, chunks, None)
                while (chunk := ahead.result()) is not None:
                    # The next chunk's SQL runs while this one is inflated: zlib lets go of the GIL.
                    ahead = pool.submit(next, chunks, None)
                    for (row_id, stamp, _), stored in zip(chunk, pool.map(embeddings.unpack_row,
                                                                          [row for *_, row in chunk])):
                        if isinstance(stored, embeddings.Unreadable):
                            log.warning("%s; left out of the search index", stored.reason)
                            damaged[str(row_id)] = stored.reason
                        if isinstance(stored, embeddings.Unreadable) or not len(stored.vectors):
                            skipped.append([row_id, stamp])
                            continue
                        vectors = stored.vectors
                        if writer is None:
                            dim = dim or vectors.shape[1]
                            writer = IndexSegmentWriter(self.folder, uuid.uuid4().hex, dim)
                        writer.add_embedding(row_id, stamp, vectors)
        except BaseException:
            if writer is not None:
                writer.discard()
            raise
        return (writer.close() if writer else None), skipped, dim

    def compact(self) -> bool:
        """Rewrite the segments ``_to_merge`` picks as one; whether the index changed. Returns
        False at once while another process or thread compacts this index."""
        try:
            with FileLock(self.folder / "compact.lock", timeout=0):
                with FileLock(self.folder / "lock"):
                    manifest = self._manifest()
                    chosen = _to_merge(self._open(manifest, False)[0]) if manifest else []
                if not chosen:
                    return False
                merged = merge(self.folder, f"{_MERGING}{uuid.uuid4().hex}", manifest["dim"], chosen)
                with FileLock(self.folder / "lock"):
                    now = self._manifest()
                    held = {entry["name"]: entry for entry in now["segments"]} if now else {}
                    if any(held.get(seg.name) != seg.entry() for seg in chosen):
                        # Masked further (or rebuilt) meanwhile: the merged rows would be stale.
                        log.info("search index: changed during compaction; left for a later query")
                        for ext in FILES if merged else ():
                            (self.folder / f"{merged.name}{ext}").unlink(missing_ok=True)
                        return False
                    gone = {seg.name for seg in chosen}
                    self._commit({**now, "segments": [entry for entry in now["segments"] if entry["name"] not in gone]
                                  + ([merged.entry()] if merged else [])}, compacting=True)
                    return True
        except Timeout:
            return False

    def _compact_quietly(self) -> None:
        try:
            self.compact()
        except OSError as exc:  # the index stays as it was, masked rows and all: still right
            log.warning("search index: could not compact %s (%s)", self.folder, exc.strerror or exc)

    def _commit(self, manifest: dict, compacting: bool = False, ahead: bool = False) -> None:
        staged = self.folder / f"manifest.{uuid.uuid4().hex}.tmp"
        with open(staged, "w") as f:
            json.dump(manifest, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(staged, self.folder / "manifest.json")
        kept = ({"lock", "compact.lock", "ahead.lock", "manifest.json", (manifest.get("approximate") or {}).get("name")}
                | {f"{seg['name']}{ext}" for seg in manifest["segments"] for ext in FILES})
        if compacting or _compacting(self.folder):
            kept |= {path.name for path in self.folder.glob(f"{_MERGING}*")}
        if not ahead and _building(self.folder):
            kept |= {path.name for path in self.folder.glob(f"{_AHEAD}*")}
        for path in self.folder.iterdir():
            # Mapped files stay readable to whoever mapped them after they are unlinked.
            if path.name not in kept:
                path.unlink(missing_ok=True)


def _compacting(folder: Path) -> bool:
    """Whether a compaction holds ``folder``'s compaction lock. Asked under the index's lock: a
    compaction takes that lock before it writes a file, so none starts between this and the clean-up."""
    try:
        with FileLock(folder / "compact.lock", timeout=0):
            return False
    except Timeout:
        return True


def _building(folder: Path) -> bool:
    """Whether ``prepare_approximate`` holds ``folder``'s lock for building ahead. Its lock file
    is made by the first build ahead only: an index no worker builds keeps the files it had."""
    if not (folder / "ahead.lock").exists():
        return False
    try:
        with FileLock(folder / "ahead.lock", timeout=0):
            return False
    except Timeout:
        return True


def _to_merge(segments: list[IndexSegment]) -> list[IndexSegment]:
    """The segments a compaction rewrites as one: those mostly masked, and past MAX_SEGMENTS all
    but the largest."""
    chosen = [seg for seg in segments if seg.masked_rows > COMPACT_SHARE * len(seg.rows)]
    rest = [seg for seg in segments if seg not in chosen]
    if len(rest) + bool(chosen) > MAX_SEGMENTS:
        largest = max(rest, key=lambda seg: len(seg.rows))
        chosen += [seg for seg in rest if seg is not largest]
    return chosen


def _approximate_top(segments: list[IndexSegment], index, entry: dict, query: np.ndarray,
                     limit: int) -> list[tuple[float, np.void]]:
    """(cosine, row) of the ``limit`` best rows: candidates of the approximate ``index`` among the
    segments it covers, every row of those appended since."""
    covered = set(entry["segments"])
    found = [(similarity, segments[k].rows[row])
             for similarity, k, row in approximate_index.top(index, entry, segments, query, limit)]
    found += _top([seg for seg in segments if seg.name not in covered], query, limit)
    return sorted(found, key=lambda hit: -hit[0])[:limit]


def _top(segments: list[IndexSegment], query: np.ndarray, limit: int) -> list[tuple[float, np.void]]:
    """(cosine, row) of the ``limit`` best unmasked rows of all segments, best first."""
    found: list[tuple[float, np.void]] = []
    for seg in segments:
        sims = seg.similarities(query)
        top = np.argpartition(-sims, limit - 1)[:limit] if len(sims) > limit else np.arange(len(sims))
        found += [(float(sims[i]), seg.rows[i]) for i in top if sims[i] > -np.inf]
    return sorted(found, key=lambda hit: -hit[0])[:limit]
