"""Which way a message to a labourer goes, decided in one place for every sender (the dispatcher,
`bot.channels.outbound.deliver` and so waiting-list notices and help-desk replies).

    reachable(labourer, data_key)  -> the channels and addresses, in order (WeChat, then SMS)
    moves_on(result)               -> whether a failed try lets the next way be tried

The ways, in order: a WeChat customer-service message (inside the 48-hour window), a WeChat template
message (when one is configured), an SMS. The next way is tried only after a definite "no" (refused, the
window closed, the person unfollowed): never after a send whose outcome is unknown (it may have arrived),
nor after "busy" (the same way is tried again later).

No HTTP, no database: the business layer (scheduler/) imports it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from bot import pii
from bot.channels.base import SendResult

CHANNEL_ORDER = ("wechat", "sms")
# Per channel, the labourer's address and their "still wants notices there" flag: read here in Python, and by
# the planner as SQL (scheduler.audience.reachable), so both say the same about one person.
ADDRESS_FIELDS = {"wechat": ("wechat_openid", "subscribed_wechat"), "sms": ("phone_enc", "subscribed_sms")}
# WeChat: 45015 out of the 48-hour window, 45047 out of the customer-service quota since the last message.
WINDOW_CLOSED_CODES = frozenset({"45015", "45047"})
# Not a "no": the provider may have the message (see bot.channels.outbound).
UNDECIDED_CODES = frozenset({"outcome_unknown", "lookup_failed"})


class Reachable(Protocol):
    """A labourer as far as sending goes (the ORM row, or the dispatcher's claimed row)."""

    wechat_openid: str | None
    subscribed_wechat: bool
    phone_enc: bytes | None
    subscribed_sms: bool


@dataclass(frozen=True)
class Reach:
    channel: str  # wechat | sms
    address: str  # the openid, or the mainland mobile number (decrypted only for the send)


def reachable(labourer: Reachable, data_key: str, *, order: Iterable[str] = CHANNEL_ORDER,
              essential: bool = False) -> list[Reach]:
    """Where the labourer can be reached, in `order` (a campaign's channel order; WeChat first by default):
    WeChat when an openid is bound, SMS when a number is known — each unless they opted out of notices there.
    `essential` (an answer to the person, e.g. a help-desk reply) ignores the opt-outs, as SMS rules allow."""
    found: list[Reach] = []
    for channel in order:
        address, wanted = ADDRESS_FIELDS.get(channel, (None, None))
        value = getattr(labourer, address) if address else None
        if not value or not (essential or getattr(labourer, wanted)):
            continue
        found.append(Reach(channel, pii.decrypt(value, data_key) if channel == "sms" else value))
    return found


def moves_on(result: SendResult) -> bool:
    """The one fallback rule: after this try, may the next way be tried? Only after a definite "no"."""
    if result.ok or result.unknown or result.error_code in UNDECIDED_CODES:
        return False
    return not result.retryable or result.error_code in WINDOW_CLOSED_CODES
