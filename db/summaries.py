"""A job's summaries kept between requests: what one scan of every window of a job computes (the
overview's counts per site, hour and label; a label's score grid) is stored with a stamp of the
rows it was computed from, read again while the stamp holds and computed again when it changed.
At a million windows the scan takes seconds and the stamp milliseconds (docs/benchmarks.md,
``bench_overview``).

The stamp is the job's labeled files: how many, the latest labeling (save_results rewrites a
file's labeling and windows together, with a new created_at) and the latest change to a file's
row (its recording time and site: set_recordings and save_results move updated_at), with
whatever else the summary depends on (the labels' thresholds, which saving the taxonomy again
can change)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, func, select

from db import sql
from db.jobs import job_labelings, job_spec
from db.models import File, JobSummary, Labeling, now


def stamp(engine: Engine, job_id: str, *depends_on: object) -> str:
    """What a summary of the job's windows was computed from, as text."""
    query = job_labelings(job_id, job_spec(engine, job_id), func.count(), func.max(Labeling.created_at),
                          func.max(File.updated_at))
    with engine.connect() as conn:
        count, labeled, changed = conn.execute(query).one()
    return repr((count, str(labeled), str(changed), *depends_on))


def kept(engine: Engine, job_id: str, name: str, stamp: str, compute: Callable[[], Any]) -> Any:
    """The job's summary ``name`` as last stored where its stamp is ``stamp``; else ``compute()``'s
    (plain JSON), stored with that stamp. Take the stamp before computing: rows that change while
    it runs then give the next request another stamp."""
    with engine.connect() as conn:
        found = conn.execute(select(JobSummary.stamp, JobSummary.body)
                             .where(JobSummary.job_id == job_id, JobSummary.name == name)).one_or_none()
    if found is not None and found.stamp == stamp:
        return found.body
    body = compute()
    stmt = sql.insert(engine, JobSummary).values(job_id=job_id, name=name, stamp=stamp, body=body, computed_at=now())
    with engine.begin() as conn:
        conn.execute(stmt.on_conflict_do_update(index_elements=["job_id", "name"], set_={
            "stamp": stmt.excluded.stamp, "body": stmt.excluded.body, "computed_at": stmt.excluded.computed_at}))
    return body
