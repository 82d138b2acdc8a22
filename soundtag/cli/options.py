"""What the command modules share: the two consoles (soundtag.output's), the option types several
commands take, and the first steps most commands make (a one-line failure, the taxonomy, the
database)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from soundtag.errors import SoundtagError
from soundtag.output import console, out, styled  # noqa: F401 - the commands' consoles and style

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
Backend = Annotated[Optional[str], typer.Option("--backend", help="auto (the fastest installed CPU runtime on "
                                                "the CPU, torch on a GPU), torch, onnx, openvino "
                                                "[SOUNDTAG_BACKEND].")]
Dtype = Annotated[Optional[str], typer.Option("--dtype", help="fp32; fp16 (GPU); bf16 (torch, or OpenVINO where the "
                                            "CPU has bf16); int8 (CPU) [SOUNDTAG_DTYPE].")]
AudioColumn = Annotated[Optional[str], typer.Option("--audio-column", help="hf:// datasets: the column holding "
                                                    "audio (default: the one Audio column).")]
HeadToo = Annotated[Optional[str], typer.Option("--head", help="Label the files with this head NAME or NAME@vN "
                                                "too (`soundtag train`), from the embeddings of the same pass.")]
TruthColumn = Annotated[Optional[str], typer.Option("--truth-column", help="Column with each file's true label "
                                                    "(hf:// datasets, audiofolder metadata.csv), for `evaluate`.")]
TimePattern = Annotated[Optional[str], typer.Option("--time-pattern", help="Where file names hold the recording "
                                                  'time other than as YYYYMMDD_HHMMSS: strptime directives, e.g. '
                                                  '"%Y-%m-%d %H.%M" [SOUNDTAG_TIME_PATTERN].')]
TimeZone = Annotated[Optional[str], typer.Option("--timezone", help="Time zone of recording times written without "
                                                 "one (names, bext, FLAC and MP3 dates), e.g. Europe/Paris (default: UTC) "
                                                 "[SOUNDTAG_TIMEZONE].")]
SitePattern = Annotated[Optional[str], typer.Option("--site-pattern", help="Regular expression whose first group in "
                                                    "a file's path is its site (default: the first folder below "
                                                    "the source, else GUANO's position) [SOUNDTAG_SITE_PATTERN].")]


def recording_rules(settings):
    """The settings' rules for reading recording times and sites, checked: a bad one is one line."""
    from soundtag.recording import Rules

    return Rules(settings.time_pattern, settings.timezone, settings.site_pattern)


def fail(message: str) -> None:
    raise SoundtagError(message)


def read_taxonomy(taxonomy: Path | None, labels: str | None, name: str | None = None):
    from soundtag.taxonomy import load_taxonomy, taxonomy_from_csv

    if (taxonomy is None) == (labels is None):
        fail("give exactly one of --taxonomy FILE or --labels \"a,b,c\"")
    if name and taxonomy:
        fail("--name names a --labels taxonomy; a taxonomy file has its own name")
    tax = load_taxonomy(taxonomy) if taxonomy else taxonomy_from_csv(labels, name)
    if len(tax.labels) == 1:
        console.print(styled("yellow", "warning:", f" taxonomy {tax.name} has one label, {tax.names[0]!r}: it is "
                             "the rank-1 label of every file; give the labels it is to be told apart from"))
    return tax


def job_or_newest(engine, job: str | None, command: str):
    """The given job's row of the `jobs` view, or the newest job's: every command that reads one
    job takes the newest when none is named."""
    from db.jobs import job_info, jobs as job_rows

    info = job_info(engine, job) if job else next(iter(job_rows(engine, limit=1)), None)
    if info is None:
        fail(f"{command}: no job in this database yet; label something with `soundtag run` first")
    return info


def open_engine(settings, create: bool = False):
    """The database of ``settings``, its schema brought up to date. A SQLite file that is not
    there is made only with ``create`` (the commands that label): any other command run from
    the wrong folder would otherwise leave an empty database there and report nothing."""
    from db.schema import engine_for, ensure_schema, missing_sqlite_file

    missing = None if create else missing_sqlite_file(settings.database_url)
    if missing:
        fail(f"no database at {missing}; give the one `soundtag run` wrote with --database URL or "
             "SOUNDTAG_DATABASE_URL")
    engine = engine_for(settings.database_url)
    ensure_schema(engine)
    return engine
