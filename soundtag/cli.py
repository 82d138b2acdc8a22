"""The ``soundtag`` command. Starts fast: torch and transformers load only in commands that run
the model."""

from __future__ import annotations

import gc
import itertools
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
import typer.core
from rich.console import Console
from rich.markup import escape

from soundtag.errors import SoundtagError, describe, first_line
from soundtag.redaction import masked
from soundtag.settings import load_settings
from soundtag.uris import readable, shown

# A flag takes no value: typer's help would still show a `<bool>` type beside it.
_display_type = typer.core.TyperOption.display_type_rich
typer.core.TyperOption.display_type_rich = lambda self, ctx: None if self.is_flag else _display_type(self, ctx)

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Zero-shot labeling of sound archives with CLAP.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
app.add_typer(db_app, name="db")
console = Console(stderr=True, soft_wrap=True)
# Piped output (scripts, logs) gets wide lines instead of rich's 80-column default.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)

_debug = False

Taxonomy_ = Annotated[Optional[Path], typer.Option("--taxonomy", "-t", help="YAML taxonomy file.")]
Labels = Annotated[Optional[str], typer.Option("--labels", "-l", help='Comma-separated labels: "dog,rain".')]
TaxonomyName = Annotated[Optional[str], typer.Option("--name", help="Name of the --labels taxonomy (default: "
                                                     "labels- and 8 hex digits of its labels' hash).")]
Model = Annotated[Optional[str], typer.Option("--model", help="Hub id or local folder [SOUNDTAG_MODEL].")]
Database = Annotated[Optional[str], typer.Option("--database", help="SQLAlchemy URL [SOUNDTAG_DATABASE_URL].")]
RetryFailed = Annotated[bool, typer.Option("--retry-failed", help="Try again files that failed at the same "
                                          "fingerprint (by default they are skipped).")]
Force = Annotated[bool, typer.Option("--force", help="Relabel every file, labeled or failed.")]
Pattern = Annotated[Optional[str], typer.Option("--pattern", help='Glob on file names, e.g. "*.wav" '
                                                "(default: audio extensions).")]
BatchSize = Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Windows per forward pass.")]
WindowS = Annotated[Optional[float], typer.Option("--window", min=0.1, help="Window seconds (default: model max).")]
HopS = Annotated[Optional[float], typer.Option("--hop", min=0.1, help="Hop seconds (default: the window).")]
AudioColumn = Annotated[Optional[str], typer.Option("--audio-column", help="hf:// datasets: the column holding "
                                                    "audio (default: the one Audio column).")]
TruthColumn = Annotated[Optional[str], typer.Option("--truth-column", help="Column with each file's true label "
                                                    "(hf:// datasets, audiofolder metadata.csv), for `evaluate`.")]


def _fail(message: str) -> None:
    raise SoundtagError(message)


@app.callback()
def _root(ctx: typer.Context, debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
          verbose: Annotated[bool, typer.Option("--verbose", help="Show the libraries' own warnings and "
                                                "progress bars.")] = False) -> None:
    global _debug
    _debug = debug
    if not (verbose or debug):
        _quiet_libraries()
        if ctx.invoked_subcommand == "run":
            _silence_native_stderr()


def _quiet_libraries() -> None:
    """Silence what third-party libraries print on a normal run (transformers' load reports and
    progress bars, Python warnings); soundtag's own progress and summary say what matters."""
    import logging
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)


