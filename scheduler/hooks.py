"""Where the channels' delivery receipts reach broadcast deliveries: bot.app.compose lists
`receipt_to_delivery` among the services' receipt listeners (nothing installs it on import)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bot.models import OutboundMessage
from scheduler.dispatch import apply_receipt


def receipt_to_delivery(session: Session, message: OutboundMessage) -> None:
    """An SMS report or TEMPLATESENDJOBFINISH for an outbox row: the broadcast delivery that points at
    the row follows it, sent → delivered | failed."""
    if message.status in ("delivered", "failed"):
        apply_receipt(session, message.id, delivered=message.status == "delivered",
                      error_code=message.error_code, error=message.error)
