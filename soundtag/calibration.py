"""Choosing each label's threshold on the cosine from files whose truth is known: the lowest
cosine at which the label's precision reaches a target, so that recall is as high as the target
allows: a point of the label's precision-recall curve over the cosine, which ``evaluate --plot``
draws too. Pure functions; the CLI reads the files and writes the taxonomy."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Calibrated:
    label: str
    threshold: float
    precision: float | None  # on the files, at the threshold; None when nothing reaches it
    recall: float | None  # None without support
    support: int  # files whose truth includes the label
    reached: bool  # False: no threshold gives the target precision; this one is above every cosine


def truths(value: str | None) -> frozenset[str]:
    """A truth cell as a set of labels: several are separated by ';'."""
    return frozenset(part.strip() for part in (value or "").split(";") if part.strip())


@dataclass(frozen=True)
class Point:
    """One threshold of a label's precision-recall curve: every file whose cosine reaches it is tagged."""

    threshold: float
    precision: float
    recall: float | None  # None without support
    hits: int  # tagged files whose truth includes the label


def curve(scored: Iterable[tuple[float, bool]]) -> list[Point]:
    """A label's precision and recall at each distinct cosine, highest first, from (cosine, the
    truth includes the label) of each file."""
    ordered = sorted(scored, key=lambda pair: -pair[0])
    support = sum(positive for _, positive in ordered)
    points = []
    hits = 0
    for i, (cosine, positive) in enumerate(ordered):
        hits += positive
        # Only the last of equal cosines is a threshold: all of them pass together.
        if i + 1 < len(ordered) and ordered[i + 1][0] == cosine:
            continue
        points.append(Point(cosine, hits / (i + 1), hits / support if support else None, hits))
    return points


def calibrate(files: Iterable[tuple[frozenset[str], Mapping[str, float]]], labels: Sequence[str],
              target: float) -> list[Calibrated]:
    """``files``: (true labels, cosine per label) of each file with a known truth. Labels match
    whatever their case. A label whose precision never reaches ``target`` gets a threshold just
    above every cosine it was given, so it tags nothing seen here."""
    canonical = {name.casefold(): name for name in labels}
    samples = [(frozenset(canonical.get(t.casefold(), t) for t in truth), cosines) for truth, cosines in files]
    found = []
    for label in labels:
        scored = [(cosines[label], label in truth) for truth, cosines in samples if label in cosines]
        support = sum(positive for _, positive in scored)
        reached = [point for point in curve(scored) if point.precision >= target]
        if not reached:
            top = max((cosine for cosine, _ in scored), default=0.0)
            # Above 1 where a cosine was 1: capped at 1, that file would still be tagged.
            found.append(Calibrated(label, top + 1e-6, None, 0.0 if support else None, support, False))
        else:
            best = reached[-1]
            found.append(Calibrated(label, best.threshold, best.precision, best.recall, support, True))
    return found
