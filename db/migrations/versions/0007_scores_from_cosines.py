"""scores from cosines: a window keeps its cosines only, and its labeling the model's logit scale;
segment_labels computes the window scores (their softmax) instead of reading them

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""
from alembic import op
import numpy as np
import sqlalchemy as sa

from db.models import Reals
from db.views import DECISIONS_V1, V3


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
CHUNK = 2000  # labelings converted at a time: memory stays bounded whatever the archive's size
# Scores below this lost digits in float4 (or underflowed): a ratio against one of them says
# little about the scale.
TINY = 1e-30

labeling = sa.table('labeling', sa.column('id', Id), sa.column('logit_scale', sa.Float()))
segment = sa.table('segment', sa.column('labeling_id', Id), sa.column('window', sa.Integer()),
                   sa.column('scores', Reals), sa.column('similarities', Reals))
WINDOWS = 8  # of each labeling, to find the scale from: one with any spread of cosines is enough


def _scale(scores: np.ndarray, cosines: np.ndarray) -> float:
    """The logit scale under one labeling's windows (rows), from the window and label farthest
    in cosine from its best: there ln(score_best / score_k) = scale · (cosine_best − cosine_k),
    and float4's rounding matters least. Windows whose cosines are all equal take any scale."""
    best = cosines.argmax(axis=1)[:, None]
    spread = np.take_along_axis(cosines, best, axis=1) - cosines
    spread[scores < TINY] = 0.0
    window, k = np.unravel_index(np.argmax(spread), spread.shape)
    if spread[window, k] <= 0.0:
        return 1.0
    return float(np.log(scores[window, best[window, 0]] / scores[window, k]) / spread[window, k])


def _fill_scales(conn) -> None:
    after = -1
    while True:
        ids = conn.execute(sa.select(labeling.c.id).where(labeling.c.id > after).order_by(labeling.c.id)
                           .limit(CHUNK)).scalars().all()
        if not ids:
            return
        windows = {}
        rows = conn.execute(sa.select(segment.c.labeling_id, segment.c.scores, segment.c.similarities)
                            .where(segment.c.labeling_id.in_(ids), segment.c.window < WINDOWS))
        for lid, scores, cosines in rows:
            windows.setdefault(lid, ([], []))
            windows[lid][0].append(scores)
            windows[lid][1].append(cosines)
        values = [{'lid': lid, 'scale': _scale(np.array(scores, dtype=np.float64), np.array(cosines, dtype=np.float64))}
                  for lid, (scores, cosines) in windows.items()]
        if values:
            conn.execute(labeling.update().where(labeling.c.id == sa.bindparam('lid'))
                         .values(logit_scale=sa.bindparam('scale')), values)
        after = ids[-1]


def upgrade() -> None:
    conn = op.get_bind()
    dialect = conn.dialect.name
    with op.batch_alter_table('labeling') as batch:
        batch.add_column(sa.Column('logit_scale', sa.Float(), nullable=True))
    _fill_scales(conn)
    if dialect == 'sqlite':
        # SQLite checks every view when a column goes: those reading segment_labels go first.
        for name in ('events', 'segment_tags', 'segment_labels'):
            op.execute(f"DROP VIEW {name}")
        op.execute("ALTER TABLE segment DROP COLUMN scores")
        op.execute(V3[dialect])
        for name in ('segment_tags', 'events'):
            op.execute(DECISIONS_V1[name])
    else:
        # Same columns and types: the views on segment_labels stay. The dropped column's bytes
        # stay in the table's pages until they are rewritten (VACUUM FULL segment).
        op.execute(V3[dialect])
        op.execute("ALTER TABLE segment DROP COLUMN scores")


def downgrade() -> None:
    raise NotImplementedError("0007 is not reversible: the window scores it dropped are computed, not stored")
