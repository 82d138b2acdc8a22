"""Every read and write soundtag makes. Writes are idempotent upserts, so a repeated, resumed or
redelivered batch leaves exactly the rows one clean pass would have left."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
from sqlalchemy import (
    JSON, BigInteger, DateTime, Engine, Float, Integer, String, Text, and_, any_, bindparam, case, column, delete, func,
    literal, or_, select, table, text, true, update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY, REAL
from sqlalchemy.orm import aliased
from sqlalchemy.types import TypeEngine

from db import packing
from db.schema import PgFloats, safe_url
from db.models import (
    AudioEmbedding, File, Job, JobFile, LabelEmbedding, Labeling, Review, Segment, TaxonomyLabel, TaxonomyMember,
    TaxonomyRow, now,
)
from soundtag.errors import JobNotFound
from soundtag.fileref import FileRef
from soundtag.settings import Settings
from soundtag.states import FileState, JobState, Verdict
from soundtag.taxonomy import Taxonomy, taxonomy_from_canonical

CHUNK = 2000  # rows per statement: well under SQLite's and PostgreSQL's parameter limits


@dataclass(frozen=True)
class JobInfo:
    """A row of the ``jobs`` view: what ``status``, ``jobs`` and ``cancel`` print."""

    job_id: str
    kind: str
    state: JobState
    error: str | None
    model: str
    taxonomy: str
    taxonomy_hash: str
    sources: list
    total: int
    done: int
    failed: int
    queued: int
    skipped: int
    cancelled: int
    created_at: datetime
    finished_at: datetime | None


def _insert(engine: Engine, table):
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _chunks(items: Sequence, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def save_taxonomy(engine: Engine, taxonomy: Taxonomy) -> int:
    """The taxonomy's id, recording it when its content hash is new. Its decision policy
    (thresholds, background labels, parents) is not part of the hash: it is rewritten each time,
    so the latest one saved with that hash is the one the decision views apply."""
    with engine.begin() as conn:
        stmt = _insert(engine, TaxonomyRow).values(
            name=taxonomy.name, content_hash=taxonomy.content_hash, body=taxonomy.canonical(),
            labels=taxonomy.names, created_at=now()
        ).on_conflict_do_nothing(index_elements=["content_hash"])
        conn.execute(stmt)
        taxonomy_id = conn.execute(
            select(TaxonomyRow.id).where(TaxonomyRow.content_hash == taxonomy.content_hash)).scalar_one()
        policy = taxonomy.policy()
        conn.execute(delete(TaxonomyMember).where(TaxonomyMember.taxonomy_id == taxonomy_id))
        conn.execute(delete(TaxonomyLabel).where(TaxonomyLabel.taxonomy_id == taxonomy_id))
        conn.execute(TaxonomyLabel.__table__.insert(), [
            {"taxonomy_id": taxonomy_id, "label": node.label, "threshold": node.threshold,
             "background": node.background, "parent": node.parent, "is_group": node.group} for node in policy])
        conn.execute(TaxonomyMember.__table__.insert(), [
            {"taxonomy_id": taxonomy_id, "node": node.label, "label": member}
            for node in policy for member in node.members])
        return taxonomy_id


@dataclass(frozen=True)
class JobSpec:
    """What a worker needs to label a job's files."""

    model: str
    taxonomy_id: int
    taxonomy: Taxonomy
    options: dict
    state: JobState


def job_spec(engine: Engine, job_id: str) -> JobSpec | None:
    """The job's model, taxonomy and options; None when no such job exists."""
    with engine.connect() as conn:
        job = conn.execute(select(Job.model, Job.taxonomy_id, Job.options, Job.state, TaxonomyRow.body)
                           .join(TaxonomyRow, TaxonomyRow.id == Job.taxonomy_id).where(Job.id == job_id)).one_or_none()
    if job is None:
        return None
    return JobSpec(job.model, job.taxonomy_id, taxonomy_from_canonical(job.body), job.options or {}, JobState(job.state))


def create_job(engine: Engine, taxonomy: Taxonomy, settings: Settings, *, kind: str, sources: list[str],
               queue: str | None = None, force: bool = False) -> str:
    """Record a new active job of ``settings.model`` and ``taxonomy``; returns its id. A ``force``
    job labels its files from their audio even where stored embeddings could serve."""
    job_id = uuid.uuid4().hex[:12]
    options = {"window_s": settings.window_s, "hop_s": settings.hop_s, "batch_size": settings.batch_size,
               "queue": queue or settings.queue, "force": force}
    taxonomy_id = save_taxonomy(engine, taxonomy)
    with engine.begin() as conn:
        conn.execute(_insert(engine, Job).values(
            id=job_id, kind=kind, model=settings.model_ref, taxonomy_id=taxonomy_id, sources=sources,
            options=options, state=JobState.ACTIVE, created_at=now()))
    return job_id


def _pg_numbers(values: Iterable, kind: type = float) -> str:
    """A PostgreSQL array literal of numbers (None: NULL): one string that the server parses, where
    psycopg would adapt a list one Python object at a time. repr gives every double back exactly."""
    return "{" + ",".join("NULL" if v is None else repr(kind(v)) for v in values) + "}"


def _relation(engine: Engine, name: str, columns: dict[str, TypeEngine], rows: list[tuple],
              arrays: dict[str, tuple[TypeEngine, np.ndarray]] | None = None):
    """``rows`` as a table to select from, in one statement whatever their number: arrays
    unnested on PostgreSQL, one JSON document on SQLite. Per-row parameters would make a
    100,000-file enqueue spend its time building SQL. ``arrays`` adds array columns, one row of
    each 2-D array per row: on PostgreSQL one flat array, sliced."""
    arrays = arrays or {}
    if engine.dialect.name == "postgresql":
        params, unnested = {}, []
        for i, (col, kind) in enumerate(columns.items()):
            values = [row[i] for row in rows]
            if kind._type_affinity in (Integer, Float):
                params[f"{name}_{col}"] = _pg_numbers(values, int if kind._type_affinity is Integer else float)
                unnested.append(f"CAST(:{name}_{col} AS {kind.compile(dialect=engine.dialect)}[])")
            else:
                params[f"{name}_{col}"] = bindparam(f"{name}_{col}", values, type_=ARRAY(kind))
                unnested.append(f":{name}_{col}")
        picks, flat = [f'r."{col}"' for col in columns], []
        for col, (kind, values) in arrays.items():
            width = values.shape[1]
            params[f"{name}_{col}"] = bindparam(f"{name}_{col}", PgFloats.of(
                values.astype(np.float32 if isinstance(kind, REAL) else np.float64)))
            flat.append(f'CAST(:{name}_{col} AS {kind.compile(dialect=engine.dialect)}[]) AS "{col}"')
            picks.append(f'f."{col}"[(r.n - 1) * {width} + 1 : r.n * {width}] AS "{col}"')
        names = ", ".join(f'"{col}"' for col in columns)
        sql = f"SELECT {', '.join(picks)} FROM unnest({', '.join(unnested)}) WITH ORDINALITY AS r({names}, n)"
        if flat:
            # Cast once: inline, each row's slice would cast the whole array again.
            sql = f"WITH f AS MATERIALIZED (SELECT {', '.join(flat)}) {sql}, f"
        query = text(sql).bindparams(*(p for p in params.values() if not isinstance(p, str)),
                                     **{k: p for k, p in params.items() if isinstance(p, str)})
    else:
        picks = ", ".join(f"json_extract(value, '$[{i}]') AS \"{col}\"" for i, col in enumerate([*columns, *arrays]))
        if arrays:
            rows = [(*row, *extra) for row, *extra in zip(rows, *(values.tolist() for _, values in arrays.values()))]
        query = text(f"SELECT {picks} FROM json_each(:{name}_rows)").bindparams(**{f"{name}_rows": json.dumps(rows)})
    return query.columns(*(column(c, t) for c, t in columns.items()),
                         *(column(c, ARRAY(t) if engine.dialect.name == "postgresql" else JSON())
                           for c, (t, _) in arrays.items())).subquery(name)


