"""``file://`` URIs for any name the OS hands over, and URIs as a person reads them.

A local file's URI percent-encodes the raw bytes of its path, so names that are not UTF-8, or
hold ``%``, ``#``, ``?``, spaces or newlines, become plain ASCII that maps back to exactly that
file. The database keeps the exact URI; ``readable`` is for output only.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes

FILE = "file://"


def file_uri(path: str) -> str:
    """The URI of an absolute local path (what ``Path.as_uri()`` returns, without its parsing)."""
    return FILE + quote(os.fsencode(path), safe="/")


def source_uri(source: str) -> str:
    """A source or file as stored URIs begin: URIs as given, local paths as ``file://`` URIs."""
    return source if "://" in source else file_uri(str(Path(source).expanduser().absolute()))


def path_of(uri: str) -> str:
    """The local path behind a ``file://`` URI; undecodable bytes come back as os.fsdecode gives them."""
    return os.fsdecode(unquote_to_bytes(uri.removeprefix(FILE)))


def readable(uri: str) -> str:
    """A URI on one printable line: a local file as its path with bytes that are not UTF-8 shown
    as ``\\xNN``; control characters, newlines included, escaped in any URI."""
    return shown(path_of(uri) if uri.startswith(FILE) else uri)


def shown(text: str) -> str:
    """``text`` with what would break a line of output escaped: surrogates (bytes of a name that
    is not UTF-8) as ``\\xNN``, control characters as Python writes them."""
    if text.isprintable():
        return text
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no undecodable byte stands for
        text = text.encode("utf-8", "backslashreplace").decode("ascii")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
