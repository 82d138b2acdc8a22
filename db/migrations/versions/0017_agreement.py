"""agreement_score: the numbers `soundtag agreement` computes (κ per pair, α overall and per
label, each reviewer against the settled labels), kept, and the agreement view of the latest

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa

from db.views import AGREEMENT_V1


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'agreement_score',
        sa.Column('id', Id, nullable=False),
        sa.Column('job_id', sa.String(length=32), nullable=False),
        sa.Column('measure', sa.String(length=16), nullable=False),
        sa.Column('label', sa.Text(), nullable=True),
        sa.Column('reviewer', sa.Text(), nullable=True),
        sa.Column('other_reviewer', sa.Text(), nullable=True),
        sa.Column('value', sa.Float(), nullable=True),
        sa.Column('items', sa.Integer(), nullable=False),
        sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['job.id'], name=op.f('fk_agreement_score_job_id_job'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_agreement_score')),
    )
    op.execute(AGREEMENT_V1)


def downgrade() -> None:
    op.execute("DROP VIEW agreement")
    op.drop_table('agreement_score')
