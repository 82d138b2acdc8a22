"""Jobs: ``status`` (one job, optionally followed to its end), ``jobs`` (the latest), ``cancel``
and ``requeue``."""

from __future__ import annotations

import time
from typing import Annotated, Optional

import typer

from soundtag.cli.options import Database, job_or_newest, open_engine, out
from soundtag.cli.progress import progress_bar
from soundtag.settings import load_settings


def _counts(info) -> str:
    return (f"{info.done} done, {info.failed} failed, {info.queued} queued"
            + (f", {info.skipped} skipped" if info.skipped else "")
            + (f", {info.cancelled} cancelled" if info.cancelled else ""))


# `status --wait` exit codes: the job completed, was cancelled, failed as a whole.
EXIT_COMPLETED, EXIT_CANCELLED, EXIT_FAILED = 0, 3, 4


def status(
    job_id: Annotated[Optional[str], typer.Argument(help="Job id from `soundtag enqueue` or `soundtag jobs` "
                                                    "(default: the newest).")] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Live progress until the job ends.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Block until the job ends.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 1.0,
    database: Database = None,
) -> None:
    """A job's state and counts (done / failed / queued), as the `jobs` view has them. Exit code:
    0 active or completed, 3 cancelled, 4 failed as a whole (its error is printed). Lists the
    workers holding files of the job, and those lost (their files go to live workers)."""
    from db.leases import holders
    from soundtag.states import JobState

    engine = open_engine(load_settings(database_url=database))
    info = job_or_newest(engine, job_id, "status")
    if watch or wait:
        info = _follow(engine, info, interval, show=watch)
    out.print(f"job {info.job_id} ({info.kind}, {info.state}): {_counts(info)} of {info.total}; "
              f"model {info.model}, taxonomy {info.taxonomy}")
    if info.error:
        out.print(f"error: {info.error}")
    for holder in holders(engine, info.job_id):
        out.print(f"{'lost' if holder.lost else 'held by'} {holder.worker}: {holder.files} files since "
                  f"{holder.since:%Y-%m-%d %H:%M:%S}" + (" (lease expired; live workers take them back)"
                                                         if holder.lost else ""))
    if info.state == JobState.CANCELLED:
        raise typer.Exit(EXIT_CANCELLED)
    if info.state == JobState.FAILED:
        raise typer.Exit(EXIT_FAILED)


def _follow(engine, info, interval: float, show: bool):
    from contextlib import nullcontext

    from db.jobs import job_info
    from soundtag.states import JobState

    finished = lambda i: i.total - i.queued  # noqa: E731
    with progress_bar() if show else nullcontext() as progress:
        task = progress.add_task(f"job {info.job_id}", total=info.total, completed=finished(info), rate=0.0,
                                 failed=info.failed) if show else None
        first, begun = finished(info), time.monotonic()
        while info.state == JobState.ACTIVE:
            time.sleep(interval)
            info = job_info(engine, info.job_id)
            if show:
                progress.update(task, completed=finished(info), failed=info.failed,
                                rate=(finished(info) - first) / max(time.monotonic() - begun, 1e-9))
    return info


def jobs(limit: Annotated[int, typer.Option(help="How many.")] = 20, database: Database = None) -> None:
    """Recent jobs, newest first, as the `jobs` view has them."""
    from rich.table import Table

    from db.jobs import jobs as job_rows
    from soundtag.sources.uris import readable

    engine = open_engine(load_settings(database_url=database))
    table = Table("job", "kind", "state", "created", "done", "failed", "queued", "skipped", "cancelled", "taxonomy",
                  "sources", "error")
    for info in job_rows(engine, limit=limit):
        table.add_row(info.job_id, info.kind, info.state, info.created_at.strftime("%Y-%m-%d %H:%M"), str(info.done),
                      str(info.failed), str(info.queued), str(info.skipped), str(info.cancelled), info.taxonomy,
                      " ".join(map(readable, info.sources)), info.error or "")
    out.print(table)


def cancel(job_id: Annotated[str, typer.Argument()], database: Database = None) -> None:
    """Drop a job's queued work; finished results stay."""
    from db.jobs import cancel_job, job_info

    engine = open_engine(load_settings(database_url=database))
    job_info(engine, job_id)
    cancel_job(engine, job_id)
    info = job_info(engine, job_id)
    out.print(f"job {job_id}: {info.state}, {info.cancelled} queued files dropped; {_counts(info)}")


def requeue(job_id: Annotated[str, typer.Argument()], database: Database = None) -> None:
    """Send a job's still-queued files to the workers again: after Redis lost its data, or after
    fixing what made the job fail (it becomes active again). Safe to repeat."""
    from producer.enqueue import requeue as requeue_job

    settings = load_settings(database_url=database)
    out.print(f"job {job_id}: {requeue_job(open_engine(settings), job_id, settings)} files sent again")
