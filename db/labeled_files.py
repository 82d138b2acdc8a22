"""A job's labeled files as exports write them, streamed in URI order beside the views:
rank-1 label, decision, verdict in force and, when asked, windows, events and segment verdicts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, column, select, table

from db.decisions import FILE_DECISIONS
from db.jobs import job_labelings, job_spec
from db.models import File, Labeling, LabelingWindow, Review, TaxonomyRow
from db.reviews import Scored, SpanVerdict, covering, in_force
from soundtag.states import Verdict


@dataclass(frozen=True)
class LabeledWindow:
    """One window of a file with its rank-1 label."""

    start_s: float
    end_s: float
    label: str
    score: float
    similarity: float


@dataclass(frozen=True)
class Event:
    """A row of the ``events`` view: tagged windows of one label merged."""

    label: str
    start_s: float
    end_s: float
    similarity: float  # the best window's


@dataclass(frozen=True)
class LabeledFile:
    """A file of a job as exports write it: the model's rank-1 label and decision
    (``file_decisions``), the verdict in force and its final label (as ``reviewed_labels`` has
    them) and, when asked, its windows and events."""

    file_id: int
    uri: str
    duration_s: float | None
    sample_rate: int | None
    top: Scored
    scores: tuple[float, ...]  # in the taxonomy's label order
    decision: Scored | None  # None when the model abstains
    final: str | None  # as reviewed_labels.label: the verdict in force's, else the decision
    source: str  # as reviewed_labels.source: human or model
    verdict: Verdict | None
    reviewer: str | None
    windows: tuple[LabeledWindow, ...] = ()
    events: tuple[Event, ...] = ()
    segment_verdicts: tuple[SpanVerdict, ...] = ()  # in force, with the windows and events

    def label(self, reviewed: bool = False) -> str | None:
        """The file's label: the final one with ``reviewed``, else the model's decision."""
        if reviewed:
            return self.final
        return self.decision.label if self.decision else None

    def segment_label(self, start_s: float, end_s: float, label: str, reviewed: bool = False) -> str | None:
        """The label of a window or event of the file: with ``reviewed``, that of the segment
        verdict in force covering it (none when rejected), else ``label``."""
        found = covering(self.segment_verdicts, start_s, end_s) if reviewed else None
        if found is None:
            return label
        return None if found.verdict == Verdict.REJECT else found.label


_EVENTS = table("events", column("uri"), column("model"), column("taxonomy_hash"), column("label"), column("start_s"),
                column("end_s"), column("max_similarity"))


class _Following:
    """Rows that begin with a URI, in URI order (byte order), taken file by file in that order:
    one side of a merge join."""

    def __init__(self, rows) -> None:
        self._rows = iter(rows)
        self._next = next(self._rows, None)

    def take(self, uri: str) -> list[tuple]:
        found = []
        while self._next is not None and self._next[0] <= uri:
            if self._next[0] == uri:
                found.append(tuple(self._next[1:]))
            self._next = next(self._rows, None)
        return found


def labeled_files(engine: Engine, job_id: str, *, regions: bool = False,
                  chunk: int = 1000) -> Iterable[list[LabeledFile]]:
    """The job's files that have a result by its model and taxonomy, ``chunk`` at a time in URI
    order; with ``regions``, each with its windows, events and segment verdicts. Each view is read
    once, on its own, streamed in URI order beside the files: a view filtered by a chunk's URIs, or joined
    with the job's files, costs as much as the whole view on every chunk or row. The verdicts come
    from the review table, as reviewed_labels takes them: that view joins file_decisions, which
    PostgreSQL plans as nested loops (20 s for 20,000 files, growing with their square)."""
    spec = job_spec(engine, job_id)
    with engine.connect() as conn:
        taxonomy_hash = conn.execute(select(TaxonomyRow.content_hash)
                                     .where(TaxonomyRow.id == spec.taxonomy_id)).scalar_one()
    # Byte order on both sides, as Python compares the URIs; PostgreSQL's default may be a locale's.
    by_uri = (lambda col: col.collate("C")) if engine.dialect.name == "postgresql" else (lambda col: col)

    def view(v, *columns):
        # The taxonomy is kept in Python: filtering the views on taxonomy_hash leads PostgreSQL's
        # planner into nested loops over file_decisions (minutes for 10,000 files, not a second).
        return select(v.c.uri, v.c.taxonomy_hash, *columns).where(v.c.model == spec.model).order_by(by_uri(v.c.uri))

    def mine(rows: list[tuple]) -> list[tuple]:
        return [rest for found_hash, *rest in rows if found_hash == taxonomy_hash]

    d, e = FILE_DECISIONS, _EVENTS
    with engine.connect() as conn:
        conn = conn.execution_options(yield_per=chunk)
        files = conn.execute(
            job_labelings(job_id, spec, File.uri, File.id, File.duration_s, File.sample_rate, Labeling.top_label,
                          Labeling.top_score, Labeling.top_similarity, Labeling.scores).order_by(by_uri(File.uri)))
        given = _Following(conn.execute(select(File.uri, Review.verdict, Review.label, Review.reviewer)
                                        .join(File, File.id == Review.file_id)
                                        .where(*in_force(spec), Review.start_s.is_(None))
                                        .order_by(by_uri(File.uri))))
        decided = _Following(conn.execute(view(d, d.c.label, d.c.score, d.c.similarity)
                                          .where(d.c.label.is_not(None))))
        windows = events = judged = _Following(())
        if regions:
            judged = _Following(conn.execute(
                select(File.uri, Review.start_s, Review.end_s, Review.verdict, Review.label)
                .join(File, File.id == Review.file_id).where(*in_force(spec), Review.start_s.is_not(None))
                .order_by(by_uri(File.uri), Review.start_s)))
            windows = _Following(conn.execute(
                job_labelings(job_id, spec, File.uri, LabelingWindow.start_s, LabelingWindow.end_s,
                              LabelingWindow.top_label, LabelingWindow.top_score, LabelingWindow.top_similarity)
                .join(LabelingWindow, LabelingWindow.labeling_id == Labeling.id)
                .order_by(by_uri(File.uri), LabelingWindow.window)))
            events = _Following(conn.execute(view(e, e.c.label, e.c.start_s, e.c.end_s, e.c.max_similarity)
                                             .order_by(e.c.start_s, e.c.end_s, e.c.label)))
        found: list[LabeledFile] = []
        for row in files:
            decision = next((Scored(*scored) for scored in mine(decided.take(row.uri))), None)
            verdict, label, reviewer = next(iter(given.take(row.uri)), (None, None, None))
            if verdict is None:
                label, source = decision.label if decision else None, "model"
            else:
                verdict, source = Verdict(verdict), "human"
                label = None if verdict == Verdict.REJECT else label
            found.append(LabeledFile(
                row.id, row.uri, row.duration_s, row.sample_rate,
                Scored(row.top_label, row.top_score, row.top_similarity), tuple(row.scores), decision, label,
                source, verdict, reviewer, tuple(LabeledWindow(*w) for w in windows.take(row.uri)),
                tuple(Event(*ev) for ev in mine(events.take(row.uri))),
                tuple(SpanVerdict(start, end, Verdict(verdict), label)
                      for start, end, verdict, label in judged.take(row.uri))))
            if len(found) == chunk:
                yield found
                found = []
        if found:
            yield found
