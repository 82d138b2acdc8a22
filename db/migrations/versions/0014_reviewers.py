"""reviewers: the named people of a reviewing team, their roles and their tokens' hashes
(db/reviewers.py)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

ACTIVE = sa.text("removed_at IS NULL")


def upgrade() -> None:
    op.create_table(
        'reviewer',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('name', sa.Text(), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('token_hash', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_reviewer')),
    )
    op.create_index('ix_reviewer_name', 'reviewer', ['name'], unique=True, postgresql_where=ACTIVE,
                    sqlite_where=ACTIVE)


def downgrade() -> None:
    op.drop_index('ix_reviewer_name', table_name='reviewer')
    op.drop_table('reviewer')
