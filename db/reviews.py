"""Review: the files of a job as the review page shows them, and verdicts on files and on
segments of them recorded, undone and read (the ``review`` table, appended to and stamped, never
rewritten)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import Engine, and_, func, select, update

from db.decisions import model_decisions
from db.jobs import JobSpec, job_labelings, job_spec
from db.models import File, Labeling, Review, now
from db.results import best
from soundtag.states import Verdict


@dataclass(frozen=True)
class Scored:
    label: str
    score: float
    similarity: float


@dataclass(frozen=True)
class ReviewItem:
    """A labeled file, or a segment of one (a window, an event), as the review page shows it."""

    file_id: int
    uri: str
    duration_s: float | None
    decision: str | None
    labels: tuple[Scored, ...]  # best first, at most five
    start_s: float | None = None  # a segment's bounds; None for a whole file
    end_s: float | None = None

    @property
    def key(self) -> tuple[int, float | None, float | None]:
        """What a verdict on this item is recorded for (as ``Given.key``)."""
        return self.file_id, self.start_s, self.end_s

    @property
    def margin(self) -> float:
        """Between the first two scores: small when the model hesitated."""
        scores = [s.score for s in self.labels[:2]] + [0.0]
        return scores[0] - scores[1]

    @property
    def similarity(self) -> float:
        return self.labels[0].similarity if self.labels else 0.0


def review_items(engine: Engine, job_id: str, label: str | None = None) -> list[ReviewItem]:
    """The job's files that have a result by its model and taxonomy, by file id; with ``label``,
    only those whose model decision it is."""
    spec = job_spec(engine, job_id)
    names = spec.taxonomy.names
    with engine.connect() as conn:
        rows = conn.execute(job_labelings(job_id, spec, File.id, File.uri, File.duration_s, Labeling.scores,
                                          Labeling.similarities).order_by(File.id)).all()
    files = {file_id: (uri, duration, tuple(Scored(names[i], scores[i], similarities[i]) for i in best(scores, 5)))
             for file_id, uri, duration, scores, similarities in rows}
    decided = model_decisions(engine, spec.model, spec.taxonomy_id, list(files))
    items = [ReviewItem(file_id, uri, duration, decided.get(file_id), scored)
             for file_id, (uri, duration, scored) in files.items()]
    return [item for item in items if label is None or item.decision == label]


def record_verdict(engine: Engine, job_id: str, file_id: int, verdict: Verdict, reviewer: str,
                   label: str | None = None) -> None:
    """Record a verdict on the job's model decision for the file; it supersedes earlier ones.
    ``label`` is the right label for ``correct`` and ignored otherwise: accept and reject record
    the decision they judged."""
    spec = job_spec(engine, job_id)
    if verdict != Verdict.CORRECT:
        label = model_decisions(engine, spec.model, spec.taxonomy_id, [file_id]).get(file_id)
    record_verdicts(engine, {job_id: [(file_id, verdict, reviewer, label)]})


class Given(NamedTuple):
    """One verdict to record. ``label`` is as the ``reviews`` view has it: the decision judged for
    accept and reject, the reviewer's label for correct. A segment's verdict has its bounds."""

    file_id: int
    verdict: Verdict
    reviewer: str
    label: str | None
    start_s: float | None = None
    end_s: float | None = None

    @property
    def key(self) -> tuple[int, float | None, float | None]:
        return self.file_id, self.start_s, self.end_s


def record_verdicts(engine: Engine, given: Mapping[str, Sequence[Given | tuple]]) -> None:
    """Record verdicts on each job's model decisions, for every job in ``given`` in one
    transaction, each superseding those before it on the same file and bounds."""
    specs = {job_id: job_spec(engine, job_id) for job_id, verdicts in given.items() if verdicts}
    if not specs:
        return
    stamp = now()
    with engine.begin() as conn:
        conn.execute(Review.__table__.insert(), [
            {"file_id": one.file_id, "model": spec.model, "taxonomy_id": spec.taxonomy_id, "job_id": job_id,
             "label": one.label, "verdict": one.verdict, "reviewer": one.reviewer, "reviewed_at": stamp,
             "start_s": one.start_s, "end_s": one.end_s}
            for job_id, spec in specs.items() for one in map(lambda row: Given(*row), given[job_id])])


def in_force(spec: JobSpec):
    later = Review.__table__.alias("later")
    return (Review.model == spec.model, Review.taxonomy_id == spec.taxonomy_id, Review.undone_at.is_(None),
            ~select(later.c.id).where(later.c.file_id == Review.file_id, later.c.model == Review.model,
                                      later.c.taxonomy_id == Review.taxonomy_id, later.c.undone_at.is_(None),
                                      _same_bounds(later.c, Review), later.c.id > Review.id).exists())


def _same_bounds(a, b):
    """Both verdicts are on the file, or both on the same segment of it (as the views compare them)."""
    return and_(func.coalesce(a.start_s, -1) == func.coalesce(b.start_s, -1),
                func.coalesce(a.end_s, -1) == func.coalesce(b.end_s, -1))


def undo_verdict(engine: Engine, job_id: str, reviewer: str) -> tuple[int, float | None, float | None] | None:
    """Undo the reviewer's latest verdict still in force on the job's model and taxonomy (the one
    before it on the same file and bounds, if any, is in force again). Returns its (file id,
    start_s, end_s), or None when there is none."""
    spec = job_spec(engine, job_id)
    with engine.begin() as conn:
        latest = conn.execute(select(Review.id, Review.file_id, Review.start_s, Review.end_s)
                              .where(*in_force(spec), Review.reviewer == reviewer)
                              .order_by(Review.id.desc()).limit(1)).one_or_none()
        if latest is None:
            return None
        conn.execute(update(Review).where(Review.id == latest.id).values(undone_at=now()))
    return latest.file_id, latest.start_s, latest.end_s


def verdicts(engine: Engine, job_id: str) -> dict[int, tuple[Verdict, str | None]]:
    """The verdict in force, and its label, for each file reviewed as a whole under the job's
    model and taxonomy."""
    return {file_id: given for (file_id, start, _), given in all_verdicts(engine, job_id).items() if start is None}


def all_verdicts(engine: Engine, job_id: str) -> dict[tuple[int, float | None, float | None], tuple[Verdict, str | None]]:
    """The verdict in force, and its label, for each file and segment reviewed under the job's
    model and taxonomy, by (file id, start_s, end_s): the bounds are None for a file's verdict."""
    spec = job_spec(engine, job_id)
    with engine.connect() as conn:
        rows = conn.execute(select(Review.file_id, Review.start_s, Review.end_s, Review.verdict, Review.label)
                            .where(*in_force(spec))).all()
    return {(file_id, start, end): (Verdict(verdict), label) for file_id, start, end, verdict, label in rows}


@dataclass(frozen=True)
class SpanVerdict:
    """A verdict in force on a segment of a file: ``label`` as in the ``reviews`` view."""

    start_s: float
    end_s: float
    verdict: Verdict
    label: str | None

    @property
    def final(self) -> str | None:
        """As reviewed_labels.label: the label judged or given; none when rejected."""
        return None if self.verdict == Verdict.REJECT else self.label


# Bounds that should touch but went through a float's rounding (a Label Studio region, JSON).
SLACK = 1e-6


def covering(verdicts: Iterable[SpanVerdict], start_s: float, end_s: float) -> SpanVerdict | None:
    """The narrowest of the segment verdicts whose bounds hold [start_s, end_s] (a window's own
    verdict before an event's around it); None when none does."""
    around = [v for v in verdicts if v.start_s - SLACK <= start_s and end_s <= v.end_s + SLACK]
    return min(around, key=lambda v: v.end_s - v.start_s, default=None)
