"""``soundtag train``: a head fitted on the stored window embeddings of a scope's files and what
the reviews (and/or the truth column) say of them, stored as the next version of its name.
No recording is read and no model is loaded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from sqlalchemy import Engine

from db import embeddings, files, jobs, reviews, taxonomies
from heads.head import Head
from heads.stored import store
from heads.targets import Taught, from_truth, from_verdict, implied, window_targets
from heads.training import MAX_WEAK, WEAK_WEIGHT, Examples, LabelReport, fit
from soundtag.errors import SoundtagError


class Teacher(StrEnum):
    REVIEWS = "reviews"  # the verdicts in force
    TRUTH = "truth"  # the files' truth column
    BOTH = "both"  # the truth, overruled by a verdict where both speak


@dataclass(frozen=True)
class Trained:
    head: Head
    reports: tuple[LabelReport, ...]
    files: int  # in scope with stored embeddings
    taught_files: int  # of which a verdict or truth spoke
    damaged: tuple[str, ...] = ()  # why each file whose stored row is damaged taught nothing, one line each


def _taught(engine: Engine, file_ids: Sequence[int], teacher: Teacher) -> tuple[dict[int, list[Taught]], list[int],
                                                                                list[int], list[str]]:
    """What the verdicts and truth teach per file, the review ids and truth files used, and the labels."""
    given = reviews.given_verdicts(engine, file_ids) if teacher != Teacher.TRUTH else []
    truth = files.truths(engine, file_ids) if teacher != Teacher.REVIEWS else {}
    labels = sorted({v.label for v in given if v.label} | {v.shown for v in given if v.shown} | set(truth.values()))
    taught: dict[int, list[Taught]] = {}
    for file_id, label in truth.items():
        taught.setdefault(file_id, []).extend(from_truth(file_id, label, labels))
    used = []
    for v in given:  # oldest first, after the truth: later verdicts win
        found = implied(from_verdict(v.file_id, v.verdict, v.label, v.shown, v.bounds), labels)
        if found:
            used.append(v.review_id)
            taught.setdefault(v.file_id, []).extend(found)
    return taught, used, sorted(truth), labels


def examples_of(engine: Engine, model: str, revision: str, file_ids: Sequence[int], taught: dict[int, list[Taught]],
                labels: Sequence[str], seed: int = 0) -> tuple[Examples, int, list[str]]:
    """The windows of the scope's files with their targets and zero-shot cosines, how many files
    had embeddings, and why each whose row is damaged was left out. Files nobody spoke of give
    weak negatives only, so a sample of them (about MAX_WEAK) is enough whatever the archive's size."""
    texts = taxonomies.text_vectors(engine, model, revision, labels)
    dim_texts = next(iter(texts.values())).shape[0] if texts else 0
    silent = len([f for f in file_ids if f not in taught])
    keep_silent = min(1.0, MAX_WEAK / silent) if silent else 1.0
    rng = np.random.default_rng(seed)
    vectors, owners, targets, seen, damaged = [], [], [], 0, []
    for chunk in embeddings.embedding_chunks(engine, model, revision, file_ids=file_ids, chunk=2000):
        for found in chunk:
            seen += 1
            if isinstance(found, embeddings.Unreadable):  # a damaged row: the file teaches nothing
                damaged.append(found.reason)
                continue
            if found.file_id not in taught and rng.random() >= keep_silent:
                continue
            vectors.append(found.vectors)
            owners.append(np.full(len(found.starts), found.file_id))
            targets.append(window_targets(found.starts, found.ends, taught.get(found.file_id, ()), labels))
    if not vectors:
        raise SoundtagError(f"no stored embeddings of {model} for these files; label them once with `soundtag run`")
    matrix = np.concatenate(vectors)
    zero_shot = np.full((len(matrix), len(labels)), np.nan)
    for i, label in enumerate(labels):
        if label in texts and dim_texts == matrix.shape[1]:
            zero_shot[:, i] = matrix.astype(np.float64) @ texts[label].astype(np.float64)
    return Examples(matrix, np.concatenate(owners), np.concatenate(targets), zero_shot), seen, damaged


def train(engine: Engine, name: str, model: str, *, job_ids: Sequence[str] = (), sources: Sequence[str] = (),
          teacher: Teacher = Teacher.REVIEWS, weak_weight: float = WEAK_WEIGHT, seed: int = 0) -> Trained:
    """Fit a head on the scope (the given jobs' files, the files under ``sources``, or every
    labeled file) from what ``teacher`` says, on ``model``'s stored embeddings, and store it as
    the next version of ``name``. Raises SoundtagError when nothing teaches any label enough."""
    for job_id in job_ids:
        jobs.job_info(engine, job_id)  # JobNotFound first
    file_ids = files.file_ids(engine, [ref.uri for ref in files.scope_files(engine, job_ids=job_ids, sources=sources)])
    revision = embeddings.embedded_revision(engine, model, file_ids)
    if revision is None:
        raise SoundtagError(f"no stored embeddings of {model} for these files; label them once with `soundtag run`")
    taught, used, truth_files, labels = _taught(engine, file_ids, teacher)
    if not labels:
        raise SoundtagError(f"nothing to learn from: no {'verdicts' if teacher == Teacher.REVIEWS else 'truth'} on "
                            "these files; review some with `soundtag review` or import them with `import-reviews`")
    examples, seen, damaged = examples_of(engine, model, revision, file_ids, taught, labels, seed)
    fitted = fit(examples, labels, weak_weight=weak_weight, seed=seed)
    # The taxonomies' labels nobody spoke of are left out too, and said so, like those spoken of too little.
    teachers = {Teacher.REVIEWS: "verdict", Teacher.TRUTH: "truth"}.get(teacher, "verdict or truth")
    reports = fitted.reports + tuple(LabelReport(label, 0, 0, left_out=f"no {teachers} names it")
                                     for label in sorted(taxonomies.labels_asked_of(engine, file_ids) - set(labels)))
    left_out = {r.label: r.left_out for r in reports if r.left_out}
    if not fitted.labels:
        raise SoundtagError("no label has enough verdicts to learn from: "
                            + "; ".join(f"{label}: {why}" for label, why in left_out.items()))
    metrics = {r.label: {"positives": r.positives, "negatives": r.negatives, "folds": r.folds, "head": r.head,
                         "zero_shot": r.zero_shot} for r in fitted.reports if not r.left_out}
    head = store(engine, Head(name, 0, model, revision, fitted.labels, fitted.weights, fitted.bias,
                                        metrics, left_out),
                           verdicts=used, truth_files=truth_files,
                           options={"jobs": list(job_ids), "sources": list(sources), "from": str(teacher),
                                    "weak_weight": weak_weight, "seed": seed})
    return Trained(head, reports, seen, len([f for f in file_ids if f in taught]), tuple(damaged))
