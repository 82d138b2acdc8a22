"""A job's labels written for the tools people review and train with: one row per file (CSV,
Parquet, a `datasets` dataset), one table per recording (Raven selection tables, Audacity label
tracks), or Label Studio tasks (review.labelstudio). Rows come from db.labeled_files,
chunk by chunk, so only the hf dataset's audio grows with the job."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath

from sqlalchemy import Engine

from db.jobs import job_spec
from db.labeled_files import LabeledFile, LabeledWindow, labeled_files
from db.taxonomies import taxonomy_with_policy
from review import labelstudio
from soundtag.sources import uris
from soundtag.errors import ReadError, SoundtagError
from soundtag.settings import Settings
from soundtag.sources.storage import Storage


class ExportFormat(StrEnum):
    LABELSTUDIO = "labelstudio"
    RAVEN = "raven"
    AUDACITY = "audacity"
    CSV = "csv"
    PARQUET = "parquet"
    HF = "hf"


@dataclass
class Exported:
    """What an export wrote: files, and anything written beside them (the Label Studio config)."""

    files: int = 0
    extra: Path | None = None
    unreadable: list[str] = field(default_factory=list)  # hf: files whose audio could not be read


def export(engine: Engine, job_id: str, fmt: ExportFormat, out: Path, settings: Settings,
           reviewed: bool = False) -> Exported:
    """Write the job's labeled files to ``out`` (a file, or a folder for raven and audacity).
    With ``reviewed`` a file's label is the verdict in force where a person gave one
    (``reviewed_labels``), else the model's decision."""
    regions = fmt in {ExportFormat.LABELSTUDIO, ExportFormat.RAVEN, ExportFormat.AUDACITY}
    chunks = labeled_files(engine, job_id, regions=regions)
    if fmt == ExportFormat.LABELSTUDIO:
        spec = job_spec(engine, job_id)
        taxonomy = taxonomy_with_policy(engine, spec.taxonomy_id)
        return Exported(*labelstudio.write(chunks, out, job_id, spec.model, taxonomy, reviewed))
    if fmt in {ExportFormat.RAVEN, ExportFormat.AUDACITY}:
        return Exported(_tables(chunks, out, fmt, reviewed))
    if fmt == ExportFormat.HF:
        names = job_spec(engine, job_id).taxonomy.names
        return _dataset(chunks, out, names, reviewed, Storage(settings.allowed_roots, settings.allowed_buckets))
    write = _csv if fmt == ExportFormat.CSV else _parquet
    return Exported(write((_row(f, reviewed) for files in chunks for f in files), out))


COLUMNS = {"uri": "string", "label": "string", "source": "string", "decision": "string", "score": "float64",
           "similarity": "float64", "top_label": "string", "top_score": "float64", "top_similarity": "float64",
           "verdict": "string", "reviewer": "string", "duration_s": "float64"}


def _row(file: LabeledFile, reviewed: bool) -> dict:
    """One file as CSV and Parquet have it. ``score`` and ``similarity`` are the decision's (none
    when the model abstains); ``verdict`` and ``reviewer`` the verdict in force, with or without
    ``reviewed``."""
    decision = file.decision
    return {"uri": file.uri, "label": file.label(reviewed), "source": file.source if reviewed else "model",
            "decision": decision.label if decision else None, "score": decision.score if decision else None,
            "similarity": decision.similarity if decision else None, "top_label": file.top.label,
            "top_score": file.top.score, "top_similarity": file.top.similarity,
            "verdict": file.verdict.value if file.verdict else None, "reviewer": file.reviewer,
            "duration_s": file.duration_s}


def _csv(rows: Iterable[dict], out: Path) -> int:
    written = 0
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            written += 1
    return written


def _parquet(rows: Iterable[dict], out: Path, batch: int = 10_000) -> int:
    import itertools

    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(name, getattr(pa, kind)()) for name, kind in COLUMNS.items()])
    written = 0
    rows = iter(rows)
    with pq.ParquetWriter(out, schema) as writer:
        while part := list(itertools.islice(rows, batch)):
            writer.write_table(pa.Table.from_pylist(part, schema=schema))
            written += len(part)
        if not written:
            writer.write_table(schema.empty_table())
    return written


RAVEN_COLUMNS = ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
                 "High Freq (Hz)", "Label", "Score", "Cosine", "Begin Path", "File Offset (s)"]


def _stem(uri: str) -> str:
    name = uris.path_of(uri) if uri.startswith(uris.FILE) else uri.rsplit("/", 1)[-1]
    return PurePosixPath(name).stem.replace("\\", "_") or "recording"