def _among(engine: Engine, name: str, col, kind: TypeEngine, values: Sequence):
    """``col IN values`` with one parameter however many values: an expanded IN list of
    thousands took longer to send, parse and plan than the statement took to run. On PostgreSQL
    ``= ANY(array)``, which the planner sizes from the array even where statistics are missing."""
    if engine.dialect.name == "postgresql":
        return col == any_(bindparam(name, list(values), type_=ARRAY(kind)))
    return col.in_(select(_relation(engine, name, {"value": kind}, [(v,) for v in values]).c.value))


def add_files(engine: Engine, job_id: str, refs: Iterable[FileRef], *, force: bool = False,
              retry_failed: bool = False) -> list[tuple[int, str]]:
    """Register the files of a job. Returns (file id, uri) of those to label. The others are
    marked skipped: already labeled by the job's model and taxonomy at the same fingerprint, or
    failed at the same fingerprint (unless ``retry_failed``); ``force`` skips nothing.

    A file's row keeps the outcome of its latest attempt: only a new or changed file (another
    fingerprint) becomes queued, so a job that is cancelled or fails erases nothing."""
    with engine.connect() as conn:
        job = conn.execute(select(Job.model, Job.taxonomy_id).where(Job.id == job_id)).one()
    todo: list[tuple[int, str]] = []
    refs = list({ref.uri: ref for ref in refs}.values())
    for chunk in _chunks(refs, 20_000):
        stamp = literal(now(), DateTime(timezone=True))
        found = _relation(engine, "found", {"uri": Text(), "fingerprint": Text(), "size_bytes": BigInteger(),
                                            "truth": Text()},
                          [(r.uri, r.fingerprint, r.size_bytes, r.truth) for r in chunk])
        upsert = _insert(engine, File).from_select(
            ["uri", "fingerprint", "size_bytes", "truth", "status", "created_at", "updated_at"],
            # WHERE true: SQLite cannot otherwise tell the upsert's ON from a join's.
            select(found.c.uri, found.c.fingerprint, found.c.size_bytes, found.c.truth, literal(FileState.QUEUED),
                   stamp, stamp).where(true()))
        changed = File.fingerprint.is_distinct_from(upsert.excluded.fingerprint)
        upsert = upsert.on_conflict_do_update(index_elements=["uri"], set_={
            "fingerprint": upsert.excluded.fingerprint,
            "size_bytes": func.coalesce(upsert.excluded.size_bytes, File.size_bytes),
            "truth": func.coalesce(upsert.excluded.truth, File.truth),
            "status": case((changed, literal(FileState.QUEUED)), else_=File.status),
            "error": case((changed, literal(None, Text())), else_=File.error),
        # A row never updated since its insert has no result: only the others need the look-up
        # of results (none, when an archive is new).
        }).returning(File.id, File.uri, File.created_at == File.updated_at, File.status)
        with engine.begin() as conn:
            ids = conn.execute(upsert).all()
            touched = [(file_id,) for file_id, _, untouched, _ in ids if not untouched]
            skip: set[int] = set()
            if touched and not force:
                known = _relation(engine, "known", {"file_id": BigInteger()}, touched)
                skip = set(conn.execute(
                    select(Labeling.file_id).join(File, File.id == Labeling.file_id)
                    .join(known, known.c.file_id == File.id)
                    .where(Labeling.model == job.model, Labeling.taxonomy_id == job.taxonomy_id,
                           Labeling.fingerprint == File.fingerprint)).scalars())
                if not retry_failed:
                    skip.update(file_id for file_id, _, _, status in ids if status == FileState.FAILED)
            entries = _relation(engine, "entries", {"file_id": BigInteger(), "status": Text()},
                                [(file_id, FileState.SKIPPED if file_id in skip else FileState.QUEUED)
                                 for file_id, _, _, _ in ids])
            conn.execute(_insert(engine, JobFile).from_select(
                ["job_id", "file_id", "status", "updated_at"],
                select(literal(job_id), entries.c.file_id, entries.c.status, stamp).where(true()),
            ).on_conflict_do_nothing())
        todo.extend((file_id, uri) for file_id, uri, _, _ in ids if file_id not in skip)
    return todo


def new_or_changed(engine: Engine, refs: Sequence[FileRef], model: str,
                   taxonomy_id: int) -> tuple[list[FileRef], int, int]:
    """Of ``refs``, those not yet labeled by ``model`` + taxonomy at their current fingerprint,
    not already queued for it, and not failed at that same fingerprint. Returns them with the
    count of new files and of changed ones."""
    fresh: list[FileRef] = []
    new = changed = 0
    with engine.connect() as conn:
        for chunk in _chunks(list({ref.uri: ref for ref in refs}.values())):
            known = {row.uri: row for row in conn.execute(
                select(File.id, File.uri, File.fingerprint, File.status).where(File.uri.in_([r.uri for r in chunk])))}
            ids = [row.id for row in known.values()]
            settled = set(conn.execute(select(Labeling.file_id).join(File, File.id == Labeling.file_id).where(
                Labeling.file_id.in_(ids), Labeling.model == model, Labeling.taxonomy_id == taxonomy_id,
                Labeling.fingerprint == File.fingerprint)).scalars())
            settled |= set(conn.execute(select(JobFile.file_id).join(Job, Job.id == JobFile.job_id).where(
                JobFile.file_id.in_(ids), JobFile.status == FileState.QUEUED, Job.state == JobState.ACTIVE,
                Job.model == model, Job.taxonomy_id == taxonomy_id)).scalars())
            for ref in chunk:
                row = known.get(ref.uri)
                if row is None:
                    new += 1
                elif row.fingerprint != ref.fingerprint:
                    changed += 1
                elif row.id in settled or row.status == FileState.FAILED:
                    continue
                else:
                    new += 1  # known file, but new to this model and taxonomy
                fresh.append(ref)
    return fresh, new, changed


