"""job states (completed, failed with a reason), the jobs view, stored label embeddings

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa

from db.views import JOBS_V1


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('job') as batch:
        batch.add_column(sa.Column('error', sa.Text(), nullable=True))
    # Finished jobs were 'active' with a finished_at; cancelled queued files were marked failed
    # with the error 'cancelled', although nothing was tried: they are simply not processed yet.
    op.execute("UPDATE job SET state = 'completed' WHERE state = 'active' AND finished_at IS NOT NULL")
    op.execute("UPDATE file SET status = 'queued', error = NULL WHERE status = 'failed' AND error = 'cancelled'")
    op.create_table('label_embedding',
    sa.Column('model', sa.Text(), nullable=False),
    sa.Column('model_revision', sa.Text(), nullable=False),
    sa.Column('taxonomy_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('dim', sa.Integer(), nullable=False),
    sa.Column('vectors', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['taxonomy_id'], ['taxonomy.id'], name=op.f('fk_label_embedding_taxonomy_id_taxonomy'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model', 'model_revision', 'taxonomy_id', name=op.f('pk_label_embedding'))
    )
    op.execute(JOBS_V1)


def downgrade() -> None:
    op.execute("DROP VIEW jobs")
    op.drop_table('label_embedding')
    op.execute("UPDATE job SET state = 'active' WHERE state = 'completed'")
    with op.batch_alter_table('job') as batch:
        batch.drop_column('error')
