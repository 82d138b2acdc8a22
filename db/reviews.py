"""Review: the files of a job as the review page shows them, and verdicts recorded, undone and
read (the ``review`` table, appended to and stamped, never rewritten)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, and_, select, update

from db.decisions import model_decisions
from db.jobs import JobSpec, job_spec
from db.models import File, JobFile, Labeling, Review, Segment, now
from db.results import best
from soundtag.states import Verdict


@dataclass(frozen=True)
class Scored:
    label: str
    score: float
    similarity: float


@dataclass(frozen=True)
class ReviewItem:
    """A labeled file as the review page shows it."""

    file_id: int
    uri: str
    duration_s: float | None
    decision: str | None
    labels: tuple[Scored, ...]  # best first, at most five

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
        rows = conn.execute(
            select(File.id, File.uri, File.duration_s, Labeling.scores, Labeling.similarities)
            .select_from(JobFile).join(File, File.id == JobFile.file_id)
            .join(Labeling, and_(Labeling.file_id == File.id, Labeling.model == spec.model,
                                 Labeling.taxonomy_id == spec.taxonomy_id))
            .where(JobFile.job_id == job_id).order_by(File.id)).all()
    files = {file_id: (uri, duration, tuple(Scored(names[i], scores[i], similarities[i]) for i in best(scores, 5)))
             for file_id, uri, duration, scores, similarities in rows}
    decided = model_decisions(engine, spec.model, spec.taxonomy_id, list(files))
    items = [ReviewItem(file_id, uri, duration, decided.get(file_id), scored)
             for file_id, (uri, duration, scored) in files.items()]
    return [item for item in items if label is None or item.decision == label]


def file_windows(engine: Engine, job_id: str, file_id: int) -> list[tuple[float, float, Scored]]:
    """Each window of the file with its top label by the job's model and taxonomy, in time order."""
    spec = job_spec(engine, job_id)
    with engine.connect() as conn:
        rows = conn.execute(
            select(Segment.start_s, Segment.end_s, Segment.top_label, Segment.top_score, Segment.top_similarity)
            .join(Labeling, Labeling.id == Segment.labeling_id)
            .where(Labeling.file_id == file_id, Labeling.model == spec.model,
                   Labeling.taxonomy_id == spec.taxonomy_id)
            .order_by(Segment.window)).all()
    return [(start, end, Scored(name, score, similarity)) for start, end, name, score, similarity in rows]


def record_verdict(engine: Engine, job_id: str, file_id: int, verdict: Verdict, reviewer: str,
                   label: str | None = None) -> None:
    """Record a verdict on the job's model decision for the file; it supersedes earlier ones.
    ``label`` is the right label for ``correct`` and ignored otherwise: accept and reject record
    the decision they judged."""
    spec = job_spec(engine, job_id)
    if verdict != Verdict.CORRECT:
        label = model_decisions(engine, spec.model, spec.taxonomy_id, [file_id]).get(file_id)
    record_verdicts(engine, {job_id: [(file_id, verdict, reviewer, label)]})


def record_verdicts(engine: Engine, given: Mapping[str, Sequence[tuple[int, Verdict, str, str | None]]]) -> None:
    """Record verdicts (file id, verdict, reviewer, label) on each job's model decisions, for
    every job in ``given`` in one transaction, each superseding those before it. ``label`` is as
    the ``reviews`` view has it: the decision judged for accept and reject, the reviewer's label
    for correct."""
    specs = {job_id: job_spec(engine, job_id) for job_id, verdicts in given.items() if verdicts}
    if not specs:
        return
    stamp = now()
    with engine.begin() as conn:
        conn.execute(Review.__table__.insert(), [
            {"file_id": file_id, "model": spec.model, "taxonomy_id": spec.taxonomy_id, "job_id": job_id,
             "label": label, "verdict": verdict, "reviewer": reviewer, "reviewed_at": stamp}
            for job_id, spec in specs.items() for file_id, verdict, reviewer, label in given[job_id]])


def in_force(spec: JobSpec):
    later = Review.__table__.alias("later")
    return (Review.model == spec.model, Review.taxonomy_id == spec.taxonomy_id, Review.undone_at.is_(None),
            ~select(later.c.id).where(later.c.file_id == Review.file_id, later.c.model == Review.model,
                                      later.c.taxonomy_id == Review.taxonomy_id, later.c.undone_at.is_(None),
                                      later.c.id > Review.id).exists())


def undo_verdict(engine: Engine, job_id: str, reviewer: str) -> int | None:
    """Undo the reviewer's latest verdict still in force on the job's model and taxonomy (the one
    before it, if any, is in force again). Returns its file id, or None when there is none."""
    spec = job_spec(engine, job_id)
    with engine.begin() as conn:
        latest = conn.execute(select(Review.id, Review.file_id).where(*in_force(spec), Review.reviewer == reviewer)
                              .order_by(Review.id.desc()).limit(1)).one_or_none()
        if latest is None:
            return None
        conn.execute(update(Review).where(Review.id == latest.id).values(undone_at=now()))
    return latest.file_id


def verdicts(engine: Engine, job_id: str) -> dict[int, tuple[Verdict, str | None]]:
    """The verdict in force, and its label, for each file reviewed under the job's model and taxonomy."""
    spec = job_spec(engine, job_id)
    with engine.connect() as conn:
        rows = conn.execute(select(Review.file_id, Review.verdict, Review.label).where(*in_force(spec))).all()
    return {file_id: (Verdict(verdict), label) for file_id, verdict, label in rows}
