"""The one labourer registry (一库) and the lists derived from it (五名单).

ID numbers and phones are stored encrypted, with a keyed hash for look-up and a masked copy for display
(see bot.pii). The startup (创业意愿) and public-welfare (公益性岗位) lists are flags on the labourer,
set by officials; training needs, job wishes and working-away records are rows of their own.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from bot.models.base import Base, Redacted, utcnow


class Labourer(Base):
    __tablename__ = "labourer"
    __table_args__ = (
        # (migration 0022: the name in the place index, for an official's name search in their township)
        Index("ix_labourer_place_name", "county", "township", "village", "name"), Index("ix_labourer_name", "name"),
        # The console at a city's size (migration 0020): the two flag lists counted by place from small
        # indexes, and the labourer search's "last four digits" (masked copies have fixed lengths).
        Index("ix_labourer_wants_startup_place", "county", "township", "village",
              sqlite_where=text("wants_startup = 1"), postgresql_where=text("wants_startup = true")),
        Index("ix_labourer_public_welfare_post_place", "county", "township", "village",
              sqlite_where=text("public_welfare_post = 1"), postgresql_where=text("public_welfare_post = true")),
        Index("ix_labourer_id_last4", text("substr(id_number_masked, 15)")),
        Index("ix_labourer_phone_last4", text("substr(phone_masked, 8)")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32))
    id_number_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    id_number_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    id_number_masked: Mapped[str | None] = mapped_column(String(24))
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    phone_masked: Mapped[str | None] = mapped_column(String(16))
    gender: Mapped[str | None] = mapped_column(String(1))  # "M" | "F", from the ID number when known
    birth_date: Mapped[date | None]
    county: Mapped[str | None] = mapped_column(String(32))
    township: Mapped[str | None] = mapped_column(String(32))
    village: Mapped[str | None] = mapped_column(String(32))
    household_status: Mapped[str] = mapped_column(String(16), default="general")  # registered_poor | general
    employment_status: Mapped[str] = mapped_column(String(16), default="unknown")
    # unknown | unemployed | local | working_away | self_employed
    # Which of the programme's five channels employs them (the figures count by it), from the roster:
    # local_enterprise 本地企业 | public_welfare 公益性岗位 | workshop 扶贫车间/家庭工坊 | flexible 灵活就业 |
    # labour_export 劳务输出; None = not employed or not known.
    employment_channel: Mapped[str | None] = mapped_column(String(16))
    wechat_openid: Mapped[str | None] = mapped_column(String(64), unique=True)
    sms_number_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    subscribed_wechat: Mapped[bool] = mapped_column(Boolean, default=True)
    subscribed_sms: Mapped[bool] = mapped_column(Boolean, default=True)
    wants_startup: Mapped[bool] = mapped_column(Boolean, default=False)  # 创业意愿名单
    public_welfare_post: Mapped[bool] = mapped_column(Boolean, default=False)  # 公益性岗位名单
    source: Mapped[str] = mapped_column(String(16), default="roster")  # roster | self_reported
    verified: Mapped[bool] = mapped_column(Boolean, default=True)
    verify_note: Mapped[str | None] = mapped_column(Text)  # what the village assistant should check
    wechat_source: Mapped[str | None] = mapped_column(String(64))  # qrscene_ key of the poster scanned
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TrainingNeed(Base):
    """培训需求名单."""

    __tablename__ = "training_need"

    id: Mapped[int] = mapped_column(primary_key=True)
    labourer_id: Mapped[int] = mapped_column(ForeignKey("labourer.id", ondelete="CASCADE"), index=True)
    training_type: Mapped[str] = mapped_column(String(32), index=True)
    preferred_format: Mapped[str | None] = mapped_column(String(16))  # 农闲班 … or None = no preference
    available_from: Mapped[str | None] = mapped_column(String(64))  # as the labourer said it (农闲时, 下个月)
    available_date: Mapped[date | None]  # the same, read as a date when it names one
    available_until: Mapped[date | None]  # the last day of a range (开春 → 5月31日, 3月到5月), when said
    township: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | arranged | trained | cancelled
    channel: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class JobWish(Base):
    """求职/就业意愿名单."""

    __tablename__ = "job_wish"

    id: Mapped[int] = mapped_column(primary_key=True)
    labourer_id: Mapped[int] = mapped_column(ForeignKey("labourer.id", ondelete="CASCADE"), index=True)
    job_type: Mapped[str] = mapped_column(String(32), index=True)
    place_scope: Mapped[str | None] = mapped_column(String(16))  # 本地 | 县内 | 市内 | 省内 | 省外
    place: Mapped[str | None] = mapped_column(String(32))  # a named city or province
    min_monthly_pay: Mapped[int | None]
    start_when: Mapped[str | None] = mapped_column(String(64))
    start_date: Mapped[date | None]
    start_until: Mapped[date | None]  # the last day of a range, when said
    accepts_public_welfare: Mapped[bool | None]
    accepts_home_based: Mapped[bool | None]
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | matched | employed | cancelled
    channel: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WorkingAway(Base):
    """转移就业名单: labourers working outside their county."""

    __tablename__ = "working_away"

    id: Mapped[int] = mapped_column(primary_key=True)
    labourer_id: Mapped[int] = mapped_column(ForeignKey("labourer.id", ondelete="CASCADE"), index=True)
    place: Mapped[str | None] = mapped_column(String(32))
    employer: Mapped[str | None] = mapped_column(Redacted(64))  # free text: IDs and phones masked (bot.pii.redact)
    job_type: Mapped[str | None] = mapped_column(String(32))
    since: Mapped[str | None] = mapped_column(String(32))
    channel: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)



class FiguresSnapshot(Base):
    """The programme's figures of every village (and the complaints of every township), counted together in
    the background so the dashboard reads one row (bot.roster_figures). One row, id 1."""

    __tablename__ = "figures_snapshot"

    id: Mapped[int] = mapped_column(primary_key=True)
    groups: Mapped[list[Any]] = mapped_column(JSON)  # [county, township, village, {figure: value}] each
    computed_at: Mapped[datetime]
    refreshing_at: Mapped[datetime | None]  # a worker counting afresh since then