def _silence_native_stderr() -> None:
    """Decoders in C (mpg123 inside libsndfile, FFmpeg) print warnings such as ID3 complaints
    straight to file descriptor 2, over the progress bar. Point that descriptor at /dev/null and
    keep Python's own stderr, soundtag's output, on the terminal."""
    sys.stderr.flush()
    terminal = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    sys.stderr = os.fdopen(terminal, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace")


def _one_blas_thread() -> None:
    """For commands that run the model, before numpy loads: its OpenBLAS spreads each small product
    (a window's mel projection, a batch's scores) over every core, then spins its idle threads,
    taking cores from torch (0.5 s of a 12 s cold run of 48 clips). An explicit setting wins."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _taxonomy(taxonomy: Path | None, labels: str | None, name: str | None = None):
    from soundtag.taxonomy import load_taxonomy, taxonomy_from_csv

    if (taxonomy is None) == (labels is None):
        _fail("give exactly one of --taxonomy FILE or --labels \"a,b,c\"")
    if name and taxonomy:
        _fail("--name names a --labels taxonomy; a taxonomy file has its own name")
    return load_taxonomy(taxonomy) if taxonomy else taxonomy_from_csv(labels, name)


def _engine(settings):
    from db.schema import engine_for, ensure_schema

    engine = engine_for(settings.database_url)
    ensure_schema(engine)
    return engine


def _refs(sources: list[str], pattern: str | None, audio_column: str | None = None, truth_column: str | None = None,
          report=None):
    from producer.sources import walk

    # Lazy, so that enqueue lists while it records; the first file is looked for up front.
    refs = (ref for source in sources
            for ref in walk(source, pattern, audio_column=audio_column, truth_column=truth_column, report=report))
    first = next(refs, None)
    if first is None:
        _fail(f"no audio files found in {', '.join(sources)}" + (f" matching {pattern!r}" if pattern else ""))
    return itertools.chain([first], refs)


@app.command()
def run(
    paths: Annotated[list[str], typer.Argument(help="Folders, files, s3://BUCKET/PREFIX or hf://DATASET to label.")],
    taxonomy: Taxonomy_ = None,
    labels: Labels = None,
    name: TaxonomyName = None,
    model: Model = None,
    database: Database = None,
    batch_size: BatchSize = None,
    window: WindowS = None,
    hop: HopS = None,
    pattern: Pattern = None,
    audio_column: AudioColumn = None,
    truth_column: TruthColumn = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda, cuda:N, mps.")] = None,
    dtype: Annotated[Optional[str], typer.Option(help="fp32, fp16, bf16, int8 (CPU only).")] = None,
    force: Force = False,
    retry_failed: RetryFailed = False,
) -> None:
    """Label every audio file under PATHS on this machine and store the results."""
    _one_blas_thread()
    from db.schema import safe_url
    from worker.runner import run as run_job

    settings = load_settings(model=model, database_url=database, batch_size=batch_size, window_s=window,
                             hop_s=hop, device=device, dtype=dtype)
    tax = _taxonomy(taxonomy, labels, name)
    engine = _engine(settings)
    started = time.monotonic()
    display = _RunProgress(f"model {settings.model_ref}, taxonomy {tax.name}, {len(tax.labels)} labels")
    try:
        info = run_job(engine, _refs(paths, pattern, audio_column, truth_column, display.walked), tax, settings,
                       sources=_source_names(paths), force=force, retry_failed=retry_failed,
                       on_planned=display.planned, on_result=display.result)
    finally:
        display.close()
    elapsed = time.monotonic() - started
    console.print(f"done: {info.done} labeled, {info.failed} failed, {info.skipped} skipped in {elapsed:.1f} s "
                  f"({(info.done + info.failed) / elapsed if elapsed else 0:.1f} files/s) → {safe_url(engine)}",
                  highlight=False)
    _print_failures(display.failures)


class _RunProgress:
    """What `soundtag run` shows while it works: the plan, then a bar that starts with the first
    result (after the model has loaded), so its rate is the labeling rate. The bar appears only
    once there is something to label, so an error while listing prints its one line alone."""

    def __init__(self, about: str):
        from producer.sources import WalkReport

        self.progress, self.about, self.walked = _progress(), about, WalkReport()
        self.failures: list[tuple[str, str]] = []
        self.bar = None
        self.begun = 0.0

    def planned(self, plan) -> None:
        console.print(f"run {plan.job_id}: {plan.found} files, {plan.todo} to label, {plan.skipped} skipped "
                      f"({self.about})" + (f"; left out: {self.walked}" if str(self.walked) else ""),
                      highlight=False)
        if plan.todo:
            self.bar = self.progress.add_task("loading the model", total=plan.todo, rate=0.0, failed=0)
            self.progress.start()

    def close(self) -> None:
        if self.bar is not None:  # rich prints a newline when stopping a bar never started
            self.progress.stop()

    def result(self, result) -> None:
        if not result.ok:
            self.failures.append((result.uri, result.error))
        done = self.progress.tasks[self.bar].completed + 1
        if done == 1:
            self.begun = time.monotonic()
        # A batch's results arrive together: over less than a second, a rate would be noise
        # (thousands of files/s for a batch of 16).
        self.progress.update(self.bar, description="labeling", advance=1, failed=len(self.failures),
                             rate=(done - 1) / max(time.monotonic() - self.begun, 1.0))


def _print_failures(failures: list[tuple[str, str]]) -> None:
    for uri, error in failures[:20]:
        console.print(f"  [red]failed[/] {escape(readable(uri))}: {escape(shown(error))}", highlight=False)
    if len(failures) > 20:
        console.print(f"  ... and {len(failures) - 20} more: select uri, error from files where status = 'failed'")


def _uri_prefix(source: str) -> str:
    """A source or file as stored URIs begin: URIs as given, local paths as ``file://`` URIs."""
    from soundtag.uris import file_uri

    return source if "://" in source else file_uri(str(Path(source).expanduser().absolute()))


def _source_names(sources: list[str]) -> list[str]:
    from producer.sources import source_name

    return [source_name(s) for s in sources]


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]:.1f} files/s"), TimeRemainingColumn(),
                    TextColumn("[red]{task.fields[failed]} failed"), console=console)


