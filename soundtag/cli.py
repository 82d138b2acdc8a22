"""The ``soundtag`` command. Starts fast: torch and transformers load only in commands that run
the model."""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from soundtag.redaction import masked
from soundtag.settings import Settings
from soundtag.uris import readable, shown

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
Model = Annotated[Optional[str], typer.Option("--model", help="Hub id or local folder [SOUNDTAG_MODEL].")]
Database = Annotated[Optional[str], typer.Option("--database", help="SQLAlchemy URL [SOUNDTAG_DATABASE_URL].")]
Pattern = Annotated[Optional[str], typer.Option("--pattern", help='Glob on file names, e.g. "*.wav" '
                                                "(default: audio extensions).")]
BatchSize = Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Windows per forward pass.")]
WindowS = Annotated[Optional[float], typer.Option("--window", min=0.1, help="Window seconds (default: model max).")]
HopS = Annotated[Optional[float], typer.Option("--hop", min=0.1, help="Hop seconds (default: the window).")]
AudioColumn = Annotated[Optional[str], typer.Option("--audio-column", help="hf:// datasets: the column holding "
                                                    "audio (default: the one Audio column).")]
TruthColumn = Annotated[Optional[str], typer.Option("--truth-column", help="Column with each file's true label "
                                                    "(hf:// datasets, audiofolder metadata.csv), for `evaluate`.")]


def _settings(**overrides) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(1)


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False) -> None:
    global _debug
    _debug = debug


def _taxonomy(taxonomy: Path | None, labels: str | None):
    from soundtag.taxonomy import load_taxonomy, taxonomy_from_csv

    if (taxonomy is None) == (labels is None):
        _fail("give exactly one of --taxonomy FILE or --labels \"a,b,c\"")
    return load_taxonomy(taxonomy) if taxonomy else taxonomy_from_csv(labels)


def _engine(settings: Settings):
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
    model: Model = None,
    database: Database = None,
    batch_size: BatchSize = None,
    window: WindowS = None,
    hop: HopS = None,
    pattern: Pattern = None,
    audio_column: AudioColumn = None,
    truth_column: TruthColumn = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda, cuda:1 ...")] = None,
    dtype: Annotated[Optional[str], typer.Option(help="fp32, fp16, bf16 (GPU), int8 (CPU).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Relabel files already labeled.")] = False,
) -> None:
    """Label every audio file under PATHS on this machine and store the results."""
    from db import store
    from producer.enqueue import record_job
    from producer.sources import WalkReport

    settings = _settings(model=model, database_url=database, batch_size=batch_size, window_s=window,
                         hop_s=hop, device=device, dtype=dtype)
    tax = _taxonomy(taxonomy, labels)
    engine = _engine(settings)
    walked = WalkReport()
    refs = list(_refs(paths, pattern, audio_column, truth_column, walked))
    job_id, todo = record_job(engine, refs, tax, settings, sources=_source_names(paths), kind="run", force=force)
    skipped = len(refs) - len(todo)
    console.print(f"run {job_id}: {len(refs)} files, {len(todo)} to label, {skipped} already labeled "
                  f"(model {settings.model_ref}, taxonomy {tax.name}, {len(tax.labels)} labels)"
                  + (f"; skipped: {walked}" if str(walked) else ""), highlight=False)
    failures: list[tuple[str, str]] = []
    started = time.monotonic()
    if todo:
        from worker.runner import classifier_for, process

        with console.status(f"loading {settings.model_ref} ..."):
            classifier_for(settings.model_ref, settings)
        with _progress() as progress:
            task = progress.add_task("labeling", total=len(todo), rate=0.0, failed=0)
            begun = time.monotonic()

            def tick(result) -> None:
                if not result.ok:
                    failures.append((result.uri, result.error))
                done = progress.tasks[task].completed + 1
                progress.update(task, advance=1, failed=len(failures),
                                rate=done / max(time.monotonic() - begun, 1e-9))

            process(job_id, todo, settings, on_result=tick)
    store.finish_job(engine, job_id)
    info = store.job_info(engine, job_id)
    elapsed = time.monotonic() - started
    console.print(f"done: {info.counts.get('done', 0)} labeled, {info.counts.get('failed', 0)} failed, "
                  f"{skipped} skipped in {elapsed:.1f} s ({len(todo) / elapsed if elapsed else 0:.1f} files/s) "
                  f"→ {engine.url.render_as_string()}", highlight=False)
    for uri, error in failures[:20]:
        console.print(f"  [red]failed[/] {escape(readable(uri))}: {escape(shown(error))}", highlight=False)
    if len(failures) > 20:
        console.print(f"  ... and {len(failures) - 20} more: select uri, error from files where status = 'failed'")


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
    force: Annotated[bool, typer.Option("--force", help="Relabel files already labeled.")] = False,
) -> None:
    """Record a job and send its files to the workers; prints the job id."""
    from producer.enqueue import enqueue as enqueue_job
    from producer.sources import WalkReport

    settings = _settings(model=model, database_url=database, batch_size=batch_size, window_s=window,
                         hop_s=hop, queue=queue, files_per_task=files_per_task)
    tax = _taxonomy(taxonomy, labels)
    engine = _engine(settings)
    walked = WalkReport()
    refs = _refs(paths, pattern, audio_column, truth_column, walked)
    result = enqueue_job(engine, refs, tax, settings, sources=_source_names(paths), force=force)
    console.print(f"job {result.job_id}: {result.found} files, {result.queued} queued, {result.skipped} already "
                  f"labeled → {settings.queue if queue is None else queue}"
                  + (f"; skipped: {walked}" if str(walked) else ""), highlight=False)
    out.print(result.job_id)


