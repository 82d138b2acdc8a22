"""The states of jobs and files, each in one place and compared by name.

A job is ``active`` until none of its files is queued, then ``completed`` (failed files are part
of a completed job). It is ``failed`` as a whole when it could not run at all (its model could
not load), with the reason in ``job.error``: its files stay queued for ``soundtag requeue`` after
the fix. ``cancelled`` jobs keep what they finished.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class FileState(StrEnum):
    """A file within a job (``job_file.status``). ``file.status`` takes the first three only: the
    outcome of the latest attempt at the file as it is now, whatever job or taxonomy made it."""

    QUEUED = "queued"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # already labeled at this fingerprint, or failed at it (--retry-failed)
    CANCELLED = "cancelled"


class Verdict(StrEnum):
    """A reviewer's verdict on the model's decision for one file (``review.verdict``)."""

    ACCEPT = "accept"  # the model's decision is right
    REJECT = "reject"  # it is wrong, and the reviewer names no label
    CORRECT = "correct"  # it is wrong; ``review.label`` is the right one


class Failure(StrEnum):
    """Why a file failed, in a few kinds: the ``reason`` of the workers' failure metrics, which
    must not carry a message (``job_file.error`` holds that)."""

    READ = "read"  # the storage has no such file, or refuses it
    DECODE = "decode"  # not audio, damaged, past the limits, or a decoder's surprise
    UNREADABLE = "unreadable"  # its stored embedding is damaged (relabel)
    LOST = "lost"  # workers died holding it task_max_attempts times
    ERROR = "error"  # its batch failed on a bug (logged with the traceback)


class Role(StrEnum):
    """What a named reviewer may do on the review page (``reviewer.role``)."""

    VIEWER = "viewer"  # listens and browses; records nothing
    REVIEWER = "reviewer"  # records verdicts on the items handed to them
    ADMIN = "admin"  # also adjudicates disagreements and sees everyone's progress