def _tables(chunks: Iterable[list[LabeledFile]], folder: Path, fmt: ExportFormat, reviewed: bool) -> int:
    """One table per recording, of its windows and their rank-1 labels (with ``reviewed``, the
    label of a segment verdict covering the window; a rejected window is left out), named as Raven pairs a
    selection table with its sound (``<stem>.Table.1.selections.txt``) or as the recording
    (``<stem>.txt``); a stem seen before in this export gets the file id added. Only names are
    kept in memory."""
    folder.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()  # lower case: names must differ on case-insensitive file systems too
    suffix = ".Table.1.selections.txt" if fmt == ExportFormat.RAVEN else ".txt"
    written = 0
    for files in chunks:
        for file in files:
            stem = _stem(file.uri)
            if (stem + suffix).lower() in taken:
                stem = f"{stem}_{file.file_id}"
            taken.add((stem + suffix).lower())
            with (folder / (stem + suffix)).open("w", newline="", encoding="utf-8") as handle:
                labeled = [(w, label) for w in file.windows
                           if (label := file.segment_label(w.start_s, w.end_s, w.label, reviewed)) is not None]
                if fmt == ExportFormat.RAVEN:
                    _raven(csv.writer(handle, delimiter="\t", lineterminator="\n"), file, labeled)
                else:
                    for w, label in labeled:
                        handle.write(f"{w.start_s:.6f}\t{w.end_s:.6f}\t{label}\n")
            written += 1
    return written


def _raven(writer, file: LabeledFile, labeled: list[tuple[LabeledWindow, str]]) -> None:
    """Raven's spectrogram boxes span the whole band: CLAP hears all of it."""
    path = uris.path_of(file.uri) if file.uri.startswith(uris.FILE) else file.uri
    high = (file.sample_rate or 0) / 2
    writer.writerow(RAVEN_COLUMNS)
    for n, (w, label) in enumerate(labeled, start=1):
        writer.writerow([n, "Spectrogram 1", 1, f"{w.start_s:.6f}", f"{w.end_s:.6f}", "0", f"{high:g}", label,
                         f"{w.score:.6f}", f"{w.similarity:.6f}", path, f"{w.start_s:.6f}"])


def _dataset(chunks: Iterable[list[LabeledFile]], out: Path, names: list[str], reviewed: bool,
             storage: Storage) -> Exported:
    """A `datasets` dataset saved with save_to_disk, its audio embedded so that it opens anywhere,
    without credentials: local recordings are given by path (save_to_disk reads them), those in S3
    or a hub dataset are read through soundtag.sources.storage. ``label`` is a ClassLabel of the taxonomy; a
    file without one (abstained, rejected) has -1."""
    import tempfile

    from datasets import Audio, ClassLabel, Dataset, Features, List, Value, concatenate_datasets, load_from_disk
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    # The audio goes in as Audio's own storage, {bytes, path}, and is cast to Audio afterwards:
    # Audio's encoder needs torchcodec (and torch) even for bytes that are already encoded.
    stored = {"bytes": Value("binary"), "path": Value("string")}
    features = Features({
        "audio": stored, "label": ClassLabel(names=names), "uri": Value("string"), "source": Value("string"),
        "decision": Value("string"), "score": Value("float64"), "similarity": Value("float64"),
        "scores": List(Value("float32")), "verdict": Value("string"), "reviewer": Value("string")})
    result = Exported()
    index = {name: i for i, name in enumerate(names)}

    def row(file: LabeledFile) -> dict | None:
        try:
            if file.uri.startswith(uris.FILE):
                storage.check(file.uri)  # the allow-lists, on the file as it is now (a link swapped in since)
                audio = {"path": uris.path_of(file.uri), "bytes": None}
            else:
                audio = {"path": file.uri.rsplit("/", 1)[-1], "bytes": storage.read(file.uri)}
        except ReadError as exc:
            result.unreadable.append(f"{file.uri}: {exc}")
            return None
        values = _row(file, reviewed)
        return {"audio": audio, "label": index.get(values["label"], -1), "uri": file.uri, "source": values["source"],
                "decision": values["decision"], "score": values["score"], "similarity": values["similarity"],
                "scores": list(file.scores), "verdict": values["verdict"], "reviewer": values["reviewer"]}

    # Each chunk goes to disk as a shard of its own; the shards are memory-mapped, then joined.
    # Only the final save shows datasets' progress bar: the shards' own bars would repeat it.
    bars = not are_progress_bars_disabled()
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as shards:
        parts = []
        disable_progress_bars()
        try:
            for n, files in enumerate(chunks):
                rows = [r for r in map(row, files) if r is not None]
                if rows:
                    part = Dataset.from_list(rows, features=features).cast_column("audio", Audio())
                    part.save_to_disk(f"{shards}/{n}")
                    parts.append(load_from_disk(f"{shards}/{n}"))
                    result.files += len(rows)
        finally:
            if bars:
                enable_progress_bars()
        if not parts:
            raise SoundtagError(f"export: no file of this job could be written to {out}")
        concatenate_datasets(parts).save_to_disk(str(out))
    return result
