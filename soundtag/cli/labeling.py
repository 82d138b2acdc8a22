"""Labeling: ``run`` (on this machine), ``enqueue`` (to the fleet), ``scan`` (only what is new or
changed) and ``worker`` (a Celery worker of the fleet)."""

from __future__ import annotations

import itertools
import os
import sys
import time
from typing import Annotated, Optional

import typer

from soundtag.cli.learning import head_of
from soundtag.cli.options import (
    AudioColumn,
    Backend,
    BatchSize,
    Database,
    Dtype,
    Force,
    HeadToo,
    HopS,
    Labels,
    Model,
    Pattern,
    RetryFailed,
    SitePattern,
    Taxonomy_,
    TaxonomyName,
    TimePattern,
    TimeZone,
    TruthColumn,
    WindowS,
    console,
    fail,
    open_engine,
    out,
    read_taxonomy,
    recording_rules,
)
from soundtag.cli.process import one_blas_thread
from soundtag.cli.progress import RunProgress, print_failures
from soundtag.output import counted
from soundtag.settings import load_settings


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
    dtype: Dtype = None,
    backend: Backend = None,
    force: Force = False,
    retry_failed: RetryFailed = False,
    head: HeadToo = None,
    time_pattern: TimePattern = None,
    timezone: TimeZone = None,
    site_pattern: SitePattern = None,
) -> None:
    """Label every audio file under PATHS on this machine and store the results, with when and
    where each was recorded as its metadata or name says."""
    one_blas_thread()
    from db.schema import safe_url
    from worker.runner import run as run_job

    settings = load_settings(model=model, database_url=database, batch_size=batch_size, window_s=window,
                             hop_s=hop, device=device, dtype=dtype, backend=backend, time_pattern=time_pattern,
                             timezone=timezone, site_pattern=site_pattern)
    recording_rules(settings)
    tax = read_taxonomy(taxonomy, labels, name)
    engine = open_engine(settings, create=True)
    started = time.monotonic()
    display = RunProgress(f"model {settings.model_ref}, taxonomy {tax.name}, {len(tax.labels)} labels")
    try:
        info = run_job(engine, _refs(paths, pattern, audio_column, truth_column, display.walked), tax, settings,
                       sources=_source_uris(paths), force=force, retry_failed=retry_failed,
                       head=head_of(engine, head, settings) if head else None,
                       on_planned=display.planned, on_result=display.result)
    finally:
        display.close()
    elapsed = time.monotonic() - started
    console.print(f"done: {info.done} labeled, {info.failed} failed, {info.skipped} skipped in {elapsed:.1f} s "
                  f"({(info.done + info.failed) / elapsed if elapsed else 0:.1f} files/s) → {safe_url(engine)}")
    print_failures(display.failures)
    if info.failed and not info.done:
        fail(f"nothing labeled: {counted(info.failed, 'file')} failed, for the reasons above")


def _refs(sources: list[str], pattern: str | None, audio_column: str | None = None, truth_column: str | None = None,
          report=None):
    from soundtag.sources.walk import walk_sources

    # Lazy, so that enqueue lists while it records; the first file is looked for up front.
    refs = walk_sources(sources, pattern, audio_column=audio_column, truth_column=truth_column, report=report)
    first = next(refs, None)
    if first is None:
        fail(f"no audio files found in {', '.join(sources)}" + (f" matching {pattern!r}" if pattern else ""))
    return itertools.chain([first], refs)


def _source_uris(sources: list[str]) -> list[str]:
    from soundtag.sources.uris import source_uri

    return [source_uri(s) for s in sources]


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
    head: HeadToo = None,
    time_pattern: TimePattern = None,
    timezone: TimeZone = None,
    site_pattern: SitePattern = None,
) -> None:
    """Record a job and send its files to the workers; prints the job id."""
    from producer.enqueue import enqueue as enqueue_job
    from soundtag.sources.walk import WalkReport

    settings = load_settings(model=model, database_url=database, batch_size=batch_size, window_s=window,
                             hop_s=hop, queue=queue, files_per_task=files_per_task, time_pattern=time_pattern,
                             timezone=timezone, site_pattern=site_pattern)
    recording_rules(settings)
    tax = read_taxonomy(taxonomy, labels, name)
    engine = open_engine(settings, create=True)
    walked = WalkReport()
    result = enqueue_job(engine, _refs(paths, pattern, audio_column, truth_column, walked), tax, settings,
                         sources=_source_uris(paths), force=force, retry_failed=retry_failed, queue=queue,
                         head=head_of(engine, head, settings) if head else None)
    console.print(f"job {result.job_id}: {counted(result.found, 'file')}, {result.queued} queued, {result.skipped} skipped "
                  f"→ {settings.queue}" + (f"; left out: {walked}" if str(walked) else ""))
    out.print(result.job_id)


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
    time_pattern: TimePattern = None,
    timezone: TimeZone = None,
    site_pattern: SitePattern = None,
) -> None:
    """Enqueue only the files that are new or changed since they were last seen (what the
    scheduled scans run); prints what it found."""
    from producer.scan import scan as run_scan

    settings = load_settings(model=model, database_url=database, time_pattern=time_pattern, timezone=timezone,
                             site_pattern=site_pattern)
    recording_rules(settings)
    result = run_scan(open_engine(settings, create=True), paths, read_taxonomy(taxonomy, labels, name), settings, pattern=pattern,
                      audio_column=audio_column, truth_column=truth_column)
    out.print(result.summary())


def worker(
    ctx: typer.Context,
    queue: Annotated[Optional[str], typer.Option(help="Queue to consume [SOUNDTAG_QUEUE].")] = None,
    pool: Annotated[str, typer.Option(help="solo: one process per GPU (default); prefork for CPU fleets.")] = "solo",
    concurrency: Annotated[Optional[int], typer.Option(help="Processes (prefork/threads pools).")] = None,
    backend: Backend = None,
    dtype: Dtype = None,
) -> None:
    """Start a Celery worker (`celery -A soundtag.fleet worker` with soundtag's defaults). Extra
    arguments are passed to Celery."""
    one_blas_thread()
    settings = load_settings(queue=queue, backend=backend, dtype=dtype)
    # The worker reads its settings from the environment, as Celery starts it.
    os.environ["SOUNDTAG_BACKEND"] = settings.backend
    os.environ["SOUNDTAG_DTYPE"] = settings.dtype
    if settings.metrics_port:
        from worker.metrics import multiprocess_dir

        # Before Celery imports prometheus_client: its processes count into files there (prefork).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiprocess_dir()
    argv = [sys.executable, "-m", "celery", "-A", "soundtag.fleet", "worker", "--pool", pool, "--queues",
            settings.queue, "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    os.execv(sys.executable, argv + list(ctx.args))
