"""Every error soundtag raises on purpose, in one place.

``SoundtagError`` is what a person can act on: its message is one line naming the thing and what
to do, and ``soundtag``'s ``main()`` prints exactly that. Errors of one file (``AudioError``,
``ReadError``) travel as values once they reach the labeling pipeline: the file fails alone.
"""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its class name when it has none."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else exc.__class__.__name__


def describe(exc: BaseException) -> str:
    """One line for an unexpected exception: its class, then its first line."""
    lines = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {lines[0]}" if lines else exc.__class__.__name__


class SoundtagError(Exception):
    """An error a person can act on; the message is the one line they read."""


class ConfigError(SoundtagError):
    """A setting or option with a value soundtag cannot use."""


class TaxonomyError(SoundtagError, ValueError):
    """A taxonomy that cannot be used; the message says what to fix."""


class ScheduleError(SoundtagError, ValueError):
    """A schedule file that cannot be used."""


class SourceError(SoundtagError, ValueError):
    """A source that cannot be listed."""


class DatabaseError(SoundtagError):
    """The database cannot be used; the message names it (without its password) and what to do."""


class BrokerError(SoundtagError):
    """The broker (Redis) cannot be reached to send work; the message names it without its password."""


class ModelError(SoundtagError):
    """The model cannot be found or loaded: a whole job's failure, never a file's."""


class JobNotFound(SoundtagError):
    """No job with that id in this database."""


class HeadNotFound(SoundtagError):
    """No head of that name (or version) is stored; `soundtag train` makes one."""


class _MaybeTransient(SoundtagError):
    """``transient`` is true when the same request may succeed later (endpoint unreachable,
    throttling, 5xx): callers retry those instead of giving up on the object."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


class S3Error(_MaybeTransient):
    """An S3 request failed; one line naming the bucket or object."""


class DatasetError(_MaybeTransient):
    """A Hugging Face dataset or row cannot be read."""


class AudioError(ValueError):
    """The bytes are not usable audio; the message is the one-line reason stored with the file."""


class DamagedData(ValueError):
    """Stored bytes that cannot be read back (a truncated or corrupted row); one line. Whoever
    reads rows skips that one, names its file and counts it; the rest goes on."""


class ReadError(OSError):
    """A file could not be fetched: missing, forbidden. The file fails; the batch goes on."""


# A ConnectionError, which the Celery task treats as transient: the file is not at fault, so the
# whole batch is retried later instead of failing its files.
class TransientReadError(ConnectionError):
    """The storage could not be reached right now (endpoint down, throttling, 5xx after the
    client's own retries)."""


class ReviewError(SoundtagError):
    """A verdict or an undo the review queue refuses; the page shows the message."""


class NoSuchItem(ReviewError, LookupError):
    """No item of that id in this review."""


class NotInTaxonomy(ReviewError, ValueError):
    """A corrected label that is not one of the taxonomy's."""


class StaleVersion(ReviewError):
    """A verdict on a version of an item that was judged or undone since (a second press)."""


class HeldByAnother(ReviewError):
    """A team member's verdict on an item handed to someone else (or judged by as many as it wants)."""