@dataclass(frozen=True)
class EmbeddingKey:
    """What the audio embeddings of a batch of results are kept under, and how."""

    model_revision: str
    window_s: float
    hop_s: float
    dtype: str  # fp16 or fp32


def _embedding_row(key: EmbeddingKey, segments) -> dict | None:
    """The audio_embedding values of one result's windows; None unless every window carries its
    embedding (results scored from stored vectors carry none and rewrite nothing)."""
    if not segments or any(seg.embedding is None for seg in segments):
        return None
    vectors = np.stack([seg.embedding for seg in segments]).astype(packing.DTYPES[key.dtype])
    return {"model_revision": key.model_revision, "window_s": key.window_s, "hop_s": key.hop_s,
            "dtype": key.dtype + packing.PACKED, "dim": vectors.shape[1], "vectors": packing.pack(vectors),
            "starts": packing.pack(np.array([seg.start_s for seg in segments], dtype=np.float64)),
            "ends": packing.pack(np.array([seg.end_s for seg in segments], dtype=np.float64))}


def _save_windows(engine: Engine, conn, labeling_ids: list[int], done: Sequence, labels: Sequence[str]) -> None:
    """The segment rows of these results' windows: their cosines in float4, as the table keeps
    them, and the rank-1 label taken from those (the first of equal best ones), so that the
    views' rank-1 row is the best of what is stored."""
    counts = [len(r.segments) for r in done]
    segments = [seg for r in done for seg in r.segments]
    if not segments:
        return
    cosines = np.array([seg.similarity for seg in segments], dtype=np.float32)
    best = cosines.argmax(axis=1)
    picked = np.arange(len(segments))
    top_scores = np.array([seg.scores for seg in segments], dtype=np.float64)[picked, best].astype(np.float32)
    owners = np.repeat(labeling_ids, counts)
    windows = picked - np.repeat(np.cumsum(counts) - counts, counts)
    rows = list(zip(owners.tolist(), windows.tolist(), [seg.start_s for seg in segments],
                    [seg.end_s for seg in segments], [labels[b] for b in best.tolist()], top_scores.tolist(),
                    cosines[picked, best].tolist()))
    for start in range(0, len(rows), 20_000):
        part = _relation(engine, "windows", {
            "labeling_id": BigInteger(), "window": Integer(), "start_s": Float(), "end_s": Float(),
            "top_label": Text(), "top_score": Float(), "top_similarity": Float()}, rows[start:start + 20_000],
            arrays={"similarities": (REAL(), cosines[start:start + 20_000])})
        conn.execute(_insert(engine, Segment).from_select(
            ["labeling_id", "window", "start_s", "end_s", "top_label", "top_score", "top_similarity", "similarities"],
            select(*part.c)))


def save_results(engine: Engine, job_id: str, results: Sequence, labels: Sequence[str],
                 embeddings: EmbeddingKey | None = None, *, logit_scale: float) -> None:
    """Store a batch of FileResults (worker.labeling) of one job in one transaction, a few
    set-based statements whatever the batch's size. A failed file keeps the results earlier jobs
    gave it; its row says the latest attempt failed. ``logit_scale`` is the model's (its
    exp(logit_scale_a)), from which the views compute window scores. With ``embeddings``, the
    windows' audio embeddings are kept too (replacing those of the same key)."""
    if not results:
        return
    stamp = now()
    results = list({r.uri: r for r in results}.values())
    with engine.begin() as conn:
        job = conn.execute(select(Job.model, Job.taxonomy_id).where(Job.id == job_id)).one()
        files = conn.execute(select(File.uri, File.id, File.fingerprint)
                             .where(_among(engine, "uris", File.uri, Text(), [r.uri for r in results]))).all()
        ids = {uri: file_id for uri, file_id, _ in files}
        fingerprints = {file_id: fingerprint for _, file_id, fingerprint in files}
        outcome = _relation(engine, "outcome", {
            "file_id": BigInteger(), "status": Text(), "error": Text(), "duration_s": Float(),
            "sample_rate": Integer(), "channels": Integer(), "content_hash": Text()},
            [(ids[r.uri], FileState.DONE if r.ok else FileState.FAILED, r.error, r.duration_s, r.sample_rate,
              r.channels, r.content_hash) for r in results])
        conn.execute(update(File).where(File.id == outcome.c.file_id).values(
            status=outcome.c.status, error=outcome.c.error, duration_s=outcome.c.duration_s,
            sample_rate=outcome.c.sample_rate, channels=outcome.c.channels, content_hash=outcome.c.content_hash,
            updated_at=stamp))
        conn.execute(update(JobFile).where(JobFile.job_id == job_id, JobFile.file_id == outcome.c.file_id)
                     .values(status=outcome.c.status, error=outcome.c.error, updated_at=stamp))
        done = [r for r in results if r.ok]
        if not done:
            return
        file_ids = [ids[r.uri] for r in done]
        scores = np.array([r.scores for r in done], dtype=np.float64)
        cosines = np.array([r.similarity for r in done], dtype=np.float64)
        # Rank 1 is the first of equal best scores in label order, as in ``_best``.
        best = scores.argmax(axis=1)
        labeled = _relation(engine, "labeled", {
            "file_id": BigInteger(), "fingerprint": Text(), "content_hash": Text(), "top_label": Text(),
            "top_score": Float(), "top_similarity": Float()},
            [(file_id, fingerprints[file_id], r.content_hash, labels[b], s, c) for file_id, r, b, s, c in zip(
                file_ids, done, best.tolist(), scores[np.arange(len(done)), best].tolist(),
                cosines[np.arange(len(done)), best].tolist())],
            arrays={"scores": (Float(), scores), "similarities": (Float(), cosines)})
        stmt = _insert(engine, Labeling).from_select(
            ["file_id", "model", "taxonomy_id", "job_id", "fingerprint", "content_hash", "created_at", "top_label",
             "top_score", "top_similarity", "scores", "similarities", "logit_scale"],
            select(labeled.c.file_id, literal(job.model, Text()), literal(job.taxonomy_id, BigInteger()),
                   literal(job_id, Text()), labeled.c.fingerprint, labeled.c.content_hash,
                   literal(stamp, DateTime(timezone=True)), labeled.c.top_label, labeled.c.top_score,
                   labeled.c.top_similarity, labeled.c.scores, labeled.c.similarities,
                   literal(float(logit_scale), Float())).where(true()))
        # The upsert takes the row locks, so two deliveries of one file serialise here and the
        # second replaces the first's windows instead of interleaving with them.
        stmt = stmt.on_conflict_do_update(index_elements=["file_id", "model", "taxonomy_id"], set_={
            name: stmt.excluded[name] for name in (
                "job_id", "fingerprint", "content_hash", "created_at", "top_label", "top_score", "top_similarity",
                "scores", "similarities", "logit_scale")}).returning(Labeling.file_id, Labeling.id)
        labeling_ids = dict(conn.execute(stmt).all())
        conn.execute(delete(Segment).where(
            _among(engine, "labelings", Segment.labeling_id, BigInteger(), list(labeling_ids.values()))))
        _save_windows(engine, conn, [labeling_ids[file_id] for file_id in file_ids], done, labels)
        kept = []
        for r in done if embeddings else ():
            row = _embedding_row(embeddings, r.segments)
            if row is not None:
                kept.append({"file_id": ids[r.uri], "model": job.model, "fingerprint": fingerprints[ids[r.uri]],
                             "created_at": stamp, **row})
        if kept:
            stmt = _insert(engine, AudioEmbedding)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["file_id", "model", "model_revision", "window_s", "hop_s"],
                set_={k: stmt.excluded[k] for k in ("fingerprint", "dtype", "dim", "starts", "ends", "vectors",
                                                    "created_at")}), kept)


