"""dialogs and complaints (issue 3)

Complaint tickets with their evidence, help-desk notes and the per-day ticket counter; the dates the
dialogs read (training availability, job start), the working-away channel, and the village
assistant's verification note on self-reported labourers.

Revision ID: 0002
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ticket_counter',
    sa.Column('day', sa.String(length=8), nullable=False),
    sa.Column('last', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_ticket_counter'))
    )
    op.create_table('complaint',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_no', sa.String(length=20), nullable=False),
    sa.Column('labourer_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('employer', sa.String(length=128), nullable=False),
    sa.Column('site', sa.String(length=256), nullable=True),
    sa.Column('amount_owed', sa.Integer(), nullable=True),
    sa.Column('period', sa.String(length=32), nullable=True),
    sa.Column('workers_affected', sa.Integer(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('contact_phone_enc', sa.LargeBinary(), nullable=True),
    sa.Column('contact_phone_hash', sa.String(length=64), nullable=True),
    sa.Column('contact_phone_masked', sa.String(length=16), nullable=True),
    sa.Column('urgent', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('assignee', sa.String(length=64), nullable=True),
    sa.Column('recovered_amount', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['labourer_id'], ['labourer.id'], name=op.f('fk_complaint_labourer_id_labourer'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_complaint')),
    sa.UniqueConstraint('ticket_no', name=op.f('uq_complaint_ticket_no'))
    )
    op.create_index(op.f('ix_complaint_labourer_id'), 'complaint', ['labourer_id'], unique=False)
    op.create_index('ix_complaint_status', 'complaint', ['status', 'urgent'], unique=False)
    op.create_table('complaint_evidence',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('complaint_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('media_id', sa.String(length=256), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['complaint_id'], ['complaint.id'], name=op.f('fk_complaint_evidence_complaint_id_complaint'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_complaint_evidence'))
    )
    op.create_index(op.f('ix_complaint_evidence_complaint_id'), 'complaint_evidence', ['complaint_id'], unique=False)
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
    op.add_column('job_wish', sa.Column('start_date', sa.Date(), nullable=True))
    op.add_column('labourer', sa.Column('verify_note', sa.Text(), nullable=True))
    op.add_column('training_need', sa.Column('available_date', sa.Date(), nullable=True))
    op.add_column('working_away', sa.Column('channel', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('working_away', schema=None) as batch_op:
        batch_op.drop_column('channel')
    with op.batch_alter_table('training_need', schema=None) as batch_op:
        batch_op.drop_column('available_date')
    with op.batch_alter_table('labourer', schema=None) as batch_op:
        batch_op.drop_column('verify_note')
    with op.batch_alter_table('job_wish', schema=None) as batch_op:
        batch_op.drop_column('start_date')
    op.drop_index(op.f('ix_complaint_note_complaint_id'), table_name='complaint_note')
    op.drop_table('complaint_note')
    op.drop_index(op.f('ix_complaint_evidence_complaint_id'), table_name='complaint_evidence')
    op.drop_table('complaint_evidence')
    op.drop_index('ix_complaint_status', table_name='complaint')
    op.drop_index(op.f('ix_complaint_labourer_id'), table_name='complaint')
    op.drop_table('complaint')
    op.drop_table('ticket_counter')
