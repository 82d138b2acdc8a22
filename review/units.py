"""What one review item is: a whole file, one stored window, or one event (a merged run of
windows tagged with the same label). A window's or event's verdict is recorded with its bounds."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from sqlalchemy import Engine

from db import reviews, segments
from db.jobs import job_spec
from db.reviews import ReviewItem, Scored


class Unit(StrEnum):
    FILE = "file"
    WINDOW = "window"
    EVENT = "event"


def default_unit(engine: Engine, job_id: str) -> Unit:
    """``file`` when every recording of the job fits in one window, ``window`` otherwise."""
    return Unit.FILE if segments.most_windows(engine, job_id) <= 1 else Unit.WINDOW


def review_items(engine: Engine, job_id: str, unit: Unit, label: str | None = None) -> list[ReviewItem]:
    """The job's items of this unit, in file and time order; with ``label``, those it tags (files:
    those it is the decision of; windows: those among whose tags it is; events: its events), each
    with ``label`` as the decision judged."""
    if unit == Unit.FILE:
        return reviews.review_items(engine, job_id, label)
    leaves = set(job_spec(engine, job_id).taxonomy.names)
    if unit == Unit.WINDOW:
        return [ReviewItem(w.file_id, w.uri, w.duration_s, label or segments.window_decision(w.tags, leaves), w.labels,
                           w.start_s, w.end_s)
                for w in segments.job_windows(engine, job_id) if label is None or label in w.tags]
    events = [ev for ev in segments.job_events(engine, job_id) if label is None or ev.label == label]
    windows: dict[int, list[segments.JobWindow]] = {}
    for w in segments.job_windows(engine, job_id, {ev.file_id for ev in events}):
        windows.setdefault(w.file_id, []).append(w)
    return [ReviewItem(ev.file_id, ev.uri, ev.duration_s, ev.label,
                       event_labels([w for w in windows.get(ev.file_id, ()) if ev.start_s <= w.start_s
                                     and w.end_s <= ev.end_s]), ev.start_s, ev.end_s)
            for ev in events]


def event_labels(windows: Sequence[segments.JobWindow]) -> tuple[Scored, ...]:
    """An event's best labels: each label's best score and cosine over the event's windows."""
    best: dict[str, Scored] = {}
    for w in windows:
        for s in w.labels:
            seen = best.get(s.label)
            best[s.label] = Scored(s.label, max(s.score, seen.score if seen else 0.0),
                                   max(s.similarity, seen.similarity if seen else -1.0))
    return tuple(sorted(best.values(), key=lambda s: (-s.score, s.label))[:segments.TOP])
