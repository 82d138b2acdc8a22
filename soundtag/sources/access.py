"""What a worker may read, whatever a message names: regular files only, inside the allowed
folders, and objects in the allowed buckets (SOUNDTAG_ALLOWED_ROOTS, SOUNDTAG_ALLOWED_BUCKETS;
empty lists allow all). A dataset's path column is read only inside the dataset's own folder.

Paths are judged by their real path, so a symlink cannot lead out. The file is opened after it
was judged: whoever can swap a folder of the archive in between can still redirect one read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

from soundtag.sources.uris import FILE, path_of, shown


class Refused(ValueError):
    """One line naming the file or object and why it may not be read."""


def check(uri: str, roots: Sequence[str] = (), buckets: Sequence[str] = ()) -> None:
    """Raise Refused unless a worker may read ``uri`` (a bare path is read as a local file)."""
    if uri.startswith(FILE) or "://" not in uri:
        path = path_of(uri)
        if not os.path.isabs(path):
            raise Refused(f"{shown(uri)}: not an absolute path; expected file:///PATH")
        regular_file(path)
        if roots and not _inside_any(path, roots):
            raise Refused(f"{shown(path)}: outside SOUNDTAG_ALLOWED_ROOTS")
    elif uri.startswith("s3://"):
        bucket = uri.removeprefix("s3://").partition("/")[0]
        if buckets and bucket not in buckets:
            raise Refused(f"{shown(uri)}: bucket {shown(bucket)!r} is not in SOUNDTAG_ALLOWED_BUCKETS")
    elif uri.startswith("hf:///"):
        # A dataset on disk (Hub datasets come from the Hugging Face cache); its rows name
        # where it is, hf:///ABS/PATH:SPLIT/ROW.
        dataset = uri.removeprefix("hf://").rpartition(":")[0]
        if roots and not _inside_any(dataset, roots):
            raise Refused(f"{shown(uri)}: dataset outside SOUNDTAG_ALLOWED_ROOTS")


def within(uri: str, sources: Sequence[str]) -> None:
    """Raise Refused unless ``uri`` lies under one of a job's ``sources`` (as recorded with it:
    local folders or files, ``file://`` and ``s3://`` prefixes), judged as it is now: a file
    replaced by a link to elsewhere, or a path that climbs out by ``..``, is outside. A source
    that is a file admits that file alone, and not through a link. Dataset rows are confined to
    their dataset's folder when read (``dataset_file``) and pass."""
    if uri.startswith("hf://"):
        return
    if uri.startswith("s3://"):
        if not any(_under_prefix(uri, source) for source in sources if source.startswith("s3://")):
            raise Refused(f"{shown(uri)}: outside the job's sources")
        return
    real = os.path.realpath(path_of(uri))
    for source in sources:
        if source.startswith(FILE) or "://" not in source:
            root = path_of(source)
            if os.path.isdir(root) and inside(real, os.path.realpath(root)):
                return
            # A file named alone: its folder resolved, its own name not followed.
            if real == os.path.join(os.path.realpath(os.path.dirname(root)), os.path.basename(root)):
                return
    raise Refused(f"{shown(path_of(uri))}: outside the job's sources")


def _under_prefix(uri: str, source: str) -> bool:
    """Whether an S3 object is the one ``source`` names, or under it as a folder (as listed)."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    root_bucket, _, prefix = source.removeprefix("s3://").partition("/")
    folder = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    return bucket == root_bucket and (key == prefix or key.startswith(folder))


def dataset_file(folder: str, name: str) -> str:
    """The real path of a dataset's path value ``name`` (relative to the dataset's ``folder``
    unless absolute) when it is a regular file inside that folder. Raises Refused for a path that
    leads out, by ``..``, as an absolute path or through a symlink."""
    real = os.path.realpath(os.path.join(folder, name))
    if not inside(real, os.path.realpath(folder)):
        raise Refused(f"{shown(name)}: outside the dataset's folder {shown(folder)}")
    regular_file(real)
    return real


def regular_file(path: str) -> None:
    """Raise Refused unless ``path`` is (or links to) a regular file: a device such as /dev/zero
    or a FIFO would never end, or block."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise Refused(f"{shown(path)}: file not found") from None
    except OSError as exc:
        raise Refused(f"{shown(path)}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise Refused(f"{shown(path)}: not a regular file")


def inside(real: str, folder: str) -> bool:
    """Whether the real path ``real`` is ``folder`` (a real path too) or under it."""
    return real == folder or real.startswith(folder.rstrip(os.sep) + os.sep)


def _inside_any(path: str, roots: Sequence[str]) -> bool:
    real = os.path.realpath(path)
    return any(inside(real, os.path.realpath(os.path.expanduser(root))) for root in roots)