@app.command()
def enqueue(
    paths: Annotated[list[str], typer.Argument(help="Folders, files or source URIs to label.")],
    taxonomy: Taxonomy_ = None,
    labels: Labels = None,
    name: TaxonomyName = None,
    model: Model = None,
    database: Database = None,
    batch_size: BatchSize = None,
    window: WindowS = None,
    hop: HopS = None,
    pattern: Pattern = None,
    audio_column: AudioColumn = None,
    truth_column: TruthColumn = None,
    queue: Annotated[Optional[str], typer.Option(help="Celery queue [SOUNDTAG_QUEUE].")] = None,
    files_per_task: Annotated[Optional[int], typer.Option(min=1, help="Files per Celery task.")] = None,
    force: Force = False,
    retry_failed: RetryFailed = False,
) -> None:
    """Record a job and send its files to the workers; prints the job id."""
    from producer.enqueue import enqueue as enqueue_job
    from producer.sources import WalkReport

    settings = load_settings(model=model, database_url=database, batch_size=batch_size, window_s=window,
                             hop_s=hop, queue=queue, files_per_task=files_per_task)
    tax = _taxonomy(taxonomy, labels, name)
    engine = _engine(settings)
    walked = WalkReport()
    result = enqueue_job(engine, _refs(paths, pattern, audio_column, truth_column, walked), tax, settings,
                         sources=_source_names(paths), force=force, retry_failed=retry_failed, queue=queue)
    console.print(f"job {result.job_id}: {result.found} files, {result.queued} queued, {result.skipped} skipped "
                  f"→ {settings.queue}" + (f"; left out: {walked}" if str(walked) else ""),
                  highlight=False)
    out.print(result.job_id)


@app.command()
def scan(
    paths: Annotated[list[str], typer.Argument(help="Folders, files or source URIs to scan.")],
    taxonomy: Taxonomy_ = None,
    labels: Labels = None,
    name: TaxonomyName = None,
    model: Model = None,
    database: Database = None,
    pattern: Pattern = None,
    audio_column: AudioColumn = None,
    truth_column: TruthColumn = None,
) -> None:
    """Enqueue only the files that are new or changed since they were last seen (what the
    scheduled scans run); prints what it found."""
    from producer.scan import scan as run_scan

    settings = load_settings(model=model, database_url=database)
    result = run_scan(_engine(settings), paths, _taxonomy(taxonomy, labels, name), settings, pattern=pattern,
                      audio_column=audio_column, truth_column=truth_column)
    out.print(result.summary(), highlight=False)


def _counts(info) -> str:
    return (f"{info.done} done, {info.failed} failed, {info.queued} queued"
            + (f", {info.skipped} skipped" if info.skipped else "")
            + (f", {info.cancelled} cancelled" if info.cancelled else ""))


# `status --wait` exit codes: the job completed, was cancelled, failed as a whole.
EXIT_COMPLETED, EXIT_CANCELLED, EXIT_FAILED = 0, 3, 4


