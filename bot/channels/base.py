"""The two types every channel translates to and from. Nothing past the channel adapter sees platform data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bot.models.base import utcnow


@dataclass(frozen=True)
class InboundMessage:
    channel: str  # "wechat" | "sms" | "simulator"
    user_id: str  # openid, phone number, or the simulator's user name
    text: str = ""
    kind: str = "text"  # text | voice | image | location | link | video | event
    external_id: str | None = None  # the platform's message id (dedupe key); None: never deduped
    media_id: str | None = None
    event: str | None = None  # subscribe | unsubscribe | CLICK | SCAN | …
    event_key: str | None = None
    location: tuple[float, float] | None = None
    label: str | None = None  # location label / link title
    received_at: datetime = field(default_factory=utcnow)


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
    # Set when the reply is a marketing-type notice (SMS adds the opt-out text).
    marketing: bool = False
    # WeChat can show one article; other channels get the plain text.
    article_url: str | None = None

    def plain_text(self) -> str:
        """The rendering every channel can show: text, then the numbered choices."""
        if not self.choices:
            return self.text
        lines = [self.text] + [f"{i}. {c.label}" for i, c in enumerate(self.choices, start=1)]
        return "\n".join(lines)


class OutputChannel(Protocol):
    name: str

    def send(self, user_id: str, reply: Reply) -> str | None:
        """Deliver a reply outside the request that caused it; returns the provider's message id."""
        ...
