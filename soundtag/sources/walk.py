"""Walking sources: local folders, S3 prefixes and Hugging Face datasets, each yielding
FileRefs whose fingerprint changes whenever the object does."""

from __future__ import annotations

import csv
import errno
import fnmatch
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from soundtag.errors import SourceError
from soundtag.fileref import FileRef
from soundtag.settings import AUDIO_EXTENSIONS
from soundtag.sources.access import inside
from soundtag.sources.uris import file_uri


def _wanted(name: str, pattern: str | None) -> bool:
    if pattern:
        return fnmatch.fnmatch(name, pattern)
    return name.lower().endswith(AUDIO_EXTENSIONS)


def _local_ref(path: str, stat: os.stat_result, truth: str | None = None) -> FileRef:
    return FileRef(uri=file_uri(path), fingerprint=f"{stat.st_size}:{stat.st_mtime_ns}",
                   size_bytes=stat.st_size, truth=truth)


@dataclass
class WalkReport:
    """What walking local folders left out, filled as the walk goes: symlinks that lead outside
    the folder walked (never read), links and mounts that lead back into a folder being walked,
    and folders that cannot be listed."""

    outside_links: int = 0
    loops: int = 0
    unreadable: int = 0

    def __str__(self) -> str:
        """``2 links outside the root, 1 loop, 1 unreadable folder``; empty when nothing was left out."""
        counts = ((self.outside_links, "link outside the root", "links outside the root"),
                  (self.loops, "loop", "loops"), (self.unreadable, "unreadable folder", "unreadable folders"))
        return ", ".join(f"{n} {one if n == 1 else many}" for n, one, many in counts if n)


def _walk_dir(root: str, pattern: str | None, report: WalkReport) -> Iterator[tuple[str, os.stat_result]]:
    """Regular files under ``root``, never leaving it. A symlink whose target is elsewhere inside
    the root is not followed into a folder: that folder is walked where it is, so each file is
    listed once."""
    top = os.path.realpath(root)
    here = os.stat(root)
    # Each folder carries the (device, inode) of the folders above it: meeting one again is a loop.
    stack = [(root, ((here.st_dev, here.st_ino),))]
    while stack:
        folder, above = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            report.unreadable += 1
            continue
        for entry in entries:
            try:
                link = entry.is_symlink()
                if link and not inside(os.path.realpath(entry.path), top):
                    report.outside_links += 1
                    continue
                # scandir knows a plain entry's type without a stat call: files cost none here.
                if entry.is_dir():
                    info = entry.stat()
                    if (info.st_dev, info.st_ino) in above:
                        report.loops += 1
                    elif not link:
                        stack.append((entry.path, above + ((info.st_dev, info.st_ino),)))
                elif _wanted(entry.name, pattern) and entry.is_file():
                    yield entry.path, entry.stat()
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # a chain of symlinks that never ends
                    report.loops += 1
                # Otherwise the entry vanished since the listing: nothing to label.


def walk_local(source: str, pattern: str | None = None, truth_column: str | None = None,
               report: WalkReport | None = None) -> Iterator[FileRef]:
    path = Path(source).expanduser().absolute()
    if path.is_dir():
        found = _walk_dir(str(path), pattern, WalkReport() if report is None else report)
    elif path.is_file():
        # A file named explicitly is taken whatever its extension: the user asked for it.
        found = iter([(str(path), path.stat())])
    else:
        raise SourceError(f"{source}: no such file or directory")
    truth = _audiofolder_truths(path, truth_column) if truth_column else None
    for file, stat in found:
        yield _local_ref(file, stat, truth(file) if truth else None)


_METADATA = ("metadata.csv", "metadata.jsonl")


