"""Every read and write soundtag makes. Writes are idempotent upserts, so a repeated, resumed or
redelivered batch leaves exactly the rows one clean pass would have left."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import (
    BigInteger, DateTime, Engine, Text, and_, bindparam, column, delete, func, literal, or_, select, text, true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import TypeEngine

from db.models import File, Job, JobFile, LabelScore, Labeling, SegmentScore, TaxonomyRow, now
from soundtag.taxonomy import Taxonomy, taxonomy_from_canonical

CHUNK = 2000  # rows per statement: well under SQLite's and PostgreSQL's parameter limits


@dataclass(frozen=True)
class FileRef:
    """A file found in a source: its URI and what the source says about its version."""

    uri: str
    fingerprint: str | None = None
    size_bytes: int | None = None
    truth: str | None = None


@dataclass(frozen=True)
class JobInfo:
    id: str
    kind: str
    model: str
    taxonomy: str
    sources: list
    state: str
    created_at: datetime
    finished_at: datetime | None
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def pending(self) -> int:
        return self.counts.get("queued", 0)


def _insert(engine: Engine, table):
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _chunks(items: Sequence, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def save_taxonomy(engine: Engine, taxonomy: Taxonomy) -> int:
    with engine.begin() as conn:
        stmt = _insert(engine, TaxonomyRow).values(
            name=taxonomy.name, content_hash=taxonomy.content_hash, body=taxonomy.canonical(), created_at=now()
        ).on_conflict_do_nothing(index_elements=["content_hash"])
        conn.execute(stmt)
        return conn.execute(
            select(TaxonomyRow.id).where(TaxonomyRow.content_hash == taxonomy.content_hash)).scalar_one()


@dataclass(frozen=True)
class JobSpec:
    """What a worker needs to label a job's files."""

    model: str
    taxonomy: Taxonomy
    options: dict
    active: bool


def job_spec(engine: Engine, job_id: str) -> JobSpec:
    with engine.connect() as conn:
        job = conn.execute(select(Job.model, Job.options, Job.state, TaxonomyRow.body)
                           .join(TaxonomyRow, TaxonomyRow.id == Job.taxonomy_id).where(Job.id == job_id)).one()
    return JobSpec(job.model, taxonomy_from_canonical(job.body), job.options or {}, job.state == "active")


def create_job(engine: Engine, *, kind: str, model: str, taxonomy_id: int, sources: list[str],
               options: dict | None = None) -> str:
    job_id = uuid.uuid4().hex[:12]
    with engine.begin() as conn:
        conn.execute(_insert(engine, Job).values(
            id=job_id, kind=kind, model=model, taxonomy_id=taxonomy_id, sources=sources,
            options=options or {}, state="active", created_at=now()))
    return job_id


def _relation(engine: Engine, name: str, columns: dict[str, TypeEngine], rows: list[tuple]):
    """``rows`` as a table to select from, in one statement whatever their number: arrays
    unnested on PostgreSQL, one JSON document on SQLite. Per-row parameters would make a
    100,000-file enqueue spend its time building SQL."""
    if engine.dialect.name == "postgresql":
        arrays = [bindparam(f"{name}_{col}", [row[i] for row in rows], type_=ARRAY(kind))
                  for i, (col, kind) in enumerate(columns.items())]
        return func.unnest(*arrays).table_valued(*(column(c, t) for c, t in columns.items())).render_derived(name=name)
    picks = ", ".join(f"json_extract(value, '$[{i}]') AS {col}" for i, col in enumerate(columns))
    return (text(f"SELECT {picks} FROM json_each(:{name}_rows)")
            .bindparams(**{f"{name}_rows": json.dumps(rows)})
            .columns(*(column(c, t) for c, t in columns.items())).subquery(name))


