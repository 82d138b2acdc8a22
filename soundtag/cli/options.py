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
AudioColumn = Annotated[Optional[str], typer.Option("--audio-column", help="hf:// datasets: the column holding "
                                                    "audio (default: the one Audio column).")]
HeadToo = Annotated[Optional[str], typer.Option("--head", help="Label the files with this head NAME or NAME@vN "
                                                "too (`soundtag train`), from the embeddings of the same pass.")]
TruthColumn = Annotated[Optional[str], typer.Option("--truth-column", help="Column with each file's true label "
                                                    "(hf:// datasets, audiofolder metadata.csv), for `evaluate`.")]


def fail(message: str) -> None:
    raise SoundtagError(message)


def read_taxonomy(taxonomy: Path | None, labels: str | None, name: str | None = None):
    from soundtag.taxonomy import load_taxonomy, taxonomy_from_csv

    if (taxonomy is None) == (labels is None):
        fail("give exactly one of --taxonomy FILE or --labels \"a,b,c\"")
    if name and taxonomy:
        fail("--name names a --labels taxonomy; a taxonomy file has its own name")
    return load_taxonomy(taxonomy) if taxonomy else taxonomy_from_csv(labels, name)


def uri_prefix(source: str) -> str:
    """A source or file as stored URIs begin: URIs as given, local paths as ``file://`` URIs."""
    from soundtag.sources.uris import file_uri

    return source if "://" in source else file_uri(str(Path(source).expanduser().absolute()))


def open_engine(settings):
    from db.schema import engine_for, ensure_schema

    engine = engine_for(settings.database_url)
    ensure_schema(engine)
    return engine