@app.command()
def scan(
    paths: Annotated[list[str], typer.Argument(help="Folders, files or source URIs to scan.")],
    taxonomy: Taxonomy_ = None,
    labels: Labels = None,
    model: Model = None,
    database: Database = None,
    pattern: Pattern = None,
    audio_column: AudioColumn = None,
    truth_column: TruthColumn = None,
) -> None:
    """Enqueue only the files that are new or changed since they were last seen (what the
    scheduled scans run); prints what it found."""
    from producer.scan import scan as run_scan

    settings = _settings(model=model, database_url=database)
    result = run_scan(_engine(settings), paths, _taxonomy(taxonomy, labels), settings, pattern=pattern,
                      audio_column=audio_column, truth_column=truth_column)
    out.print(result.summary(), highlight=False)


def _job(engine, job_id: str):
    from db import store

    info = store.job_info(engine, job_id)
    if info is None:
        _fail(f"job {job_id}: not found")
    return info


def _counts(info) -> str:
    c = info.counts
    return (f"{c.get('done', 0)} done, {c.get('failed', 0)} failed, {c.get('queued', 0)} queued"
            + (f", {c['skipped']} skipped" if c.get("skipped") else "")
            + (f", {c['cancelled']} cancelled" if c.get("cancelled") else ""))


