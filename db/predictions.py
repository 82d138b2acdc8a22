"""What ``evaluate`` and ``calibrate`` read of a job: each file's (and each reviewed window's)
truth (given, or from the verdicts in force), its ranked labels, decision and tags, or its cosines."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from db.decisions import model_decisions, model_tags
from db.jobs import job_labelings, job_spec
from db.models import File, Labeling
from db.results import best
from db.reviews import verdicts
from db.segments import JobWindow, reviewed_windows, window_decision
from soundtag.states import Verdict


@dataclass(frozen=True)
class Prediction:
    uri: str
    truth: str | None
    labels: tuple[str, ...]  # best first; empty when the file has no result
    decision: str | None  # as file_decisions makes it; None when the file abstains or has no result
    tags: frozenset[str]  # as file_tags makes them: the labels and groups that pass their thresholds
    window: bool = False  # a reviewed window of a file (``uri#start-end``), not a whole file


def _reviewed_truth(given: dict[int, tuple[Verdict, str | None]], file_id: int) -> str | None:
    """A file's truth from the verdict in force: its label when accepted or corrected; none when
    rejected or not reviewed."""
    verdict, label = given.get(file_id, (Verdict.REJECT, None))
    return None if verdict == Verdict.REJECT else label


def job_predictions(engine: Engine, job_id: str, k: int = 5, reviewed: bool = False) -> list[Prediction]:
    """Each file of a job with its truth, its first ``k`` labels by the job's model and taxonomy
    (the current result, whichever job made it), and its decision and tags under the taxonomy's
    current thresholds. With ``reviewed`` the truth is the label of the verdict in force (accept
    or correct); a file without one, or rejected, has none; and each window that an accepting or
    correcting segment verdict covers follows as an entry of its own (``uri#start-end``), with its
    labels, decision and tags (db.segments.reviewed_windows). A rejected window is left out: unlike
    a file, it is no unit of the job that lacks a truth."""
    given = verdicts(engine, job_id) if reviewed else {}
    spec = job_spec(engine, job_id)
    names = spec.taxonomy.names
    with engine.connect() as conn:
        rows = conn.execute(job_labelings(job_id, spec, File.id, File.uri, File.truth, Labeling.scores,
                                          every_file=True).order_by(File.uri)).all()
    labeled = [file_id for file_id, _, _, scores in rows if scores is not None]
    decided = model_decisions(engine, spec.model, spec.taxonomy_id, labeled)
    tagged = model_tags(engine, spec.model, spec.taxonomy_id, labeled)
    found: list[Prediction] = []
    for file_id, uri, truth, scores in rows:
        if reviewed:
            truth = _reviewed_truth(given, file_id)
        labels = tuple(names[i] for i in best(scores, k)) if scores is not None else ()
        found.append(Prediction(uri, truth, labels, decided.get(file_id), tagged.get(file_id, frozenset())))
    if reviewed:
        found += [Prediction(_segment_name(w), truth, tuple(s.label for s in w.labels[:k]),
                             window_decision(w.tags, set(names)), frozenset(w.tags), window=True)
                  for w, truth in reviewed_windows(engine, job_id) if truth is not None]
    return found


def _segment_name(window: JobWindow) -> str:
    """A window as evaluate and calibrate count it beside whole files."""
    return f"{window.uri}#{window.start_s:g}-{window.end_s:g}"


def job_cosines(engine: Engine, job_id: str, reviewed: bool = False) -> list[tuple[str, str | None, dict[str, float]]]:
    """Each labeled file of a job with its truth and the cosine of every label, by the job's
    model and taxonomy. With ``reviewed`` the truth is the verdict in force, and reviewed windows
    follow, as in job_predictions."""
    given = verdicts(engine, job_id) if reviewed else {}
    spec = job_spec(engine, job_id)
    names = spec.taxonomy.names
    with engine.connect() as conn:
        rows = conn.execute(job_labelings(job_id, spec, File.id, File.uri, File.truth, Labeling.similarities)
                            .order_by(File.uri)).all()
    found: dict[str, tuple[str | None, dict[str, float]]] = {}
    for file_id, uri, truth, similarities in rows:
        if reviewed:
            truth = _reviewed_truth(given, file_id)
        found[uri] = (truth, dict(zip(names, map(float, similarities))))
    if reviewed:
        found.update((_segment_name(w), (truth, dict(zip(names, w.similarities))))
                     for w, truth in reviewed_windows(engine, job_id))
    return [(uri, truth, cosines) for uri, (truth, cosines) in found.items()]
