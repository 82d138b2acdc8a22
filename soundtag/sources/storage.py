"""Opening a file by URI, wherever it lives, as a seekable binary file read in pieces."""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

from soundtag.errors import ReadError, TransientReadError
from soundtag.sources import access, s3, uris


def path_of(uri: str) -> Path:
    """The local path behind a ``file://`` URI, exactly, whatever bytes its name holds."""
    return Path(uris.path_of(uri))


def open_local(uri: str) -> BinaryIO:
    path = path_of(uri)
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise ReadError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ReadError(f"{path}: is a directory") from None
    except PermissionError:
        raise ReadError(f"{path}: permission denied") from None
    except OSError as exc:
        raise ReadError(f"{path}: {exc.strerror or exc}") from None


class Storage:
    """Reads ``file://``, ``s3://`` and ``hf://`` URIs; one per process, clients made lazily.
    ``open`` raises ReadError when the file is at fault (missing, forbidden, refused by the
    allow-lists ``roots`` and ``buckets``, or outside ``sources`` when given: the sources a job
    found its files in) and TransientReadError when its storage is unreachable for now."""

    def __init__(self, roots: Sequence[str] = (), buckets: Sequence[str] = (),
                 sources: Sequence[str] | None = None) -> None:
        self._roots, self._buckets = tuple(roots), tuple(buckets)
        self._sources = None if sources is None else tuple(sources)
        self._openers = {"file": open_local, "s3": self._open_s3, "hf": self._open_row}
        self._s3_lock = threading.Lock()
        self._s3 = None
        self._datasets_lock = threading.Lock()
        self._columns: dict[tuple, object] = {}  # loaded dataset columns, or why one cannot load

    def open(self, uri: str) -> AbstractContextManager[BinaryIO]:
        """The file as a seekable binary file object; close it (``with``) when done."""
        scheme = uri.split("://", 1)[0] if "://" in uri else "file"
        opener = self._openers.get(scheme)
        if opener is None:
            raise ReadError(f"{uri}: unsupported scheme {scheme!r}")
        self.check(uri)
        return opener(uri)

    def read(self, uri: str) -> bytes:
        """The whole file's bytes; raises as ``open`` does."""
        with self.open(uri) as file:
            return file.read()

    def open_ranged(self, uri: str) -> AbstractContextManager[BinaryIO]:
        """The file as ``open`` gives it, except that an ``s3://`` object is not fetched whole:
        each read is a ranged GET (s3.RangedObject), for reading a small part of a large object."""
        if not uri.startswith("s3://"):
            return self.open(uri)
        self.check(uri)
        try:
            return s3.RangedObject(self._s3_client(), *s3.split_uri(uri))
        except s3.S3Error as exc:
            raise _read_error(exc) from None

    def s3_part(self, uri: str, byte_range: str | None) -> s3.Part:
        """An ``s3://`` object, or the part of it an HTTP Range header asks for, streamed."""
        self.check(uri)
        try:
            return s3.get_part(self._s3_client(), *s3.split_uri(uri), byte_range)
        except s3.S3Error as exc:
            raise _read_error(exc) from None

    @property
    def restricted(self) -> bool:
        """Whether allow-lists are set (without them, any file may be read)."""
        return bool(self._roots or self._buckets)

    def check(self, uri: str) -> None:
        """Raises ReadError when the allow-lists, or the sources, refuse ``uri``."""
        try:
            access.check(uri, self._roots, self._buckets)
            if self._sources is not None:
                access.within(uri, self._sources)
        except access.Refused as exc:
            raise ReadError(str(exc)) from None

    def _s3_client(self):
        with self._s3_lock:
            if self._s3 is None:
                self._s3 = s3.make_client()
        return self._s3

    def _open_s3(self, uri: str) -> BinaryIO:
        try:
            return s3.open_object(self._s3_client(), *s3.split_uri(uri))
        except s3.S3Error as exc:
            raise _read_error(exc) from None

    def _open_row(self, uri: str) -> BinaryIO:
        from soundtag.sources import hf_datasets

        try:
            ref, split, row, column = hf_datasets.parse_row(uri)
            key = (ref, split, column)
            # One load per dataset split per process; threads asking meanwhile wait for it.
            with self._datasets_lock:
                if key not in self._columns:
                    try:
                        self._columns[key] = hf_datasets.AudioColumn(ref, split, column)
                    except hf_datasets.DatasetError as exc:
                        if exc.transient:
                            raise
                        self._columns[key] = str(exc)  # its other rows fail alike, without loading again
                loaded = self._columns[key]
            if isinstance(loaded, str):
                raise ReadError(loaded)
            # A dataset row's audio is a clip, already in memory as bytes.
            return io.BytesIO(loaded.read(row, uri))
        except hf_datasets.DatasetError as exc:
            raise _read_error(exc) from None


def _read_error(exc) -> OSError:
    """An S3Error or DatasetError as the worker's ReadError, or TransientReadError when waiting may help."""
    return (TransientReadError if exc.transient else ReadError)(str(exc))
