"""the help desk: evidence files fetched from the channel and stored (complaint_evidence.content …, also on
a hand-off's ticket), a reply's outbox row for delivery receipts (ticket_message.outbound_id), reminders to
the assignee (staff_notification)

Revision ID: 0019
Revises: 0018
"""

from alembic import op
import sqlalchemy as sa


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('complaint_evidence', schema=None) as batch_op:
        batch_op.alter_column('complaint_id', existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column('ticket_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('content', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('content_type', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('size', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('fetch_attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('fetch_error', sa.String(length=200), nullable=True))
        batch_op.create_index(batch_op.f('ix_complaint_evidence_ticket_id'), ['ticket_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_complaint_evidence_ticket_id_ticket'), 'ticket', ['ticket_id'],
                                    ['id'], ondelete='CASCADE')
    with op.batch_alter_table('complaint_evidence', schema=None) as batch_op:
        batch_op.alter_column('fetch_attempts', server_default=None)
    with op.batch_alter_table('ticket_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('outbound_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_ticket_message_outbound_id'), ['outbound_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_ticket_message_outbound_id_outbound_message'), 'outbound_message',
                                    ['outbound_id'], ['id'], ondelete='SET NULL')
    op.create_table('staff_notification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('text', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('pushed', sa.String(length=16), nullable=True),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], name=op.f('fk_staff_notification_ticket_id_ticket'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_notification')),
    sa.UniqueConstraint('ticket_id', 'kind', 'due_at', name=op.f('uq_staff_notification_ticket_id_kind_due_at')),
    )
    op.create_index('ix_staff_notification_unread', 'staff_notification', ['username', 'read_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_staff_notification_unread', table_name='staff_notification')
    op.drop_table('staff_notification')
    with op.batch_alter_table('ticket_message', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_ticket_message_outbound_id_outbound_message'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_ticket_message_outbound_id'))
        batch_op.drop_column('outbound_id')
    with op.batch_alter_table('complaint_evidence', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_complaint_evidence_ticket_id_ticket'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_complaint_evidence_ticket_id'))
        for column in ('fetch_error', 'fetch_attempts', 'fetched_at', 'size', 'content_type', 'content', 'ticket_id'):
            batch_op.drop_column(column)
        batch_op.alter_column('complaint_id', existing_type=sa.Integer(), nullable=False)
