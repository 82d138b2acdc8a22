"""A label's validation sample and what its verdicts say about the whole job: ``review --order
validate --label L`` draws the windows, an equal number from each score bin (soundtag.estimate),
and ``soundtag estimate`` turns the verdicts given on them into prevalence, precision and recall.

A window's verdict is evidence on L when it judged L: accepted (L is there), rejected (it is
not), or corrected to a label (L is there only if that label is L)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine

from db.detections import file_sites
from db.jobs import job_spec
from db.reviews import ReviewItem, all_verdicts
from db.segments import JobWindow, job_windows
from soundtag.estimate import Estimate, bins_of, edges, estimate, strata, validation_order
from soundtag.states import Verdict


def _windows(engine: Engine, job_id: str, label: str) -> tuple[list[JobWindow], np.ndarray]:
    names = job_spec(engine, job_id).taxonomy.names
    if label not in names:
        raise ValueError(f"label {label!r} is not in the job's taxonomy ({', '.join(names)})")
    windows = job_windows(engine, job_id)
    position = names.index(label)
    return windows, np.array([w.similarities[position] for w in windows], dtype=np.float64)


def validation_items(engine: Engine, job_id: str, label: str) -> list[ReviewItem]:
    """Every window of the job as an item judging ``label``, in validation order: the score bins
    in turn, a random window of each (seeded by the job, so a restart shows the same order)."""
    windows, scores = _windows(engine, job_id, label)
    return [ReviewItem(windows[n].file_id, windows[n].uri, windows[n].duration_s, label, windows[n].labels,
                       windows[n].start_s, windows[n].end_s) for n in validation_order(scores.tolist(), job_id)]


def truths(engine: Engine, job_id: str, label: str) -> dict[tuple[int, float, float], bool]:
    """Whether ``label`` is in each window that a verdict in force judged it on."""
    found = {}
    for key, (verdict, judged) in all_verdicts(engine, job_id).items():
        if key[1] is None:
            continue
        if verdict == Verdict.CORRECT:
            found[key] = judged == label
        elif judged == label:
            found[key] = verdict == Verdict.ACCEPT
    return found


@dataclass(frozen=True)
class SiteEstimate:
    site: str | None  # None: all the sites
    estimate: Estimate


def estimates(engine: Engine, job_id: str, label: str, site: str | None = None,
              by_site: bool = False) -> list[SiteEstimate]:
    """The estimate over the job's windows (of ``site``), or one per site with ``by_site``. The
    bins are those the validation sample was drawn from: over every window of the job."""
    windows, scores = _windows(engine, job_id, label)
    if not windows:
        return []
    bins = bins_of(scores, edges(scores))
    judged = truths(engine, job_id, label)
    sites = file_sites(engine, job_id)
    groups: dict[str | None, list[int]] = {}
    for n, w in enumerate(windows):
        here = sites.get(w.file_id)
        if site is None or here == site:
            groups.setdefault(here if by_site else site, []).append(n)
    found = []
    for group, members in sorted(groups.items(), key=lambda item: (item[0] is None, item[0] or "")):
        given = {local: judged[key] for local, n in enumerate(members)
                 if (key := (windows[n].file_id, windows[n].start_s, windows[n].end_s)) in judged}
        found.append(SiteEstimate(group, estimate(strata(bins[members], [label in windows[n].tags for n in members],
                                                         given), seed=0)))
    return found
