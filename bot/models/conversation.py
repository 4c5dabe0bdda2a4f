"""Conversation area: per-user state, the message log, hand-off requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.models.base import Base, Redacted, utcnow


class ConversationState(Base):
    """Keyed by (channel, user_id): the dialog in progress and the short-term context (menus, last answer)."""

    __tablename__ = "conversation_state"
    __table_args__ = (UniqueConstraint("channel", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(128))
    labourer_id: Mapped[int | None] = mapped_column(ForeignKey("labourer.id", ondelete="SET NULL"))
    dialog: Mapped[str | None] = mapped_column(String(64))
    step: Mapped[str | None] = mapped_column(String(64))
    slots: Mapped[dict[str, Any]] = mapped_column(default=dict)
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MessageLog(Base):
    """Every inbound and outbound message. (channel, direction, external_id) dedupes platform retries."""

    __tablename__ = "message_log"
    __table_args__ = (
        UniqueConstraint("channel", "direction", "external_id"),
        Index("ix_message_log_user", "channel", "user_id", "id"),
        # The console's "what the knowledge lacks" reads the last days' messages (bot.knowledge_edits).
        Index("ix_message_log_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(128))
    direction: Mapped[str] = mapped_column(String(3))  # "in" | "out"
    external_id: Mapped[str | None] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16), default="text")
    text: Mapped[str] = mapped_column(Redacted(), default="")
    media_id: Mapped[str | None] = mapped_column(String(256))
    intent: Mapped[str | None] = mapped_column(String(32))
    confidence: Mapped[float | None]
    topic: Mapped[str | None] = mapped_column(String(40))
    entry_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="ok")  # in: ok|failed ; out: sent|queued|failed
    error: Mapped[str | None] = mapped_column(Text)
    # Set on a message pushed outside a direct reply (bot.channels.outbound.deliver): reply | notice | marketing
    purpose: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Handoff(Base):
    """A labourer asked for a person; the help desk sees the transcript."""

    __tablename__ = "handoff"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(128))
    labourer_id: Mapped[int | None] = mapped_column(ForeignKey("labourer.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(Redacted(), default="")
    transcript: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(16), default="open")
    # Where the request belongs (bot.scope): the labourer's registered township when made.
    county: Mapped[str | None] = mapped_column(String(32))
    township: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
