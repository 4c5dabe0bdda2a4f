"""What the dispatcher sends through: one Sender per channel.

The dispatcher never talks to a gateway itself; adapters here call the channels' own clients
(bot/channels/sms.py, bot/channels/wechat_api.py), which apply their own rules (per-number opt-out,
SMS frequency caps, the WeChat 48-hour window).

Crash safety needs one more thing from a sender: after a crash, a delivery left "sending" is settled by
`lookup` of its idempotency key: ok → it was sent; None → it never was (send it); a failure with
error_code "outcome_unknown" → nobody can tell, and the row fails rather than risk a second message;
"lookup_failed" → ask again later. A sender without `lookup` that does not deduplicate by key itself
is never retried blindly either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from bot.channels.base import SendResult

if TYPE_CHECKING:
    from bot.conversation import Services


@dataclass(frozen=True)
class OutboundDelivery:
    """One delivery as a sender needs it: where to, and the key that makes the send idempotent."""

    delivery_id: int
    campaign_id: int
    labourer_id: int
    channel: str  # wechat | sms
    address: str  # openid, or the mainland mobile number (decrypted only for this call)
    idempotency_key: str
    name: str = ""


class Sender(Protocol):
    channel: str

    def send(self, delivery: OutboundDelivery, text: str) -> SendResult: ...


@runtime_checkable
class Reconcilable(Protocol):
    def lookup(self, delivery: OutboundDelivery, since: datetime) -> SendResult | None:
        """What became of this delivery's last attempt, found by its idempotency key: ok (sent), None
        (never sent), error_code "outcome_unknown" (nobody can tell) or a retryable "lookup_failed"."""
        ...


def can_reconcile(sender: object) -> bool:
    return isinstance(sender, Reconcilable) or bool(getattr(sender, "deduplicates", False))


class _ChannelSender:
    """Base of the adapters over bot.channels: one short session per send. The channel's outbox row is
    committed as "sending" under the delivery's idempotency key before the provider call
    (bot.channels.outbound.send_recorded), so `lookup` finds it after a crash whatever the moment."""

    channel = ""

    def __init__(self, services: Services, purpose: str = "marketing") -> None:
        self.services, self.purpose = services, purpose

    def lookup(self, delivery: OutboundDelivery, since: datetime) -> SendResult | None:
        """The outbox row of the delivery's key: none or a failed attempt → None (never sent); sent →
        ok; still "sending" → the provider is asked where it can be (outcome_unknown where not)."""
        from sqlalchemy import select

        from bot.channels import outbound
        from bot.db import session_scope
        from bot.models import OutboundMessage

        with session_scope(self.services.sessionmaker) as session:
            row = session.scalars(
                select(OutboundMessage).where(OutboundMessage.idempotency_key == delivery.idempotency_key)
            ).one_or_none()
            found = None if row is None else outbound.earlier_outcome(session, self.services, row)
            return None if found is None else replace(found, outbound_id=row.id)


class WeChatSender(_ChannelSender):
    """Customer-service message inside the 48-hour window, else the configured template message. SMS is
    not tried here: the dispatcher falls back itself, so the delivery row says which channel carried it."""

    channel = "wechat"

    def send(self, delivery: OutboundDelivery, text: str) -> SendResult:
        from bot.channels import outbound, policy
        from bot.channels.base import Reply
        from bot.db import session_scope

        reply = Reply(text, marketing=self.purpose == "marketing")
        key = delivery.idempotency_key
        with session_scope(self.services.sessionmaker) as session:
            result = outbound.send_customer_service(session, self.services, delivery.address, reply,
                                                    purpose=self.purpose, key=key)
            if policy.moves_on(result) and self.services.settings.wechat_template_id:
                result = outbound.send_template(session, self.services, delivery.address, reply,
                                                purpose=self.purpose, key=key)
            return result


class SmsSender(_ChannelSender):
    """bot.channels.sms.send_sms: signature, opt-out text, per-number opt-out and caps, the outbox."""

    channel = "sms"

    def send(self, delivery: OutboundDelivery, text: str) -> SendResult:
        from bot.channels import sms
        from bot.db import session_scope

        with session_scope(self.services.sessionmaker) as session:
            return sms.send_sms(session, self.services, number=delivery.address, reply=text, purpose=self.purpose,
                                key=delivery.idempotency_key)


# The one table of senders per channel: bot.app.compose builds each from the process's services, once, and
# bot.app.dispatch_parts hands them to a dispatcher (scheduler/ never composes the pipeline itself).
CHANNEL_SENDERS: dict[str, Callable[[Services], Sender]] = {"wechat": WeChatSender, "sms": SmsSender}

