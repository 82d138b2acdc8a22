"""Walking sources: local folders (here), S3 prefixes and Hugging Face datasets, each yielding
FileRefs whose fingerprint changes whenever the object does."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from pathlib import Path

from db.store import FileRef
from soundtag.settings import AUDIO_EXTENSIONS


class SourceError(ValueError):
    """A source that cannot be listed; one line naming it and the problem."""


def _wanted(name: str, pattern: str | None) -> bool:
    if pattern:
        return fnmatch.fnmatch(name, pattern)
    return name.lower().endswith(AUDIO_EXTENSIONS)


def _local_ref(path: str, stat: os.stat_result) -> FileRef:
    return FileRef(uri=Path(path).as_uri(), fingerprint=f"{stat.st_size}:{stat.st_mtime_ns}",
                   size_bytes=stat.st_size)


def _walk_dir(root: str, pattern: str | None) -> Iterator[FileRef]:
    # scandir reuses the directory entry's stat on most filesystems: no extra syscall per file.
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except PermissionError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=True):
                stack.append(entry.path)
            elif _wanted(entry.name, pattern) and entry.is_file(follow_symlinks=True):
                yield _local_ref(entry.path, entry.stat())


def walk_local(source: str, pattern: str | None = None) -> Iterator[FileRef]:
    path = Path(source).expanduser().absolute()
    if path.is_dir():
        yield from _walk_dir(str(path), pattern)
    elif path.is_file():
        # A file named explicitly is taken whatever its extension: the user asked for it.
        yield _local_ref(str(path), path.stat())
    else:
        raise SourceError(f"{source}: no such file or directory")


def walk(source: str, pattern: str | None = None) -> Iterator[FileRef]:
    """FileRefs for one source given on the command line."""
    return walk_local(source, pattern)
