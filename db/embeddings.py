"""Stored audio embeddings: how a result's windows are kept, and the reads that serve relabel,
search, exports and the window index's sync (``embeddings_state``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
from sqlalchemy import BigInteger, Engine, Integer, Row, Text, and_, case, cast, func, select

from db import packing, sql
from db.models import AudioEmbedding, File, JobFile
from soundtag.errors import DamagedData
from soundtag.states import FileState


@dataclass(frozen=True)
class EmbeddingKey:
    """What the audio embeddings of a batch of results are kept under, and how."""

    model_revision: str
    window_s: float
    hop_s: float
    dtype: str  # fp16 or fp32


def embedding_row(key: EmbeddingKey, segments) -> dict | None:
    """The audio_embedding values of one result's windows; None unless every window carries its
    embedding (results scored from stored vectors carry none and rewrite nothing)."""
    if not segments or any(seg.embedding is None for seg in segments):
        return None
    vectors = np.stack([seg.embedding for seg in segments]).astype(packing.DTYPES[key.dtype])
    return {"model_revision": key.model_revision, "window_s": key.window_s, "hop_s": key.hop_s,
            "dtype": key.dtype + packing.PACKED, "dim": vectors.shape[1], "vectors": packing.pack(vectors),
            "starts": packing.pack(np.array([seg.start_s for seg in segments], dtype=np.float64)),
            "ends": packing.pack(np.array([seg.end_s for seg in segments], dtype=np.float64))}


@dataclass(frozen=True)
class StoredEmbeddings:
    """One file's stored window embeddings (float32, unit norm as the model gave them, up to the
    storage's rounding), with the file's metadata so a result made from them keeps it."""

    file_id: int
    uri: str
    starts: np.ndarray
    ends: np.ndarray
    vectors: np.ndarray
    duration_s: float | None
    sample_rate: int | None
    channels: int | None
    content_hash: str | None


@dataclass(frozen=True)
class Unreadable:
    """A file's stored embeddings that cannot be read back (a damaged row), and why, in one line
    that names the file: readers skip it and say so, and the rest goes on."""

    file_id: int
    uri: str
    reason: str


def unpack_row(row) -> StoredEmbeddings | Unreadable:
    """The embeddings a row of ``_EMBEDDING_COLUMNS`` holds, or why they cannot be read."""
    packed = row.dtype.endswith(packing.PACKED)
    kind = packing.DTYPES.get(row.dtype.removesuffix(packing.PACKED))
    if kind is None:
        return Unreadable(row.file_id, row.uri,
                          f"{row.uri}: stored embeddings unreadable (unknown dtype {row.dtype!r})")
    try:
        vectors = packing.unpack(row.vectors, kind, packed).astype(np.float32).reshape(-1, row.dim)
        starts, ends = packing.unpack(row.starts, np.float64, packed), packing.unpack(row.ends, np.float64, packed)
        if not len(starts) == len(ends) == len(vectors):
            raise DamagedData(f"{len(vectors)} vectors for {len(starts)} windows")
    except ValueError as exc:  # DamagedData, or vectors' bytes no multiple of dim
        return Unreadable(row.file_id, row.uri, f"{row.uri}: stored embeddings unreadable ({exc})")
    return StoredEmbeddings(row.file_id, row.uri, starts, ends, vectors, row.duration_s, row.sample_rate,
                            row.channels, row.content_hash)


# What ``unpack_row`` reads of a row.
_EMBEDDING_COLUMNS = (AudioEmbedding.id, AudioEmbedding.file_id, AudioEmbedding.dtype, AudioEmbedding.dim,
                      AudioEmbedding.starts, AudioEmbedding.ends, AudioEmbedding.vectors, File.uri,
                      File.duration_s, File.sample_rate, File.channels, File.content_hash)


def _embeddings_query(model: str, revision: str | None, *columns):
    """Usable stored embeddings of ``model``: taken at the file's current fingerprint."""
    columns = columns or _EMBEDDING_COLUMNS
    query = (select(*columns).select_from(AudioEmbedding).join(File, File.id == AudioEmbedding.file_id)
             .where(AudioEmbedding.model == model, AudioEmbedding.fingerprint == File.fingerprint))
    return query if revision is None else query.where(AudioEmbedding.model_revision == revision)


def stored_embeddings(engine: Engine, model: str, revision: str, window_s: float, hop_s: float,
                      uris: Sequence[str]) -> dict[str, StoredEmbeddings]:
    """Of ``uris``, those whose embeddings by this model revision and window settings are stored
    at the file's current fingerprint (and can be read back), by uri."""
    found: dict[str, StoredEmbeddings] = {}
    with engine.connect() as conn:
        for chunk in sql.chunks(list(uris)):
            for row in conn.execute(_embeddings_query(model, revision).where(
                    AudioEmbedding.window_s == window_s, AudioEmbedding.hop_s == hop_s, File.uri.in_(chunk))):
                stored = unpack_row(row)
                if isinstance(stored, StoredEmbeddings):  # a damaged row: the file is read again instead
                    found[row.uri] = stored
    return found