def queued_uris(engine: Engine, job_id: str) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(File.uri).join(JobFile, JobFile.file_id == File.id)
                                 .where(JobFile.job_id == job_id, JobFile.status == FileState.QUEUED)
                                 .order_by(File.id)).scalars())


def pending_uris(engine: Engine, job_id: str, uris: Sequence[str]) -> list[str]:
    """Of ``uris``, those the job still wants labeled: the job is active and the file is queued
    in it (not cancelled, not already finished)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(File.uri).join(JobFile, JobFile.file_id == File.id).join(Job, Job.id == JobFile.job_id)
            .where(JobFile.job_id == job_id, JobFile.status == FileState.QUEUED, Job.state == JobState.ACTIVE,
                   File.uri.in_(uris))).scalars()
        wanted = set(rows)
    return [uri for uri in uris if uri in wanted]


def fail_files(engine: Engine, job_id: str, uris: Sequence[str], reason: str) -> None:
    """Mark files still queued in this job failed without results (e.g. a file that kept
    crashing its worker); files of other jobs are not touched."""
    stamp = now()
    with engine.begin() as conn:
        ids = list(conn.execute(
            select(JobFile.file_id).join(File, File.id == JobFile.file_id)
            .where(JobFile.job_id == job_id, JobFile.status == FileState.QUEUED, File.uri.in_(uris))).scalars())
        conn.execute(update(File).where(File.id.in_(ids)).values(status=FileState.FAILED, error=reason,
                                                                 updated_at=stamp))
        conn.execute(update(JobFile).where(JobFile.job_id == job_id, JobFile.file_id.in_(ids))
                     .values(status=FileState.FAILED, error=reason, updated_at=stamp))


def finish_job_if_done(engine: Engine, job_id: str) -> None:
    """Mark an active job completed once none of its files is queued."""
    with engine.begin() as conn:
        queued = select(JobFile.file_id).where(JobFile.job_id == job_id, JobFile.status == FileState.QUEUED).exists()
        conn.execute(update(Job).where(Job.id == job_id, Job.state == JobState.ACTIVE, ~queued)
                     .values(state=JobState.COMPLETED, finished_at=now()))


def fail_job(engine: Engine, job_id: str, reason: str) -> bool:
    """Mark an active job failed as a whole (its model cannot load...). Its files stay queued, for
    ``requeue`` after the fix, and no file is marked failed. Returns whether this call failed it."""
    with engine.begin() as conn:
        return conn.execute(update(Job).where(Job.id == job_id, Job.state == JobState.ACTIVE).values(
            state=JobState.FAILED, error=reason, finished_at=now())).rowcount == 1


def reactivate_job(engine: Engine, job_id: str) -> None:
    """Make a failed job active again, before its queued files are sent once more."""
    with engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == job_id, Job.state == JobState.FAILED).values(
            state=JobState.ACTIVE, error=None, finished_at=None))


def cancel_job(engine: Engine, job_id: str, reason: str | None = None) -> int:
    """Drop the job's queued work; finished results stay. Returns how many files were dropped."""
    stamp = now()
    with engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == job_id, Job.state.in_([JobState.ACTIVE, JobState.FAILED]))
                     .values(state=JobState.CANCELLED, error=reason, finished_at=stamp))
        return conn.execute(update(JobFile).where(JobFile.job_id == job_id, JobFile.status == FileState.QUEUED)
                            .values(status=FileState.CANCELLED, updated_at=stamp)).rowcount


_JOBS = table("jobs", *(column(name, kind) for name, kind in {
    "job_id": String(), "kind": String(), "state": String(), "error": Text(), "model": Text(),
    "taxonomy": Text(), "taxonomy_hash": String(), "sources": JSON(), "total": Integer(), "done": Integer(),
    "failed": Integer(), "queued": Integer(), "skipped": Integer(), "cancelled": Integer(),
    "created_at": DateTime(timezone=True), "finished_at": DateTime(timezone=True)}.items()))


def jobs(engine: Engine, job_id: str | None = None, limit: int = 20) -> list[JobInfo]:
    """Rows of the public ``jobs`` view, newest first: one job, or the latest ``limit``."""
    query = select(_JOBS)
    query = query.where(_JOBS.c.job_id == job_id) if job_id else query.order_by(_JOBS.c.created_at.desc()).limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [JobInfo(**{**row._mapping, "state": JobState(row.state)}) for row in rows]


def job_info(engine: Engine, job_id: str) -> JobInfo:
    """The job's row of the ``jobs`` view. Raises JobNotFound."""
    found = jobs(engine, job_id)
    if not found:
        raise JobNotFound(f"job {job_id}: not found in {safe_url(engine)}")
    return found[0]


