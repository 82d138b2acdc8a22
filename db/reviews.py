"""Review: the files of a job as the review page shows them, and verdicts on files and on
segments of them recorded, undone and read (the ``review`` table, appended to and stamped, never
rewritten), by the page and exports and, across every job, by training."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import NamedTuple

from sqlalchemy import (
    BigInteger,
    Boolean,
    Engine,
    Float,
    Integer,
    String,
    and_,
    case,
    column,
    func,
    or_,
    select,
    table,
    update,
)

from db import sql
from db.decisions import model_decisions
from db.jobs import JobSpec, job_labelings, job_spec
from db.models import File, Labeling, Review, TaxonomyRow, now
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
    decision = model_decisions(engine, spec.model, spec.taxonomy_id, [file_id]).get(file_id)
    record_verdicts(engine, {job_id: [Given(file_id, verdict, reviewer, label if verdict == Verdict.CORRECT
                                            else decision, shown=decision)]})


class Given(NamedTuple):
    """One verdict to record. ``label`` is as the ``reviews`` view has it: the decision judged for
    accept and reject, the reviewer's label for correct. A segment's verdict has its bounds.
    ``shown`` is the decision a correct replaced, as the person saw it (a segment's own);
    ``adjudicated``, given in `--order adjudicate`: it settles the item whatever the votes."""

    file_id: int
    verdict: Verdict
    reviewer: str
    label: str | None
    start_s: float | None = None
    end_s: float | None = None
    shown: str | None = None
    adjudicated: bool = False

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
             "start_s": one.start_s, "end_s": one.end_s, "adjudicated": one.adjudicated,
             "shown": one.shown if one.verdict == Verdict.CORRECT else one.label}
            for job_id, spec in specs.items() for one in map(lambda row: Given(*row), given[job_id])])


# The consensus view (db/views.py): one settled verdict per labeling and item, where a team judged.
CONSENSUS = table("consensus", column("uri", String), column("run_id", String), column("model", String),
                  column("taxonomy_hash", String), column("start_s", Float), column("end_s", Float),
                  column("verdict", String), column("label", String), column("reviewer", String),
                  column("votes", Integer), column("agreed", Boolean), column("adjudicated", Boolean),
                  column("review_id", BigInteger))


def in_force(spec: JobSpec):
    """The conditions on ``Review`` that select the verdicts in force in a job of ``spec``: on each
    file and bounds, the one the ``consensus`` view settles on (one person's latest that was not
    undone, where one judged; an adjudicator's, else the majority's, where several did)."""
    return (Review.id.in_(select(CONSENSUS.c.review_id).where(
        CONSENSUS.c.model == spec.model, CONSENSUS.c.taxonomy_hash == _taxonomy_hash(spec),
        CONSENSUS.c.review_id.is_not(None))),)


def _taxonomy_hash(spec: JobSpec):
    """The job's taxonomy's content hash, as the consensus view names a taxonomy (a subquery)."""
    return select(TaxonomyRow.content_hash).where(TaxonomyRow.id == spec.taxonomy_id).scalar_subquery()


@dataclass(frozen=True)
class Settled:
    """An item's consensus: the settled verdict and its final label (None and None while the
    voters are split), how many voted, whether they all agreed, whether an adjudicator settled it,
    and who gave the verdict in force (the adjudicator, where one settled it)."""

    verdict: Verdict | None
    label: str | None
    votes: int
    agreed: bool
    adjudicated: bool
    reviewer: str | None = None


def consensus(engine: Engine, job_id: str) -> dict[tuple[int, float | None, float | None], Settled]:
    """The consensus on each item of the job that someone judged, by (file id, start_s, end_s)."""
    spec = job_spec(engine, job_id)
    c = CONSENSUS
    with engine.connect() as conn:
        rows = conn.execute(job_labelings(job_id, spec, File.id, c.c.start_s, c.c.end_s, c.c.verdict, c.c.label,
                                          c.c.votes, c.c.agreed, c.c.adjudicated, c.c.reviewer)
                            .join(c, and_(c.c.uri == File.uri, c.c.model == spec.model,
                                          c.c.taxonomy_hash == _taxonomy_hash(spec)))).all()
    return {(file_id, start, end): Settled(Verdict(verdict) if verdict else None, label, votes, bool(agreed),
                                           bool(adjudicated), reviewer)
            for file_id, start, end, verdict, label, votes, agreed, adjudicated, reviewer in rows}


def _speaks(spec: JobSpec, review):
    """A verdict speaks in every job over its file: one given under the job's model and taxonomy,
    and one given under another that says what the recording is (accept, correct) with a label the
    job's taxonomy has. A person's verdict is a fact about the recording, not about one labeling;
    a reject says only that another model's decision was wrong, so it stays with that model."""
    return or_(and_(review.model == spec.model, review.taxonomy_id == spec.taxonomy_id),
               and_(review.verdict.in_([Verdict.ACCEPT, Verdict.CORRECT]), review.label.in_(spec.taxonomy.names)))


