"""Review: ``review`` (the review page), ``export`` (a job's labels for other tools) and
``import-reviews`` (Label Studio annotations back as verdicts)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from soundtag.cli.common import Database, console, fail, open_engine, out
from soundtag.cli.progress import print_left_out
from soundtag.settings import load_settings


def _job_or_newest(engine, job: str | None, command: str):
    """The given job's row of the `jobs` view, or the newest job's."""
    from db.jobs import job_info, jobs as job_rows

    info = job_info(engine, job) if job else next(iter(job_rows(engine, limit=1)), None)
    if info is None:
        fail(f"{command}: no job in this database yet; label something with `soundtag run` first")
    return info


def review(
    database: Database = None,
    job: Annotated[Optional[str], typer.Option("--job", help="Job whose results to review (default: the newest).")] = None,
    label: Annotated[Optional[str], typer.Option("--label", help="Only recordings the model decided are LABEL.")] = None,
    order: Annotated[str, typer.Option("--order", help="uncertain, confident, random (seeded) or stratified.")]
    = "uncertain",
    reviewer: Annotated[Optional[str], typer.Option("--reviewer", help="Name stored with each verdict "
                                                    "(default: your login).")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on; any but loopback needs --token.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8765,
    token: Annotated[Optional[str], typer.Option("--token", help="Required to open the page "
                                                 "[SOUNDTAG_REVIEW_TOKEN].")] = None,
) -> None:
    """Serve a page to listen to labeled recordings and accept, reject or correct the model's
    decisions; verdicts go to the `reviews` view."""
    import getpass

    from review.guard import Guard, check_exposure
    from review.order import Order
    from review.server import Session, create_app, serve

    settings = load_settings(database_url=database, review_token=token)
    if order not in set(Order):
        fail(f"--order {order!r}: use one of {', '.join(Order)}")
    check_exposure(host, settings.review_token)
    engine = open_engine(settings)
    info = _job_or_newest(engine, job, "review")
    session = Session(info.job_id, Order(order), reviewer or getpass.getuser(), label)
    guard = Guard(host, port, settings.review_token)
    app_ = create_app(engine, settings, session, guard)
    shown_host = f"[{host}]" if ":" in host else host
    console.print(f"review of job {info.job_id} ({info.model}, taxonomy {info.taxonomy}) by {session.reviewer}: "
                  f"http://{shown_host}:{port}/" + ("?token=…" if settings.review_token else "")
                  + "  (Ctrl-C stops)")
    serve(app_, host, port)


def export(
    out_path: Annotated[Path, typer.Option("--out", help="File to write (a folder for raven and audacity).")],
    fmt: Annotated[str, typer.Option("--format", help="labelstudio, raven, audacity, csv, parquet or hf.")],
    job: Annotated[Optional[str], typer.Option("--job", help="Job whose results to export (default: the newest).")]
    = None,
    reviewed: Annotated[bool, typer.Option("--reviewed", help="Label each file with the reviewer's verdict where "
                                           "there is one (reviewed_labels), else the model's decision.")] = False,
    database: Database = None,
) -> None:
    """Write a job's labels for Label Studio, Raven, Audacity, a spreadsheet or a `datasets` dataset."""
    from review.export import ExportFormat, export as write

    if fmt not in set(ExportFormat):
        fail(f"--format {fmt!r}: use one of {', '.join(ExportFormat)}")
    settings = load_settings(database_url=database)
    engine = open_engine(settings)
    info = _job_or_newest(engine, job, "export")
    written = write(engine, info.job_id, ExportFormat(fmt), out_path, settings, reviewed=reviewed)
    console.print(f"job {info.job_id}: {written.files} files → {out_path}"
                  + (f"; labeling config → {written.extra}" if written.extra else ""))
    print_left_out(written.unreadable)


def import_reviews(
    path: Annotated[Path, typer.Argument(help="A Label Studio JSON export of tasks from `soundtag export`.")],
    job: Annotated[Optional[str], typer.Option("--job", help="For tasks that name no job (default: the newest).")]
    = None,
    reviewer: Annotated[Optional[str], typer.Option("--reviewer", help="Name stored with each verdict (default: "
                                                    "the annotation's completed_by).")] = None,
    database: Database = None,
) -> None:
    """Record Label Studio annotations as verdicts in the `reviews` view: accept when the
    annotation kept the model's decision, correct when it chose another label, reject for none."""
    from review.labelstudio import import_reviews as load

    engine = open_engine(load_settings(database_url=database))
    done = load(engine, path, _job_or_newest(engine, job, "import-reviews").job_id, reviewer)
    out.print(f"{done.recorded} verdicts recorded, {done.unchanged} already in force, {done.cancelled} cancelled; "
              f"left out: {done.unknown_tasks} tasks of no known file, {done.unknown_labels} annotations with a "
              f"label not in the taxonomy")
