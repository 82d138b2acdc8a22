"""decisions: the taxonomy_label policy table and the file_tags, file_decisions, segment_tags
and events views; reviewed_labels takes its decision from file_decisions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa

from db.views import DECISIONS_V1, REVIEWED_LABELS_V1, REVIEWED_LABELS_V2


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    label = op.create_table('taxonomy_label',
    sa.Column('taxonomy_id', Id, nullable=False),
    sa.Column('label', sa.Text(), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=True),
    sa.Column('background', sa.Boolean(), nullable=False),
    sa.Column('parent', sa.Text(), nullable=True),
    sa.Column('is_group', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['taxonomy_id'], ['taxonomy.id'], name=op.f('fk_taxonomy_label_taxonomy_id_taxonomy'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('taxonomy_id', 'label', name=op.f('pk_taxonomy_label'))
    )
    member = op.create_table('taxonomy_member',
    sa.Column('taxonomy_id', Id, nullable=False),
    sa.Column('node', sa.Text(), nullable=False),
    sa.Column('label', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['taxonomy_id'], ['taxonomy.id'], name=op.f('fk_taxonomy_member_taxonomy_id_taxonomy'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('taxonomy_id', 'node', 'label', name=op.f('pk_taxonomy_member'))
    )
    # Taxonomies stored so far had no thresholds: each label decides by rank, as before.
    taxonomy = sa.table('taxonomy', sa.column('id', Id), sa.column('body', sa.JSON()))
    labels, members = [], []
    for taxonomy_id, body in op.get_bind().execute(sa.select(taxonomy.c.id, taxonomy.c.body)).all():
        for entry in body['labels']:
            labels.append({'taxonomy_id': taxonomy_id, 'label': entry['name'], 'threshold': None,
                           'background': False, 'parent': None, 'is_group': False})
            members.append({'taxonomy_id': taxonomy_id, 'node': entry['name'], 'label': entry['name']})
    if labels:
        op.bulk_insert(label, labels)
        op.bulk_insert(member, members)
    for sql in DECISIONS_V1.values():
        op.execute(sql)
    op.execute("DROP VIEW reviewed_labels")
    op.execute(REVIEWED_LABELS_V2)


def downgrade() -> None:
    op.execute("DROP VIEW reviewed_labels")
    op.execute(REVIEWED_LABELS_V1)
    for name in reversed(DECISIONS_V1):
        op.execute(f"DROP VIEW {name}")
    op.drop_table('taxonomy_member')
    op.drop_table('taxonomy_label')
