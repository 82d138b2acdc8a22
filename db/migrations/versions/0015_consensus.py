"""consensus: where several people judged an item, the settled verdict (an adjudicator's, else
the majority's, else none) is the one in force; review.adjudicated marks the verdicts given in
`--order adjudicate`, and reviewed_labels (version 5) reads the consensus view

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa

from db.views import CONSENSUS_V1, REVIEWED_LABELS_V4, REVIEWED_LABELS_V5


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # At the end, with a default: SQLite adds it without rebuilding the table (the views stay).
    op.add_column('review', sa.Column('adjudicated', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute("DROP VIEW reviewed_labels")
    op.execute(CONSENSUS_V1)
    op.execute(REVIEWED_LABELS_V5)


def downgrade() -> None:
    op.execute("DROP VIEW reviewed_labels")
    op.execute("DROP VIEW consensus")
    op.execute(REVIEWED_LABELS_V4)
    op.execute("ALTER TABLE review DROP COLUMN adjudicated")
