"""channels: WeChat token and followers, outbound messages (SMS outbox, receipts), SMS numbers (issue 4)

Revision ID: 0003
Revises: 0002
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outbound_message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('number_masked', sa.String(length=16), nullable=True),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('provider_message_id', sa.String(length=128), nullable=True),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('segments', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbound_message'))
    )
    with op.batch_alter_table('outbound_message', schema=None) as batch_op:
        batch_op.create_index('ix_outbound_message_provider_id', ['provider', 'provider_message_id'], unique=False)
        batch_op.create_index('ix_outbound_message_user', ['channel', 'user_id', 'id'], unique=False)

    op.create_table('sms_number',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number_hash', sa.String(length=64), nullable=False),
    sa.Column('number_enc', sa.LargeBinary(), nullable=False),
    sa.Column('number_masked', sa.String(length=16), nullable=False),
    sa.Column('opted_out', sa.Boolean(), nullable=False),
    sa.Column('opted_out_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('opt_out_keyword', sa.String(length=16), nullable=True),
    sa.Column('last_notice_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('notice_day', sa.Date(), nullable=True),
    sa.Column('notices_today', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sms_number')),
    sa.UniqueConstraint('number_hash', name=op.f('uq_sms_number_number_hash'))
    )
    op.create_table('wechat_follower',
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('subscribed', sa.Boolean(), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=True),
    sa.Column('subscribed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('unsubscribed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_interaction_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('window_closed', sa.Boolean(), nullable=False),
    sa.Column('cs_sent', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('openid', name=op.f('pk_wechat_follower'))
    )
    op.create_table('wechat_token',
    sa.Column('appid', sa.String(length=64), nullable=False),
    sa.Column('access_token', sa.Text(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('refreshing_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('refresh_count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('appid', name=op.f('pk_wechat_token'))
    )


def downgrade() -> None:
    op.drop_table('wechat_token')
    op.drop_table('wechat_follower')
    op.drop_table('sms_number')
    with op.batch_alter_table('outbound_message', schema=None) as batch_op:
        batch_op.drop_index('ix_outbound_message_user')
        batch_op.drop_index('ix_outbound_message_provider_id')

    op.drop_table('outbound_message')