@app.command()
def status(
    job_id: Annotated[str, typer.Argument(help="Job id from `soundtag enqueue` or `soundtag jobs`.")],
    watch: Annotated[bool, typer.Option("--watch", help="Live progress until the job ends.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Block until the job ends; exit 0 if it completed.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 1.0,
    database: Database = None,
) -> None:
    """Progress of a job: done / failed / queued, files/s, ETA. Exit 3 if it was cancelled."""
    settings = _settings(database_url=database)
    engine = _engine(settings)
    info = _job(engine, job_id)
    if watch or wait:
        info = _follow(engine, info, interval, show=watch)
    out.print(f"job {info.id} ({info.kind}, {info.state}): {_counts(info)} of {info.total}; "
              f"model {info.model}, taxonomy {info.taxonomy}", highlight=False)
    if info.state == "cancelled":
        raise typer.Exit(3)
    if (watch or wait) and info.pending:
        raise typer.Exit(1)


def _follow(engine, info, interval: float, show: bool):
    from contextlib import nullcontext

    from db import store

    finished = lambda i: i.total - i.pending  # noqa: E731
    with _progress() if show else nullcontext() as progress:
        task = progress.add_task(f"job {info.id}", total=info.total, completed=finished(info), rate=0.0,
                                 failed=info.counts.get("failed", 0)) if show else None
        first, begun = finished(info), time.monotonic()
        while info.pending and info.state == "active":
            time.sleep(interval)
            info = store.job_info(engine, info.id)
            if show:
                progress.update(task, completed=finished(info), failed=info.counts.get("failed", 0),
                                rate=(finished(info) - first) / max(time.monotonic() - begun, 1e-9))
    return info


@app.command()
def jobs(limit: Annotated[int, typer.Option(help="How many.")] = 20, database: Database = None) -> None:
    """Recent jobs with their counts."""
    from rich.table import Table

    from db import store

    engine = _engine(_settings(database_url=database))
    table = Table("job", "kind", "state", "created", "done", "failed", "queued", "skipped", "taxonomy", "sources")
    for info in store.recent_jobs(engine, limit):
        c = info.counts
        table.add_row(info.id, info.kind, "finished" if info.finished_at and info.state == "active" else info.state,
                      info.created_at.strftime("%Y-%m-%d %H:%M"), str(c.get("done", 0)), str(c.get("failed", 0)),
                      str(c.get("queued", 0)), str(c.get("skipped", 0)), info.taxonomy, " ".join(info.sources))
    out.print(table)


@app.command()
def cancel(job_id: Annotated[str, typer.Argument()], database: Database = None) -> None:
    """Drop a job's queued work; finished results stay."""
    from db import store

    engine = _engine(_settings(database_url=database))
    _job(engine, job_id)
    dropped = store.cancel_job(engine, job_id)
    out.print(f"job {job_id}: cancelled, {dropped} queued files dropped", highlight=False)


@app.command()
def requeue(job_id: Annotated[str, typer.Argument()], database: Database = None) -> None:
    """Send a job's still-queued files to the workers again, e.g. after Redis lost its data.
    Safe to repeat: files already labeled are not labeled twice."""
    from producer.enqueue import requeue as requeue_job

    settings = _settings(database_url=database)
    engine = _engine(settings)
    _job(engine, job_id)
    out.print(f"job {job_id}: {requeue_job(engine, job_id, settings)} files sent again", highlight=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(
    ctx: typer.Context,
    queue: Annotated[Optional[str], typer.Option(help="Queue to consume [SOUNDTAG_QUEUE].")] = None,
    pool: Annotated[str, typer.Option(help="solo: one process per GPU (default); prefork for CPU fleets.")] = "solo",
    concurrency: Annotated[Optional[int], typer.Option(help="Processes (prefork/threads pools).")] = None,
) -> None:
    """Start a Celery worker (`celery -A worker worker` with soundtag's defaults). Extra
    arguments are passed to Celery."""
    import os

    settings = _settings(queue=queue)
    argv = [sys.executable, "-m", "celery", "-A", "worker", "worker", "--pool", pool, "--queues",
            settings.queue, "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    os.execv(sys.executable, argv + list(ctx.args))


@app.command()
def evaluate(
    job_id: Annotated[str, typer.Argument(help="Job id from `soundtag run`, `enqueue` or `jobs`.")],
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write the confusion matrix to this PNG.")] = None,
    database: Database = None,
) -> None:
    """Compare a job's labels with the truth its files carry (see --truth-column): accuracy,
    top-5 accuracy, and precision and recall per true class."""
    from rich.table import Table

    from db import store
    from soundtag.evaluation import evaluate as score, plot_confusion

    engine = _engine(_settings(database_url=database))
    info = _job(engine, job_id)
    result = score(((p.truth, p.labels) for p in store.job_predictions(engine, job_id, k=5)),
                   store.job_spec(engine, job_id).taxonomy.names, k=5)
    if not result.files:
        _fail(f"job {job_id}: no file has both a result and a truth naming one of its labels ({result.no_truth} "
              f"without truth, {sum(result.missing.values())} with other truths, {result.unlabeled} without result); "
              "give a dataset's label column with --truth-column")
    out.print(f"job {job_id}: {result.files} files compared (model {info.model}, taxonomy {info.taxonomy})",
              highlight=False)
    out.print(f"accuracy {result.accuracy:.1%} ({result.top1}/{result.files}), top-{result.k} accuracy "
              f"{result.topk_accuracy:.1%} ({result.topk}/{result.files})", highlight=False)
    percent = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
    table = Table("class", "support", "predicted", "precision", "recall")
    for c in result.classes:
        table.add_row(c.label, str(c.support), str(c.predicted), percent(c.precision), percent(c.recall))
    out.print(table)
    if result.missing:
        out.print(f"left out: {sum(result.missing.values())} files whose truth is no taxonomy label: "
                  + ", ".join(f"{name} ({n})" for name, n in result.missing.items()), highlight=False)
    if result.unlabeled or result.no_truth:
        out.print(f"left out: {result.unlabeled} files without a result, {result.no_truth} without truth",
                  highlight=False)
    if plot:
        try:
            plot_confusion(result, plot, title=f"job {job_id}: accuracy {result.accuracy:.1%} on {result.files} files")
        except ImportError:
            _fail("--plot needs matplotlib: pip install 'soundtag[plot]'")
        console.print(f"confusion matrix → {plot}", highlight=False)


@app.command("fetch-model")
def fetch_model(model: Annotated[Optional[str], typer.Argument(help="Hub id [SOUNDTAG_MODEL].")] = None) -> None:
    """Download a model into the Hugging Face cache (HF_HOME), e.g. once into a volume that
    every worker mounts; workers then run with HF_HUB_OFFLINE=1."""
    from pathlib import Path as _Path

    settings = _settings(model=model)
    if _Path(settings.model).expanduser().is_dir():
        console.print(f"{settings.model_ref}: a local folder, nothing to fetch", highlight=False)
        return
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(settings.model)
    except Exception as exc:  # noqa: BLE001 - hub errors are many; the user needs one line
        _fail(f"model {settings.model}: cannot fetch: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__}")
    console.print(f"{settings.model}: in the cache at {path}", highlight=False)


@db_app.command("upgrade")
def db_upgrade(database: Database = None) -> None:
    """Create or migrate the schema to the newest version."""
    from db.schema import engine_for, upgrade

    settings = _settings(database_url=database)
    upgrade(engine_for(settings.database_url))
    console.print(f"schema up to date: {masked(settings.database_url)}", highlight=False)


def main() -> None:
    """Entry point: usage errors are click's; any other error prints one line (a traceback with
    --debug) and exits 1."""
    try:
        app()
    except Exception as exc:  # noqa: BLE001 - the one place errors become messages
        if _debug:
            raise
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        known = exc.__class__.__name__ in {"DatabaseError", "SourceError", "TaxonomyError", "ModelError",
                                           "TransientReadError"}
        text = masked(text)  # drivers and clients may echo a URL with its password
        console.print(f"[bold red]error:[/] {text if known else f'{exc.__class__.__name__}: {text}'}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
