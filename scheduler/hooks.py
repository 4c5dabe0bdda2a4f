"""Where the channels' delivery receipts reach broadcast deliveries. bot.app.compose installs it, once
per process, and nothing else does."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bot.channels import outbound
from bot.models import OutboundMessage
from scheduler.dispatch import apply_receipt


def receipt_to_delivery(session: Session, message: OutboundMessage) -> None:
    """An SMS report or TEMPLATESENDJOBFINISH for a message a broadcast sent: sent → delivered | failed."""
    if message.provider_message_id and message.status in ("delivered", "failed"):
        apply_receipt(session, message.provider_message_id, delivered=message.status == "delivered",
                      error_code=message.error_code, error=message.error)


def install() -> None:
    if receipt_to_delivery not in outbound.receipt_listeners:
        outbound.receipt_listeners.append(receipt_to_delivery)
