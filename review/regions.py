"""A labeled region of a recording, drawn in another tool (a Label Studio region, a Raven
selection, an Audacity label), as a verdict on that segment of the file."""

from __future__ import annotations

import math
from collections.abc import Sequence

from db.reviews import Given
from db.segments import EventRow
from soundtag.states import Verdict

BOUNDS = 1e-3  # seconds: a region this close to an event's bounds is that event (the tools round)
# A region ending later than this is no span of any recording, whatever its duration (a year).
LONGEST = 366 * 24 * 3600.0


def region_verdict(events: Sequence[EventRow], file_id: int, start: float, end: float, label: str,
                   reviewer: str) -> Given:
    """``accept`` where the model found ``label`` there (an event of the file with the same
    bounds, recorded at the event's own bounds, as the review page's event items have them),
    ``correct`` elsewhere."""
    found = next((ev for ev in events if ev.label == label
                  and abs(ev.start_s - start) <= BOUNDS and abs(ev.end_s - end) <= BOUNDS), None)
    if found:
        return Given(file_id, Verdict.ACCEPT, reviewer, label, found.start_s, found.end_s)
    return Given(file_id, Verdict.CORRECT, reviewer, label, start, end)


def span_problem(start: float, end: float, duration: float | None = None) -> str | None:
    """Why a region's (start, end) is no span of its recording, or None when it is one."""
    span = f"region from {start:g} s to {end:g} s"
    if not (math.isfinite(start) and math.isfinite(end)):
        return f"{span}: start and end must be finite numbers of seconds"
    if start < 0 or end <= start:
        return f"{span}: it must start at 0 s or later and end after it starts"
    if duration is None and end > LONGEST:
        return f"{span}: no recording is that long"
    if duration is not None and end > duration + BOUNDS:
        return f"{span}: it ends after the recording ({duration:g} s)"
    return None