def label_embeddings(engine: Engine, model: str, revision: str, taxonomy_id: int) -> np.ndarray | None:
    """The stored text embeddings of a taxonomy's labels by this model, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(LabelEmbedding.dim, LabelEmbedding.vectors).where(
            LabelEmbedding.model == model, LabelEmbedding.model_revision == revision,
            LabelEmbedding.taxonomy_id == taxonomy_id)).one_or_none()
    return None if row is None else np.frombuffer(row.vectors, dtype=np.float32).reshape(-1, row.dim)


def save_label_embeddings(engine: Engine, model: str, revision: str, taxonomy_id: int, vectors: np.ndarray) -> None:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    with engine.begin() as conn:
        conn.execute(_insert(engine, LabelEmbedding).values(
            model=model, model_revision=revision, taxonomy_id=taxonomy_id, dim=vectors.shape[1],
            vectors=vectors.tobytes(), created_at=now()).on_conflict_do_nothing())


@dataclass(frozen=True)
class Prediction:
    uri: str
    truth: str | None
    labels: tuple[str, ...]  # best first; empty when the file has no result
    decision: str | None  # as file_decisions makes it; None when the file abstains or has no result
    tags: frozenset[str]  # as file_tags makes them: the labels and groups that pass their thresholds


def _best(scores: Sequence[float], k: int) -> list[int]:
    """Positions of the ``k`` best of a result's scores, ties by label order (the views' ranks)."""
    return [int(i) for i in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[:k]]


def _reviewed_truth(given: dict[int, tuple[Verdict, str | None]], file_id: int) -> str | None:
    """A file's truth from the verdict in force: its label when accepted or corrected; none when
    rejected or not reviewed."""
    verdict, label = given.get(file_id, (Verdict.REJECT, None))
    return None if verdict == Verdict.REJECT else label


def job_predictions(engine: Engine, job_id: str, k: int = 5, reviewed: bool = False) -> list[Prediction]:
    """Each file of a job with its truth, its first ``k`` labels by the job's model and taxonomy
    (the current result, whichever job made it), and its decision and tags under the taxonomy's
    current thresholds. With ``reviewed`` the truth is the label of the verdict in force (accept
    or correct); a file without one, or rejected, has none."""
    given = verdicts(engine, job_id) if reviewed else {}
    spec = job_spec(engine, job_id)
    names = spec.taxonomy.names
    with engine.connect() as conn:
        rows = conn.execute(
            select(File.uri, File.truth, Labeling.scores, File.id).select_from(JobFile)
            .join(File, File.id == JobFile.file_id)
            .outerjoin(Labeling, and_(Labeling.file_id == File.id, Labeling.model == spec.model,
                                      Labeling.taxonomy_id == spec.taxonomy_id))
            .where(JobFile.job_id == job_id).order_by(File.uri)).all()
    labeled = [file_id for _, _, scores, file_id in rows if scores is not None]
    decided = model_decisions(engine, spec.model, spec.taxonomy_id, labeled)
    tagged = model_tags(engine, spec.model, spec.taxonomy_id, labeled)
    found: list[Prediction] = []
    for uri, truth, scores, file_id in rows:
        if reviewed:
            truth = _reviewed_truth(given, file_id)
        labels = tuple(names[i] for i in _best(scores, k)) if scores is not None else ()
        found.append(Prediction(uri, truth, labels, decided.get(file_id), tagged.get(file_id, frozenset())))
    return found


def job_cosines(engine: Engine, job_id: str, reviewed: bool = False) -> list[tuple[str, str | None, dict[str, float]]]:
    """Each labeled file of a job with its truth and the cosine of every label, by the job's
    model and taxonomy. With ``reviewed`` the truth is the verdict in force, as in job_predictions."""
    given = verdicts(engine, job_id) if reviewed else {}
    spec = job_spec(engine, job_id)
    names = spec.taxonomy.names
    with engine.connect() as conn:
        rows = conn.execute(
            select(File.id, File.uri, File.truth, Labeling.similarities).select_from(JobFile)
            .join(File, File.id == JobFile.file_id)
            .join(Labeling, and_(Labeling.file_id == File.id, Labeling.model == spec.model,
                                 Labeling.taxonomy_id == spec.taxonomy_id))
            .where(JobFile.job_id == job_id).order_by(File.uri)).all()
    found: dict[str, tuple[str | None, dict[str, float]]] = {}
    for file_id, uri, truth, similarities in rows:
        if reviewed:
            truth = _reviewed_truth(given, file_id)
        found[uri] = (truth, dict(zip(names, map(float, similarities))))
    return [(uri, truth, cosines) for uri, (truth, cosines) in found.items()]


def taxonomy_with_policy(engine: Engine, taxonomy_id: int) -> Taxonomy:
    """The stored taxonomy with the decision policy last saved for it (thresholds as stored:
    each label's and group's effective one)."""
    with engine.connect() as conn:
        body = conn.execute(select(TaxonomyRow.body).where(TaxonomyRow.id == taxonomy_id)).scalar_one()
        rows = conn.execute(select(TaxonomyLabel.label, TaxonomyLabel.threshold, TaxonomyLabel.background,
                                   TaxonomyLabel.parent, TaxonomyLabel.is_group)
                            .where(TaxonomyLabel.taxonomy_id == taxonomy_id).order_by(TaxonomyLabel.label)).all()
    policy = {label: {"threshold": threshold, "background": bool(background), "parent": parent}
              for label, threshold, background, parent, _ in rows}
    labels = [{**entry, **{k: v for k, v in policy.get(entry["name"], {}).items()
                           if v is not None and not (k == "threshold" and policy[entry["name"]]["background"])}}
              for entry in body["labels"]]
    groups = [{"name": label, "threshold": threshold} for label, threshold, _, _, is_group in rows
              if is_group and threshold is not None]
    return taxonomy_from_canonical({**body, "labels": labels, "groups": groups})


_FILE_DECISIONS = table("file_decisions", column("uri"), column("model"), column("taxonomy_hash"), column("label"),
                        column("score"), column("similarity"), column("implied_by"))


def model_decisions(engine: Engine, model: str, taxonomy_id: int, file_ids: Sequence[int]) -> dict[int, str]:
    """The model's decision on each of these files, as the ``file_decisions`` view makes it under
    the taxonomy's current thresholds; a file that abstains has none. (The ``reviewed_labels``
    view still takes the rank-1 label: it is frozen at its version.)"""
    d = _FILE_DECISIONS
    return dict(_view_labels(engine, d, model, taxonomy_id, file_ids, d.c.implied_by.is_(None), d.c.label.is_not(None)))


def _view_labels(engine: Engine, view, model: str, taxonomy_id: int, file_ids: Sequence[int],
                 *conditions) -> Iterator[tuple[int, str]]:
    """(file id, label) of a decision view's rows for these files, model and taxonomy."""
    with engine.connect() as conn:
        for chunk in _chunks(list(file_ids)):
            yield from conn.execute(
                select(File.id, view.c.label).join(view, view.c.uri == File.uri)
                .join(TaxonomyRow, TaxonomyRow.content_hash == view.c.taxonomy_hash)
                .where(view.c.model == model, TaxonomyRow.id == taxonomy_id, File.id.in_(chunk), *conditions)).all()


_FILE_TAGS = table("file_tags", column("uri"), column("model"), column("taxonomy_hash"), column("label"))


def model_tags(engine: Engine, model: str, taxonomy_id: int, file_ids: Sequence[int]) -> dict[int, frozenset[str]]:
    """The labels and groups the ``file_tags`` view gives each of these files under the
    taxonomy's current thresholds; a file that nothing tags has none."""
    found: dict[int, set[str]] = {}
    for file_id, label in _view_labels(engine, _FILE_TAGS, model, taxonomy_id, file_ids):
        found.setdefault(file_id, set()).add(label)
    return {file_id: frozenset(labels) for file_id, labels in found.items()}


