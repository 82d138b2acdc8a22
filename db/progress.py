"""How far the jobs are, for the fleet's metrics (``soundtag exporter``): jobs by state, and each
active job's files by status with the time a worker first took one of them. Two grouped reads
that the job and job_file indexes answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Engine, func, select

from db.models import Job, JobFile
from soundtag.states import FileState, JobState


@dataclass(frozen=True)
class Progress:
    """An active job: its files by status, and since when it has been worked on (its first
    lease; its creation when no worker has taken a file yet, or for a local run)."""

    job_id: str
    files: dict[FileState, int]
    since: datetime


def job_states(engine: Engine) -> dict[JobState, int]:
    """How many jobs are in each state, every state named."""
    with engine.connect() as conn:
        counts = dict(conn.execute(select(Job.state, func.count()).group_by(Job.state)).all())
    return {state: counts.get(state, 0) for state in JobState}


def active_progress(engine: Engine) -> list[Progress]:
    """Every active job's files by status, every status named."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Job.id, Job.created_at, JobFile.status, func.count(), func.min(JobFile.leased_at))
            .join(JobFile, JobFile.job_id == Job.id).where(Job.state == JobState.ACTIVE)
            .group_by(Job.id, Job.created_at, JobFile.status)).all()
    files: dict[str, dict[FileState, int]] = {}
    since: dict[str, datetime] = {}
    leased: dict[str, datetime] = {}
    for job_id, created_at, status, count, first_lease in rows:
        files.setdefault(job_id, {state: 0 for state in FileState})[FileState(status)] = count
        since[job_id] = _aware(created_at)
        if first_lease is not None:
            leased[job_id] = min(leased.get(job_id, _aware(first_lease)), _aware(first_lease))
    return [Progress(job_id, counts, leased.get(job_id, since[job_id])) for job_id, counts in files.items()]


def _aware(stamp: datetime) -> datetime:
    """SQLite returns naive datetimes; they were stored in UTC."""
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