def embedding_chunks(engine: Engine, model: str, revision: str | None = None, *, job_id: str | None = None,
                     status: FileState | None = None, file_ids: Sequence[int] | None = None,
                     chunk: int = 500) -> Iterable[list[StoredEmbeddings | Unreadable]]:
    """Every file's usable stored embeddings of ``model`` (of one revision, or any), ``chunk``
    files at a time in file order, so memory stays bounded whatever the archive's size; only
    the files of ``job_id`` (with that ``status`` there), or of ``file_ids``, when given. A file
    embedded with several window settings or revisions comes once, with its latest embeddings
    (Unreadable when its row is damaged)."""
    ids_query = _embeddings_query(model, revision, AudioEmbedding.file_id)
    if file_ids is not None:
        ids_query = ids_query.where(sql.among(engine, "scope", AudioEmbedding.file_id, BigInteger(), list(file_ids)))
    if job_id is not None:
        ids_query = ids_query.join(JobFile, and_(JobFile.file_id == File.id, JobFile.job_id == job_id))
        if status is not None:
            ids_query = ids_query.where(JobFile.status == status)
    after = -1
    while True:
        with engine.connect() as conn:
            ids = list(conn.execute(ids_query.where(AudioEmbedding.file_id > after).distinct()
                                    .order_by(AudioEmbedding.file_id).limit(chunk)).scalars())
            if not ids:
                return
            rows = conn.execute(_embeddings_query(model, revision)
                                .where(sql.among(engine, "ids", AudioEmbedding.file_id, BigInteger(), ids))
                                .order_by(AudioEmbedding.file_id, AudioEmbedding.id.desc())).all()
        latest = {}
        for row in rows:
            latest.setdefault(row.file_id, row)
        yield [unpack_row(row) for row in latest.values()]
        after = ids[-1]


def embedded_uris(engine: Engine, model: str, revision: str, uris: Sequence[str]) -> set[str]:
    """Of ``uris``, those with usable stored embeddings by this model revision."""
    found: set[str] = set()
    usable = select(AudioEmbedding.id).where(
        AudioEmbedding.file_id == File.id, AudioEmbedding.model == model, AudioEmbedding.model_revision == revision,
        AudioEmbedding.fingerprint == File.fingerprint).exists()
    with engine.connect() as conn:
        for chunk in sql.chunks(list(uris), 20_000):
            found.update(conn.execute(select(File.uri).where(
                sql.among(engine, "uris", File.uri, Text(), chunk), usable)).scalars())
    return found


def embedding_models(engine: Engine, uris: Sequence[str] | None = None) -> list[str]:
    """The models whose audio embeddings are stored, of ``uris`` only when given."""
    query = select(AudioEmbedding.model).distinct().order_by(AudioEmbedding.model)
    if uris is None:
        with engine.connect() as conn:
            return list(conn.execute(query).scalars())
    found: set[str] = set()
    with engine.connect() as conn:
        for chunk in sql.chunks(list(uris), 20_000):
            found.update(conn.execute(query.join(File, File.id == AudioEmbedding.file_id).where(
                sql.among(engine, "uris", File.uri, Text(), chunk))).scalars())
    return sorted(found)


def embedded_revision(engine: Engine, model: str, file_ids: Sequence[int]) -> str | None:
    """The revision of ``model`` whose usable embeddings of these files are the newest."""
    with engine.connect() as conn:
        for chunk in sql.chunks(list(file_ids)):
            row = conn.execute(_embeddings_query(model, None, AudioEmbedding.model_revision)
                               .where(sql.among(engine, "files", AudioEmbedding.file_id, BigInteger(), chunk))
                               .order_by(AudioEmbedding.id.desc()).limit(1)).first()
            if row is not None:
                return row[0]
    return None


def stored_embeddings_of(engine: Engine, model: str, uri: str) -> tuple[StoredEmbeddings, str] | None:
    """The latest usable stored embeddings of one file by ``model``, with their revision. Raises
    DamagedData, naming the file, when its row cannot be read back."""
    query = _embeddings_query(model, None, *_EMBEDDING_COLUMNS, AudioEmbedding.model_revision)
    with engine.connect() as conn:
        row = conn.execute(query.where(File.uri == uri).order_by(AudioEmbedding.id.desc()).limit(1)).first()
    if row is None:
        return None
    stored = unpack_row(row)
    if isinstance(stored, Unreadable):
        raise DamagedData(stored.reason)
    return stored, row.model_revision


