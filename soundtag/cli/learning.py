"""Heads learned from the reviews: ``train`` (a head on the stored embeddings and the verdicts)
and ``export-head`` (its weights for a notebook). ``relabel --head``, ``run|enqueue --head`` and
``review --learn`` use them (docs/learning.md)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from soundtag.cli.options import Database, Model, console, fail, open_engine, out
from soundtag.cli.progress import print_left_out
from soundtag.settings import load_settings
from soundtag.sources.uris import source_uri


def head_of(engine, ref: str, settings) -> str:
    """'head:NAME@vN' of the head ``ref`` names, which must be a head of the model that runs."""
    from heads.stored import resolve

    chosen = resolve(engine, ref)
    if chosen.base_model != settings.model_ref:
        fail(f"{chosen.model} was trained on {chosen.base_model}'s embeddings, not {settings.model_ref}'s: "
             f"run with --model {chosen.base_model}")
    return chosen.model


def train(
    name: Annotated[str, typer.Argument(help="The head's name; each training stores its next version, NAME@vN.")],
    sources: Annotated[Optional[list[str]], typer.Argument(help="Only files under these source URIs or folders.")]
    = None,
    job: Annotated[Optional[list[str]], typer.Option("--job", help="Only the files of this job (repeatable).")] = None,
    teacher: Annotated[str, typer.Option("--from", help="reviews (the verdicts in force), truth (the files' truth "
                                         "column) or both.")] = "reviews",
    model: Model = None,
    database: Database = None,
) -> None:
    """Train a head on the stored window embeddings of the files in scope from the reviews: one
    logistic regression per label, cross-validated by file against zero-shot. No audio is read."""
    from heads.head import parse_ref
    from heads.train import Teacher, train as fit_head

    if job and sources:
        fail("give either --job JOB ... or SOURCE ..., not both")
    if teacher not in set(Teacher):
        fail(f"--from {teacher!r}: use one of {', '.join(Teacher)}")
    if parse_ref(name)[1] is not None:
        fail(f"{name}: name the head without a version; each training stores the next one")
    settings = load_settings(model=model, database_url=database)
    engine = open_engine(settings)
    started = time.monotonic()
    trained = fit_head(engine, name, settings.model_ref, job_ids=job or (),
                       sources=[source_uri(s) for s in sources or ()], teacher=Teacher(teacher))
    _print_training(trained, time.monotonic() - started)


def _print_training(trained, elapsed: float) -> None:
    from rich.table import Table

    def numbers(found: dict) -> tuple[str, str, str]:
        if not found:
            return "–", "–", "–"
        return (f"{found['precision']:.2f}", f"{found['recall']:.2f}", f"{found['average_precision']:.2f}")

    table = Table("label", "pos", "neg", "folds", "P", "R", "AP", "zero-shot P", "R", "AP")
    for report in trained.reports:
        if not report.left_out:
            table.add_row(report.label, str(report.positives), str(report.negatives), str(report.folds),
                          *numbers(report.head), *numbers(report.zero_shot))
    out.print(table)
    for report in trained.reports:
        if report.left_out:
            out.print(f"left out {report.label}: {report.left_out}")
    out.print(f"{trained.head.model}: {len(trained.head.labels)} labels from {trained.taught_files} reviewed of "
              f"{trained.files} files, in {elapsed:.1f} s (base {trained.head.base_model})")
    if trained.damaged:
        console.print(f"{len(trained.damaged)} files with damaged stored embeddings taught nothing")
        print_left_out(list(trained.damaged))


def export_head(
    head: Annotated[str, typer.Argument(help="NAME or NAME@vN (default: the newest version).")],
    out_file: Annotated[Path, typer.Option("--out", help="File to write: .safetensors or .npz.")],
    database: Database = None,
) -> None:
    """Write a head's weights, biases, labels and base model to a safetensors or npz file
    (docs/learning.md describes it), for a notebook to use."""
    from heads.file_format import write
    from heads.stored import resolve

    engine = open_engine(load_settings(database_url=database))
    chosen = resolve(engine, head)
    write(chosen, out_file)
    console.print(f"{chosen.model}: {len(chosen.labels)} labels × {chosen.weights.shape[1]} → {out_file}")
