"""Jobs and their states: created active, then completed, failed or cancelled; the public ``jobs``
view as ``status``, ``jobs`` and ``cancel`` print it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import JSON, DateTime, Engine, Integer, Select, String, Text, and_, column, select, table, update

from db import sql
from db.models import File, Job, JobFile, Labeling, TaxonomyRow, now
from db.schema import safe_url
from db.taxonomies import save_taxonomy
from soundtag.errors import JobNotFound, SoundtagError, TransientReadError, describe, first_line
from soundtag.settings import Settings
from soundtag.states import FileState, JobState
from soundtag.taxonomy import Taxonomy, taxonomy_from_canonical


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


@dataclass(frozen=True)
class JobSpec:
    """What a worker needs to label a job's files."""

    model: str
    taxonomy_id: int
    taxonomy: Taxonomy
    options: dict
    state: JobState
    sources: tuple[str, ...] = ()  # as recorded: URIs, local folders by absolute path


def job_spec(engine: Engine, job_id: str) -> JobSpec | None:
    """The job's model, taxonomy and options; None when no such job exists."""
    with engine.connect() as conn:
        job = conn.execute(select(Job.model, Job.taxonomy_id, Job.options, Job.state, TaxonomyRow.body, Job.sources)
                           .join(TaxonomyRow, TaxonomyRow.id == Job.taxonomy_id).where(Job.id == job_id)).one_or_none()
    if job is None:
        return None
    return JobSpec(job.model, job.taxonomy_id, taxonomy_from_canonical(job.body), job.options or {}, JobState(job.state),
                   tuple(job.sources or ()))


def job_roots(engine: Engine, job_id: str) -> list[str]:
    """Where a job's files were found: the sources it was given (folders, files, URI prefixes);
    for a relabel job, the roots of the jobs it relabeled, or of every job when it relabeled
    every labeled file."""
    with engine.connect() as conn:
        recorded = {row.id: (row.kind, row.sources or []) for row in conn.execute(select(Job.id, Job.kind, Job.sources))}
    roots, seen, todo = [], set(), [job_id]
    while todo:
        one = todo.pop()
        if one in seen or one not in recorded:
            continue
        seen.add(one)
        kind, sources = recorded[one]
        if kind == "relabel":  # its sources are job ids or URI prefixes (vectors.relabel)
            todo += [source for source in sources if source in recorded] if sources else list(recorded)
            roots += [source for source in sources if source not in recorded]
        else:
            roots += sources
    return roots


def job_labelings(job_id: str, spec: JobSpec, *columns, every_file: bool = False) -> Select:
    """SELECT ``columns`` of each file of a job joined to its labeling by the job's model and
    taxonomy (whichever job made it); with ``every_file``, files without one too (its columns None)."""
    query = select(*columns).select_from(JobFile).join(File, File.id == JobFile.file_id)
    on = and_(Labeling.file_id == File.id, Labeling.model == spec.model, Labeling.taxonomy_id == spec.taxonomy_id)
    return (query.outerjoin(Labeling, on) if every_file else query.join(Labeling, on)).where(JobFile.job_id == job_id)


def create_job(engine: Engine, taxonomy: Taxonomy, settings: Settings, *, kind: str, sources: list[str],
               queue: str | None = None, force: bool = False, model: str | None = None,
               head: str | None = None) -> str:
    """Record a new active job of ``model`` (default ``settings.model``) and ``taxonomy``;
    returns its id. A ``force`` job labels its files from their audio even where stored
    embeddings could serve; one with ``head`` ('head:NAME@vN') labels them with that head too."""
    job_id = uuid.uuid4().hex[:12]
    options = {"window_s": settings.window_s, "hop_s": settings.hop_s, "batch_size": settings.batch_size,
               "queue": queue or settings.queue, "force": force}
    if head:
        options["head"] = head
    # How the workers read each file's time and site (soundtag.recording.Rules), where given.
    options.update({name: value for name in ("time_pattern", "timezone", "site_pattern")
                    if (value := getattr(settings, name)) is not None})
    taxonomy_id = save_taxonomy(engine, taxonomy)
    with engine.begin() as conn:
        conn.execute(sql.insert(engine, Job).values(
            id=job_id, kind=kind, model=model or settings.model_ref, taxonomy_id=taxonomy_id, sources=sources,
            options=options, state=JobState.ACTIVE, created_at=now()))
    return job_id


def finish_job_if_done(engine: Engine, job_id: str) -> bool:
    """Mark an active job completed once none of its files is queued; whether this call did."""
    with engine.begin() as conn:
        queued = select(JobFile.file_id).where(JobFile.job_id == job_id, JobFile.status == FileState.QUEUED).exists()
        return conn.execute(update(Job).where(Job.id == job_id, Job.state == JobState.ACTIVE, ~queued)
                            .values(state=JobState.COMPLETED, finished_at=now())).rowcount == 1


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


@contextmanager
def recorded(engine: Engine, job_id: str) -> Iterator[None]:
    """Records why a job worked on in this process stopped early, then lets the exception go on:
    an error (a model that cannot load, storage gone, a bug) fails the job with its one-line
    reason, its unfinished files left queued for ``requeue`` or a rerun; Ctrl-C or a stop signal
    cancels it. Finished files are kept either way."""
    try:
        yield
    except Exception as exc:
        fail_job(engine, job_id, first_line(exc) if isinstance(exc, (SoundtagError, TransientReadError))
                 else describe(exc))
        raise
    except BaseException:
        cancel_job(engine, job_id, reason="interrupted")
        raise
