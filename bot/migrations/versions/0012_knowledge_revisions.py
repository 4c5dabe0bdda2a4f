"""officials' knowledge changes (knowledge_revision); message_log by time for the unanswered messages

Revision ID: 0012
Revises: 0008
"""

from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('knowledge_revision',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=160), nullable=False),
    sa.Column('value', sa.JSON(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('reverts', sa.Integer(), nullable=True),
    sa.Column('author', sa.String(length=64), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['reverts'], ['knowledge_revision.id'],
                            name=op.f('fk_knowledge_revision_reverts_knowledge_revision')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_knowledge_revision'))
    )
    with op.batch_alter_table('knowledge_revision', schema=None) as batch_op:
        batch_op.create_index('ix_knowledge_revision_item', ['kind', 'key', 'id'], unique=False)
    with op.batch_alter_table('message_log', schema=None) as batch_op:
        batch_op.create_index('ix_message_log_created_at', ['created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('message_log', schema=None) as batch_op:
        batch_op.drop_index('ix_message_log_created_at')
    with op.batch_alter_table('knowledge_revision', schema=None) as batch_op:
        batch_op.drop_index('ix_knowledge_revision_item')
    op.drop_table('knowledge_revision')
