"""when a training need or job wish is for, as a range: training_need.available_until and
job_wish.start_until (the last day of 开春, 3月到5月, 下个月; empty when only a start is known)

Revision ID: 0017
Revises: 0015
"""

from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('training_need', schema=None) as batch_op:
        batch_op.add_column(sa.Column('available_until', sa.Date(), nullable=True))
    with op.batch_alter_table('job_wish', schema=None) as batch_op:
        batch_op.add_column(sa.Column('start_until', sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('job_wish', schema=None) as batch_op:
        batch_op.drop_column('start_until')
    with op.batch_alter_table('training_need', schema=None) as batch_op:
        batch_op.drop_column('available_until')
