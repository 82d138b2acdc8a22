"""segment verdicts: review gains start_s and end_s (NULL for a file's verdict); the reviews and
reviewed_labels views follow them

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

from db.views import REVIEWED_LABELS_V2, REVIEWED_LABELS_V3, REVIEWS_V1, REVIEWS_V2


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP VIEW reviewed_labels")
    op.execute("DROP VIEW reviews")
    # Nullable columns at the end: SQLite adds them without rebuilding the table.
    op.add_column('review', sa.Column('start_s', sa.Float(), nullable=True))
    op.add_column('review', sa.Column('end_s', sa.Float(), nullable=True))
    op.execute(REVIEWS_V2)
    op.execute(REVIEWED_LABELS_V3)


def downgrade() -> None:
    op.execute("DROP VIEW reviewed_labels")
    op.execute("DROP VIEW reviews")
    with op.batch_alter_table('review') as batch:
        batch.drop_column('end_s')
        batch.drop_column('start_s')
    op.execute(REVIEWS_V1)
    op.execute(REVIEWED_LABELS_V2)
