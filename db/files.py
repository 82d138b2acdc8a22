"""Files, their fingerprints and their rows in a job (job_file): which files a job labels,
which it still wants, which failed. Writes are idempotent upserts, so a repeated, resumed or
redelivered batch leaves exactly the rows one clean pass would have left."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import BigInteger, DateTime, Engine, Text, case, func, literal, or_, select, true, update

from db import sql
from db.models import File, Job, JobFile, Labeling, now
from soundtag.fileref import FileRef
from soundtag.states import FileState, JobState


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
    for chunk in sql.chunks(refs, 20_000):
        stamp = literal(now(), DateTime(timezone=True))
        found = sql.relation(engine, "found", {"uri": Text(), "fingerprint": Text(), "size_bytes": BigInteger(),
                                               "truth": Text()},
                             [(r.uri, r.fingerprint, r.size_bytes, r.truth) for r in chunk])
        upsert = sql.insert(engine, File).from_select(
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
                known = sql.relation(engine, "known", {"file_id": BigInteger()}, touched)
                skip = set(conn.execute(
                    select(Labeling.file_id).join(File, File.id == Labeling.file_id)
                    .join(known, known.c.file_id == File.id)
                    .where(Labeling.model == job.model, Labeling.taxonomy_id == job.taxonomy_id,
                           Labeling.fingerprint == File.fingerprint)).scalars())
                if not retry_failed:
                    skip.update(file_id for file_id, _, _, status in ids if status == FileState.FAILED)
            entries = sql.relation(engine, "entries", {"file_id": BigInteger(), "status": Text()},
                                   [(file_id, FileState.SKIPPED if file_id in skip else FileState.QUEUED)
                                    for file_id, _, _, _ in ids])
            conn.execute(sql.insert(engine, JobFile).from_select(
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
        for chunk in sql.chunks(list({ref.uri: ref for ref in refs}.values())):
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


def queued_uris(engine: Engine, job_id: str) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(File.uri).join(JobFile, JobFile.file_id == File.id)
                                 .where(JobFile.job_id == job_id, JobFile.status == FileState.QUEUED)
                                 .order_by(File.id)).scalars())


def fail_files(engine: Engine, job_id: str, uris: Sequence[str], reason: str) -> int:
    """Mark files still queued in this job failed without results (e.g. a file that kept
    crashing its worker); files of other jobs are not touched. Returns how many it failed."""
    stamp = now()
    with engine.begin() as conn:
        ids = list(conn.execute(
            select(JobFile.file_id).join(File, File.id == JobFile.file_id)
            .where(JobFile.job_id == job_id, JobFile.status == FileState.QUEUED, File.uri.in_(uris))).scalars())
        conn.execute(update(File).where(File.id.in_(ids)).values(status=FileState.FAILED, error=reason,
                                                                 updated_at=stamp))
        conn.execute(update(JobFile).where(JobFile.job_id == job_id, JobFile.file_id.in_(ids))
                     .values(status=FileState.FAILED, error=reason, updated_at=stamp))
    return len(ids)


def job_file_ids(engine: Engine, job_id: str, uris: Sequence[str]) -> dict[str, int]:
    """Of ``uris``, those of the job's files, with their file ids."""
    found: dict[str, int] = {}
    with engine.connect() as conn:
        for part in sql.chunks(list(uris)):
            found.update(conn.execute(select(File.uri, File.id).join(JobFile, JobFile.file_id == File.id)
                                      .where(JobFile.job_id == job_id, File.uri.in_(part))).all())
    return found


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


def failed_uris(engine: Engine, uris: Sequence[str]) -> set[str]:
    """Of ``uris``, the files whose latest attempt failed (unreadable, corrupt)."""
    found: set[str] = set()
    with engine.connect() as conn:
        for chunk in sql.chunks(list(uris), 20_000):
            found.update(conn.execute(select(File.uri).where(
                sql.among(engine, "uris", File.uri, Text(), chunk), File.status == FileState.FAILED)).scalars())
    return found


def file_ids(engine: Engine, uris: Sequence[str]) -> list[int]:
    """The ids of these files, in id order."""
    found: list[int] = []
    with engine.connect() as conn:
        for chunk in sql.chunks(list(uris)):
            found += conn.execute(select(File.id).where(sql.among(engine, "uris", File.uri, Text(), chunk))).scalars()
    return sorted(found)


def truths(engine: Engine, file_ids: Sequence[int]) -> dict[int, str]:
    """The truth column of those of these files that have one."""
    return _known(engine, file_ids, File.truth)


def durations(engine: Engine, file_ids: Sequence[int]) -> dict[int, float]:
    """The duration in seconds of those of these files whose duration is known."""
    return _known(engine, file_ids, File.duration_s)


def _known(engine: Engine, file_ids: Sequence[int], column) -> dict:
    """File id → ``column`` for those of these files where it is not NULL."""
    found: dict = {}
    with engine.connect() as conn:
        for chunk in sql.chunks(list(file_ids)):
            found.update(conn.execute(select(File.id, column).where(
                sql.among(engine, "files", File.id, BigInteger(), chunk), column.is_not(None))).all())
    return found


def set_recordings(engine: Engine, found: Sequence[tuple[str, object, str | None]]) -> int:
    """Set each (uri, recorded_at, site) on the file's row, unknowns as NULL; returns how many rows
    changed. Nothing else of the file (its results, its state) is touched but ``updated_at``,
    which tells the job summaries kept for the overview (db/summaries.py) that hours moved."""
    changed = 0
    stamp = now()
    with engine.begin() as conn:
        for chunk in sql.chunks(list(found), 20_000):
            given = sql.relation(engine, "given", {"uri": Text(), "recorded_at": DateTime(timezone=True),
                                                   "site": Text()}, chunk)
            changed += conn.execute(update(File).where(File.uri == given.c.uri).values(
                recorded_at=given.c.recorded_at, site=given.c.site, updated_at=stamp)).rowcount
    return changed


def all_sources(engine: Engine) -> list[str]:
    """Every source any job walked, as recorded (URIs, local folders by absolute path)."""
    with engine.connect() as conn:
        return sorted({source for sources in conn.execute(select(Job.sources)).scalars() for source in sources or ()})
