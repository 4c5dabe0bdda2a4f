"""The two types every channel translates to and from. Nothing past the channel adapter sees platform data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bot.models.base import utcnow


@dataclass(frozen=True)
class Address:
    """One person on one channel: the key of their conversation, their message log and their outbox.

    Built only by the channel adapters, from what the platform says about the sender:
    - "wechat": the follower's openid on our Official Account;
    - "sms": the look-up hash (bot.pii.lookup_hash) of the normalized mainland number; the number
      itself is never part of an address, and `bot.registry.address_phone` gives it back;
    - "simulator": the name the simulator's user typed. Its own namespace: a simulator user never
      resolves to a WeChat follower or an SMS number, whatever the name.
    """

    channel: str
    user_id: str


@dataclass(frozen=True)
class InboundMessage:
    address: Address
    text: str = ""
    kind: str = "text"  # text | voice | image | location | link | video | event
    external_id: str | None = None  # the platform's message id (dedupe key); None: never deduped
    media_id: str | None = None
    event: str | None = None  # subscribe | unsubscribe | CLICK | SCAN | …
    event_key: str | None = None
    location: tuple[float, float] | None = None
    label: str | None = None  # location label / link title
    received_at: datetime = field(default_factory=utcnow)

    @property
    def channel(self) -> str:
        return self.address.channel

    @property
    def user_id(self) -> str:
        return self.address.user_id


@dataclass(frozen=True)
class Choice:
    """One numbered option of a menu: replying with its number acts as if `text` were sent,
    or runs `action` ({"intent": ...} / {"detail": entry_id} / {"dialog": ...})."""

    label: str
    action: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    text: str
    choices: tuple[Choice, ...] = ()
    footer: str = ""  # shown after the numbered choices ("回复数字选择…")
    # Set when the reply is a marketing-type notice (SMS adds the opt-out text).
    marketing: bool = False
    # WeChat can show one article; other channels get the plain text.
    article_url: str | None = None

    def plain_text(self) -> str:
        """The rendering every channel can show: text, then the numbered choices."""
        if len(self.choices) == 1:  # a lone option reads as an instruction: "回复 1 看详细"
            lines = [self.text, f"回复 1 {self.choices[0].label}"]
        else:
            lines = [self.text] + [f"{i}. {c.label}" for i, c in enumerate(self.choices, start=1)]
        if self.footer:
            lines.append(self.footer)
        return "\n".join(line for line in lines if line)


@dataclass(frozen=True)
class SendResult:
    """What a provider said about one outbound message."""

    ok: bool
    provider_message_id: str | None = None
    error_code: str | None = None  # the provider's own code, e.g. "45015" or "isv.BUSINESS_LIMIT_CONTROL"
    error: str | None = None
    retryable: bool = False  # a temporary failure (busy, rate limit): try again later
    # The request may have reached the provider (a timeout, a connection lost after it was sent): only the
    # provider can say whether it went out, so it is neither a failure nor a success, and never resent blindly.
    unknown: bool = False
    # The outbox row (outbound_message.id) that recorded this attempt, when it went through one.
    outbound_id: int | None = None


class OutputChannel(Protocol):
    name: str

    def send(self, user_id: str, reply: Reply) -> SendResult:
        """Deliver a reply outside the request that caused it (customer-service API, SMS gateway)."""
        ...