def _audiofolder_truths(path: Path, column: str) -> Callable[[str], str | None]:
    """Each file's truth in a Hugging Face audiofolder: ``column`` of the metadata.csv or
    metadata.jsonl whose ``file_name`` names the file, relative to the metadata's own folder.
    Without metadata, the column ``label`` is the file's folder name, as datasets infers it."""
    folder, search = (path, path.rglob) if path.is_dir() else (path.parent, path.parent.glob)
    truths: dict[str, str | None] = {}
    metadata = sorted(found for name in _METADATA for found in search(name))
    for meta in metadata:
        for record in _records(meta):
            if column not in record or "file_name" not in record:
                missing = "file_name" if column in record else column
                raise SourceError(f"{meta}: no column {missing!r} (columns: {', '.join(record)})")
            value = record[column]
            truths[str((meta.parent / record["file_name"]).absolute())] = None if value in (None, "") else str(value)
    if metadata:
        return truths.get
    if column == "label":
        return lambda file: Path(file).parent.name
    raise SourceError(f"{folder}: no metadata.csv or metadata.jsonl to read --truth-column {column!r} from")


def _records(path: Path) -> Iterator[dict]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            if path.suffix == ".csv":
                yield from csv.DictReader(f)
            else:
                yield from (json.loads(line) for line in f if line.strip())
    except (OSError, ValueError) as exc:
        raise SourceError(f"{path}: {exc}") from None


def _s3_refs(source: str, pattern: str | None) -> Iterator[FileRef]:
    """An S3 prefix read like a folder: ``s3://b/dir`` and ``s3://b/dir/`` hold the same files, and
    a key named in full is taken whatever its extension."""
    from soundtag.sources import s3

    try:
        bucket, key = s3.split_uri(source)
        folder = key if not key or key.endswith("/") else key + "/"
        for obj in s3.list_objects(s3.make_client(), bucket, key):
            name = obj["Key"]
            inside = name.startswith(folder) and _wanted(name.rsplit("/", 1)[-1], pattern)
            if name.endswith("/") or not (name == key or inside):
                continue
            # The ETag changes with the content. LastModified is left out: re-uploading the same
            # bytes changes it, and that should not relabel the file.
            etag = obj["ETag"].strip('"')
            yield FileRef(uri=f"s3://{bucket}/{name}", fingerprint=f"etag:{etag}:{obj['Size']}", size_bytes=obj["Size"])
    except s3.S3Error as exc:
        raise SourceError(str(exc)) from None


def _dataset_refs(source: str, audio_column: str | None, truth_column: str | None) -> Iterator[FileRef]:
    from soundtag.sources import hf_datasets

    try:
        for row in hf_datasets.rows(source, audio_column, truth_column):
            yield FileRef(uri=row.uri, fingerprint=row.fingerprint, truth=row.truth)
    except hf_datasets.DatasetError as exc:
        raise SourceError(str(exc)) from None


def walk(source: str, pattern: str | None = None, *, audio_column: str | None = None,
         truth_column: str | None = None, report: WalkReport | None = None) -> Iterator[FileRef]:
    """FileRefs for one source given on the command line: a local file or folder,
    ``s3://BUCKET/PREFIX`` or ``hf://DATASET`` (forms in soundtag.sources.hf_datasets). ``truth_column``
    names a dataset's column, or an audiofolder metadata column, holding each file's true label.
    A folder's walk counts what it leaves out in ``report``. Raises SourceError, lazily for what
    only listing can find out."""
    if source.startswith("hf://"):
        if pattern:
            raise SourceError(f"{source}: --pattern selects files by name; a dataset's rows have none")
        return _dataset_refs(source, audio_column, truth_column)
    if audio_column:
        raise SourceError(f"{source}: --audio-column applies to hf:// datasets only")
    if source.startswith("s3://"):
        if truth_column:
            raise SourceError(f"{source}: --truth-column applies to hf:// datasets and local audio folders")
        return _s3_refs(source, pattern)
    return walk_local(source, pattern, truth_column, report)


def walk_sources(sources: Sequence[str], pattern: str | None = None, *, audio_column: str | None = None,
                 truth_column: str | None = None, report: WalkReport | None = None) -> Iterator[FileRef]:
    """FileRefs of each of ``sources`` in turn, as ``walk`` gives them; lazily, so that a caller
    can record files while the listing goes on."""
    for source in sources:
        yield from walk(source, pattern, audio_column=audio_column, truth_column=truth_column, report=report)
