"""The ``soundtag`` command. Starts fast: torch and transformers load only in commands that run
the model."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from soundtag.settings import Settings

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Zero-shot labeling of sound archives with CLAP.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
app.add_typer(db_app, name="db")
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

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


def _refs(sources: list[str], pattern: str | None):
    from producer.sources import walk

    refs = [ref for source in sources for ref in walk(source, pattern)]
    if not refs:
        _fail(f"no audio files found in {', '.join(sources)}" + (f" matching {pattern!r}" if pattern else ""))
    return refs


@app.command()
def run(
    paths: Annotated[list[str], typer.Argument(help="Folders or files to label.")],
    taxonomy: Taxonomy_ = None,
    labels: Labels = None,
    model: Model = None,
    database: Database = None,
    batch_size: BatchSize = None,
    window: WindowS = None,
    hop: HopS = None,
    pattern: Pattern = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda, cuda:1 ...")] = None,
    dtype: Annotated[Optional[str], typer.Option(help="fp32, fp16, bf16 (GPU), int8 (CPU).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Relabel files already labeled.")] = False,
) -> None:
    """Label every audio file under PATHS on this machine and store the results."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from db import store

    settings = _settings(model=model, database_url=database, batch_size=batch_size, window_s=window,
                         hop_s=hop, device=device, dtype=dtype)
    tax = _taxonomy(taxonomy, labels)
    engine = _engine(settings)
    refs = _refs(paths, pattern)
    job_id = store.create_job(engine, kind="run", model=settings.model_ref,
                              taxonomy_id=store.save_taxonomy(engine, tax),
                              sources=[str(Path(p).absolute()) for p in paths],
                              options={"window_s": settings.window_s, "hop_s": settings.hop_s,
                                       "batch_size": settings.batch_size})
    todo = store.add_files(engine, job_id, refs, force=force)
    skipped = len(refs) - len(todo)
    console.print(f"run {job_id}: {len(refs)} files, {len(todo)} to label, {skipped} already labeled "
                  f"(model {settings.model_ref}, taxonomy {tax.name}, {len(tax.labels)} labels)", highlight=False)
    failures: list[tuple[str, str]] = []
    started = time.monotonic()
    if todo:
        from worker.runner import classifier_for, process

        with console.status(f"loading {settings.model_ref} ..."):
            classifier_for(settings.model_ref, settings)
        columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]:.1f} files/s"), TimeRemainingColumn(),
                   TextColumn("[red]{task.fields[failed]} failed"))
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("labeling", total=len(todo), rate=0.0, failed=0)
            begun = time.monotonic()

            def tick(result) -> None:
                if not result.ok:
                    failures.append((result.uri, result.error))
                done = progress.tasks[task].completed + 1
                progress.update(task, advance=1, failed=len(failures),
                                rate=done / max(time.monotonic() - begun, 1e-9))

            process(job_id, [uri for _, uri in todo], settings, on_result=tick)
    store.finish_job(engine, job_id)
    info = store.job_info(engine, job_id)
    elapsed = time.monotonic() - started
    labeled = info.counts.get("done", 0)
    console.print(f"done: {labeled} labeled, {info.counts.get('failed', 0)} failed, {skipped} skipped "
                  f"in {elapsed:.1f} s ({len(todo) / elapsed if elapsed else 0:.1f} files/s) "
                  f"→ {engine.url.render_as_string()}", highlight=False)
    for uri, error in failures[:20]:
        console.print(f"  [red]failed[/] {uri}: {error}", highlight=False)
    if len(failures) > 20:
        console.print(f"  ... and {len(failures) - 20} more: select uri, error from files where status = 'failed'")


@db_app.command("upgrade")
def db_upgrade(database: Database = None) -> None:
    """Create or migrate the schema to the newest version."""
    from db.schema import engine_for, upgrade

    settings = _settings(database_url=database)
    upgrade(engine_for(settings.database_url))
    console.print(f"schema up to date: {settings.database_url}", highlight=False)


def main() -> None:
    """Entry point: known errors print one line (tracebacks with --debug)."""
    from db.schema import DatabaseError
    from producer.sources import SourceError
    from soundtag.taxonomy import TaxonomyError

    known: tuple[type[BaseException], ...] = (DatabaseError, SourceError, TaxonomyError)
    try:
        # Without standalone mode click returns an Exit's code instead of raising it.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        console.print("interrupted: finished results are stored; run again to resume")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the one place errors become messages
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if _debug:
            raise
        if isinstance(exc, known) or exc.__class__.__name__ in {"ModelError", "ValidationError"}:
            _message = str(exc).strip().splitlines()[0]
        else:
            _message = f"{exc.__class__.__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        console.print(f"[bold red]error:[/] {_message}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
