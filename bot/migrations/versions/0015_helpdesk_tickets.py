"""the help desk: a ticket over every complaint and hand-off request, its events and messages (replies,
notes, the labourer's messages, the bot's transcript; they replace complaint_note)

Revision ID: 0015
Revises: 0013
"""

from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ticket',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_no', sa.String(length=20), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('complaint_id', sa.Integer(), nullable=True),
    sa.Column('handoff_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('labourer_id', sa.Integer(), nullable=True),
    sa.Column('category', sa.String(length=16), nullable=True),
    sa.Column('urgent', sa.Boolean(), nullable=False),
    sa.Column('employer', sa.String(length=128), nullable=True),
    sa.Column('site', sa.String(length=256), nullable=True),
    sa.Column('contact_phone_masked', sa.String(length=16), nullable=True),
    sa.Column('county', sa.String(length=32), nullable=True),
    sa.Column('township', sa.String(length=32), nullable=True),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('assignee', sa.String(length=64), nullable=True),
    sa.Column('merged_into_id', sa.Integer(), nullable=True),
    sa.Column('group_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('first_response_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolve_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_response_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('waiting_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('paused_seconds', sa.Float(), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['complaint_id'], ['complaint.id'], name=op.f('fk_ticket_complaint_id_complaint'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['handoff_id'], ['handoff.id'], name=op.f('fk_ticket_handoff_id_handoff'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['labourer_id'], ['labourer.id'], name=op.f('fk_ticket_labourer_id_labourer'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['merged_into_id'], ['ticket.id'], name=op.f('fk_ticket_merged_into_id_ticket'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['group_id'], ['ticket.id'], name=op.f('fk_ticket_group_id_ticket'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket')),
    sa.UniqueConstraint('ticket_no', name=op.f('uq_ticket_ticket_no')),
    sa.UniqueConstraint('complaint_id', name=op.f('uq_ticket_complaint_id')),
    sa.UniqueConstraint('handoff_id', name=op.f('uq_ticket_handoff_id')),
    )
    op.create_index('ix_ticket_queue', 'ticket', ['status', 'created_at'], unique=False)
    op.create_index('ix_ticket_area', 'ticket', ['county', 'township', 'created_at'], unique=False)
    op.create_index('ix_ticket_county_status', 'ticket', ['county', 'status', 'created_at'], unique=False)
    op.create_index('ix_ticket_assignee', 'ticket', ['assignee', 'status'], unique=False)
    op.create_index('ix_ticket_user', 'ticket', ['channel', 'user_id', 'status'], unique=False)
    op.create_index('ix_ticket_created_at', 'ticket', ['created_at'], unique=False)
    op.create_index(op.f('ix_ticket_labourer_id'), 'ticket', ['labourer_id'], unique=False)
    op.create_index(op.f('ix_ticket_group_id'), 'ticket', ['group_id'], unique=False)
    op.create_index(op.f('ix_ticket_merged_into_id'), 'ticket', ['merged_into_id'], unique=False)
    op.create_table('ticket_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('from_status', sa.String(length=24), nullable=True),
    sa.Column('to_status', sa.String(length=24), nullable=True),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], name=op.f('fk_ticket_event_ticket_id_ticket'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket_event'))
    )
    op.create_index(op.f('ix_ticket_event_ticket_id'), 'ticket_event', ['ticket_id'], unique=False)
    op.create_table('ticket_message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('author', sa.String(length=64), nullable=True),
    sa.Column('visibility', sa.String(length=8), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('delivery', sa.String(length=12), nullable=True),
    sa.Column('delivery_error', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], name=op.f('fk_ticket_message_ticket_id_ticket'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket_message'))
    )
    op.create_index('ix_ticket_message_ticket', 'ticket_message', ['ticket_id', 'created_at'], unique=False)

    # "waiting_on_labourer" needs 19 characters. SQLite does not enforce a length, and a batch rebuild of
    # complaint there would drop the table, cascading to its evidence: only PostgreSQL is altered.
    if op.get_bind().dialect.name != 'sqlite':
        op.alter_column('complaint', 'status', existing_type=sa.String(length=16), type_=sa.String(length=24),
                        existing_nullable=False)

    # Cases filed before the desk: one ticket each (no service-level clock: they predate it).
    op.execute(
        "INSERT INTO ticket (ticket_no, kind, complaint_id, channel, user_id, labourer_id, category, urgent, "
        "employer, site, contact_phone_masked, county, township, status, assignee, created_at, updated_at, "
        "paused_seconds, closed_at) "
        "SELECT ticket_no, 'complaint', id, channel, user_id, labourer_id, category, urgent, employer, site, "
        "contact_phone_masked, county, township, status, assignee, created_at, updated_at, 0, closed_at "
        "FROM complaint"
    )
    op.execute(
        "INSERT INTO ticket_message (ticket_id, source, author, visibility, body, delivery, created_at) "
        "SELECT ticket.id, 'staff', complaint_note.author, complaint_note.visibility, complaint_note.body, "
        "CASE WHEN complaint_note.sent_at IS NOT NULL THEN 'sent' END, complaint_note.created_at "
        "FROM complaint_note JOIN ticket ON ticket.complaint_id = complaint_note.complaint_id"
    )
    op.execute(
        "INSERT INTO ticket (ticket_no, kind, handoff_id, channel, user_id, labourer_id, urgent, county, township, "
        "status, created_at, updated_at, paused_seconds) "
        "SELECT 'RG-' || id, 'handoff', id, channel, user_id, labourer_id, false, county, township, "
        "CASE WHEN status = 'open' THEN 'new' ELSE 'closed' END, created_at, created_at, 0 FROM handoff"
    )
    op.drop_index(op.f('ix_complaint_note_complaint_id'), table_name='complaint_note')
    op.drop_table('complaint_note')


def downgrade() -> None:
    op.create_table('complaint_note',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('complaint_id', sa.Integer(), nullable=False),
    sa.Column('author', sa.String(length=64), nullable=False),
    sa.Column('visibility', sa.String(length=8), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['complaint_id'], ['complaint.id'], name=op.f('fk_complaint_note_complaint_id_complaint'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_complaint_note'))
    )
    op.create_index(op.f('ix_complaint_note_complaint_id'), 'complaint_note', ['complaint_id'], unique=False)
    op.execute(
        "INSERT INTO complaint_note (complaint_id, author, visibility, body, created_at, sent_at) "
        "SELECT ticket.complaint_id, ticket_message.author, ticket_message.visibility, ticket_message.body, "
        "ticket_message.created_at, CASE WHEN ticket_message.delivery = 'sent' THEN ticket_message.created_at END "
        "FROM ticket_message JOIN ticket ON ticket.id = ticket_message.ticket_id "
        "WHERE ticket.complaint_id IS NOT NULL AND ticket_message.source = 'staff'"
    )
    op.execute("UPDATE complaint SET status = 'in_progress' WHERE status = 'waiting_on_labourer'")
    if op.get_bind().dialect.name != 'sqlite':
        op.alter_column('complaint', 'status', existing_type=sa.String(length=24), type_=sa.String(length=16),
                        existing_nullable=False)
    op.drop_index('ix_ticket_message_ticket', table_name='ticket_message')
    op.drop_table('ticket_message')
    op.drop_index(op.f('ix_ticket_event_ticket_id'), table_name='ticket_event')
    op.drop_table('ticket_event')
    for name in ('ix_ticket_merged_into_id', 'ix_ticket_group_id', 'ix_ticket_labourer_id', 'ix_ticket_created_at', 'ix_ticket_user',
                 'ix_ticket_assignee', 'ix_ticket_county_status', 'ix_ticket_area', 'ix_ticket_queue'):
        op.drop_index(name, table_name='ticket')
    op.drop_table('ticket')
