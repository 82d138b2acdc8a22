"""The model's decisions and tags on files, read from the ``file_decisions`` and ``file_tags``
views, so they follow the taxonomy's current thresholds."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlalchemy import Engine, column, select, table

from db import sql
from db.models import File, TaxonomyRow


FILE_DECISIONS = table("file_decisions", column("uri"), column("model"), column("taxonomy_hash"), column("label"),
                        column("score"), column("similarity"), column("implied_by"))


def model_decisions(engine: Engine, model: str, taxonomy_id: int, file_ids: Sequence[int]) -> dict[int, str]:
    """The model's decision on each of these files, as the ``file_decisions`` view makes it under
    the taxonomy's current thresholds; a file that abstains has none. (The ``reviewed_labels``
    view still takes the rank-1 label: it is frozen at its version.)"""
    d = FILE_DECISIONS
    return dict(_view_labels(engine, d, model, taxonomy_id, file_ids, d.c.implied_by.is_(None), d.c.label.is_not(None)))


def _view_labels(engine: Engine, view, model: str, taxonomy_id: int, file_ids: Sequence[int],
                 *conditions) -> Iterator[tuple[int, str]]:
    """(file id, label) of a decision view's rows for these files, model and taxonomy."""
    with engine.connect() as conn:
        for chunk in sql.chunks(list(file_ids)):
            yield from conn.execute(
                select(File.id, view.c.label).join(view, view.c.uri == File.uri)
                .join(TaxonomyRow, TaxonomyRow.content_hash == view.c.taxonomy_hash)
                .where(view.c.model == model, TaxonomyRow.id == taxonomy_id, File.id.in_(chunk), *conditions)).all()


_FILE_TAGS = table("file_tags", column("uri"), column("model"), column("taxonomy_hash"), column("label"))


def model_tags(engine: Engine, model: str, taxonomy_id: int, file_ids: Sequence[int]) -> dict[int, frozenset[str]]:
    """The labels and groups the ``file_tags`` view gives each of these files under the
    taxonomy's current thresholds; a file that nothing tags has none."""
    found: dict[int, set[str]] = {}
    for file_id, label in _view_labels(engine, _FILE_TAGS, model, taxonomy_id, file_ids):
        found.setdefault(file_id, set()).add(label)
    return {file_id: frozenset(labels) for file_id, labels in found.items()}
