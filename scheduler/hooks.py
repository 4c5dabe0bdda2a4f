"""Where the scheduler plugs into the rest of the app: replies to broadcasts before routing, and the
channels' delivery receipts onto delivery rows. Installed once by bot.intents.events (loaded with the
intent handlers in every process that runs the pipeline)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bot import conversation
from bot.channels import outbound
from bot.models import OutboundMessage
from scheduler.dispatch import apply_receipt
from scheduler.replies import broadcast_reply


def receipt_to_delivery(session: Session, message: OutboundMessage) -> None:
    """An SMS report or TEMPLATESENDJOBFINISH for a message a broadcast sent: sent → delivered | failed."""
    if message.provider_message_id and message.status in ("delivered", "failed"):
        apply_receipt(session, message.provider_message_id, delivered=message.status == "delivered",
                      error_code=message.error_code, error=message.error, idempotency_key=message.idempotency_key)


def install() -> None:
    if broadcast_reply not in conversation.PRE_ROUTE_HOOKS:
        conversation.PRE_ROUTE_HOOKS.append(broadcast_reply)
    if receipt_to_delivery not in outbound.receipt_listeners:
        outbound.receipt_listeners.append(receipt_to_delivery)
