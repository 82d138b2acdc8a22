"""The overview page's numbers (``/overview``): per label, its windows tagged and their minutes;
detections per day and per hour of the day against the minutes recorded then; the diel grid
(date × hour of day); sites side by side; a label's score histogram with its threshold and the
share of each bin's validated windows that hold it (db.detections reads them in one scan of the
job's windows, with the tagging rule of the views: the numbers are the views'); and which windows
a chart's point counts, so a click opens the review of exactly those."""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from datetime import timedelta

from sqlalchemy import Engine

from db import detections
from db.jobs import job_spec
from db.reviews import ReviewItem
from db.segments import job_windows
from review.validation import truths

log = logging.getLogger(__name__)

def effort(found: list[detections.Recording]) -> dict[tuple[str | None, str], float]:
    """Minutes recorded per site and hour ('YYYY-MM-DD HH', UTC): each recording's overlap with
    each hour it runs in, as detections_by_hour counts them."""
    minutes: dict[tuple[str | None, str], float] = defaultdict(float)
    for r in found:
        end = r.recorded_at + timedelta(seconds=r.duration_s)
        hour = r.recorded_at.replace(minute=0, second=0, microsecond=0)
        while hour < end:
            following = hour + timedelta(hours=1)
            minutes[(r.site, hour.strftime("%Y-%m-%d %H"))] += (min(following, end) - max(hour, r.recorded_at)
                                                                ).total_seconds() / 60.0
            hour = following
    return minutes


def overview(engine: Engine, job_id: str, site: str | None = None) -> dict:
    """Everything the page draws but the histograms, as plain JSON."""
    spec = job_spec(engine, job_id)
    labels = [lb.name for lb in spec.taxonomy.labels if not lb.background]
    effort_hour = effort(detections.recordings(engine, job_id, site))
    totals = {label: {"windows": 0, "minutes": 0.0} for label in labels}
    windows = defaultdict(lambda: defaultdict(int))  # label → hour → windows
    per_site = defaultdict(lambda: defaultdict(int))  # site → label → windows
    for row in detections.tagged(engine, job_id, site):
        totals[row.label]["windows"] += row.windows
        totals[row.label]["minutes"] += row.minutes
        if row.hour is not None:
            windows[row.label][row.hour] += row.windows
            per_site[row.site][row.label] += row.windows
    hours = sorted({hour for _, hour in effort_hour})
    days = sorted({hour[:10] for hour in hours})
    effort_day, effort_of_day, effort_by_hour = defaultdict(float), [0.0] * 24, defaultdict(float)
    effort_site = defaultdict(float)
    for (where, hour), minutes in effort_hour.items():
        effort_day[hour[:10]] += minutes
        effort_of_day[int(hour[11:13])] += minutes
        effort_by_hour[hour] += minutes
        effort_site[where] += minutes
    sites = sorted(set(effort_site) | set(per_site), key=lambda s: (s is None, s or ""))
    return {
        "job": job_id, "site": site, "labels": labels, "totals": totals, "days": days,
        "per_day": {label: [sum(n for hour, n in windows[label].items() if hour.startswith(day)) for day in days]
                    for label in labels},
        "effort_per_day": [effort_day[day] for day in days],
        "per_hour_of_day": {label: [sum(n for hour, n in windows[label].items() if int(hour[11:13]) == h)
                                    for h in range(24)] for label in labels},
        "effort_per_hour_of_day": effort_of_day,
        # date × hour of day: windows, and the minutes recorded in that hour (0: nothing recorded)
        "diel": {label: [[windows[label].get(f"{day} {h:02d}", 0) for h in range(24)] for day in days]
                 for label in labels},
        "diel_effort": [[effort_by_hour.get(f"{day} {h:02d}", 0.0) for h in range(24)] for day in days],
        "sites": sites,
        "per_site": {label: [per_site[s][label] for s in sites] for label in labels},
        "effort_per_site": [effort_site[s] for s in sites],
    }


def prepare(engine: Engine, job_id: str) -> None:
    """Compute and keep (db/summaries.py) what the page and each label's histogram read, so that
    a person's first look is served from the kept summaries rather than a scan of every window.
    Run beside the server as it starts; a failure here is the first request's to report."""
    try:
        overview(engine, job_id)
        for label in job_spec(engine, job_id).taxonomy.names:
            histogram(engine, job_id, label)
    except Exception:  # noqa: BLE001 - a request computes it again, and says what failed
        log.exception("overview: preparing the summaries failed")


def histogram(engine: Engine, job_id: str, label: str, bins: int = 20) -> dict:
    """``label``'s score histogram over the job's windows, its threshold, and per bin the share of
    the validated windows in it that hold the label (None where none was validated)."""
    edges, counts = detections.score_histogram(engine, job_id, label, bins)
    judged = truths(engine, job_id, label)
    held, seen = [0] * bins, [0] * bins
    if judged and edges:
        names = job_spec(engine, job_id).taxonomy.names
        position = names.index(label)
        width = (edges[-1] - edges[0]) / bins or 1.0
        for w in job_windows(engine, job_id, {file_id for file_id, _, _ in judged}):
            truth = judged.get((w.file_id, w.start_s, w.end_s))
            if truth is not None:
                # On the histogram's grid of 1/1000, as db.detections.score_histogram counts them.
                cell = math.floor(w.similarities[position] * 1000) / 1000
                b = min(bins - 1, max(0, int((cell - edges[0]) / width + 1e-9)))
                seen[b] += 1
                held[b] += truth
    return {"label": label, "edges": edges, "counts": counts, "threshold": detections.threshold(engine, job_id, label),
            "validated": seen, "precision": [h / s if s else None for h, s in zip(held, seen)]}


def counted(engine: Engine, job_id: str, items: list[ReviewItem], label: str, site: str | None = None,
            day: str | None = None, hour: int | None = None,
            scores: tuple[float, float] | None = None) -> list[ReviewItem]:
    """Of ``items``, those a chart's point counts: windows ``label`` tags, of ``site``, starting on
    ``day`` ('YYYY-MM-DD', UTC) and in ``hour`` of the day where given; or, with ``scores`` (a
    score histogram bin's low and high edges), the windows in that bin, tagged or not. A file
    item is counted when any of its windows is."""
    found = (detections.scored(engine, job_id, label, *scores) if scores is not None
             else detections.detected(engine, job_id, label, site, day, hour))
    files = {file_id for file_id, _, _ in found}
    return [item for item in items if item.key in found or (item.start_s is None and item.file_id in files)]