def add_files(engine: Engine, job_id: str, refs: Iterable[FileRef], *, force: bool = False) -> list[tuple[int, str]]:
    """Register the files of a job. Returns (file id, uri) of those to label; the rest, already
    labeled by the job's model and taxonomy at the same fingerprint, are marked skipped."""
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
            select(found.c.uri, found.c.fingerprint, found.c.size_bytes, found.c.truth, literal("queued"),
                   stamp, stamp).where(true()))
        # A row never updated since its insert has no result and is queued: only the others need
        # the look-up of results and the reset of their status (none, when an archive is new).
        upsert = upsert.on_conflict_do_update(index_elements=["uri"], set_={
            "fingerprint": upsert.excluded.fingerprint,
            "size_bytes": func.coalesce(upsert.excluded.size_bytes, File.size_bytes),
            "truth": func.coalesce(upsert.excluded.truth, File.truth),
        }).returning(File.id, File.uri, File.created_at == File.updated_at)
        with engine.begin() as conn:
            ids = conn.execute(upsert).all()
            touched = [(file_id,) for file_id, _, untouched in ids if not untouched]
            skip: set[int] = set()
            if touched and not force:
                known = _relation(engine, "known", {"file_id": BigInteger()}, touched)
                skip = set(conn.execute(
                    select(Labeling.file_id).join(File, File.id == Labeling.file_id)
                    .join(known, known.c.file_id == File.id)
                    .where(Labeling.model == job.model, Labeling.taxonomy_id == job.taxonomy_id,
                           Labeling.fingerprint == File.fingerprint)).scalars())
            requeued = [row for row in touched if row[0] not in skip]
            if requeued:
                again = _relation(engine, "again", {"file_id": BigInteger()}, requeued)
                conn.execute(update(File).where(File.id.in_(select(again.c.file_id)),
                                                or_(File.status != "queued", File.error.is_not(None)))
                             .values(status="queued", error=None, updated_at=stamp))
            entries = _relation(engine, "entries", {"file_id": BigInteger(), "status": Text()},
                                [(file_id, "skipped" if file_id in skip else "queued") for file_id, _, _ in ids])
            conn.execute(_insert(engine, JobFile).from_select(
                ["job_id", "file_id", "status", "updated_at"],
                select(literal(job_id), entries.c.file_id, entries.c.status, stamp).where(true()),
            ).on_conflict_do_nothing())
        todo.extend((file_id, uri) for file_id, uri, _ in ids if file_id not in skip)
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
                JobFile.file_id.in_(ids), JobFile.status == "queued", Job.state == "active",
                Job.model == model, Job.taxonomy_id == taxonomy_id)).scalars())
            for ref in chunk:
                row = known.get(ref.uri)
                if row is None:
                    new += 1
                elif row.fingerprint != ref.fingerprint:
                    changed += 1
                elif row.id in settled or row.status == "failed":
                    continue
                else:
                    new += 1  # known file, but new to this model and taxonomy
                fresh.append(ref)
    return fresh, new, changed


def _ranked(scores: np.ndarray, similarity: np.ndarray, labels: Sequence[str]) -> list[dict]:
    order = np.argsort(-scores, kind="stable")
    return [{"label": labels[i], "score": float(scores[i]), "similarity": float(similarity[i]), "rank": rank}
            for rank, i in enumerate(order, start=1)]


def save_results(engine: Engine, job_id: str, results: Sequence, labels: Sequence[str]) -> None:
    """Store a batch of FileResults (worker.labeling) of one job in one transaction."""
    if not results:
        return
    stamp = now()
    with engine.begin() as conn:
        job = conn.execute(select(Job.model, Job.taxonomy_id).where(Job.id == job_id)).one()
        ids = dict(conn.execute(select(File.uri, File.id).where(File.uri.in_([r.uri for r in results]))).all())
        for result in results:
            file_id = ids[result.uri]
            status = "done" if result.ok else "failed"
            conn.execute(update(File).where(File.id == file_id).values(
                status=status, error=result.error, duration_s=result.duration_s, sample_rate=result.sample_rate,
                channels=result.channels, content_hash=result.content_hash, updated_at=stamp))
            conn.execute(update(JobFile).where(JobFile.job_id == job_id, JobFile.file_id == file_id)
                         .values(status=status, error=result.error, updated_at=stamp))
            key = and_(Labeling.file_id == file_id, Labeling.model == job.model,
                       Labeling.taxonomy_id == job.taxonomy_id)
            if not result.ok:
                conn.execute(delete(Labeling).where(key))
                continue
            fingerprint = select(File.fingerprint).where(File.id == file_id).scalar_subquery()
            stmt = _insert(engine, Labeling).values(
                file_id=file_id, model=job.model, taxonomy_id=job.taxonomy_id, job_id=job_id,
                fingerprint=fingerprint, content_hash=result.content_hash, created_at=stamp)
            # The upsert takes the row lock, so two deliveries of one file serialise here and the
            # second replaces the first's scores instead of interleaving with them.
            stmt = stmt.on_conflict_do_update(index_elements=["file_id", "model", "taxonomy_id"], set_={
                "job_id": job_id, "fingerprint": stmt.excluded.fingerprint,
                "content_hash": result.content_hash, "created_at": stamp,
            }).returning(Labeling.id)
            labeling_id = conn.execute(stmt).scalar_one()
            conn.execute(delete(LabelScore).where(LabelScore.labeling_id == labeling_id))
            conn.execute(delete(SegmentScore).where(SegmentScore.labeling_id == labeling_id))
            conn.execute(_insert(engine, LabelScore), [
                {"labeling_id": labeling_id, **row} for row in _ranked(result.scores, result.similarity, labels)])
            segment_rows = [
                {"labeling_id": labeling_id, "window": w, "start_s": seg.start_s, "end_s": seg.end_s, **row}
                for w, seg in enumerate(result.segments)
                for row in _ranked(seg.scores, seg.similarity, labels)]
            for chunk in _chunks(segment_rows):
                conn.execute(_insert(engine, SegmentScore), chunk)


def queued_uris(engine: Engine, job_id: str) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(File.uri).join(JobFile, JobFile.file_id == File.id)
                                 .where(JobFile.job_id == job_id, JobFile.status == "queued")
                                 .order_by(File.id)).scalars())


