"""roster imports and their remembered column mappings; labourer.employment_channel; labourers by name

Revision ID: 0016
Revises: 0015
"""

from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('roster_import',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=True),
    sa.Column('staff_name', sa.String(length=64), nullable=False),
    sa.Column('owner_county', sa.String(length=32), nullable=True),
    sa.Column('owner_township', sa.String(length=32), nullable=True),
    sa.Column('owner_village', sa.String(length=32), nullable=True),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('file_kind', sa.String(length=8), nullable=False),
    sa.Column('file_sha256', sa.String(length=64), nullable=False),
    sa.Column('header_row', sa.Integer(), nullable=False),
    sa.Column('headers', sa.JSON(), nullable=False),
    sa.Column('mapping', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('valid', sa.Integer(), nullable=False),
    sa.Column('to_create', sa.Integer(), nullable=False),
    sa.Column('to_update', sa.Integer(), nullable=False),
    sa.Column('errors', sa.JSON(), nullable=False),
    sa.Column('progress', sa.Integer(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=True),
    sa.Column('updated', sa.Integer(), nullable=True),
    sa.Column('skipped', sa.Integer(), nullable=True),
    sa.Column('failure', sa.String(length=255), nullable=True),
    sa.Column('committed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_roster_import'))
    )
    with op.batch_alter_table('roster_import', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_roster_import_staff_id'), ['staff_id'], unique=False)
    op.create_table('roster_import_file',
    sa.Column('import_id', sa.Integer(), nullable=False),
    sa.Column('file_enc', sa.LargeBinary(), nullable=False),
    sa.Column('rows_enc', sa.LargeBinary(), nullable=True),
    sa.ForeignKeyConstraint(['import_id'], ['roster_import.id'],
                            name=op.f('fk_roster_import_file_import_id_roster_import'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('import_id', name=op.f('pk_roster_import_file'))
    )
    op.create_table('roster_template',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('header_key', sa.String(length=64), nullable=False),
    sa.Column('headers', sa.JSON(), nullable=False),
    sa.Column('mapping', sa.JSON(), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_roster_template')),
    sa.UniqueConstraint('header_key', name=op.f('uq_roster_template_header_key'))
    )
    with op.batch_alter_table('labourer', schema=None) as batch_op:
        batch_op.add_column(sa.Column('employment_channel', sa.String(length=16), nullable=True))
        batch_op.create_index('ix_labourer_name', ['name'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('labourer', schema=None) as batch_op:
        batch_op.drop_index('ix_labourer_name')
        batch_op.drop_column('employment_channel')
    op.drop_table('roster_template')
    op.drop_table('roster_import_file')
    op.drop_table('roster_import')
