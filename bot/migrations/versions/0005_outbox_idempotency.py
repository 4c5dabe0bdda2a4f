"""outbox idempotency key (crash-safe sends) and the shared per-channel send rate

Revision ID: 0005
Revises: 0004
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbound_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idempotency_key', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_outbound_message_idempotency_key', ['idempotency_key'], unique=True)

    op.create_table('send_rate',
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('next_slot', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('channel', name=op.f('pk_send_rate'))
    )


def downgrade() -> None:
    op.drop_table('send_rate')
    with op.batch_alter_table('outbound_message', schema=None) as batch_op:
        batch_op.drop_index('ix_outbound_message_idempotency_key')
        batch_op.drop_column('idempotency_key')
