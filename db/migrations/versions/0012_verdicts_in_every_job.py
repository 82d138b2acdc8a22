"""reviewed_labels version 4: a person's verdict shows in every labeling of its file whose
taxonomy has its label (a head's relabel of the job included), not only the one it was given under

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""
from alembic import op

from db.views import REVIEWED_LABELS_V3, REVIEWED_LABELS_V4


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP VIEW reviewed_labels")
    op.execute(REVIEWED_LABELS_V4)


def downgrade() -> None:
    op.execute("DROP VIEW reviewed_labels")
    op.execute(REVIEWED_LABELS_V3)
