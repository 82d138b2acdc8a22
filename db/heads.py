"""Heads in SQL (the ``head`` table, one row per version of a name) and what training one reads:
the verdicts in force on a scope's files, their truth, and the base model's text embeddings of
the labels for the zero-shot comparison."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import BigInteger, Engine, Row, Text, func, inspect, literal_column, select
from sqlalchemy.exc import IntegrityError

from db import packing
from db.decisions import model_decisions
from db.models import File, HeadRow, LabelEmbedding, Review, TaxonomyRow, now
from db.schema import safe_url
from db.sql import among, chunks
from soundtag.errors import HeadNotFound
from soundtag.states import Verdict


def save_head(engine: Engine, head, *, verdicts: Sequence[int], truth_files: Sequence[int],
              options: dict) -> tuple[int, int]:
    """Store ``head`` (a ``heads.head.Head``) as the next version of its name (its own
    ``version`` is ignored); returns the version and row id it got. Two trainings of one name at
    once get consecutive versions."""
    for _ in range(5):
        with engine.begin() as conn:
            version = (conn.execute(select(func.max(HeadRow.version)).where(HeadRow.name == head.name))
                       .scalar() or 0) + 1
            try:
                row_id = conn.execute(HeadRow.__table__.insert().returning(HeadRow.id), [{
                    "name": head.name, "version": version, "base_model": head.base_model,
                    "base_revision": head.base_revision, "labels": list(head.labels),
                    "dim": int(head.weights.shape[1]), "weights": packing.pack(head.weights.astype(np.float32)),
                    "bias": packing.pack(head.bias.astype(np.float32)), "verdicts": sorted(verdicts),
                    "truth_files": sorted(truth_files), "options": options,
                    "metrics": {"labels": head.metrics, "left_out": head.left_out}, "created_at": now()}]).scalar_one()
            except IntegrityError:
                continue
        return version, row_id
    raise HeadNotFound(f"head {head.name}: could not take a new version (too many trainings at once); try again")


def head_row(engine: Engine, name: str, version: int | None = None) -> Row:
    """The ``head`` row of ``name`` at ``version`` (None: the newest). Raises HeadNotFound."""
    query = select(*HeadRow.__table__.c).where(HeadRow.name == name)
    query = query.where(HeadRow.version == version) if version else query.order_by(HeadRow.version.desc()).limit(1)
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        at = f"@v{version}" if version else ""
        raise HeadNotFound(f"head {name}{at}: not found in {safe_url(engine)}; train it with `soundtag train {name}`")
    return row


def head_versions(engine: Engine, name: str) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(select(HeadRow.version).where(HeadRow.name == name)
                                 .order_by(HeadRow.version)).scalars())


@dataclass(frozen=True)
class GivenVerdict:
    """A verdict in force, as training reads it: ``shown`` is the decision a correct replaced
    (the decision file_decisions makes now: the review row keeps only the reviewer's label),
    ``bounds`` a segment verdict's (None: the whole file)."""

    review_id: int
    file_id: int
    verdict: Verdict
    label: str | None
    shown: str | None
    bounds: tuple[float, float] | None


def given_verdicts(engine: Engine, file_ids: Sequence[int]) -> list[GivenVerdict]:
    """The verdicts in force on these files under every model and taxonomy (a head's own
    labelings included), oldest first, so later ones win where two speak of one label."""
    later = Review.__table__.alias("later")
    superseded = select(later.c.id).where(later.c.file_id == Review.file_id, later.c.model == Review.model,
                                          later.c.taxonomy_id == Review.taxonomy_id, later.c.undone_at.is_(None),
                                          later.c.id > Review.id).exists()
    # Segment verdicts (a reviewed window or event) carry their bounds where the schema has them.
    segmented = {"start_s", "end_s"} <= {c["name"] for c in inspect(engine).get_columns("review")}
    bounds = (literal_column("review.start_s"), literal_column("review.end_s")) if segmented else ()
    rows = []
    with engine.connect() as conn:
        for chunk in chunks(list(file_ids)):
            rows += conn.execute(
                select(Review.id, Review.file_id, Review.verdict, Review.label, Review.model, Review.taxonomy_id,
                       *bounds)
                .where(among(engine, "files", Review.file_id, BigInteger(), chunk), Review.undone_at.is_(None),
                       ~superseded)).all()
    rows.sort(key=lambda row: row[0])
    shown: dict[tuple[str, int], dict[int, str]] = {}
    for key in {(row.model, row.taxonomy_id) for row in rows if row.verdict == Verdict.CORRECT}:
        shown[key] = model_decisions(engine, key[0], key[1], [row.file_id for row in rows
                                                              if (row.model, row.taxonomy_id) == key])
    return [GivenVerdict(row[0], row[1], Verdict(row[2]), row[3],
                         shown.get((row[4], row[5]), {}).get(row[1]) if row[2] == Verdict.CORRECT else None,
                         (row[6], row[7]) if segmented and row[6] is not None else None) for row in rows]


def file_ids(engine: Engine, uris: Sequence[str]) -> list[int]:
    """The ids of these files, in id order."""
    found: list[int] = []
    with engine.connect() as conn:
        for chunk in chunks(list(uris)):
            found += conn.execute(select(File.id).where(among(engine, "uris", File.uri, Text(), chunk))).scalars()
    return sorted(found)


def truths(engine: Engine, file_ids: Sequence[int]) -> dict[int, str]:
    """The truth column of those of these files that have one."""
    found: dict[int, str] = {}
    with engine.connect() as conn:
        for chunk in chunks(list(file_ids)):
            found.update(conn.execute(select(File.id, File.truth).where(
                among(engine, "files", File.id, BigInteger(), chunk), File.truth.is_not(None))).all())
    return found


def text_vectors(engine: Engine, model: str, revision: str, labels: Sequence[str]) -> dict[str, np.ndarray]:
    """The base model's stored text embedding of each of ``labels`` it embedded for some taxonomy
    (the newest taxonomy's where several did): what its zero-shot cosines were taken against."""
    wanted = set(labels)
    found: dict[str, np.ndarray] = {}
    with engine.connect() as conn:
        rows = conn.execute(select(LabelEmbedding.dim, LabelEmbedding.vectors, TaxonomyRow.labels)
                            .join(TaxonomyRow, TaxonomyRow.id == LabelEmbedding.taxonomy_id)
                            .where(LabelEmbedding.model == model, LabelEmbedding.model_revision == revision)
                            .order_by(TaxonomyRow.id)).all()
    for dim, vectors, names in rows:
        matrix = np.frombuffer(vectors, dtype=np.float32).reshape(-1, dim)
        found.update({name: matrix[i] for i, name in enumerate(names) if name in wanted})
    return found
