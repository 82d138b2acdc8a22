"""Review: ``review`` (the review page), ``export`` (a job's labels for other tools) and
``import-reviews`` (Label Studio annotations back as verdicts)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from soundtag.cli.options import Database, console, fail, open_engine, out, uri_prefix
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
    label: Annotated[Optional[str], typer.Option("--label", help="Only items LABEL tags: recordings it is the "
                                                 "decision of, windows or events of LABEL.")] = None,
    unit: Annotated[Optional[str], typer.Option("--unit", help="file, window or event (default: file when every "
                                                "recording fits in one window, else window).")] = None,
    context: Annotated[float, typer.Option("--context", min=0.0, help="Seconds played before and after a "
                                           "window or event.")] = 1.0,
    order: Annotated[str, typer.Option("--order", help="uncertain, confident, random (seeded), stratified, or learn "
                                       "(spread over the embeddings, then where the head hesitates).")]
    = "uncertain",
    head: Annotated[Optional[str], typer.Option("--head", help="With --order learn: the head to order by and, with "
                                                "--learn, to train (default: review-JOB).")] = None,
    learn: Annotated[bool, typer.Option("--learn", help="Train the next version of the head in the background "
                                        "once --learn-every verdicts in force changed and re-order what is left "
                                        "(implies --order learn).")] = False,
    learn_every: Annotated[int, typer.Option("--learn-every", min=1)] = 10,
    search_text: Annotated[Optional[str], typer.Option("--search", help="Only the files of the windows nearest "
                                                       "this text, nearest first.")] = None,
    like: Annotated[Optional[str], typer.Option("--like", help="Only the files of the windows nearest this "
                                                "file's window (--at), nearest first.")] = None,
    at: Annotated[float, typer.Option("--at", help="With --like: the second whose window to use.")] = 0.0,
    limit: Annotated[int, typer.Option("--limit", min=1, help="With --search or --like: how many windows.")] = 100,
    reviewer: Annotated[Optional[str], typer.Option("--reviewer", help="Name stored with each verdict "
                                                    "(default: your login).")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on; any but loopback needs --token.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8765,
    token: Annotated[Optional[str], typer.Option("--token", help="Required to open the page "
                                                 "[SOUNDTAG_REVIEW_TOKEN].")] = None,
) -> None:
    """Serve a page to listen to labeled recordings, or their windows or events, and accept,
    reject or correct the model's decisions; verdicts go to the `reviews` view (a segment's with
    its bounds)."""
    import getpass

    from review.guard import Guard, check_exposure
    from review.order import Order
    from review.queue import Session
    from review.server import create_app, serve
    from review.units import Unit, default_unit

    settings = load_settings(database_url=database, review_token=token)
    order = Order.LEARN if learn else order
    if order not in set(Order):
        fail(f"--order {order!r}: use one of {', '.join(Order)}")
    if unit is not None and unit not in set(Unit):
        fail(f"--unit {unit!r}: use one of {', '.join(Unit)}")
    if search_text and like:
        fail("give one of --search TEXT or --like URI")
    check_exposure(host, settings.review_token)
    engine = open_engine(settings)
    info = _job_or_newest(engine, job, "review")
    files = _searched(engine, database, info, search_text, like, at, limit) if search_text or like else None
    session = Session(info.job_id, Order(order), reviewer or getpass.getuser(), label,
                      Unit(unit) if unit else default_unit(engine, info.job_id), context, files)
    learner = None
    if order == Order.LEARN:
        from review.learning import Learner

        learner = Learner(engine, info.job_id, head or f"review-{info.job_id}", learn_every if learn else None)
    guard = Guard(host, port, settings.review_token)
    app_ = create_app(engine, settings, session, guard, learner)
    shown_host = f"[{host}]" if ":" in host else host
    console.print(f"review of job {info.job_id} ({info.model}, taxonomy {info.taxonomy}) by {session.reviewer}, "
                  f"by {session.unit}: "
                  f"http://{shown_host}:{port}/" + ("?token=…" if settings.review_token else "")
                  + "  (Ctrl-C stops)")
    serve(app_, host, port)


def _searched(engine, database: str | None, info, text: str | None, like: str | None, at: float,
              limit: int) -> tuple[int, ...]:
    """The job's files holding the windows nearest ``text`` or ``like``'s window, nearest first:
    a review queue that starts where a new class is (agile modeling's search step)."""
    from db.files import job_file_ids
    from heads.stored import base_model
    from vectors.search import search_like, search_text

    settings = load_settings(model=base_model(engine, info.model), database_url=database)
    hits = (search_text(engine, text, settings, limit) if text is not None
            else search_like(engine, uri_prefix(like), settings, at, limit))
    ids = job_file_ids(engine, info.job_id, [hit.uri for hit in hits])
    return tuple(dict.fromkeys(ids[hit.uri] for hit in hits if hit.uri in ids))


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
