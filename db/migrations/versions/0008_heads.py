"""heads: the head table (soundtag train), and segment_labels reading a head's window
probabilities where a labeling has no logit scale

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

from db.models import Names
from db.views import DECISIONS_V1, V3, V4


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _segment_labels(views: dict) -> None:
    dialect = op.get_bind().dialect.name
    if dialect == 'sqlite':  # SQLite has no CREATE OR REPLACE VIEW: those reading it go first
        for name in ('events', 'segment_tags', 'segment_labels'):
            op.execute(f"DROP VIEW {name}")
        op.execute(views[dialect])
        for name in ('segment_tags', 'events'):
            op.execute(DECISIONS_V1[name])
    else:
        op.execute(views[dialect])


def upgrade() -> None:
    op.create_table('head',
    sa.Column('id', Id, nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('base_model', sa.Text(), nullable=False),
    sa.Column('base_revision', sa.Text(), nullable=False),
    sa.Column('labels', Names, nullable=False),
    sa.Column('dim', sa.Integer(), nullable=False),
    sa.Column('weights', sa.LargeBinary(), nullable=False),
    sa.Column('bias', sa.LargeBinary(), nullable=False),
    sa.Column('verdicts', sa.JSON(), nullable=False),
    sa.Column('truth_files', sa.JSON(), nullable=False),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_head')),
    sa.UniqueConstraint('name', 'version', name='uq_head_name_version')
    )
    _segment_labels(V4)


def downgrade() -> None:
    _segment_labels(V3)
    op.drop_table('head')
