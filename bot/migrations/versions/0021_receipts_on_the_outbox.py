"""a provider's receipt lives only on its outbox row: outbound_message.receipt_at (when a receipt settled the
row, delivered or failed); delivery.delivered_at goes. A broadcast delivery keeps its own state ("sent" once
the provider took the message) and a desk message its own send state; both read the receipt through their
pointer (delivery.outbound_message_id, ticket_message.outbound_id).

Backfill: each receipt a delivery held moves to its row (normally already there, with the error: the row was
settled first), with the delivery's time; a row some other receipt settled (a desk reply's) takes its last
update as the time. Deliveries "delivered", and those failed as "undelivered" that point at a row, are "sent"
again; desk messages marked delivered or failed by a receipt are "sent" again. A "delivered" delivery with no
outbox row (older than the link of 0018) becomes "sent": nothing holds its receipt any more.

Revision ID: 0021
Revises: 0020
"""

import warnings
from contextlib import contextmanager

from alembic import op
import sqlalchemy as sa


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

# The deliveries of one row that held its receipt, by kind.
_DELIVERED = ("FROM delivery d WHERE d.outbound_message_id = outbound_message.id AND d.status = 'delivered'")
_UNDELIVERED = ("FROM delivery d WHERE d.outbound_message_id = outbound_message.id AND d.status = 'failed'"
                " AND d.failure_reason = 'undelivered'")
# The row a delivery or desk message points at, once a receipt settled it.
_ROW = "FROM outbound_message o WHERE o.id = {pointer} AND o.receipt_at IS NOT NULL"


@contextmanager
def _delivery_batch():
    """The delivery table altered in batch (SQLite copies it): reading its foreign keys reflects the labourer
    table too, whose two expression indexes (0020) SQLAlchemy cannot reflect and warns of on every new database;
    labourer itself is not copied, so its indexes are untouched and the warning says nothing here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index",
                                sa.exc.SAWarning)
        with op.batch_alter_table('delivery', schema=None) as batch_op:
            yield batch_op


def upgrade() -> None:
    with op.batch_alter_table('outbound_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('receipt_at', sa.DateTime(timezone=True), nullable=True))
    op.execute(
        f"UPDATE outbound_message SET status = 'delivered', receipt_at = (SELECT MAX(d.delivered_at) {_DELIVERED})"
        f" WHERE EXISTS (SELECT 1 {_DELIVERED})")
    op.execute(
        f"UPDATE outbound_message SET status = 'failed', receipt_at = (SELECT MAX(d.failed_at) {_UNDELIVERED}),"
        f" error_code = COALESCE(error_code, (SELECT MAX(d.error_code) {_UNDELIVERED})),"
        f" error = COALESCE(error, (SELECT MAX(d.error) {_UNDELIVERED}))"
        f" WHERE EXISTS (SELECT 1 {_UNDELIVERED})")
    # Receipts nothing else dated (a desk reply's; a delivery's without its time): the row's last change.
    # Only a receipt leaves a provider's id on a failed row (a refusal comes without one).
    op.execute(
        "UPDATE outbound_message SET receipt_at = updated_at WHERE receipt_at IS NULL"
        " AND (status = 'delivered' OR (status = 'failed' AND provider_message_id IS NOT NULL))")
    op.execute("UPDATE delivery SET status = 'sent' WHERE status = 'delivered'")
    op.execute(
        "UPDATE delivery SET status = 'sent', failure_reason = NULL, error_code = NULL, error = NULL, failed_at = NULL"
        " WHERE status = 'failed' AND failure_reason = 'undelivered' AND outbound_message_id IS NOT NULL")
    op.execute(
        "UPDATE ticket_message SET delivery = 'sent', delivery_error = NULL"
        " WHERE delivery IN ('delivered', 'failed') AND EXISTS (SELECT 1 "
        + _ROW.format(pointer="ticket_message.outbound_id") + " AND o.status = ticket_message.delivery)")
    with _delivery_batch() as batch_op:
        batch_op.drop_column('delivered_at')


def downgrade() -> None:
    """The receipts copied back onto the deliveries and desk messages, as before 0021."""
    with _delivery_batch() as batch_op:
        batch_op.add_column(sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True))
    row = _ROW.format(pointer="delivery.outbound_message_id")
    op.execute(
        f"UPDATE delivery SET status = 'delivered', delivered_at = (SELECT o.receipt_at {row})"
        f" WHERE status = 'sent' AND EXISTS (SELECT 1 {row} AND o.status = 'delivered')")
    op.execute(
        f"UPDATE delivery SET status = 'failed', failure_reason = 'undelivered',"
        f" error_code = (SELECT o.error_code {row}), error = (SELECT o.error {row}),"
        f" failed_at = (SELECT o.receipt_at {row})"
        f" WHERE status = 'sent' AND EXISTS (SELECT 1 {row} AND o.status = 'failed')")
    row = _ROW.format(pointer="ticket_message.outbound_id")
    op.execute(
        f"UPDATE ticket_message SET delivery = (SELECT o.status {row}),"
        f" delivery_error = (SELECT CASE WHEN o.status = 'failed' THEN"
        f" substr(COALESCE(o.error_code, '') || ': ' || COALESCE(o.error, ''), 1, 200) END {row})"
        f" WHERE delivery = 'sent' AND EXISTS (SELECT 1 {row} AND o.status IN ('delivered', 'failed'))")
    with op.batch_alter_table('outbound_message', schema=None) as batch_op:
        batch_op.drop_column('receipt_at')