@dataclass(frozen=True)
class Scored:
    label: str
    score: float
    similarity: float


@dataclass(frozen=True)
class ReviewItem:
    """A labeled file as the review page shows it."""

    file_id: int
    uri: str
    duration_s: float | None
    decision: str | None
    labels: tuple[Scored, ...]  # best first, at most five

    @property
    def margin(self) -> float:
        """Between the first two scores: small when the model hesitated."""
        scores = [s.score for s in self.labels[:2]] + [0.0]
        return scores[0] - scores[1]

    @property
    def similarity(self) -> float:
        return self.labels[0].similarity if self.labels else 0.0


def review_items(engine: Engine, job_id: str, label: str | None = None) -> list[ReviewItem]:
    """The job's files that have a result by its model and taxonomy, by file id; with ``label``,
    only those whose model decision it is."""
    spec = job_spec(engine, job_id)
    names = spec.taxonomy.names
    with engine.connect() as conn:
        rows = conn.execute(
            select(File.id, File.uri, File.duration_s, Labeling.scores, Labeling.similarities)
            .select_from(JobFile).join(File, File.id == JobFile.file_id)
            .join(Labeling, and_(Labeling.file_id == File.id, Labeling.model == spec.model,
                                 Labeling.taxonomy_id == spec.taxonomy_id))
            .where(JobFile.job_id == job_id).order_by(File.id)).all()
    files = {file_id: (uri, duration, tuple(Scored(names[i], scores[i], similarities[i]) for i in _best(scores, 5)))
             for file_id, uri, duration, scores, similarities in rows}
    decided = model_decisions(engine, spec.model, spec.taxonomy_id, list(files))
    items = [ReviewItem(file_id, uri, duration, decided.get(file_id), scored)
             for file_id, (uri, duration, scored) in files.items()]
    return [item for item in items if label is None or item.decision == label]


def file_windows(engine: Engine, job_id: str, file_id: int) -> list[tuple[float, float, Scored]]:
    """Each window of the file with its top label by the job's model and taxonomy, in time order."""
    spec = job_spec(engine, job_id)
    with engine.connect() as conn:
        rows = conn.execute(
            select(Segment.start_s, Segment.end_s, Segment.top_label, Segment.top_score, Segment.top_similarity)
            .join(Labeling, Labeling.id == Segment.labeling_id)
            .where(Labeling.file_id == file_id, Labeling.model == spec.model,
                   Labeling.taxonomy_id == spec.taxonomy_id)
            .order_by(Segment.window)).all()
    return [(start, end, Scored(name, score, similarity)) for start, end, name, score, similarity in rows]


@dataclass(frozen=True)
class Window:
    """One window of a file with its rank-1 label."""

    start_s: float
    end_s: float
    label: str
    score: float
    similarity: float


@dataclass(frozen=True)
class Event:
    """A row of the ``events`` view: tagged windows of one label merged."""

    label: str
    start_s: float
    end_s: float
    similarity: float  # the best window's


@dataclass(frozen=True)
class LabeledFile:
    """A file of a job as exports write it: the model's rank-1 label and decision
    (``file_decisions``), the verdict in force and its final label (as ``reviewed_labels`` has
    them) and, when asked, its windows and events."""

    file_id: int
    uri: str
    duration_s: float | None
    sample_rate: int | None
    top: Scored
    scores: tuple[float, ...]  # in the taxonomy's label order
    decision: Scored | None  # None when the model abstains
    final: str | None  # as reviewed_labels.label: the verdict in force's, else the decision
    source: str  # as reviewed_labels.source: human or model
    verdict: Verdict | None
    reviewer: str | None
    windows: tuple[Window, ...] = ()
    events: tuple[Event, ...] = ()

    def label(self, reviewed: bool = False) -> str | None:
        """The file's label: the final one with ``reviewed``, else the model's decision."""
        if reviewed:
            return self.final
        return self.decision.label if self.decision else None


_EVENTS = table("events", column("uri"), column("model"), column("taxonomy_hash"), column("label"), column("start_s"),
                column("end_s"), column("max_similarity"))


class _Following:
    """Rows that begin with a URI, in URI order (byte order), taken file by file in that order:
    one side of a merge join."""

    def __init__(self, rows) -> None:
        self._rows = iter(rows)
        self._next = next(self._rows, None)

    def take(self, uri: str) -> list[tuple]:
        found = []
        while self._next is not None and self._next[0] <= uri:
            if self._next[0] == uri:
                found.append(tuple(self._next[1:]))
            self._next = next(self._rows, None)
        return found


