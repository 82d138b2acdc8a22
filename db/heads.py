"""Heads in SQL: the ``head`` table, one row per version of a name."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import Engine, Row, func, select
from sqlalchemy.exc import IntegrityError

from db import packing
from db.models import HeadRow, now
from db.schema import safe_url
from soundtag.errors import HeadNotFound


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
