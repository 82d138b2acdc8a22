"""A labeled region of a recording, drawn in another tool (a Label Studio region, a Raven
selection, an Audacity label), as a verdict on that segment of the file."""

from __future__ import annotations

import math
from collections.abc import Sequence

from db.reviews import Given
from db.segments import EventRow
from soundtag.states import Verdict

BOUNDS = 1e-3  # seconds: a region this close to an event's bounds is that event (the tools round)


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


def bounds_problem(start: float, end: float, duration_s: float | None) -> str | None:
    """Why (start, end) in seconds is no region of a recording of ``duration_s``; None when it is."""
    if not (math.isfinite(start) and math.isfinite(end)):
        return f"bounds {start!r}–{end!r} are not finite numbers"
    if start < 0 or end <= start:
        return f"bounds {start:g}–{end:g} s: a region starts at 0 or later and ends after it starts"
    if duration_s is not None and start >= duration_s + BOUNDS:
        return f"bounds {start:g}–{end:g} s start after the recording's end ({duration_s:g} s)"
    return None
