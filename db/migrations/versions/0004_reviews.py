"""reviews: the review table, the reviews and reviewed_labels views

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa

from db.views import REVIEWED_LABELS_V1, REVIEWS_V1


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('review',
    sa.Column('id', Id, nullable=False),
    sa.Column('file_id', Id, nullable=False),
    sa.Column('model', sa.Text(), nullable=False),
    sa.Column('taxonomy_id', Id, nullable=False),
    sa.Column('job_id', sa.String(length=32), nullable=True),
    sa.Column('label', sa.Text(), nullable=True),
    sa.Column('verdict', sa.String(length=16), nullable=False),
    sa.Column('reviewer', sa.Text(), nullable=False),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('undone_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['file_id'], ['file.id'], name=op.f('fk_review_file_id_file'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['job_id'], ['job.id'], name=op.f('fk_review_job_id_job'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['taxonomy_id'], ['taxonomy.id'], name=op.f('fk_review_taxonomy_id_taxonomy')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_review'))
    )
    op.create_index('ix_review_key', 'review', ['file_id', 'model', 'taxonomy_id'])
    op.execute(REVIEWS_V1)
    op.execute(REVIEWED_LABELS_V1)


def downgrade() -> None:
    op.execute("DROP VIEW reviewed_labels")
    op.execute("DROP VIEW reviews")
    op.drop_index('ix_review_key', table_name='review')
    op.drop_table('review')
