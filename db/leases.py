"""Leases: which worker process holds which queued files of a job, since when, and until when.

A worker claims a batch's files before labeling them and renews its leases from a heartbeat
thread (worker/heartbeat.py); a file that finishes keeps its holder's name (who labeled it). When
a holder stops renewing (killed, its node gone), its leases expire and any live worker takes the
files back and sends them again. A message whose files a live worker holds, or which are done,
claims nothing: redelivering it does no work twice.

A worker is named by its process (worker/heartbeat.py ``identity``: host, pid and a suffix drawn
once per process), so two processes never share leases. Leases are stamped and judged by the
database's clock alone (``sql.clock``), so a worker whose clock is wrong neither takes back a
live lease nor keeps an expired one. Results are fenced (``held``): a worker that lost a file's
lease writes nothing for it. On PostgreSQL, concurrent claims, take-backs and saves of one file
serialise on its row, so exactly one of them wins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, Connection, Engine, and_, case, func, or_, select, tuple_, update

from db import sql
from db.models import File, Job, JobFile
from soundtag.states import FileState, JobState

TAKE_BACK = 10_000  # expired files taken back per transaction


def _claimable(worker: str, stamp):
    """A queued file nobody holds, this worker holds, or whose holder stopped renewing."""
    return and_(JobFile.status == FileState.QUEUED,
                or_(JobFile.worker.is_(None), JobFile.worker == worker, JobFile.lease_until < stamp))


def claim(engine: Engine, job_id: str, uris: Sequence[str], worker: str, lease_s: float) -> dict[str, int]:
    """Lease those of ``uris`` the job still wants (active job, file queued) and no live worker
    holds; returns them with how many holders each has lost before (a file that keeps killing
    its workers is failed by the caller)."""
    stamp = sql.clock(engine)
    with engine.begin() as conn:
        ids = dict(conn.execute(
            select(File.id, File.uri).join(JobFile, JobFile.file_id == File.id).join(Job, Job.id == JobFile.job_id)
            .where(JobFile.job_id == job_id, Job.state == JobState.ACTIVE, File.uri.in_(uris))).all())
        if not ids:
            return {}
        took_over = and_(JobFile.worker.is_not(None), JobFile.worker != worker, JobFile.lease_until < stamp)
        rows = conn.execute(
            update(JobFile).where(JobFile.job_id == job_id, JobFile.file_id.in_(ids), _claimable(worker, stamp))
            .values(worker=worker, leased_at=stamp, lease_until=sql.clock(engine, lease_s),
                    lost=JobFile.lost + case((took_over, 1), else_=0))
            .returning(JobFile.file_id, JobFile.lost)).all()
    lost = {ids[file_id]: count for file_id, count in rows}
    return {uri: lost[uri] for uri in uris if uri in lost}


def renew(engine: Engine, worker: str, lease_s: float) -> int:
    """Extend every lease ``worker`` holds, and no other's; returns how many files it holds."""
    with engine.begin() as conn:
        return conn.execute(update(JobFile).where(JobFile.worker == worker, JobFile.status == FileState.QUEUED)
                            .values(lease_until=sql.clock(engine, lease_s))).rowcount


def held(conn: Connection, job_id: str, file_ids: Sequence[int], worker: str) -> set[int]:
    """Of the job's ``file_ids``, those ``worker`` still holds and that are still queued, their rows
    locked until ``conn``'s transaction ends: the fence a worker's results pass, so that one whose
    lease was taken back (its files labeled by their new holder), or whose job was cancelled while
    it labeled them, writes nothing for them."""
    return set(conn.execute(
        select(JobFile.file_id).where(JobFile.job_id == job_id, JobFile.worker == worker,
                                      JobFile.status == FileState.QUEUED,
                                      sql.among(conn.engine, "held", JobFile.file_id, BigInteger(), file_ids))
        .with_for_update()).scalars())


def give_back(engine: Engine, job_id: str, uris: Sequence[str], worker: str,
              send: Callable[[list[str]], None] | None = None) -> list[str]:
    """Release ``worker``'s leases on those of ``uris`` still queued and ``send`` them, in one
    transaction: a worker that receives them waits on the rows until they are free, and a send
    that fails leaves the leases to expire and be taken back. Returns the files given back."""
    with engine.begin() as conn:
        ids = dict(conn.execute(select(File.id, File.uri).where(File.uri.in_(uris))).all())
        released = conn.execute(
            update(JobFile).where(JobFile.job_id == job_id, JobFile.file_id.in_(ids), JobFile.worker == worker,
                                  JobFile.status == FileState.QUEUED)
            .values(worker=None, leased_at=None, lease_until=None).returning(JobFile.file_id)).scalars().all()
        back = [ids[file_id] for file_id in released]
        if back and send:
            send(back)
    return back


@dataclass(frozen=True)
class TakenBack:
    """Files of one job taken back from a worker that stopped renewing."""

    job_id: str
    worker: str
    uris: list[str]


def take_back_expired(engine: Engine, send: Callable[[str, list[str]], None]) -> list[TakenBack]:
    """Release the expired leases of active jobs' queued files and ``send(job_id, uris)`` them
    again, in one transaction (rows another worker is taking back are skipped, so each file goes
    out once)."""
    stamp = sql.clock(engine)
    with engine.begin() as conn:
        expired = conn.execute(
            select(JobFile.job_id, JobFile.file_id, JobFile.worker, File.uri)
            .join(File, File.id == JobFile.file_id).join(Job, Job.id == JobFile.job_id)
            .where(JobFile.status == FileState.QUEUED, JobFile.lease_until < stamp, Job.state == JobState.ACTIVE)
            .order_by(JobFile.job_id, File.id).limit(TAKE_BACK)
            .with_for_update(of=JobFile, skip_locked=True)).all()
        if not expired:
            return []
        conn.execute(update(JobFile).where(tuple_(JobFile.job_id, JobFile.file_id).in_(
            [(row.job_id, row.file_id) for row in expired]))
            .values(worker=None, leased_at=None, lease_until=None, lost=JobFile.lost + 1))
        groups: dict[tuple[str, str], list[str]] = {}
        for row in expired:
            groups.setdefault((row.job_id, row.worker), []).append(row.uri)
        taken = [TakenBack(job_id, worker, uris) for (job_id, worker), uris in groups.items()]
        for item in taken:
            send(item.job_id, item.uris)
    return taken


@dataclass(frozen=True)
class Holder:
    """A worker holding queued files of a job; ``lost`` when its lease expired (it died)."""

    worker: str
    files: int
    since: datetime
    until: datetime
    lost: bool


def holders(engine: Engine, job_id: str) -> list[Holder]:
    """The workers holding queued files of ``job_id``, oldest lease first."""
    until = func.max(JobFile.lease_until)
    with engine.connect() as conn:
        rows = conn.execute(
            select(JobFile.worker, func.count(), func.min(JobFile.leased_at), until, until < sql.clock(engine))
            .where(JobFile.job_id == job_id, JobFile.status == FileState.QUEUED, JobFile.worker.is_not(None))
            .group_by(JobFile.worker).order_by(func.min(JobFile.leased_at))).all()
    return [Holder(worker, files, since, until, bool(lost)) for worker, files, since, until, lost in rows]
