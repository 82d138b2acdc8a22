"""audio embeddings per file and window, for relabeling, search and export without the audio

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audio_embedding',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('file_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('model', sa.Text(), nullable=False),
    sa.Column('model_revision', sa.Text(), nullable=False),
    sa.Column('window_s', sa.Float(), nullable=False),
    sa.Column('hop_s', sa.Float(), nullable=False),
    sa.Column('fingerprint', sa.Text(), nullable=True),
    sa.Column('dtype', sa.String(length=8), nullable=False),
    sa.Column('dim', sa.Integer(), nullable=False),
    sa.Column('starts', sa.LargeBinary(), nullable=False),
    sa.Column('ends', sa.LargeBinary(), nullable=False),
    sa.Column('vectors', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['file_id'], ['file.id'], name=op.f('fk_audio_embedding_file_id_file'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audio_embedding')),
    sa.UniqueConstraint('file_id', 'model', 'model_revision', 'window_s', 'hop_s', name='uq_audio_embedding_key')
    )
    op.create_index('ix_audio_embedding_model', 'audio_embedding', ['model', 'model_revision'])


def downgrade() -> None:
    op.drop_index('ix_audio_embedding_model', 'audio_embedding')
    op.drop_table('audio_embedding')
