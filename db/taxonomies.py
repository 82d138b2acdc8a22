"""Taxonomies as stored: their body under a content hash, the decision policy last saved for them,
and their labels' text embeddings by a model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import BigInteger, Engine, delete, select

from db import sql
from db.models import Job, JobFile, LabelEmbedding, TaxonomyLabel, TaxonomyMember, TaxonomyRow, now
from soundtag.taxonomy import Taxonomy, taxonomy_from_canonical


def save_taxonomy(engine: Engine, taxonomy: Taxonomy) -> int:
    """The taxonomy's id, recording it when its content hash is new. Its decision policy
    (thresholds, background labels, parents) is not part of the hash: it is rewritten each time,
    so the latest one saved with that hash is the one the decision views apply."""
    with engine.begin() as conn:
        stmt = sql.insert(engine, TaxonomyRow).values(
            name=taxonomy.name, content_hash=taxonomy.content_hash, body=taxonomy.canonical(),
            labels=taxonomy.names, created_at=now()
        ).on_conflict_do_nothing(index_elements=["content_hash"])
        conn.execute(stmt)
        taxonomy_id = conn.execute(
            select(TaxonomyRow.id).where(TaxonomyRow.content_hash == taxonomy.content_hash)).scalar_one()
        policy = taxonomy.policy()
        conn.execute(delete(TaxonomyMember).where(TaxonomyMember.taxonomy_id == taxonomy_id))
        conn.execute(delete(TaxonomyLabel).where(TaxonomyLabel.taxonomy_id == taxonomy_id))
        conn.execute(TaxonomyLabel.__table__.insert(), [
            {"taxonomy_id": taxonomy_id, "label": node.label, "threshold": node.threshold,
             "background": node.background, "parent": node.parent, "is_group": node.group} for node in policy])
        conn.execute(TaxonomyMember.__table__.insert(), [
            {"taxonomy_id": taxonomy_id, "node": node.label, "label": member}
            for node in policy for member in node.members])
        return taxonomy_id


def label_embeddings(engine: Engine, model: str, revision: str, taxonomy_id: int) -> np.ndarray | None:
    """The stored text embeddings of a taxonomy's labels by this model, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(LabelEmbedding.dim, LabelEmbedding.vectors).where(
            LabelEmbedding.model == model, LabelEmbedding.model_revision == revision,
            LabelEmbedding.taxonomy_id == taxonomy_id)).one_or_none()
    return None if row is None else np.frombuffer(row.vectors, dtype=np.float32).reshape(-1, row.dim)


def save_label_embeddings(engine: Engine, model: str, revision: str, taxonomy_id: int, vectors: np.ndarray) -> None:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    with engine.begin() as conn:
        conn.execute(sql.insert(engine, LabelEmbedding).values(
            model=model, model_revision=revision, taxonomy_id=taxonomy_id, dim=vectors.shape[1],
            vectors=vectors.tobytes(), created_at=now()).on_conflict_do_nothing())


def taxonomy_with_policy(engine: Engine, taxonomy_id: int) -> Taxonomy:
    """The stored taxonomy with the decision policy last saved for it (thresholds as stored:
    each label's and group's effective one)."""
    with engine.connect() as conn:
        body = conn.execute(select(TaxonomyRow.body).where(TaxonomyRow.id == taxonomy_id)).scalar_one()
        rows = conn.execute(select(TaxonomyLabel.label, TaxonomyLabel.threshold, TaxonomyLabel.background,
                                   TaxonomyLabel.parent, TaxonomyLabel.is_group)
                            .where(TaxonomyLabel.taxonomy_id == taxonomy_id).order_by(TaxonomyLabel.label)).all()
    policy = {label: {"threshold": threshold, "background": bool(background), "parent": parent}
              for label, threshold, background, parent, _ in rows}
    labels = [{**entry, **{k: v for k, v in policy.get(entry["name"], {}).items()
                           if v is not None and not (k == "threshold" and policy[entry["name"]]["background"])}}
              for entry in body["labels"]]
    groups = [{"name": label, "threshold": threshold} for label, threshold, _, _, is_group in rows
              if is_group and threshold is not None]
    return taxonomy_from_canonical({**body, "labels": labels, "groups": groups})


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


def labels_asked_of(engine: Engine, file_ids: Sequence[int]) -> set[str]:
    """The labels of the taxonomies of every job these files were labeled in."""
    taxonomy_ids: set[int] = set()
    with engine.connect() as conn:
        for chunk in sql.chunks(list(file_ids)):
            taxonomy_ids.update(conn.execute(
                select(Job.taxonomy_id).distinct().join(JobFile, JobFile.job_id == Job.id)
                .where(sql.among(engine, "files", JobFile.file_id, BigInteger(), chunk))).scalars())
        names = conn.execute(select(TaxonomyRow.labels).where(TaxonomyRow.id.in_(taxonomy_ids))).scalars().all()
    return {name for labels in names for name in labels}
