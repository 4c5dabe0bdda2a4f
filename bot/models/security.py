"""Inbound doors' shared memory (bot.security) when no Redis is configured: callback nonces seen, and
counters per key and time window. Both are short-lived; rows past their time are deleted as they are met."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.models.base import Base


class ReplayNonce(Base):
    """A signed callback's (timestamp, nonce), kept while its timestamp is still accepted. `fingerprint`
    is the SHA-256 of the body: the platform's own retry of the same push carries the same body."""

    __tablename__ = "replay_nonce"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(index=True)


class RateCounter(Base):
    """Events counted per key in fixed windows (`window` = epoch seconds // window length)."""

    __tablename__ = "rate_counter"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    window: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(Integer, default=0)
