"""Stored vectors: ``relabel`` (a new taxonomy from stored audio embeddings), ``search`` (windows
by similarity) and ``export-embeddings`` (to Parquet)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from soundtag.cli.options import (
    Backend,
    Database,
    Labels,
    Model,
    Taxonomy_,
    TaxonomyName,
    console,
    fail,
    open_engine,
    out,
    read_taxonomy,
    styled,
)
from soundtag.cli.progress import RunProgress, print_failures, print_left_out
from soundtag.settings import load_settings
from soundtag.sources.uris import readable, source_uri


def relabel(
    sources: Annotated[Optional[list[str]], typer.Argument(help="Only files under these source URIs or folders.")] = None,
    taxonomy: Taxonomy_ = None,
    labels: Labels = None,
    name: TaxonomyName = None,
    job: Annotated[Optional[list[str]], typer.Option("--job", help="Only the files of this job (repeatable).")] = None,
    head: Annotated[Optional[str], typer.Option("--head", help="Score with the head NAME or NAME@vN (`soundtag "
                                                "train`; default: its newest version) instead of a taxonomy.")] = None,
    model: Model = None,
    database: Database = None,
    backend: Backend = None,
) -> None:
    """Label stored files with a new taxonomy, or a trained head, from their stored audio
    embeddings: no recording is read, only the text tower runs (nothing at all for a head).
    Without --model, the model that made the embeddings in scope. Writes a new job (kind relabel)."""
    from heads.stored import resolve
    from vectors.relabel import relabel as relabel_files
    from worker.runner import Planned

    if job and sources:
        fail("give either --job JOB ... or SOURCE ..., not both")
    settings = load_settings(model=model, database_url=database, backend=backend)
    engine = open_engine(settings)
    if head:
        if taxonomy or labels:
            fail("--head scores with the head's own labels: leave out --taxonomy and --labels")
        chosen = resolve(engine, head)
        tax, model_ref = chosen.taxonomy(), chosen.model
    else:
        chosen, tax, model_ref = None, read_taxonomy(taxonomy, labels, name), settings.model_ref
    started = time.monotonic()
    plans = []
    display = RunProgress(f"model {model_ref if chosen or model else '(of the stored embeddings)'}, "
                          f"taxonomy {tax.name}, {len(tax.labels)} labels", loads_model=False)

    def planned(plan) -> None:
        plans.append(plan)
        display.planned(Planned(plan.job_id, plan.todo + len(plan.missing) + len(plan.failed), plan.todo))

    try:
        info = relabel_files(engine, tax, settings, head=chosen, job_ids=job or (),
                             sources=[source_uri(s) for s in sources or ()], on_planned=planned,
                             on_result=display.result)
    finally:
        display.close()
    elapsed = time.monotonic() - started
    console.print(f"done: {info.done} relabeled from stored embeddings, {info.failed} failed in {elapsed:.1f} s "
                  f"({info.done / elapsed if elapsed else 0:.0f} files/s) → job {info.job_id}")
    print_failures(display.failures)
    plan = plans[0]
    print_left_out(plan.refused)
    if plan.missing:
        console.print(f"{len(plan.missing)} files have no stored embeddings of model {plan.model}; label them once "
                      f"from their recordings to keep them: soundtag run PATH --force --model "
                      f"{chosen.base_model if chosen else plan.model}")
    if plan.failed:
        console.print(f"{len(plan.failed)} files failed when last labeled (unreadable or corrupt): nothing to relabel")
    for why, uris in (("no embeddings", plan.missing), ("failed", plan.failed)):
        for uri in uris[:20]:
            console.print(styled("yellow", f"  {why}", f" {readable(uri)}"))
        if len(uris) > 20:
            console.print(f"  ... and {len(uris) - 20} more")


def search(
    text: Annotated[Optional[str], typer.Argument(help="What to listen for: \"a dog barking near traffic\".")] = None,
    like: Annotated[Optional[str], typer.Option("--like", help="Rank by similarity to this file's window.")] = None,
    at: Annotated[float, typer.Option("--at", help="With --like: the second whose window to use.")] = 0.0,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many windows.")] = 10,
    model: Model = None,
    database: Database = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list, best first.")] = False,
    approximate: Annotated[Optional[bool], typer.Option(
        "--approximate/--exact", help="Scan an approximate index, or every window (default: approximate past "
                                      "SOUNDTAG_SEARCH_APPROXIMATE_ABOVE windows).")] = None,
    backend: Backend = None,
) -> None:
    """Stored windows ranked by cosine similarity to a text or to another recording's window."""
    import json

    from rich.table import Table

    from vectors.search import search_like, search_text

    if (text is None) == (like is None):
        fail('give exactly one of TEXT or --like URI')
    settings = load_settings(model=model, database_url=database, backend=backend)
    engine = open_engine(settings)
    damaged: list[str] = []
    hits = (search_text(engine, text, settings, limit, damaged.append, approximate) if text is not None
            else search_like(engine, source_uri(like), settings, at, limit, damaged.append, approximate))
    if damaged:
        console.print(f"{len(damaged)} files with damaged stored embeddings left out of the search")
        print_left_out(damaged)
    if as_json:
        out.print_json(json.dumps([hit.as_dict() for hit in hits]))
        return
    table = Table("similarity", "start_s", "end_s", "uri")
    for hit in hits:
        table.add_row(f"{hit.similarity:.3f}", f"{hit.start_s:.1f}", f"{hit.end_s:.1f}", readable(hit.uri))
    out.print(table)


def export_embeddings(
    out_file: Annotated[Path, typer.Option("--out", help="Parquet file to write.")],
    model: Model = None,
    job: Annotated[Optional[str], typer.Option("--job", help="Only the files of this job.")] = None,
    database: Database = None,
) -> None:
    """Write the stored audio embeddings (uri, start_s, end_s, model, vector) to a Parquet file."""
    from db.export import export_embeddings as export
    from db.jobs import job_info

    settings = load_settings(model=model, database_url=database)
    engine = open_engine(settings)
    if job:
        job_info(engine, job)
    written, damaged = export(engine, out_file, settings.model_ref, job)
    print_left_out(damaged)
    if not written:
        fail(f"no stored embeddings of model {settings.model_ref}" + (f" for job {job}" if job else "")
              + "; `soundtag run` keeps them unless SOUNDTAG_EMBEDDINGS=off")
    console.print(f"{written} windows → {out_file}" + (f"; {len(damaged)} files left out" if damaged else ""))
