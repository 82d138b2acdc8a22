"""compact scores: one row per window (segment) and the file's scores on its labeling, as arrays
in label order; the label_score and segment_score tables go, the views stay as they were

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa

from db.models import Doubles, Names, Reals
from db.views import V2


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
Real = sa.Float().with_variant(sa.dialects.postgresql.REAL(), 'postgresql')
CHUNK = 2000  # labelings converted at a time: memory stays bounded whatever the archive's size

taxonomy = sa.table('taxonomy', sa.column('id', Id), sa.column('body', sa.JSON()), sa.column('labels', Names))
labeling = sa.table('labeling', sa.column('id', Id), sa.column('taxonomy_id', Id), sa.column('top_label', sa.Text()),
                    sa.column('top_score', sa.Float()), sa.column('top_similarity', sa.Float()),
                    sa.column('scores', Doubles), sa.column('similarities', Doubles))
segment = sa.table('segment', sa.column('labeling_id', Id), sa.column('window', sa.Integer()),
                   sa.column('start_s', sa.Float()), sa.column('end_s', sa.Float()), sa.column('top_label', sa.Text()),
                   sa.column('top_score', Real), sa.column('top_similarity', Real), sa.column('scores', Reals),
                   sa.column('similarities', Reals))
label_score = sa.table('label_score', *(sa.column(c) for c in ('labeling_id', 'label', 'score', 'similarity', 'rank')))
segment_score = sa.table('segment_score', *(sa.column(c) for c in (
    'labeling_id', 'window', 'label', 'start_s', 'end_s', 'score', 'similarity', 'rank')))


def _arrays(rows, names):
    """Scores and cosines in label order, and the rank-1 row, from one labeling's (or window's) rows."""
    position = {name: i for i, name in enumerate(names)}
    scores, similarities = [0.0] * len(names), [0.0] * len(names)
    top = None
    for row in rows:
        scores[position[row.label]], similarities[position[row.label]] = row.score, row.similarity
        if row.rank == 1:
            top = row
    return scores, similarities, top


def _convert(conn) -> None:
    names = {}
    for tid, body in conn.execute(sa.select(taxonomy.c.id, taxonomy.c.body)).all():
        names[tid] = [label['name'] for label in body['labels']]
        conn.execute(taxonomy.update().where(taxonomy.c.id == tid).values(labels=names[tid]))
    after = -1
    while True:
        chunk = conn.execute(sa.select(labeling.c.id, labeling.c.taxonomy_id).where(labeling.c.id > after)
                             .order_by(labeling.c.id).limit(CHUNK)).all()
        if not chunk:
            return
        ids = [lid for lid, _ in chunk]
        files, windows = {}, {}
        for row in conn.execute(sa.select(label_score).where(label_score.c.labeling_id.in_(ids))):
            files.setdefault(row.labeling_id, []).append(row)
        for row in conn.execute(sa.select(segment_score).where(segment_score.c.labeling_id.in_(ids))):
            windows.setdefault((row.labeling_id, row.window), []).append(row)
        of = dict(chunk)
        for lid, rows in files.items():
            scores, similarities, top = _arrays(rows, names[of[lid]])
            conn.execute(labeling.update().where(labeling.c.id == lid).values(
                top_label=top.label, top_score=top.score, top_similarity=top.similarity, scores=scores,
                similarities=similarities))
        values = []
        for (lid, window), rows in windows.items():
            scores, similarities, top = _arrays(rows, names[of[lid]])
            values.append({'labeling_id': lid, 'window': window, 'start_s': top.start_s, 'end_s': top.end_s,
                           'top_label': top.label, 'top_score': top.score, 'top_similarity': top.similarity,
                           'scores': scores, 'similarities': similarities})
        if values:
            conn.execute(segment.insert(), values)
        after = ids[-1]


def upgrade() -> None:
    conn = op.get_bind()
    dialect = conn.dialect.name
    with op.batch_alter_table('taxonomy') as batch:
        batch.add_column(sa.Column('labels', Names, nullable=True))
    with op.batch_alter_table('labeling') as batch:
        for column in (sa.Column('top_label', sa.Text(), nullable=True),
                       sa.Column('top_score', sa.Float(), nullable=True),
                       sa.Column('top_similarity', sa.Float(), nullable=True),
                       sa.Column('scores', Doubles, nullable=True),
                       sa.Column('similarities', Doubles, nullable=True)):
            batch.add_column(column)
    op.create_table('segment',
    sa.Column('labeling_id', Id, nullable=False),
    sa.Column('window', sa.Integer(), nullable=False),
    sa.Column('start_s', sa.Float(), nullable=False),
    sa.Column('end_s', sa.Float(), nullable=False),
    sa.Column('top_label', sa.Text(), nullable=False),
    sa.Column('top_score', Real, nullable=False),
    sa.Column('top_similarity', Real, nullable=False),
    sa.Column('scores', Reals, nullable=False),
    sa.Column('similarities', Reals, nullable=False),
    sa.ForeignKeyConstraint(['labeling_id'], ['labeling.id'], name=op.f('fk_segment_labeling_id_labeling'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('labeling_id', 'window', name=op.f('pk_segment'))
    )
    _convert(conn)
    op.create_index('ix_segment_top_label', 'segment', ['top_label'])
    op.create_index('ix_labeling_top_label', 'labeling', ['top_label'])
    if dialect == 'sqlite':
        for name in V2[dialect]:
            op.execute(f"DROP VIEW {name}")
    # PostgreSQL: CREATE OR REPLACE, same columns and types, so views defined on these survive.
    for sql in V2[dialect].values():
        op.execute(sql)
    op.drop_table('segment_score')
    op.drop_index('ix_label_score_label_rank', table_name='label_score')
    op.drop_table('label_score')
    if dialect == 'postgresql':
        # Lets a `rank = 1` query skip the views' unnesting branch (db/views.py). Only the
        # database's owner may set it: without it the views answer the same, more slowly.
        op.execute("""DO $$ BEGIN
            EXECUTE format('ALTER DATABASE %I SET constraint_exclusion = on', current_database());
            EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'constraint_exclusion not set: rank = 1 queries of the views scan every row';
            END $$""")


def downgrade() -> None:
    raise NotImplementedError("0006 is not reversible: the per-label tables it replaced are gone")
