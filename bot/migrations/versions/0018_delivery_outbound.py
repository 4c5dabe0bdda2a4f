"""a broadcast delivery points at the outbox row that carried it: delivery.outbound_message_id (receipts
reach the delivery through it; existing deliveries are linked by their shared idempotency key)

Revision ID: 0018
Revises: 0017
"""

from alembic import op
import sqlalchemy as sa


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('outbound_message_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_delivery_outbound_message_id'), ['outbound_message_id'], unique=False)
        batch_op.create_foreign_key('fk_delivery_outbound_message_id_outbound_message', 'outbound_message',
                                    ['outbound_message_id'], ['id'], ondelete='SET NULL')
    op.execute(
        "UPDATE delivery SET outbound_message_id = (SELECT o.id FROM outbound_message o"
        " WHERE o.idempotency_key = delivery.idempotency_key)"
        " WHERE EXISTS (SELECT 1 FROM outbound_message o WHERE o.idempotency_key = delivery.idempotency_key)"
    )


def downgrade() -> None:
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_constraint('fk_delivery_outbound_message_id_outbound_message', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_delivery_outbound_message_id'))
        batch_op.drop_column('outbound_message_id')
