"""the labourers' place index carries the name too: an official's name search inside a township reads the
names from the index (about 7,000 entries at a township of a 250,000-labourer city) instead of every one
of those labourers' rows; it replaces ix_labourer_region, which it serves as well (same leading columns)

Revision ID: 0022
Revises: 0021
"""

from alembic import op
import sqlalchemy as sa


revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


FLAGS = ('wants_startup', 'public_welfare_post')


def _flag_indexes_again() -> None:
    # SQLite without statistics weighs indexes with the same leading equalities alike and takes the one
    # created last: the small partial indexes of the two flag lists (0020) are made again after the place
    # index, so a flag list's count in a township stays a read of its own few entries
    for flag in FLAGS:
        op.drop_index(f'ix_labourer_{flag}_place', table_name='labourer')
        op.create_index(f'ix_labourer_{flag}_place', 'labourer', ['county', 'township', 'village'],
                        sqlite_where=sa.text(f'{flag} = 1'), postgresql_where=sa.text(f'{flag} = true'))


def upgrade() -> None:
    op.create_index('ix_labourer_place_name', 'labourer', ['county', 'township', 'village', 'name'])
    op.drop_index('ix_labourer_region', table_name='labourer')
    _flag_indexes_again()


def downgrade() -> None:
    op.create_index('ix_labourer_region', 'labourer', ['county', 'township', 'village'])
    op.drop_index('ix_labourer_place_name', table_name='labourer')