@app.command()
def status(
    job_id: Annotated[str, typer.Argument(help="Job id from `soundtag enqueue` or `soundtag jobs`.")],
    watch: Annotated[bool, typer.Option("--watch", help="Live progress until the job ends.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Block until the job ends.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 1.0,
    database: Database = None,
) -> None:
    """A job's state and counts (done / failed / queued), as the `jobs` view has them. Exit code:
    0 active or completed, 3 cancelled, 4 failed as a whole (its error is printed). Lists the
    workers holding files of the job, and those lost (their files go to live workers)."""
    from db import leases, store
    from soundtag.states import JobState

    engine = _engine(load_settings(database_url=database))
    info = store.job_info(engine, job_id)
    if watch or wait:
        info = _follow(engine, info, interval, show=watch)
    out.print(f"job {info.job_id} ({info.kind}, {info.state}): {_counts(info)} of {info.total}; "
              f"model {info.model}, taxonomy {info.taxonomy}", highlight=False)
    if info.error:
        out.print(f"error: {info.error}", highlight=False)
    for holder in leases.holders(engine, job_id):
        out.print(f"{'lost' if holder.lost else 'held by'} {holder.worker}: {holder.files} files since "
                  f"{holder.since:%Y-%m-%d %H:%M:%S}" + (" (lease expired; live workers take them back)"
                                                         if holder.lost else ""), highlight=False)
    if info.state == JobState.CANCELLED:
        raise typer.Exit(EXIT_CANCELLED)
    if info.state == JobState.FAILED:
        raise typer.Exit(EXIT_FAILED)


def _follow(engine, info, interval: float, show: bool):
    from contextlib import nullcontext

    from db import store
    from soundtag.states import JobState

    finished = lambda i: i.total - i.queued  # noqa: E731
    with _progress() if show else nullcontext() as progress:
        task = progress.add_task(f"job {info.job_id}", total=info.total, completed=finished(info), rate=0.0,
                                 failed=info.failed) if show else None
        first, begun = finished(info), time.monotonic()
        while info.state == JobState.ACTIVE:
            time.sleep(interval)
            info = store.job_info(engine, info.job_id)
            if show:
                progress.update(task, completed=finished(info), failed=info.failed,
                                rate=(finished(info) - first) / max(time.monotonic() - begun, 1e-9))
    return info


@app.command()
def jobs(limit: Annotated[int, typer.Option(help="How many.")] = 20, database: Database = None) -> None:
    """Recent jobs, newest first, as the `jobs` view has them."""
    from rich.table import Table

    from db import store

    engine = _engine(load_settings(database_url=database))
    table = Table("job", "kind", "state", "created", "done", "failed", "queued", "skipped", "cancelled", "taxonomy",
                  "sources", "error")
    for info in store.jobs(engine, limit=limit):
        table.add_row(info.job_id, info.kind, info.state, info.created_at.strftime("%Y-%m-%d %H:%M"), str(info.done),
                      str(info.failed), str(info.queued), str(info.skipped), str(info.cancelled), info.taxonomy,
                      " ".join(info.sources), info.error or "")
    out.print(table)


@app.command()
def cancel(job_id: Annotated[str, typer.Argument()], database: Database = None) -> None:
    """Drop a job's queued work; finished results stay."""
    from db import store

    engine = _engine(load_settings(database_url=database))
    store.job_info(engine, job_id)
    store.cancel_job(engine, job_id)
    info = store.job_info(engine, job_id)
    out.print(f"job {job_id}: {info.state}, {info.cancelled} queued files dropped; {_counts(info)}", highlight=False)


@app.command()
def requeue(job_id: Annotated[str, typer.Argument()], database: Database = None) -> None:
    """Send a job's still-queued files to the workers again: after Redis lost its data, or after
    fixing what made the job fail (it becomes active again). Safe to repeat."""
    from producer.enqueue import requeue as requeue_job

    settings = load_settings(database_url=database)
    out.print(f"job {job_id}: {requeue_job(_engine(settings), job_id, settings)} files sent again", highlight=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(
    ctx: typer.Context,
    queue: Annotated[Optional[str], typer.Option(help="Queue to consume [SOUNDTAG_QUEUE].")] = None,
    pool: Annotated[str, typer.Option(help="solo: one process per GPU (default); prefork for CPU fleets.")] = "solo",
    concurrency: Annotated[Optional[int], typer.Option(help="Processes (prefork/threads pools).")] = None,
) -> None:
    """Start a Celery worker (`celery -A soundtag.fleet worker` with soundtag's defaults). Extra
    arguments are passed to Celery."""
    _one_blas_thread()
    settings = load_settings(queue=queue)
    argv = [sys.executable, "-m", "celery", "-A", "soundtag.fleet", "worker", "--pool", pool, "--queues",
            settings.queue, "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    os.execv(sys.executable, argv + list(ctx.args))


def _plot_paths(plot: Path) -> tuple[Path, Path]:
    """Where --plot writes the confusion matrix (the path given) and the precision-recall curves
    (the same name with -pr)."""
    return plot, plot.with_name(f"{plot.stem}-pr{plot.suffix or '.png'}")


@app.command()
def evaluate(
    job_id: Annotated[str, typer.Argument(help="Job id from `soundtag run`, `enqueue` or `jobs`.")],
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write the confusion matrix to this PNG, and the "
                                                 "precision-recall curves next to it (NAME-pr.png).")] = None,
    truth: Annotated[str, typer.Option("--truth", help="files: the truth files carry (--truth-column); reviews: "
                                       "the verdicts of `soundtag review`.")] = "files",
    database: Database = None,
) -> None:
    """Compare a job's labels with the truth its files carry (see --truth-column) or with
    reviewers' verdicts: accuracy and top-5 accuracy of the rank-1 label, coverage and accuracy of
    the decisions, and precision and recall per class, of the rank-1 label and at the thresholds."""
    from rich.table import Table

    from db import store
    from soundtag.evaluation import curves, evaluate as score, plot_confusion, plot_curves

    if truth not in {"files", "reviews"}:
        _fail(f"--truth {truth!r}: use files or reviews")
    engine = _engine(load_settings(database_url=database))
    info = store.job_info(engine, job_id)
    spec = store.job_spec(engine, job_id)
    predictions = store.job_predictions(engine, job_id, k=5, reviewed=truth == "reviews")
    result = score(((p.truth, p.labels, p.decision, p.tags) for p in predictions), spec.taxonomy.names, k=5)
    if not result.files:
        _fail(f"job {job_id}: no file has both a result and a truth naming one of its labels ({result.no_truth} "
              f"without truth, {sum(result.missing.values())} with other truths, {result.unlabeled} without result); "
              + ("review some with `soundtag review`" if truth == "reviews"
                 else "give a dataset's label column with --truth-column"))
    policy = store.taxonomy_with_policy(engine, spec.taxonomy_id).policy()
    thresholds = {node.label: None if node.background else node.threshold for node in policy}
    shown_threshold = {node.label: "background" if node.background else "rank 1" if node.threshold is None
                       else f"{node.threshold:.4f}" for node in policy}
    percent = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
    out.print(f"job {job_id}: {result.files} files compared (model {info.model}, taxonomy {info.taxonomy})",
              highlight=False)
    out.print(f"accuracy {result.accuracy:.1%} ({result.top1}/{result.files}), top-{result.k} accuracy "
              f"{result.topk_accuracy:.1%} ({result.topk}/{result.files})", highlight=False)
    out.print(f"coverage {result.coverage:.1%} ({result.decided}/{result.files} decided, "
              f"{result.files - result.decided} abstained), accuracy on covered files "
              f"{percent(result.covered_accuracy)} ({result.decided_correct}/{result.decided})", highlight=False)
    table = Table("class", "support", "rank-1", "precision", "recall", "threshold", "tagged", "precision@t",
                  "recall@t")
    for c in result.classes:
        table.add_row(c.label, str(c.support), str(c.predicted), percent(c.precision), percent(c.recall),
                      shown_threshold[c.label], str(c.tagged), percent(c.tag_precision), percent(c.tag_recall))
    out.print(table)
    if result.single < result.files:
        out.print(f"{result.files - result.single} files have several truths: the rank-1 label is right when it is "
                  f"one of them; the confusion matrix counts the {result.single} with one", highlight=False)
    if result.missing:
        out.print(f"left out: {sum(result.missing.values())} files whose truth is no taxonomy label: "
                  + ", ".join(f"{name} ({n})" for name, n in result.missing.items()), highlight=False)
    if result.unlabeled or result.no_truth:
        out.print(f"left out: {result.unlabeled} files without a result, {result.no_truth} without truth",
                  highlight=False)
    if plot:
        confusion, pr = _plot_paths(plot)
        cosines = store.job_cosines(engine, job_id, reviewed=truth == "reviews")
        found = curves(((t, by_label) for _, t, by_label in cosines), spec.taxonomy.names)
        try:
            plot_confusion(result, confusion,
                           title=f"job {job_id}: accuracy {result.accuracy:.1%} on {result.files} files")
            plot_curves(found, thresholds, pr, title=f"job {job_id}: precision-recall over the cosine; "
                        "● the current threshold")
        except ImportError:
            _fail("--plot needs matplotlib: pip install 'soundtag[plot]'")
        console.print(f"confusion matrix → {confusion}", highlight=False)
        console.print(f"precision-recall curves → {pr}", highlight=False)


@app.command()
def calibrate(
    job_id: Annotated[str, typer.Argument(help="Job id whose files carry a truth, or were reviewed.")],
    target_precision: Annotated[float, typer.Option("--target-precision", min=0.0, max=1.0,
                                                    help="Precision each label must keep, 0-1.")],
    out_file: Annotated[Path, typer.Option("--out", help="Write the taxonomy with these thresholds here (YAML).")],
    truth: Annotated[str, typer.Option("--truth", help="files: the truth files carry (--truth-column); reviews: "
                                       "the verdicts of `soundtag review`.")] = "files",
    database: Database = None,
) -> None:
    """Choose each label's threshold on the cosine: the lowest at which its precision on the
    job's files with a known truth is at least the target. Writes the taxonomy with them."""
    import yaml
    from rich.table import Table

    from db import store
    from soundtag.calibration import calibrate as choose, truths

    if truth not in {"files", "reviews"}:
        _fail(f"--truth {truth!r}: use files or reviews")
    engine = _engine(load_settings(database_url=database))
    store.job_info(engine, job_id)
    spec = store.job_spec(engine, job_id)
    known = [(truths(t), cosines) for _, t, cosines in store.job_cosines(engine, job_id, reviewed=truth == "reviews")
             if truths(t)]
    if not known:
        _fail(f"job {job_id}: no labeled file has a truth; "
              + ("review some with `soundtag review`" if truth == "reviews"
                 else "give a dataset's label column with --truth-column"))
    taxonomy = store.taxonomy_with_policy(engine, spec.taxonomy_id)
    chosen = choose(known, [lb.name for lb in taxonomy.labels if not lb.background], target_precision)
    percent = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
    table = Table("label", "threshold", "precision", "recall", "support")
    for c in chosen:
        table.add_row(c.label, f"{c.threshold:.4f}", percent(c.precision), percent(c.recall), str(c.support))
    out.print(f"job {job_id}: {len(known)} files with a known truth, target precision {target_precision:.0%}",
              highlight=False)
    out.print(table)
    missed = [c.label for c in chosen if not c.reached]
    if missed:
        out.print(f"cannot reach {target_precision:.0%} precision (threshold above every cosine seen): "
                  + ", ".join(missed), highlight=False)
    calibrated = taxonomy.with_thresholds({c.label: c.threshold for c in chosen})
    out_file.write_text(yaml.safe_dump(calibrated.document(), sort_keys=False, allow_unicode=True))
    console.print(f"taxonomy with thresholds → {out_file}", highlight=False)


def _job_or_newest(engine, job: str | None, command: str):
    """The given job's row of the `jobs` view, or the newest job's."""
    from db import store

    info = store.job_info(engine, job) if job else next(iter(store.jobs(engine, limit=1)), None)
    if info is None:
        _fail(f"{command}: no job in this database yet; label something with `soundtag run` first")
    return info


@app.command()
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

    from db import store
    from review.guard import Guard, check_exposure
    from review.order import Order
    from review.server import Session, create_app, serve

    settings = load_settings(database_url=database, review_token=token)
    if order not in set(Order):
        _fail(f"--order {order!r}: use one of {', '.join(Order)}")
    check_exposure(host, settings.review_token)
    engine = _engine(settings)
    info = _job_or_newest(engine, job, "review")
    session = Session(info.job_id, Order(order), reviewer or getpass.getuser(), label)
    guard = Guard(host, port, settings.review_token)
    app_ = create_app(engine, settings, session, guard)
    shown_host = f"[{host}]" if ":" in host else host
    console.print(f"review of job {info.job_id} ({info.model}, taxonomy {info.taxonomy}) by {session.reviewer}: "
                  f"http://{shown_host}:{port}/" + ("?token=…" if settings.review_token else "")
                  + "  (Ctrl-C stops)", highlight=False)
    serve(app_, host, port)


@app.command()
def relabel(
    sources: Annotated[Optional[list[str]], typer.Argument(help="Only files under these source URIs or folders.")] = None,
    taxonomy: Taxonomy_ = None,
    labels: Labels = None,
    name: TaxonomyName = None,
    job: Annotated[Optional[list[str]], typer.Option("--job", help="Only the files of this job (repeatable).")] = None,
    model: Model = None,
    database: Database = None,
) -> None:
    """Label stored files with a new taxonomy from their stored audio embeddings: no recording is
    read, only the text tower runs. Without --model, the model that made the embeddings in scope.
    Writes a new job (kind relabel)."""
    from worker.relabel import relabel as relabel_files
    from worker.runner import Planned

    if job and sources:
        _fail("give either --job JOB ... or SOURCE ..., not both")
    settings = load_settings(model=model, database_url=database)
    tax = _taxonomy(taxonomy, labels, name)
    engine = _engine(settings)
    started = time.monotonic()
    plans = []
    display = _RunProgress(f"taxonomy {tax.name}, {len(tax.labels)} labels")

    def planned(plan) -> None:
        plans.append(plan)
        display.planned(Planned(plan.job_id, plan.todo + len(plan.missing) + len(plan.failed), plan.todo))

    try:
        info = relabel_files(engine, tax, settings, job_ids=job or (), sources=[_uri_prefix(s) for s in sources or ()],
                             on_planned=planned, on_result=display.result)
    finally:
        display.close()
    elapsed = time.monotonic() - started
    console.print(f"done: {info.done} relabeled from stored embeddings in {elapsed:.1f} s "
                  f"({info.done / elapsed if elapsed else 0:.0f} files/s) → job {info.job_id}", highlight=False)
    plan = plans[0]
    if plan.missing:
        console.print(f"{len(plan.missing)} files have no stored embeddings of model {plan.model}; label them once "
                      f"from their recordings to keep them: soundtag run PATH --force --model {plan.model}",
                      highlight=False)
    if plan.failed:
        console.print(f"{len(plan.failed)} files failed when last labeled (unreadable or corrupt): nothing to "
                      "relabel", highlight=False)
    for why, uris in (("no embeddings", plan.missing), ("failed", plan.failed)):
        for uri in uris[:20]:
            console.print(f"  [yellow]{why}[/] {escape(readable(uri))}", highlight=False)
        if len(uris) > 20:
            console.print(f"  ... and {len(uris) - 20} more", highlight=False)


@app.command()
def search(
    text: Annotated[Optional[str], typer.Argument(help="What to listen for: \"a dog barking near traffic\".")] = None,
    like: Annotated[Optional[str], typer.Option("--like", help="Rank by similarity to this file's window.")] = None,
    at: Annotated[float, typer.Option("--at", help="With --like: the second whose window to use.")] = 0.0,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many windows.")] = 10,
    model: Model = None,
    database: Database = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list, best first.")] = False,
) -> None:
    """Stored windows ranked by cosine similarity to a text or to another recording's window."""
    import json

    from rich.table import Table

    from worker.search import search_like, search_text

    if (text is None) == (like is None):
        _fail('give exactly one of TEXT or --like URI')
    settings = load_settings(model=model, database_url=database)
    engine = _engine(settings)
    hits = (search_text(engine, text, settings, limit) if text is not None
            else search_like(engine, _uri_prefix(like), settings, at, limit))
    if as_json:
        out.print_json(json.dumps([hit.as_dict() for hit in hits]))
        return
    table = Table("similarity", "start_s", "end_s", "uri")
    for hit in hits:
        table.add_row(f"{hit.similarity:.3f}", f"{hit.start_s:.1f}", f"{hit.end_s:.1f}", escape(readable(hit.uri)))
    out.print(table)


@app.command("export-embeddings")
def export_embeddings(
    out_file: Annotated[Path, typer.Option("--out", help="Parquet file to write.")],
    model: Model = None,
    job: Annotated[Optional[str], typer.Option("--job", help="Only the files of this job.")] = None,
    database: Database = None,
) -> None:
    """Write the stored audio embeddings (uri, start_s, end_s, model, vector) to a Parquet file."""
    from db import store
    from db.export import export_embeddings as export

    settings = load_settings(model=model, database_url=database)
    engine = _engine(settings)
    if job:
        store.job_info(engine, job)
    written = export(engine, out_file, settings.model_ref, job)
    if not written:
        _fail(f"no stored embeddings of model {settings.model_ref}" + (f" for job {job}" if job else "")
              + "; `soundtag run` keeps them unless SOUNDTAG_EMBEDDINGS=off")
    console.print(f"{written} windows → {out_file}", highlight=False)


@app.command()
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
        _fail(f"--format {fmt!r}: use one of {', '.join(ExportFormat)}")
    settings = load_settings(database_url=database)
    engine = _engine(settings)
    info = _job_or_newest(engine, job, "export")
    written = write(engine, info.job_id, ExportFormat(fmt), out_path, settings, reviewed=reviewed)
    console.print(f"job {info.job_id}: {written.files} files → {out_path}"
                  + (f"; labeling config → {written.extra}" if written.extra else ""), highlight=False)
    for problem in written.unreadable[:20]:
        console.print(f"  [yellow]left out[/] {escape(shown(problem))}", highlight=False)


@app.command("import-reviews")
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

    engine = _engine(load_settings(database_url=database))
    done = load(engine, path, _job_or_newest(engine, job, "import-reviews").job_id, reviewer)
    out.print(f"{done.recorded} verdicts recorded, {done.unchanged} already in force, {done.cancelled} cancelled; "
              f"left out: {done.unknown_tasks} tasks of no known file, {done.unknown_labels} annotations with a "
              f"label not in the taxonomy", highlight=False)


@app.command("fetch-model")
def fetch_model(model: Annotated[Optional[str], typer.Argument(help="Hub id [SOUNDTAG_MODEL].")] = None,
                random: Annotated[Optional[Path], typer.Option(
                    "--random", help="Instead, save a small randomly initialised CLAP in this folder: the real "
                    "code path offline, labels that mean nothing.")] = None) -> None:
    """Download a model into the Hugging Face cache (HF_HOME), e.g. once into a volume that
    every worker mounts; workers then run with HF_HUB_OFFLINE=1."""
    from pathlib import Path as _Path

    if random is not None:
        if model:
            _fail("give a hub id or --random DIR, not both")
        from soundtag.random_clap import build

        console.print(f"random CLAP in {build(random, 'tiny')}: use it with --model {random}", highlight=False)
        return
    settings = load_settings(model=model)
    if _Path(settings.model).expanduser().is_dir():
        console.print(f"{settings.model_ref}: a local folder, nothing to fetch", highlight=False)
        return
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(settings.model)
    except Exception as exc:  # noqa: BLE001 - hub errors are many; the user needs one line
        _fail(f"model {settings.model}: cannot fetch: {first_line(exc)}")
    console.print(f"{settings.model}: in the cache at {path}", highlight=False)


@db_app.command("upgrade")
def db_upgrade(database: Database = None) -> None:
    """Create or migrate the schema to the newest version."""
    from db.schema import engine_for, safe_url, upgrade

    engine = engine_for(load_settings(database_url=database).database_url)
    upgrade(engine)
    console.print(f"schema up to date: {safe_url(engine)}", highlight=False)


def main() -> None:
    """Entry point: usage errors are click's; a SoundtagError prints its one line, anything else
    one line and how to see the traceback; both exit 1."""
    try:
        app()
    except SoundtagError as exc:
        if _debug:
            raise
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - the one place errors become messages
        if _debug:
            raise
        console.print(f"[bold red]error:[/] {masked(describe(exc))}\n(run with --debug for the traceback)",
                      highlight=False)
        sys.exit(1)
    finally:
        # The process ends here. Python's last collections would walk every object torch and
        # transformers made (1 s at exit once they are loaded); frozen objects are skipped.
        gc.freeze()


if __name__ == "__main__":
    main()