def _micros(stamp: datetime | None) -> int:
    """A created_at as whole microseconds since the epoch (SQLite returns it naive, in UTC)."""
    if stamp is None:
        return 0
    stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
    return (stamp - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)


@dataclass(frozen=True)
class EmbeddingsState:
    """A cheap summary of the usable stored embeddings of a model revision with ids up to
    ``upto``: a copy of them that agrees on all of it holds the same rows, as they are now."""

    upto: int
    rows: int
    id_sum: int
    latest: int  # newest created_at, in microseconds: a replaced row keeps its id, not its stamp
    extra: int  # rows beyond one per file (files embedded with several window settings), all ids


def embeddings_state(engine: Engine, model: str, revision: str, upto: int) -> tuple[EmbeddingsState, EmbeddingsState]:
    """The summary of usable rows with ids up to ``upto``, and of all of them, in one statement."""
    held = AudioEmbedding.id <= upto
    query = _embeddings_query(
        model, revision, func.count(case((held, 1))), func.coalesce(func.sum(case((held, AudioEmbedding.id))), 0),
        func.max(case((held, AudioEmbedding.created_at))), func.count(), func.coalesce(func.sum(AudioEmbedding.id), 0),
        func.max(AudioEmbedding.created_at), func.coalesce(func.max(AudioEmbedding.id), 0),
        func.count() - func.count(AudioEmbedding.file_id.distinct()))
    with engine.connect() as conn:
        rows, id_sum, latest, all_rows, all_sum, all_latest, max_id, extra = conn.execute(query).one()
    return (EmbeddingsState(upto, rows, int(id_sum), _micros(latest), extra),
            EmbeddingsState(max_id, all_rows, int(all_sum), _micros(all_latest), extra))


def windows_estimate(engine: Engine, model: str, revision: str) -> int:
    """About how many windows the usable rows of ``model`` at ``revision`` hold (within one per
    file), from the files' durations and the rows' hops: no vector is read."""
    longer = File.duration_s > AudioEmbedding.window_s
    per_file = case((longer, cast(File.duration_s / AudioEmbedding.hop_s, Integer) + 1), else_=1)
    with engine.connect() as conn:
        return int(conn.execute(_embeddings_query(model, revision, func.coalesce(func.sum(per_file), 0))).scalar())


def embedding_stamps(engine: Engine, model: str, revision: str, after: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(ids, created_at in microseconds), by id, of the usable rows with ``id > after`` that are
    their file's latest among them (as in ``embedding_chunks``): small columns only, no vectors."""
    query = _embeddings_query(model, revision, AudioEmbedding.id, AudioEmbedding.file_id, AudioEmbedding.created_at)
    with engine.connect() as conn:
        rows = conn.execute(query.where(AudioEmbedding.id > after).order_by(AudioEmbedding.id)).all()
    latest = {file_id: (row_id, created_at) for row_id, file_id, created_at in rows}  # ascending ids: the last wins
    ids = np.fromiter((row_id for row_id, _ in latest.values()), np.int64, len(latest))
    stamps = np.fromiter((_micros(created_at) for _, created_at in latest.values()), np.int64, len(latest))
    order = np.argsort(ids)
    return ids[order], stamps[order]


def embedding_rows(engine: Engine, model: str, revision: str, ids: Sequence[int],
                   chunk: int = 500) -> Iterable[list[tuple[int, int, Row]]]:
    """The usable rows of ``ids``, ``chunk`` at a time, each as (id, created_at in microseconds,
    row) where ``unpack_row(row)`` gives its embeddings: reading one by primary key per id,
    whatever the table's size or statistics, so a whole index builds in linear time."""
    query = _embeddings_query(model, revision, *_EMBEDDING_COLUMNS, AudioEmbedding.created_at)
    for part in sql.chunks([int(i) for i in ids], chunk):
        with engine.connect() as conn:
            rows = conn.execute(query.where(sql.among(engine, "ids", AudioEmbedding.id, BigInteger(), part))
                                .order_by(AudioEmbedding.id)).all()
        yield [(row.id, _micros(row.created_at), row) for row in rows]


def embeddings_by_id(engine: Engine, model: str, revision: str,
                     ids: Sequence[int]) -> dict[int, tuple[int, StoredEmbeddings]]:
    """Of the rows ``ids``, those still usable (and readable), by id, with their created_at in
    microseconds."""
    query = _embeddings_query(model, revision, *_EMBEDDING_COLUMNS, AudioEmbedding.created_at)
    with engine.connect() as conn:
        rows = conn.execute(query.where(AudioEmbedding.id.in_(list(ids)))).all()
    found = {row.id: (_micros(row.created_at), unpack_row(row)) for row in rows}
    return {key: value for key, value in found.items() if isinstance(value[1], StoredEmbeddings)}