def undo_verdict(engine: Engine, job_id: str, reviewer: str) -> tuple[int, float | None, float | None] | None:
    """Undo the reviewer's latest verdict given under the job's model and taxonomy and not undone
    yet (their vote before it on the same file and bounds, if any, counts again; whether either is
    in force is the consensus's to say). Returns its (file id, start_s, end_s), or None when there
    is none."""
    spec = job_spec(engine, job_id)
    with engine.begin() as conn:
        latest = conn.execute(select(Review.id, Review.file_id, Review.start_s, Review.end_s)
                              .where(Review.undone_at.is_(None), Review.reviewer == reviewer,
                                     Review.model == spec.model, Review.taxonomy_id == spec.taxonomy_id)
                              .order_by(Review.id.desc()).limit(1)).one_or_none()
        if latest is None:
            return None
        conn.execute(update(Review).where(Review.id == latest.id).values(undone_at=now()))
    return latest.file_id, latest.start_s, latest.end_s


def verdicts(engine: Engine, job_id: str) -> dict[int, tuple[Verdict, str | None]]:
    """The verdict in force in the job, and its label, for each file reviewed as a whole."""
    return {file_id: given for (file_id, start, _), given in all_verdicts(engine, job_id).items() if start is None}


def all_verdicts(engine: Engine, job_id: str) -> dict[tuple[int, float | None, float | None], tuple[Verdict, str | None]]:
    """The verdict in force in the job (``in_force``), and its label, for each file and segment
    reviewed, by (file id, start_s, end_s): the bounds are None for a file's verdict."""
    spec = job_spec(engine, job_id)
    with engine.connect() as conn:
        rows = conn.execute(select(Review.file_id, Review.start_s, Review.end_s, Review.verdict, Review.label)
                            .where(*in_force(spec))).all()
    return {(file_id, start, end): (Verdict(verdict), label) for file_id, start, end, verdict, label in rows}


def reviewer_votes(engine: Engine, job_id: str) -> dict[tuple[int, float | None, float | None], dict[str, str | None]]:
    """Each reviewer's vote on each file and segment of the job they judged, by (file id, start_s,
    end_s): the final label of their latest verdict there that speaks in the job (``_speaks``) and
    was not undone (accept, correct: its label; reject: None). What agreement compares."""
    spec = job_spec(engine, job_id)
    with engine.connect() as conn:
        rows = conn.execute(select(Review.file_id, Review.start_s, Review.end_s, Review.reviewer, Review.verdict,
                                   Review.label).where(_speaks(spec, Review), Review.undone_at.is_(None))
                            .order_by(Review.id)).all()
    votes: dict[tuple[int, float | None, float | None], dict[str, str | None]] = {}
    for file_id, start, end, reviewer, verdict, label in rows:  # oldest first: each person's latest stays
        votes.setdefault((file_id, start, end), {})[reviewer] = None if verdict == Verdict.REJECT else label
    return votes


def verdict_counts(engine: Engine, job_id: str, since: datetime) -> dict[str, tuple[int, int]]:
    """How many verdicts each reviewer gave under the job's model and taxonomy and did not undo:
    (those given at ``since`` or later, all of them), by name."""
    spec = job_spec(engine, job_id)
    since = since.astimezone(timezone.utc)  # as the stamps are (SQLite compares their UTC text)
    with engine.connect() as conn:
        rows = conn.execute(select(Review.reviewer, func.count(), func.sum(case((Review.reviewed_at >= since, 1),
                                                                                else_=0)))
                            .where(Review.model == spec.model, Review.taxonomy_id == spec.taxonomy_id,
                                   Review.undone_at.is_(None))
                            .group_by(Review.reviewer)).all()
    return {reviewer: (int(recent or 0), total) for reviewer, total, recent in rows}


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


@dataclass(frozen=True)
class GivenVerdict:
    """A verdict in force, as training reads it: ``shown`` is the decision a correct replaced, as
    the person saw it (None when not known), ``bounds`` a segment verdict's (None: the whole file)."""

    review_id: int
    file_id: int
    verdict: Verdict
    label: str | None
    shown: str | None
    bounds: tuple[float, float] | None


def given_verdicts(engine: Engine, file_ids: Sequence[int]) -> list[GivenVerdict]:
    """Every verdict in force on these files, under each model and taxonomy they were given in (a
    head's own labelings included): the one the consensus settles on each file and bounds there, a
    file's and each segment's apart; oldest first, so later ones win where two speak of one label."""
    settled, taxonomy = Review.__table__.alias("settled"), TaxonomyRow.__table__.alias("taxonomy")
    c = CONSENSUS
    rows = []
    with engine.connect() as conn:
        # Few (one per judged item): read once, not once per chunk of files.
        at_home = set(conn.execute(select(c.c.review_id).join(settled, settled.c.id == c.c.review_id)
                                   .join(taxonomy, taxonomy.c.id == settled.c.taxonomy_id)
                                   .where(c.c.model == settled.c.model,
                                          c.c.taxonomy_hash == taxonomy.c.content_hash)).scalars())
        for chunk in sql.chunks(list(file_ids)):
            rows += conn.execute(
                select(Review.id, Review.file_id, Review.verdict, Review.label, Review.shown, Review.start_s,
                       Review.end_s)
                .where(sql.among(engine, "files", Review.file_id, BigInteger(), chunk),
                       Review.undone_at.is_(None))).all()
    rows = sorted((row for row in rows if row.id in at_home), key=lambda row: row.id)
    return [GivenVerdict(row.id, row.file_id, Verdict(row.verdict), row.label,
                         row.shown if row.verdict == Verdict.CORRECT else None,
                         (row.start_s, row.end_s) if row.start_s is not None else None) for row in rows]
