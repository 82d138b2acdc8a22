"""Review: ``review`` (the review page), ``export`` (a job's labels for other tools) and
``import-reviews`` (Label Studio annotations back as verdicts)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from soundtag.cli.options import Database, console, fail, job_or_newest, open_engine, out
from soundtag.cli.progress import print_left_out
from soundtag.settings import load_settings
from soundtag.sources.uris import source_uri


def review(
    database: Database = None,
    job: Annotated[Optional[str], typer.Option("--job", help="Job whose results to review (default: the newest).")] = None,
    label: Annotated[Optional[str], typer.Option("--label", help="Only items LABEL tags: recordings it is the "
                                                 "decision of, windows or events of LABEL.")] = None,
    unit: Annotated[Optional[str], typer.Option("--unit", help="file, window or event (default: file when every "
                                                "recording fits in one window, else window).")] = None,
    context: Annotated[float, typer.Option("--context", min=0.0, help="Seconds played before and after a "
                                           "window or event.")] = 1.0,
    order: Annotated[str, typer.Option("--order", help="uncertain, confident, random (seeded), stratified, learn "
                                       "(spread over the embeddings, then where the head hesitates), validate "
                                       "(with --label: every window, an equal number per score bin, for "
                                       "`soundtag estimate`), or adjudicate (a team's admins: the items whose "
                                       "reviewers disagree, with their votes; the verdict settles each).")]
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
                                                    "(default: your login); with a team (`soundtag reviewers`), "
                                                    "each person's own.")] = None,
    overlap: Annotated[float, typer.Option("--overlap", min=0.0, max=1.0, help="With a team: the share of items "
                                           "handed to two people, for `soundtag agreement`.")] = 0.1,
    host: Annotated[str, typer.Option("--host", help="Address to listen on; any but loopback needs --token.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8765,
    token: Annotated[Optional[str], typer.Option("--token", help="Required to open the page "
                                                 "[SOUNDTAG_REVIEW_TOKEN].")] = None,
) -> None:
    """Serve a page to listen to labeled recordings, or their windows or events, and accept,
    reject or correct the model's decisions; verdicts go to the `reviews` view (a segment's with
    its bounds). With a team defined (`soundtag reviewers`), each person signs in with their own
    token, is handed their own items (--overlap of them also to a second person) and their
    verdicts carry their name."""
    import getpass

    from db.reviewers import any_reviewers
    from review import overview
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
    if order == Order.VALIDATE and (label is None or unit not in (None, Unit.WINDOW) or search_text or like):
        fail("--order validate draws the windows of one label: give --label L (and no --unit, --search or --like)")
    if order == Order.ADJUDICATE and (search_text or like):
        fail("--order adjudicate shows the items in dispute: give no --search or --like")
    engine = open_engine(settings)
    team = any_reviewers(engine)
    if team and reviewer is not None:
        fail("--reviewer: with a team (`soundtag reviewers list`) each person's verdicts carry their own name")
    check_exposure(host, settings.review_token, team)
    info = job_or_newest(engine, job, "review")
    files = None
    if search_text is not None or like is not None:
        from vectors.search import files_near

        files = files_near(engine, info.job_id, load_settings(database_url=database), search_text,
                           source_uri(like) if like is not None else None, at, limit)
    if order == Order.VALIDATE and label not in _labels(engine, info.job_id):
        fail(f"--label {label!r} is not in the taxonomy of job {info.job_id}")
    session = Session(info.job_id, Order(order), label,
                      Unit.WINDOW if order == Order.VALIDATE else Unit(unit) if unit else default_unit(engine, info.job_id),
                      context, files)
    learner = None
    if order == Order.LEARN:
        from review.learning import Learner

        learner = Learner(engine, info.job_id, head or f"review-{info.job_id}", learn_every if learn else None)
    guard = Guard(host, port, settings.review_token, engine if team else None)
    reviewer = reviewer or getpass.getuser()
    app_ = create_app(engine, settings, session, guard, reviewer, learner, overlap)
    shown_host = f"[{host}]" if ":" in host else host
    console.print(f"review of job {info.job_id} ({info.model}, taxonomy {info.taxonomy}) by "
                  + ("the team, each signed in" if team else reviewer) + f", by {session.unit}: "
                  f"http://{shown_host}:{port}/" + (", each with their own token" if team else "?token=…"
                                                     if settings.review_token else "")
                  + "  (overview: /overview; Ctrl-C stops)")
    # The overview's summaries are prepared while the first person opens the page.
    threading.Thread(target=overview.prepare, args=(engine, info.job_id), daemon=True).start()
    serve(app_, host, port)


def _labels(engine, job_id: str) -> list[str]:
    from db.jobs import job_spec

    return job_spec(engine, job_id).taxonomy.names


def estimate(
    label: Annotated[str, typer.Argument(help="The label to estimate.")],
    job: Annotated[Optional[str], typer.Option("--job", help="Job whose windows and verdicts to read (default: the "
                                               "newest).")] = None,
    site: Annotated[Optional[str], typer.Option("--site", help="Only the windows of this site.")] = None,
    by: Annotated[Optional[str], typer.Option("--by", help="site: one row per site.")] = None,
    database: Database = None,
) -> None:
    """From the verdicts of a validation sample (`soundtag review --order validate --label L`):
    the share of the job's windows that hold LABEL, and the precision and recall of its tags at
    the current threshold, each with a 95% interval; kept in the `estimates` view."""
    from db.estimates import save_estimate
    from review.validation import estimates

    if by not in (None, "site"):
        fail(f"--by {by!r}: use --by site")
    engine = open_engine(load_settings(database_url=database))
    info = job_or_newest(engine, job, "estimate")
    if label not in _labels(engine, info.job_id):
        fail(f"{label!r} is not a label of job {info.job_id} (taxonomy {info.taxonomy})")
    found = estimates(engine, info.job_id, label, site, by_site=by == "site")
    if not found:
        fail(f"job {info.job_id}: no windows" + (f" of site {site!r}" if site else "") + " to estimate over")

    def shown(measure) -> str:
        return "—" if measure is None else f"{measure.value:.3f} [{measure.low:.3f}, {measure.high:.3f}]"

    out.print("site\twindows\tverdicts\tprevalence [95%]\tprecision [95%]\trecall [95%]")
    for row in found:
        e = row.estimate
        save_estimate(engine, info.job_id, label, row.site, e)
        out.print(f"{row.site if row.site is not None else ('(unknown)' if by else 'all')}\t{e.windows}\t"
                  f"{e.verdicts}\t{shown(e.prevalence)}\t{shown(e.precision)}\t{shown(e.recall)}")
    if sum(row.estimate.verdicts for row in found) == 0:
        console.print(f"no verdicts on {label!r} yet: `soundtag review --order validate --label {label!r}` draws the "
                      "sample to judge")


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
    info = job_or_newest(engine, job, "export")
    written = write(engine, info.job_id, ExportFormat(fmt), out_path, settings, reviewed=reviewed)
    console.print(f"job {info.job_id}: {written.files} files → {out_path}"
                  + (f"; labeling config → {written.extra}" if written.extra else ""))
    print_left_out(written.unreadable)


def import_reviews(
    path: Annotated[Path, typer.Argument(help="A Label Studio JSON export of tasks from `soundtag export`; a Raven "
                                         "selection table or an Audacity label track, or a folder of them.")],
    fmt: Annotated[str, typer.Option("--format", help="labelstudio, raven or audacity.")] = "labelstudio",
    job: Annotated[Optional[str], typer.Option("--job", help="For tasks that name no job; the job of the Raven or "
                                               "Audacity regions (default: the newest).")] = None,
    reviewer: Annotated[Optional[str], typer.Option("--reviewer", help="Name stored with each verdict (default: "
                                                    "the annotation's completed_by; for raven and audacity, your "
                                                    "login).")] = None,
    label_column: Annotated[str, typer.Option("--label-column", help="raven: the column holding the label.")]
    = "Label",
    recording: Annotated[Optional[str], typer.Option("--recording", help="audacity: the recording a single label "
                                                     "track belongs to (default: the one it is named for).")] = None,
    database: Database = None,
) -> None:
    """Record verdicts from other tools: Label Studio annotations (accept when the annotation
    kept the model's decision, correct when it chose another label, reject for none; regions
    as verdicts on their segments), and Raven selections or Audacity labels (each a verdict on
    its segment of the recording). A bad row is refused with its line; nothing is written."""
    import getpass

    from review.labelstudio import import_reviews as load
    from review.selections import SelectionFormat, import_selections

    if fmt not in {"labelstudio", *SelectionFormat}:
        fail(f"--format {fmt!r}: use one of labelstudio, {', '.join(SelectionFormat)}")
    engine = open_engine(load_settings(database_url=database))
    job_id = job_or_newest(engine, job, "import-reviews").job_id
    if fmt != "labelstudio":
        done = import_selections(engine, path, SelectionFormat(fmt), job_id, reviewer or getpass.getuser(),
                                 label_column=label_column, recording=source_uri(recording) if recording else None)
        out.print(f"{done.recorded} verdicts recorded, {done.unchanged} already in force")
        return
    done = load(engine, path, job_id, reviewer)
    out.print(f"{done.recorded} verdicts recorded, {done.unchanged} already in force, {done.cancelled} cancelled; "
              f"left out: {done.unknown_tasks} tasks of no known file, {done.unknown_labels} annotations with a "
              f"label not in the taxonomy")
