"""leases: job_file.worker, leased_at, lease_until and lost, so live workers take back the files of
a worker that died within a minute (db/leases.py)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

QUEUED = sa.text("status = 'queued'")


def upgrade() -> None:
    with op.batch_alter_table('job_file') as batch:
        batch.add_column(sa.Column('worker', sa.Text(), nullable=True))
        batch.add_column(sa.Column('leased_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('lost', sa.Integer(), server_default='0', nullable=False))
    op.create_index('ix_job_file_lease_until', 'job_file', ['lease_until'], postgresql_where=QUEUED,
                    sqlite_where=QUEUED)
    op.create_index('ix_job_file_worker', 'job_file', ['worker'], postgresql_where=QUEUED, sqlite_where=QUEUED)


def downgrade() -> None:
    op.drop_index('ix_job_file_worker', table_name='job_file')
    op.drop_index('ix_job_file_lease_until', table_name='job_file')
    with op.batch_alter_table('job_file') as batch:
        for column in ('lost', 'lease_until', 'leased_at', 'worker'):
            batch.drop_column(column)
