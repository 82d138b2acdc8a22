"""review.shown: the decision the person was shown (a window's own for a window's verdict), kept
with the verdict, so training reads what a correction replaced as it was, not as the file's
decision is today. Earlier file verdicts get their file's decision as it is at the upgrade, the
best still known; earlier segment corrections keep none.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, at the end: SQLite adds it without rebuilding the table (the views stay).
    op.add_column('review', sa.Column('shown', sa.Text(), nullable=True))
    op.execute("UPDATE review SET shown = label WHERE verdict <> 'correct'")
    op.execute("""
        UPDATE review SET shown = (
            SELECT d.label FROM file_decisions d
            JOIN file f ON f.uri = d.uri
            JOIN taxonomy t ON t.content_hash = d.taxonomy_hash
            WHERE f.id = review.file_id AND d.model = review.model AND t.id = review.taxonomy_id
              AND d.implied_by IS NULL)
        WHERE verdict = 'correct' AND start_s IS NULL""")


def downgrade() -> None:
    with op.batch_alter_table('review') as batch:
        batch.drop_column('shown')
