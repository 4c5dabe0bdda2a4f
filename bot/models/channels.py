"""Channels area: the shared WeChat access token, WeChat followers (48-hour window, QR source),
every message a channel sent on its own (customer-service, template, SMS — the SMS outbox of the
`log` provider is this table), and per-number SMS state (opt-out, frequency caps).

Phone numbers never appear in clear: `number_hash` is bot.pii.lookup_hash of the normalized number
(also the SMS channel's user_id), `number_enc` the Fernet-encrypted number, `number_masked` for display.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.models.base import Base, utcnow


class WeChatToken(Base):
    """One row per app id: the access token every process uses, refreshed by one holder at a time."""

    __tablename__ = "wechat_token"

    appid: Mapped[str] = mapped_column(String(64), primary_key=True)
    access_token: Mapped[str] = mapped_column(Text, default="")
    expires_at: Mapped[datetime | None]
    # A process that claims the refresh sets this; others wait for the new token instead of fetching.
    refreshing_until: Mapped[datetime | None]
    refreshed_at: Mapped[datetime | None]
    refresh_count: Mapped[int] = mapped_column(Integer, default=0)


class WeChatFollower(Base):
    """What the platform's rules need per openid: following or not, where from, the 48-hour window."""

    __tablename__ = "wechat_follower"

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    subscribed: Mapped[bool] = mapped_column(Boolean, default=True)
    source: Mapped[str | None] = mapped_column(String(64))  # qrscene_ key of the poster scanned
    subscribed_at: Mapped[datetime | None]
    unsubscribed_at: Mapped[datetime | None]
    # The customer-service window opens with each message, click, scan or follow of the person.
    last_interaction_at: Mapped[datetime | None]
    # Set when WeChat answered 45015/45047: no more customer-service messages until they write again.
    window_closed: Mapped[bool] = mapped_column(Boolean, default=False)
    cs_sent: Mapped[int] = mapped_column(Integer, default=0)  # customer-service messages since last interaction


class OutboundMessage(Base):
    """A message a channel sent outside a passive reply, with its delivery status.

    status: sending | sent | logged (the `log` SMS provider) | delivered | failed | blocked
    (opt-out, frequency cap). The row is committed as "sending" before the provider call and updated
    with its answer (bot.channels.outbound.send_recorded), so a row left "sending" is a call whose
    outcome only the provider knows. Receipts (SMS reports, TEMPLATESENDJOBFINISH) find the row by
    (provider, provider_message_id) and settle it: sent → delivered | failed, with the provider's error and
    `receipt_at`. The receipt is this row's alone: a broadcast delivery or a desk message that the row
    carried reads it through its pointer (delivery.outbound_message_id, ticket_message.outbound_id).

    `idempotency_key` is the delivery's key when a broadcast sent the message (one row per key: a
    later attempt of the same delivery reuses it); None for replies and notices.
    """

    __tablename__ = "outbound_message"
    __table_args__ = (
        Index("ix_outbound_message_provider_id", "provider", "provider_message_id"),
        Index("ix_outbound_message_user", "channel", "user_id", "id"),
        # Unique where set: NULLs never collide, on PostgreSQL and SQLite alike.
        Index("ix_outbound_message_idempotency_key", "idempotency_key", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))  # wechat | sms
    kind: Mapped[str] = mapped_column(String(16))  # customer_service | template | mass | sms
    user_id: Mapped[str] = mapped_column(String(128))  # openid, SMS number hash, or "tag:<id>"
    number_masked: Mapped[str | None] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(16))  # wechat | log | aliyun | tencent
    provider_message_id: Mapped[str | None] = mapped_column(String(128))
    purpose: Mapped[str] = mapped_column(String(16), default="reply")  # reply | notice | marketing
    text: Mapped[str] = mapped_column(Text, default="")
    segments: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    error_code: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    receipt_at: Mapped[datetime | None]  # when a receipt settled the row (delivered or failed); None before
    idempotency_key: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SmsNumber(Base):
    """Per-number SMS state, kept even for numbers that are not in the registry."""

    __tablename__ = "sms_number"
    __table_args__ = (UniqueConstraint("number_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    number_hash: Mapped[str] = mapped_column(String(64))
    number_enc: Mapped[bytes] = mapped_column(LargeBinary)
    number_masked: Mapped[str] = mapped_column(String(16))
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_out_at: Mapped[datetime | None]
    opt_out_keyword: Mapped[str | None] = mapped_column(String(16))
    last_notice_at: Mapped[datetime | None]
    notice_day: Mapped[date | None]  # the local (Asia/Shanghai) day `notices_today` counts
    notices_today: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
