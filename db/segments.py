"""A job's segments, as reviewing and scoring them needs them: each stored window with its best
labels and the labels that tag it (``segment_tags``), and the ``events`` view's merged runs.

The views are read with the model in SQL and the taxonomy kept in Python, as
``db.labeled_files`` reads them (PostgreSQL plans a filter on taxonomy_hash as nested loops)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine, column, func, select, table

from db.models import File, JobFile, Labeling, LabelingWindow, TaxonomyRow
from db.jobs import job_labelings, job_spec
from db.reviews import Scored, SpanVerdict, all_verdicts, covering

_SEGMENT_TAGS = table("segment_tags", column("uri"), column("model"), column("taxonomy_hash"), column("start_s"),
                      column("end_s"), column("label"), column("score"))
_EVENTS = table("events", column("uri"), column("model"), column("taxonomy_hash"), column("label"), column("start_s"),
                column("end_s"), column("max_similarity"))
TOP = 5  # best labels kept per segment


@dataclass(frozen=True)
class JobWindow:
    """One stored window of a file of the job."""

    file_id: int
    uri: str
    duration_s: float | None
    start_s: float
    end_s: float
    labels: tuple[Scored, ...]  # best first, at most TOP
    similarities: tuple[float, ...]  # every label's cosine, in the taxonomy's label order
    tags: dict[str, float]  # label or group → score, for those that pass their thresholds


@dataclass(frozen=True)
class EventRow:
    """One row of the ``events`` view for a file of the job."""

    file_id: int
    uri: str
    duration_s: float | None
    label: str
    start_s: float
    end_s: float
    similarity: float  # the best window's


def most_windows(engine: Engine, job_id: str) -> int:
    """The most windows any file of the job has under its model and taxonomy (0: none stored)."""
    spec = job_spec(engine, job_id)
    with engine.connect() as conn:
        counts = (job_labelings(job_id, spec, func.count().label("n"))
                  .join(LabelingWindow, LabelingWindow.labeling_id == Labeling.id)
                  .group_by(LabelingWindow.labeling_id).subquery())
        return conn.execute(select(func.coalesce(func.max(counts.c.n), 0))).scalar_one()


def job_windows(engine: Engine, job_id: str, file_ids: set[int] | None = None) -> list[JobWindow]:
    """The job's windows (of ``file_ids`` only, when given) in file and time order, each with its
    scores (the softmax of its cosines at the labeling's logit scale, or a head's probabilities,
    as ``segment_labels`` computes them) and its tags."""
    spec = job_spec(engine, job_id)
    names = spec.taxonomy.names
    with engine.connect() as conn:
        taxonomy_hash = _taxonomy_hash(conn, spec.taxonomy_id)
        rows = conn.execute(
            job_labelings(job_id, spec, File.id, File.uri, File.duration_s, LabelingWindow.start_s,
                          LabelingWindow.end_s, LabelingWindow.top_score, LabelingWindow.similarities,
                          Labeling.logit_scale)
            .join(LabelingWindow, LabelingWindow.labeling_id == Labeling.id)
            .order_by(File.id, LabelingWindow.window)).all()
        if file_ids is not None:
            rows = [row for row in rows if row.id in file_ids]
        uris = {row.uri for row in rows}
        t = _SEGMENT_TAGS
        tags: dict[tuple[str, float, float], dict[str, float]] = {}
        for uri, found_hash, start, end, label, score in conn.execute(
                select(t.c.uri, t.c.taxonomy_hash, t.c.start_s, t.c.end_s, t.c.label, t.c.score)
                .where(t.c.model == spec.model)):
            if found_hash == taxonomy_hash and uri in uris:
                tags.setdefault((uri, start, end), {})[label] = score
    found = []
    for row in rows:
        cosines = np.asarray(row.similarities, dtype=np.float64)
        if row.logit_scale is None:  # a head's output: the similarities are its probabilities
            scores = cosines
        else:
            scores = np.exp(row.logit_scale * (cosines - cosines.max()))
            scores /= scores.sum()
        best = np.argsort(-cosines, kind="stable")[:TOP]
        # The rank-1 score is the stored one, as in segment_labels.
        labels = tuple(Scored(names[i], float(row.top_score if n == 0 else scores[i]), float(cosines[i]))
                       for n, i in enumerate(best))
        found.append(JobWindow(row.id, row.uri, row.duration_s, row.start_s, row.end_s, labels,
                            tuple(map(float, cosines)), tags.get((row.uri, row.start_s, row.end_s), {})))
    return found


def job_events(engine: Engine, job_id: str) -> list[EventRow]:
    """The ``events`` view's rows for the job's files, model and taxonomy, in file and time order."""
    spec = job_spec(engine, job_id)
    e = _EVENTS
    with engine.connect() as conn:
        taxonomy_hash = _taxonomy_hash(conn, spec.taxonomy_id)
        files = {uri: (file_id, uri, duration) for file_id, uri, duration in conn.execute(
            select(File.id, File.uri, File.duration_s).join(JobFile, JobFile.file_id == File.id)
            .where(JobFile.job_id == job_id))}
        rows = conn.execute(select(e.c.uri, e.c.taxonomy_hash, e.c.label, e.c.start_s, e.c.end_s, e.c.max_similarity)
                            .where(e.c.model == spec.model)).all()
    found = [EventRow(*files[uri], label, start, end, similarity)
             for uri, found_hash, label, start, end, similarity in rows if found_hash == taxonomy_hash and uri in files]
    return sorted(found, key=lambda ev: (ev.file_id, ev.start_s, ev.end_s, ev.label))


def window_decision(tags: dict[str, float], leaves: set[str]) -> str | None:
    """A window's decision, as file_decisions makes a file's: its tagging label (not a group) of
    the highest score, ties by name; None (abstained) when nothing tags it."""
    passing = [(-score, label) for label, score in tags.items() if label in leaves]
    return min(passing)[1] if passing else None


def reviewed_windows(engine: Engine, job_id: str) -> list[tuple[JobWindow, str | None]]:
    """Each window of the job that a segment verdict in force covers (db.reviews.covering: a window's
    own, or an event's around it), with the truth that verdict gives it: its label when accepted
    or corrected, none when rejected."""
    by_file: dict[int, list[SpanVerdict]] = {}
    for (file_id, start, end), (verdict, label) in all_verdicts(engine, job_id).items():
        if start is not None:
            by_file.setdefault(file_id, []).append(SpanVerdict(start, end, verdict, label))
    if not by_file:
        return []
    found = []
    for w in job_windows(engine, job_id, set(by_file)):
        verdict = covering(by_file[w.file_id], w.start_s, w.end_s)
        if verdict is not None:
            found.append((w, verdict.final))
    return found


def _taxonomy_hash(conn, taxonomy_id: int) -> str:
    return conn.execute(select(TaxonomyRow.content_hash).where(TaxonomyRow.id == taxonomy_id)).scalar_one()