def labeled_files(engine: Engine, job_id: str, *, regions: bool = False,
                  chunk: int = 1000) -> Iterable[list[LabeledFile]]:
    """The job's files that have a result by its model and taxonomy, ``chunk`` at a time in URI
    order; with ``regions``, each with its windows and events. Each view is read once, on its
    own, streamed in URI order beside the files: a view filtered by a chunk's URIs, or joined
    with the job's files, costs as much as the whole view on every chunk or row. The verdicts come
    from the review table, as reviewed_labels takes them: that view joins file_decisions, which
    PostgreSQL plans as nested loops (20 s for 20,000 files, growing with their square)."""
    spec = job_spec(engine, job_id)
    with engine.connect() as conn:
        taxonomy_hash = conn.execute(select(TaxonomyRow.content_hash)
                                     .where(TaxonomyRow.id == spec.taxonomy_id)).scalar_one()
    # Byte order on both sides, as Python compares the URIs; PostgreSQL's default may be a locale's.
    by_uri = (lambda col: col.collate("C")) if engine.dialect.name == "postgresql" else (lambda col: col)

    def view(v, *columns):
        # The taxonomy is kept in Python: filtering the views on taxonomy_hash leads PostgreSQL's
        # planner into nested loops over file_decisions (minutes for 10,000 files, not a second).
        return select(v.c.uri, v.c.taxonomy_hash, *columns).where(v.c.model == spec.model).order_by(by_uri(v.c.uri))

    def mine(rows: list[tuple]) -> list[tuple]:
        return [rest for found_hash, *rest in rows if found_hash == taxonomy_hash]

    d, e = _FILE_DECISIONS, _EVENTS
    with engine.connect() as conn:
        conn = conn.execution_options(yield_per=chunk)
        files = conn.execute(
            select(File.uri, File.id, File.duration_s, File.sample_rate, Labeling.top_label, Labeling.top_score,
                   Labeling.top_similarity, Labeling.scores)
            .select_from(JobFile).join(File, File.id == JobFile.file_id)
            .join(Labeling, and_(Labeling.file_id == File.id, Labeling.model == spec.model,
                                 Labeling.taxonomy_id == spec.taxonomy_id))
            .where(JobFile.job_id == job_id).order_by(by_uri(File.uri)))
        given = _Following(conn.execute(select(File.uri, Review.verdict, Review.label, Review.reviewer)
                                        .join(File, File.id == Review.file_id).where(*_in_force(spec))
                                        .order_by(by_uri(File.uri))))
        decided = _Following(conn.execute(view(d, d.c.label, d.c.score, d.c.similarity)
                                          .where(d.c.label.is_not(None))))
        windows = events = _Following(())
        if regions:
            windows = _Following(conn.execute(
                select(File.uri, Segment.start_s, Segment.end_s, Segment.top_label, Segment.top_score,
                       Segment.top_similarity).join(Labeling, Labeling.id == Segment.labeling_id)
                .join(File, File.id == Labeling.file_id).join(JobFile, JobFile.file_id == File.id)
                .where(JobFile.job_id == job_id, Labeling.model == spec.model, Labeling.taxonomy_id == spec.taxonomy_id)
                .order_by(by_uri(File.uri), Segment.window)))
            events = _Following(conn.execute(view(e, e.c.label, e.c.start_s, e.c.end_s, e.c.max_similarity)
                                             .order_by(e.c.start_s, e.c.end_s, e.c.label)))
        found: list[LabeledFile] = []
        for row in files:
            decision = next((Scored(*scored) for scored in mine(decided.take(row.uri))), None)
            verdict, label, reviewer = next(iter(given.take(row.uri)), (None, None, None))
            if verdict is None:
                label, source = decision.label if decision else None, "model"
            else:
                verdict, source = Verdict(verdict), "human"
                label = None if verdict == Verdict.REJECT else label
            found.append(LabeledFile(
                row.id, row.uri, row.duration_s, row.sample_rate,
                Scored(row.top_label, row.top_score, row.top_similarity), tuple(row.scores), decision, label,
                source, verdict, reviewer, tuple(Window(*w) for w in windows.take(row.uri)),
                tuple(Event(*ev) for ev in mine(events.take(row.uri)))))
            if len(found) == chunk:
                yield found
                found = []
        if found:
            yield found


def job_file_ids(engine: Engine, job_id: str, uris: Sequence[str]) -> dict[str, int]:
    """Of ``uris``, those of the job's files, with their file ids."""
    found: dict[str, int] = {}
    with engine.connect() as conn:
        for part in _chunks(list(uris)):
            found.update(conn.execute(select(File.uri, File.id).join(JobFile, JobFile.file_id == File.id)
                                      .where(JobFile.job_id == job_id, File.uri.in_(part))).all())
    return found


def record_verdict(engine: Engine, job_id: str, file_id: int, verdict: Verdict, reviewer: str,
                   label: str | None = None) -> None:
    """Record a verdict on the job's model decision for the file; it supersedes earlier ones.
    ``label`` is the right label for ``correct`` and ignored otherwise: accept and reject record
    the decision they judged."""
    spec = job_spec(engine, job_id)
    if verdict != Verdict.CORRECT:
        label = model_decisions(engine, spec.model, spec.taxonomy_id, [file_id]).get(file_id)
    record_verdicts(engine, job_id, [(file_id, verdict, reviewer, label)])


def record_verdicts(engine: Engine, job_id: str, given: Sequence[tuple[int, Verdict, str, str | None]]) -> None:
    """Record verdicts (file id, verdict, reviewer, label) on the job's model decisions in one
    transaction, each superseding those before it. ``label`` is as the ``reviews`` view has it:
    the decision judged for accept and reject, the reviewer's label for correct."""
    if not given:
        return
    spec = job_spec(engine, job_id)
    stamp = now()
    with engine.begin() as conn:
        conn.execute(Review.__table__.insert(), [
            {"file_id": file_id, "model": spec.model, "taxonomy_id": spec.taxonomy_id, "job_id": job_id,
             "label": label, "verdict": verdict, "reviewer": reviewer, "reviewed_at": stamp}
            for file_id, verdict, reviewer, label in given])


def _in_force(spec: JobSpec):
    later = Review.__table__.alias("later")
    return (Review.model == spec.model, Review.taxonomy_id == spec.taxonomy_id, Review.undone_at.is_(None),
            ~select(later.c.id).where(later.c.file_id == Review.file_id, later.c.model == Review.model,
                                      later.c.taxonomy_id == Review.taxonomy_id, later.c.undone_at.is_(None),
                                      later.c.id > Review.id).exists())


def undo_verdict(engine: Engine, job_id: str, reviewer: str) -> int | None:
    """Undo the reviewer's latest verdict still in force on the job's model and taxonomy (the one
    before it, if any, is in force again). Returns its file id, or None when there is none."""
    spec = job_spec(engine, job_id)
    with engine.begin() as conn:
        latest = conn.execute(select(Review.id, Review.file_id).where(*_in_force(spec), Review.reviewer == reviewer)
                              .order_by(Review.id.desc()).limit(1)).one_or_none()
        if latest is None:
            return None
        conn.execute(update(Review).where(Review.id == latest.id).values(undone_at=now()))
    return latest.file_id


def verdicts(engine: Engine, job_id: str) -> dict[int, tuple[Verdict, str | None]]:
    """The verdict in force, and its label, for each file reviewed under the job's model and taxonomy."""
    spec = job_spec(engine, job_id)
    with engine.connect() as conn:
        rows = conn.execute(select(Review.file_id, Review.verdict, Review.label).where(*_in_force(spec))).all()
    return {file_id: (Verdict(verdict), label) for file_id, verdict, label in rows}


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


def _stored(row) -> StoredEmbeddings:
    packed = row.dtype.endswith(packing.PACKED)
    kind = packing.DTYPES[row.dtype.removesuffix(packing.PACKED)]
    vectors = packing.unpack(row.vectors, kind, packed).astype(np.float32).reshape(-1, row.dim)
    return StoredEmbeddings(row.file_id, row.uri, packing.unpack(row.starts, np.float64, packed),
                            packing.unpack(row.ends, np.float64, packed), vectors, row.duration_s, row.sample_rate,
                            row.channels, row.content_hash)


# What ``_stored`` reads of a row.
_EMBEDDING_COLUMNS = (AudioEmbedding.id, AudioEmbedding.file_id, AudioEmbedding.dtype, AudioEmbedding.dim,
                      AudioEmbedding.starts, AudioEmbedding.ends, AudioEmbedding.vectors, File.uri,
                      File.duration_s, File.sample_rate, File.channels, File.content_hash)