def pending_uris(engine: Engine, job_id: str, uris: Sequence[str]) -> list[str]:
    """Of ``uris``, those the job still wants labeled (not cancelled, not already finished)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(File.uri).join(JobFile, JobFile.file_id == File.id).join(Job, Job.id == JobFile.job_id)
            .where(JobFile.job_id == job_id, JobFile.status == "queued", Job.state == "active",
                   File.uri.in_(uris))).scalars()
        wanted = set(rows)
    return [uri for uri in uris if uri in wanted]


def fail_files(engine: Engine, job_id: str, uris: Sequence[str], reason: str) -> None:
    """Mark files of a job failed without results (e.g. a batch that kept crashing its worker)."""
    stamp = now()
    with engine.begin() as conn:
        ids = select(File.id).where(File.uri.in_(uris)).scalar_subquery()
        conn.execute(update(File).where(File.uri.in_(uris)).values(status="failed", error=reason, updated_at=stamp))
        conn.execute(update(JobFile).where(JobFile.job_id == job_id, JobFile.file_id.in_(ids),
                                           JobFile.status == "queued")
                     .values(status="failed", error=reason, updated_at=stamp))


def finish_job_if_done(engine: Engine, job_id: str) -> None:
    """Stamp the job finished once none of its files is queued."""
    with engine.begin() as conn:
        queued = select(JobFile.file_id).where(JobFile.job_id == job_id, JobFile.status == "queued").exists()
        conn.execute(update(Job).where(Job.id == job_id, Job.finished_at.is_(None), ~queued).values(finished_at=now()))


def finish_job(engine: Engine, job_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == job_id, Job.finished_at.is_(None)).values(finished_at=now()))


def cancel_job(engine: Engine, job_id: str) -> int:
    """Drop the job's queued work; finished results stay. Returns how many files were dropped."""
    stamp = now()
    with engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == job_id).values(state="cancelled", finished_at=stamp))
        queued = select(JobFile.file_id).where(JobFile.job_id == job_id, JobFile.status == "queued")
        conn.execute(update(File).where(File.id.in_(queued), File.status == "queued").values(
            status="failed", error="cancelled", updated_at=stamp))
        return conn.execute(update(JobFile).where(JobFile.job_id == job_id, JobFile.status == "queued")
                            .values(status="cancelled", updated_at=stamp)).rowcount


def _job_infos(engine: Engine, where, limit: int | None = None) -> list[JobInfo]:
    with engine.connect() as conn:
        jobs = conn.execute(
            select(Job.id, Job.kind, Job.model, TaxonomyRow.name, Job.sources, Job.state, Job.created_at,
                   Job.finished_at).join(TaxonomyRow, TaxonomyRow.id == Job.taxonomy_id)
            .where(where).order_by(Job.created_at.desc()).limit(limit)).all()
        counts: dict[str, dict[str, int]] = {job.id: {} for job in jobs}
        for job_id, status, n in conn.execute(
                select(JobFile.job_id, JobFile.status, func.count()).where(JobFile.job_id.in_(counts))
                .group_by(JobFile.job_id, JobFile.status)):
            counts[job_id][status] = n
    return [JobInfo(*job, counts=counts[job.id]) for job in jobs]


def job_info(engine: Engine, job_id: str) -> JobInfo | None:
    found = _job_infos(engine, Job.id == job_id)
    return found[0] if found else None


def recent_jobs(engine: Engine, limit: int = 20) -> list[JobInfo]:
    return _job_infos(engine, Job.id.is_not(None), limit)


@dataclass(frozen=True)
class Prediction:
    uri: str
    truth: str | None
    labels: tuple[str, ...]  # best first; empty when the file has no result


def job_predictions(engine: Engine, job_id: str, k: int = 5) -> list[Prediction]:
    """Each file of a job with its truth and its first ``k`` labels by the job's model and
    taxonomy (the current result, whichever job made it)."""
    with engine.connect() as conn:
        job = conn.execute(select(Job.model, Job.taxonomy_id).where(Job.id == job_id)).one()
        rows = conn.execute(
            select(File.uri, File.truth, LabelScore.label).select_from(JobFile)
            .join(File, File.id == JobFile.file_id)
            .outerjoin(Labeling, and_(Labeling.file_id == File.id, Labeling.model == job.model,
                                      Labeling.taxonomy_id == job.taxonomy_id))
            .outerjoin(LabelScore, and_(LabelScore.labeling_id == Labeling.id, LabelScore.rank <= k))
            .where(JobFile.job_id == job_id).order_by(File.uri, LabelScore.rank)).all()
    found: dict[str, tuple[str | None, list[str]]] = {}
    for uri, truth, label in rows:
        labels = found.setdefault(uri, (truth, []))[1]
        if label is not None:
            labels.append(label)
    return [Prediction(uri, truth, tuple(labels)) for uri, (truth, labels) in found.items()]
