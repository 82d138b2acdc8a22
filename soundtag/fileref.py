"""What the producer hands over for each file it finds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FileRef:
    """A file found in a source: its URI and what the source says about its version (size +
    mtime, ETag, dataset fingerprint), the cheap change detector that decides what to relabel."""

    uri: str
    fingerprint: str | None = None
    size_bytes: int | None = None
    truth: str | None = None