def _embeddings_query(model: str, revision: str | None, *columns):
    """Usable stored embeddings of ``model``: taken at the file's current fingerprint."""
    columns = columns or _EMBEDDING_COLUMNS
    query = (select(*columns).join(File, File.id == AudioEmbedding.file_id)
             .where(AudioEmbedding.model == model, AudioEmbedding.fingerprint == File.fingerprint))
    return query if revision is None else query.where(AudioEmbedding.model_revision == revision)


def stored_embeddings(engine: Engine, model: str, revision: str, window_s: float, hop_s: float,
                      uris: Sequence[str]) -> dict[str, StoredEmbeddings]:
    """Of ``uris``, those whose embeddings by this model revision and window settings are stored
    at the file's current fingerprint, by uri."""
    found: dict[str, StoredEmbeddings] = {}
    with engine.connect() as conn:
        for chunk in _chunks(list(uris)):
            for row in conn.execute(_embeddings_query(model, revision).where(
                    AudioEmbedding.window_s == window_s, AudioEmbedding.hop_s == hop_s, File.uri.in_(chunk))):
                found[row.uri] = _stored(row)
    return found


def embedding_chunks(engine: Engine, model: str, revision: str | None = None, *, job_id: str | None = None,
                     status: FileState | None = None, chunk: int = 500) -> Iterable[list[StoredEmbeddings]]:
    """Every file's usable stored embeddings of ``model`` (of one revision, or any), ``chunk``
    files at a time in file order, so memory stays bounded whatever the archive's size; only
    the files of ``job_id`` (with that ``status`` there) when given. A file embedded with
    several window settings or revisions comes once, with its latest embeddings."""
    ids_query = _embeddings_query(model, revision, AudioEmbedding.file_id)
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
                                .where(_among(engine, "ids", AudioEmbedding.file_id, BigInteger(), ids))
                                .order_by(AudioEmbedding.file_id, AudioEmbedding.id.desc())).all()
        latest = {}
        for row in rows:
            latest.setdefault(row.file_id, row)
        yield [_stored(row) for row in latest.values()]
        after = ids[-1]


def scope_files(engine: Engine, *, job_ids: Sequence[str] = (), sources: Sequence[str] = ()) -> list[FileRef]:
    """The files of the given jobs, or under the given source URIs (prefixes), or every
    file soundtag labeled successfully, as FileRefs at their current fingerprint."""
    query = select(File.uri, File.fingerprint, File.size_bytes, File.truth)
    if job_ids:
        query = query.where(File.id.in_(select(JobFile.file_id).where(JobFile.job_id.in_(job_ids))))
    elif sources:
        query = query.where(or_(*(File.uri.startswith(source, autoescape=True) for source in sources)))
    else:
        query = query.where(File.id.in_(select(Labeling.file_id)))
    with engine.connect() as conn:
        return [FileRef(row.uri, row.fingerprint, row.size_bytes, truth=row.truth)
                for row in conn.execute(query.order_by(File.id))]


def embedded_uris(engine: Engine, model: str, revision: str, uris: Sequence[str]) -> set[str]:
    """Of ``uris``, those with usable stored embeddings by this model revision."""
    found: set[str] = set()
    usable = select(AudioEmbedding.id).where(
        AudioEmbedding.file_id == File.id, AudioEmbedding.model == model, AudioEmbedding.model_revision == revision,
        AudioEmbedding.fingerprint == File.fingerprint).exists()
    with engine.connect() as conn:
        for chunk in _chunks(list(uris), 20_000):
            found.update(conn.execute(select(File.uri).where(
                _among(engine, "uris", File.uri, Text(), chunk), usable)).scalars())
    return found


def failed_uris(engine: Engine, uris: Sequence[str]) -> set[str]:
    """Of ``uris``, the files whose latest attempt failed (unreadable, corrupt)."""
    found: set[str] = set()
    with engine.connect() as conn:
        for chunk in _chunks(list(uris), 20_000):
            found.update(conn.execute(select(File.uri).where(
                _among(engine, "uris", File.uri, Text(), chunk), File.status == FileState.FAILED)).scalars())
    return found


def embedding_models(engine: Engine, uris: Sequence[str] | None = None) -> list[str]:
    """The models whose audio embeddings are stored, of ``uris`` only when given."""
    query = select(AudioEmbedding.model).distinct().order_by(AudioEmbedding.model)
    if uris is None:
        with engine.connect() as conn:
            return list(conn.execute(query).scalars())
    found: set[str] = set()
    with engine.connect() as conn:
        for chunk in _chunks(list(uris), 20_000):
            found.update(conn.execute(query.join(File, File.id == AudioEmbedding.file_id).where(
                _among(engine, "uris", File.uri, Text(), chunk))).scalars())
    return sorted(found)


def stored_embeddings_of(engine: Engine, model: str, uri: str) -> tuple[StoredEmbeddings, str] | None:
    """The latest usable stored embeddings of one file by ``model``, with their revision."""
    query = _embeddings_query(model, None, *_EMBEDDING_COLUMNS, AudioEmbedding.model_revision)
    with engine.connect() as conn:
        row = conn.execute(query.where(File.uri == uri).order_by(AudioEmbedding.id.desc()).limit(1)).first()
    return None if row is None else (_stored(row), row.model_revision)


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


def latest_embedding_rows(engine: Engine, model: str, revision: str, after: int, upto: int,
                          chunk: int = 500) -> Iterable[list[tuple[int, int, StoredEmbeddings]]]:
    """(id, created_at in microseconds, embeddings) of the usable rows with ``after < id <= upto``
    that are their file's latest (as in ``embedding_chunks``), ``chunk`` rows at a time by id."""
    newer = aliased(AudioEmbedding)
    superseded = select(newer.id).where(
        newer.file_id == AudioEmbedding.file_id, newer.id > AudioEmbedding.id, newer.model == model,
        newer.model_revision == revision, newer.fingerprint == File.fingerprint).exists()
    query = _embeddings_query(model, revision, *_EMBEDDING_COLUMNS, AudioEmbedding.created_at).where(~superseded)
    while True:
        with engine.connect() as conn:
            rows = conn.execute(query.where(AudioEmbedding.id > after, AudioEmbedding.id <= upto)
                                .order_by(AudioEmbedding.id).limit(chunk)).all()
        if not rows:
            return
        yield [(row.id, _micros(row.created_at), _stored(row)) for row in rows]
        after = rows[-1].id


def embeddings_by_id(engine: Engine, model: str, revision: str,
                     ids: Sequence[int]) -> dict[int, tuple[int, StoredEmbeddings]]:
    """Of the rows ``ids``, those still usable, by id, with their created_at in microseconds."""
    query = _embeddings_query(model, revision, *_EMBEDDING_COLUMNS, AudioEmbedding.created_at)
    with engine.connect() as conn:
        rows = conn.execute(query.where(AudioEmbedding.id.in_(list(ids)))).all()
    return {row.id: (_micros(row.created_at), _stored(row)) for row in rows}
