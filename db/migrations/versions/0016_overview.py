"""overview: job_summary, what a scan of a job's every window computed for the overview page,
kept with the stamp of the rows it was computed from (db/summaries.py)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'job_summary',
        sa.Column('job_id', sa.String(length=32), nullable=False),
        sa.Column('name', sa.Text(), nullable=False),
        sa.Column('stamp', sa.Text(), nullable=False),
        sa.Column('body', sa.JSON(), nullable=False),
        sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['job.id'], name=op.f('fk_job_summary_job_id_job'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('job_id', 'name', name=op.f('pk_job_summary')),
    )


def downgrade() -> None:
    op.drop_table('job_summary')
