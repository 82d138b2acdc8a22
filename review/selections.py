"""Verdicts from the tools people already listen with: Raven selection tables (tab-separated,
``Begin Time (s)``, ``End Time (s)``, a label column, the recording in ``Begin Path`` or ``Begin
File``) and Audacity label tracks (``start<TAB>end<TAB>label``, one file per recording, named for
it). Each row is a region of a recording, recorded as a verdict on that segment by one reviewer
(``review.regions``). The whole input is checked first: a bad row is refused with its file and
line, and nothing is written."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath

from sqlalchemy import Engine

from db.jobs import job_spec
from db.reviews import ReviewItem, all_verdicts, record_verdicts, review_items
from db.segments import job_events
from review.regions import region_verdict, span_problem
from soundtag.errors import SoundtagError
from soundtag.sources import uris


class SelectionFormat(StrEnum):
    RAVEN = "raven"
    AUDACITY = "audacity"


@dataclass(frozen=True)
class Row:
    """One region as read, with where it was read (for the error that names it)."""

    where: str  # "FILE:LINE"
    recording: str  # a path, a URI or a file name, as the tool wrote it
    start: float
    end: float
    label: str


@dataclass
class Imported:
    recorded: int = 0
    unchanged: int = 0  # already in force: a repeated import records nothing


def _files(path: Path, suffix: str) -> list[Path]:
    """``path`` itself, or the tables in a folder (as `soundtag export` writes them)."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.name.endswith(suffix))
    return [path]


def _number(text: str, where: str, column: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise SoundtagError(f"{where}: {column} {text!r} is not a number") from None


def read_raven(path: Path, label_column: str) -> list[Row]:
    """The selections of one Raven table, or of every ``*.txt`` table in a folder. A selection
    shown in several views (waveform, spectrogram) is one region."""
    rows = []
    for table in _files(path, ".txt"):
        with table.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle, delimiter="\t")
            missing = {"Begin Time (s)", "End Time (s)", label_column} - set(reader.fieldnames or ())
            if not ({"Begin Path", "Begin File"} & set(reader.fieldnames or ())):
                missing.add("Begin Path or Begin File")
            if missing:
                raise SoundtagError(f"{table}: not a Raven selection table with these columns: missing "
                                    + ", ".join(sorted(missing)) + " (--label-column names the label's)")
            seen = set()
            for line, record in enumerate(reader, start=2):
                where = f"{table}:{line}"
                selection = record.get("Selection")
                if selection and selection in seen:
                    continue
                seen.add(selection)
                recording = record.get("Begin Path") or record.get("Begin File") or ""
                label = (record.get(label_column) or "").strip()
                rows.append(Row(where, recording, _number(record["Begin Time (s)"], where, "Begin Time (s)"),
                                _number(record["End Time (s)"], where, "End Time (s)"), label))
    return rows


def read_audacity(path: Path, recording: str | None) -> list[Row]:
    """The labels of one Audacity label track, or of every ``*.txt`` track in a folder; each
    track's recording is ``recording``, else the one its file is named for. Audacity's spectral
    selection lines (``\\`` then frequencies) are skipped."""
    rows = []
    for track in _files(path, ".txt"):
        for line, text in enumerate(track.read_text(encoding="utf-8-sig").splitlines(), start=1):
            if not text.strip() or text.startswith("\\"):
                continue
            where = f"{track}:{line}"
            parts = text.split("\t")
            if len(parts) < 2:
                raise SoundtagError(f"{where}: not an Audacity label (start<TAB>end<TAB>label)")
            label = parts[2].strip() if len(parts) > 2 else ""
            rows.append(Row(where, recording or track.stem, _number(parts[0], where, "start"),
                            _number(parts[1], where, "end"), label))
    return rows


class _Recordings:
    """The job's reviewed files found by what a tool wrote: a path or URI, else a file name or
    stem (as `soundtag export` names tables: the stem, or the stem and the file id)."""

    def __init__(self, items: list[ReviewItem]):
        self.by_uri = {item.uri: item for item in items}
        self.by_id = {item.file_id: item for item in items}
        self.by_name: dict[str, list[ReviewItem]] = {}
        for item in items:
            name = PurePosixPath(uris.path_of(item.uri) if item.uri.startswith(uris.FILE) else item.uri).name
            for key in {name, PurePosixPath(name).stem}:
                self.by_name.setdefault(key, []).append(item)

    def _by_id(self, recording: str) -> ReviewItem | None:
        """The file an exported ``<stem>_<file id>`` names (the export's name for a repeated stem)."""
        stem, _, file_id = PurePosixPath(recording).name.rpartition("_")
        item = self.by_id.get(int(file_id)) if file_id.isdigit() else None
        return item if item is not None and item in self.by_name.get(stem, ()) else None

    def find(self, recording: str, where: str, named: set[int] = frozenset()) -> ReviewItem:
        """The file ``recording`` names; ``named`` are files other rows name by id, which a shared
        name (the export's first table of a repeated stem) does not mean."""
        uri = recording if "://" in recording else uris.file_uri(recording) if recording.startswith("/") else None
        if uri is not None and uri in self.by_uri:
            return self.by_uri[uri]
        by_id = self._by_id(recording)
        if by_id is not None:
            return by_id
        found = self.by_name.get(PurePosixPath(recording).name, [])
        if len(found) > 1:
            found = [item for item in found if item.file_id not in named]
        if len(found) != 1:
            why = "no labeled file of the job" if not found else f"{len(found)} files of the job"
            raise SoundtagError(f"{where}: recording {recording!r} is {why}; name it by its path (or --recording)")
        return found[0]


def import_selections(engine: Engine, path: Path, fmt: SelectionFormat, job_id: str, reviewer: str, *,
                      label_column: str = "Label", recording: str | None = None) -> Imported:
    """Record each region of a Raven table or an Audacity track (a file, or a folder of them) as
    a verdict by ``reviewer`` on that segment of its recording in job ``job_id``. Every row is
    checked before anything is written; a verdict already in force records nothing."""
    if not path.exists():
        raise SoundtagError(f"{path}: no such file or folder")
    rows = read_raven(path, label_column) if fmt == SelectionFormat.RAVEN else read_audacity(path, recording)
    spec = job_spec(engine, job_id)
    nodes = {node.label for node in spec.taxonomy.policy()}
    recordings = _Recordings(review_items(engine, job_id))
    events: dict[int, list] = {}
    for event in job_events(engine, job_id):
        events.setdefault(event.file_id, []).append(event)
    given, in_force, done = [], all_verdicts(engine, job_id), Imported()
    named = {item.file_id for row in rows if (item := recordings._by_id(row.recording)) is not None}
    for row in rows:
        item = recordings.find(row.recording, row.where, named)
        if row.label not in nodes:
            raise SoundtagError(f"{row.where}: label {row.label!r} is not in the job's taxonomy "
                                f"({', '.join(sorted(nodes))})")
        problem = span_problem(row.start, row.end, item.duration_s)
        if problem:
            raise SoundtagError(f"{row.where}: {problem}")
        one = region_verdict(events.get(item.file_id, ()), item.file_id, row.start, row.end, row.label, reviewer)
        if in_force.get(one.key) == (one.verdict, one.label):
            done.unchanged += 1
        else:
            given.append(one)
            in_force[one.key] = (one.verdict, one.label)
    record_verdicts(engine, {job_id: given})
    done.recorded = len(given)
    return done
