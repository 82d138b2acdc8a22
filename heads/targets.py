"""What a verdict teaches a head, window by window. Pure functions: no I/O.

A verdict judges the label the page showed (accept, reject) or gives the right one (correct);
a file's verdict speaks for all its windows, a segment's (``bounds``) for the windows that
overlap it. Saying what a recording is (accept, correct, the truth column) also says, weakly,
what it is not: the review page asks for one label per file, as ``reviewed_labels`` and
``evaluate`` read it, so the head's other labels are negatives there unless a verdict of its
own says otherwise."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from soundtag.states import Verdict


@dataclass(frozen=True)
class Taught:
    """One (label, yes or no) on a file, or on the part of it within ``bounds`` (seconds)."""

    file_id: int
    label: str
    positive: bool
    bounds: tuple[float, float] | None = None
    implied: bool = False  # a negative that another label's positive implies: any explicit verdict wins


def from_verdict(file_id: int, verdict: Verdict, label: str | None, shown: str | None = None,
                 bounds: tuple[float, float] | None = None) -> list[Taught]:
    """accept: a positive for the label judged; reject: a negative for it; correct: a positive
    for the reviewer's label and a negative for the one shown (``shown``, when known)."""
    if label is None:  # a reject of an abstention teaches nothing about any label
        return []
    if verdict == Verdict.ACCEPT:
        return [Taught(file_id, label, True, bounds)]
    if verdict == Verdict.REJECT:
        return [Taught(file_id, label, False, bounds)]
    taught = [Taught(file_id, label, True, bounds)]
    if shown is not None and shown != label:
        taught.append(Taught(file_id, shown, False, bounds))
    return taught


def implied(taught: Sequence[Taught], labels: Sequence[str]) -> list[Taught]:
    """``taught`` with, for each positive, a negative for every other of ``labels`` on the same
    part of the file."""
    return [*taught, *(Taught(one.file_id, label, False, one.bounds, implied=True)
                       for one in taught if one.positive for label in labels if label != one.label)]


def from_truth(file_id: int, truth: str, labels: Sequence[str]) -> list[Taught]:
    """The file is ``truth`` and none of the other ``labels``."""
    return implied([Taught(file_id, truth, True)], labels)


def overlapping(starts: np.ndarray, ends: np.ndarray, bounds: tuple[float, float] | None) -> np.ndarray:
    """Which windows a verdict covers: all of them for a file's, those overlapping ``bounds``
    (by more than an instant) for a segment's."""
    if bounds is None:
        return np.ones(len(starts), dtype=bool)
    start, end = bounds
    return (np.asarray(starts) < end) & (np.asarray(ends) > start)


def window_targets(starts: np.ndarray, ends: np.ndarray, taught: Iterable[Taught],
                   labels: Sequence[str]) -> np.ndarray:
    """(windows × labels): 1 where a verdict says yes, 0 where it says no, NaN where nothing was
    said (a weak negative in training). Explicit entries win over implied ones, a window's over
    an event's around it over the file's (the narrowest speaks of the window, as
    ``db.reviews.covering`` picks), and later entries over earlier ones."""
    column = {label: i for i, label in enumerate(labels)}
    targets = np.full((len(starts), len(labels)), np.nan)
    for one in sorted(taught, key=lambda one: (not one.implied, -_width(one.bounds))):
        if one.label in column:
            targets[overlapping(starts, ends, one.bounds), column[one.label]] = 1.0 if one.positive else 0.0
    return targets


def _width(bounds: tuple[float, float] | None) -> float:
    return np.inf if bounds is None else bounds[1] - bounds[0]
