"""the console at a city's size: figures_snapshot (the programme's figures by village, counted in the
background), partial indexes for the startup and public-welfare lists, and indexes on the last four digits
of the masked ID number and phone (the labourer search's "last digits")

Revision ID: 0020
Revises: 0019
"""

from alembic import op
import sqlalchemy as sa


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

# Masked copies have fixed lengths (bot.pii.mask_id_number: 18, mask_phone: 11): the last four start at 15 and 8.
ID_LAST4 = "substr(id_number_masked, 15)"
PHONE_LAST4 = "substr(phone_masked, 8)"


def upgrade() -> None:
    op.create_table(
        'figures_snapshot',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('groups', sa.JSON(), nullable=False),
        sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('refreshing_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_figures_snapshot')),
    )
    for flag in ('wants_startup', 'public_welfare_post'):
        op.create_index(f'ix_labourer_{flag}_place', 'labourer', ['county', 'township', 'village'],
                        sqlite_where=sa.text(f'{flag} = 1'), postgresql_where=sa.text(f'{flag} = true'))
    op.create_index('ix_labourer_id_last4', 'labourer', [sa.text(ID_LAST4)])
    op.create_index('ix_labourer_phone_last4', 'labourer', [sa.text(PHONE_LAST4)])


def downgrade() -> None:
    op.drop_index('ix_labourer_phone_last4', table_name='labourer')
    op.drop_index('ix_labourer_id_last4', table_name='labourer')
    for flag in ('public_welfare_post', 'wants_startup'):
        op.drop_index(f'ix_labourer_{flag}_place', table_name='labourer')
    op.drop_table('figures_snapshot')
