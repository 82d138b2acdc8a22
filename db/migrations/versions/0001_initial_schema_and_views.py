"""initial schema and views

Revision ID: 0001
Revises: 
Create Date: 2026-11-29
"""
from alembic import op
import sqlalchemy as sa

from db.views import V1


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('file',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('uri', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('fingerprint', sa.Text(), nullable=True),
    sa.Column('size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.Column('duration_s', sa.Float(), nullable=True),
    sa.Column('sample_rate', sa.Integer(), nullable=True),
    sa.Column('channels', sa.Integer(), nullable=True),
    sa.Column('truth', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_file')),
    sa.UniqueConstraint('uri', name=op.f('uq_file_uri'))
    )
    op.create_table('taxonomy',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_taxonomy')),
    sa.UniqueConstraint('content_hash', name=op.f('uq_taxonomy_content_hash'))
    )
    op.create_table('job',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('model', sa.Text(), nullable=False),
    sa.Column('taxonomy_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('sources', sa.JSON(), nullable=False),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['taxonomy_id'], ['taxonomy.id'], name=op.f('fk_job_taxonomy_id_taxonomy')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job'))
    )
    op.create_table('job_file',
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('file_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['file_id'], ['file.id'], name=op.f('fk_job_file_file_id_file'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['job_id'], ['job.id'], name=op.f('fk_job_file_job_id_job'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'file_id', name=op.f('pk_job_file'))
    )
    with op.batch_alter_table('job_file', schema=None) as batch_op:
        batch_op.create_index('ix_job_file_job_status', ['job_id', 'status'], unique=False)

    op.create_table('labeling',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('file_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('model', sa.Text(), nullable=False),
    sa.Column('taxonomy_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('fingerprint', sa.Text(), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['file_id'], ['file.id'], name=op.f('fk_labeling_file_id_file'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['job_id'], ['job.id'], name=op.f('fk_labeling_job_id_job')),
    sa.ForeignKeyConstraint(['taxonomy_id'], ['taxonomy.id'], name=op.f('fk_labeling_taxonomy_id_taxonomy')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_labeling')),
    sa.UniqueConstraint('file_id', 'model', 'taxonomy_id', name='uq_labeling_key')
    )
    op.create_table('label_score',
    sa.Column('labeling_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('label', sa.Text(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('similarity', sa.Float(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['labeling_id'], ['labeling.id'], name=op.f('fk_label_score_labeling_id_labeling'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('labeling_id', 'label', name=op.f('pk_label_score'))
    )
    with op.batch_alter_table('label_score', schema=None) as batch_op:
        batch_op.create_index('ix_label_score_label_rank', ['label', 'rank'], unique=False)

    op.create_table('segment_score',
    sa.Column('labeling_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('window', sa.Integer(), nullable=False),
    sa.Column('label', sa.Text(), nullable=False),
    sa.Column('start_s', sa.Float(), nullable=False),
    sa.Column('end_s', sa.Float(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('similarity', sa.Float(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['labeling_id'], ['labeling.id'], name=op.f('fk_segment_score_labeling_id_labeling'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('labeling_id', 'window', 'label', name=op.f('pk_segment_score'))
    )
    for sql in V1.values():
        op.execute(sql)


def downgrade() -> None:
    for name in V1:
        op.execute(f"DROP VIEW {name}")
    op.drop_table('segment_score')
    with op.batch_alter_table('label_score', schema=None) as batch_op:
        batch_op.drop_index('ix_label_score_label_rank')

    op.drop_table('label_score')
    op.drop_table('labeling')
    with op.batch_alter_table('job_file', schema=None) as batch_op:
        batch_op.drop_index('ix_job_file_job_status')

    op.drop_table('job_file')
    op.drop_table('job')
    op.drop_table('taxonomy')
    op.drop_table('file')
