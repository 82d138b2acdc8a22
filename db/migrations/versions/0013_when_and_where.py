"""when and where: file.recorded_at and file.site (files view version 2), the detections and
detections_by_hour views, the estimate table and its estimates view

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa

from db.views import ESTIMATES_V1, FILES_V1, FILES_V2, WHEN_AND_WHERE_V1


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.execute("DROP VIEW files")
    # Nullable columns at the end: SQLite adds them without rebuilding the table.
    op.add_column('file', sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('file', sa.Column('site', sa.Text(), nullable=True))
    op.execute(FILES_V2)
    op.create_table('estimate',
    sa.Column('id', Id, nullable=False),
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('label', sa.Text(), nullable=False),
    sa.Column('site', sa.Text(), nullable=True),
    sa.Column('windows', sa.BigInteger(), nullable=False),
    sa.Column('verdicts', sa.Integer(), nullable=False),
    *(sa.Column(name, sa.Float(), nullable=name.startswith(('precision', 'recall')))
      for measure in ('prevalence', 'precision', 'recall') for name in (measure, f'{measure}_low', f'{measure}_high')),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['job.id'], name=op.f('fk_estimate_job_id_job'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_estimate'))
    )
    dialect = op.get_bind().dialect.name
    for sql in WHEN_AND_WHERE_V1[dialect].values():
        op.execute(sql)
    op.execute(ESTIMATES_V1)


def downgrade() -> None:
    op.execute("DROP VIEW estimates")
    op.execute("DROP VIEW detections_by_hour")
    op.execute("DROP VIEW detections")
    op.drop_table('estimate')
    op.execute("DROP VIEW files")
    # Not a batch: rebuilding `file` on SQLite breaks the views that read it. SQLite 3.35+ drops a
    # column in place when no view names it.
    op.drop_column('file', 'site')
    op.drop_column('file', 'recorded_at')
    op.execute(FILES_V1)
