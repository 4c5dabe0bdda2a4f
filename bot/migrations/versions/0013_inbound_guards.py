"""inbound doors: callback nonces seen (replay_nonce), rate counters (rate_counter); message_log.purpose
for pushes outside a direct reply (the simulator's inbox)

Revision ID: 0013
Revises: 0012
"""

from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('replay_nonce',
    sa.Column('key', sa.String(length=160), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_replay_nonce'))
    )
    with op.batch_alter_table('replay_nonce', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_replay_nonce_expires_at'), ['expires_at'], unique=False)
    op.create_table('rate_counter',
    sa.Column('key', sa.String(length=160), nullable=False),
    sa.Column('window', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key', 'window', name=op.f('pk_rate_counter'))
    )
    with op.batch_alter_table('message_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purpose', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('message_log', schema=None) as batch_op:
        batch_op.drop_column('purpose')
    op.drop_table('rate_counter')
    with op.batch_alter_table('replay_nonce', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_replay_nonce_expires_at'))
    op.drop_table('replay_nonce')
