"""Rights complaints (维权投诉): tickets, their evidence, the help desk's replies and notes.

A ticket number reads WQ-YYYYMMDD-NNNN: NNNN counts the day's tickets (service time zone). The count
comes from one counter row per day, incremented with INSERT … ON CONFLICT DO UPDATE … RETURNING, which
both SQLite (>= 3.35) and PostgreSQL run atomically, so two workers filing at once never share a number.
Replies to the labourer and internal notes are one model with a visibility flag; only public ones ever
leave through a channel. Status changes go through `transition_complaint`, nowhere else.
"""

from __future__ import annotations

from datetime import date, datetime
from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from bot.db import dialect_insert
from bot.models.base import Base, Redacted, utcnow
from bot.models.registry import Labourer

CATEGORIES = ("欠薪", "工伤", "未签合同", "社保", "中介收费", "其他")
URGENT_WORKERS = 10  # ten or more workers affected makes a ticket urgent (as does an injury)

# status → the statuses it may move to
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("assigned", "in_progress", "resolved", "rejected", "closed"),
    "assigned": ("in_progress", "resolved", "rejected", "closed"),
    "in_progress": ("resolved", "rejected", "closed"),
    "resolved": ("closed", "in_progress"),
    "rejected": ("closed", "in_progress"),
    "closed": ("in_progress",),
}


class Complaint(Base):
    __tablename__ = "complaint"
    __table_args__ = (Index("ix_complaint_status", "status", "urgent"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_no: Mapped[str] = mapped_column(String(20), unique=True)
    labourer_id: Mapped[int | None] = mapped_column(ForeignKey("labourer.id", ondelete="SET NULL"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(128))
    category: Mapped[str] = mapped_column(String(16))
    employer: Mapped[str] = mapped_column(Redacted(128))  # free text: IDs and phones masked (bot.pii.redact)
    site: Mapped[str | None] = mapped_column(Redacted(256))
    amount_owed: Mapped[int | None]  # yuan
    period: Mapped[str | None] = mapped_column(String(32))  # how long unpaid, as read back (3个月)
    workers_affected: Mapped[int] = mapped_column(Integer, default=1)
    description: Mapped[str | None] = mapped_column(Redacted())
    contact_phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    contact_phone_hash: Mapped[str | None] = mapped_column(String(64))
    contact_phone_masked: Mapped[str | None] = mapped_column(String(16))
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    # Where the case belongs (bot.scope): the labourer's registered township when filed.
    county: Mapped[str | None] = mapped_column(String(32))
    township: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="new")
    assignee: Mapped[str | None] = mapped_column(String(64))
    recovered_amount: Mapped[int | None]  # 挽回经济损失, yuan
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    closed_at: Mapped[datetime | None]


class ComplaintEvidence(Base):
    """A photo (or other media) the labourer sent for a ticket; media_id is the channel's handle."""

    __tablename__ = "complaint_evidence"

    id: Mapped[int] = mapped_column(primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaint.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16), default="image")
    media_id: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ComplaintNote(Base):
    """A help-desk reply (visibility public: sent to the labourer) or an internal note (never sent)."""

    __tablename__ = "complaint_note"

    id: Mapped[int] = mapped_column(primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaint.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(64))
    visibility: Mapped[str] = mapped_column(String(8), default="internal")  # public | internal
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class TicketCounter(Base):
    """The last ticket number handed out on a day ("20261126")."""

    __tablename__ = "ticket_counter"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class ComplaintTransitionError(ValueError):
    pass


def next_ticket_no(session: Session, day: date) -> str:
    key = day.strftime("%Y%m%d")
    stmt = (
        dialect_insert(session, TicketCounter)
        .values(day=key, last=1)
        .on_conflict_do_update(index_elements=["day"], set_={"last": TicketCounter.last + 1})
        .returning(TicketCounter.last)
    )
    number = session.execute(stmt).scalar_one()
    return f"WQ-{key}-{number:04d}"


def is_urgent(category: str, workers_affected: int | None) -> bool:
    return category == "工伤" or (workers_affected or 0) >= URGENT_WORKERS


def create_complaint(
    session: Session,
    *,
    day: date,
    channel: str,
    user_id: str,
    category: str,
    employer: str,
    labourer_id: int | None = None,
    site: str | None = None,
    amount_owed: int | None = None,
    period: str | None = None,
    workers_affected: int | None = None,
    description: str | None = None,
    contact_phone: tuple[bytes, str, str] | None = None,  # (encrypted, lookup hash, masked)
    media_ids: list[str] | tuple[str, ...] = (),
) -> Complaint:
    if category not in CATEGORIES:
        raise ValueError(f"unknown complaint category {category!r}")
    complaint = Complaint(
        ticket_no=next_ticket_no(session, day),
        labourer_id=labourer_id,
        channel=channel,
        user_id=user_id,
        category=category,
        employer=employer[:128],
        site=site[:256] if site else None,
        amount_owed=amount_owed,
        period=period,
        workers_affected=workers_affected or 1,
        description=description,
        urgent=is_urgent(category, workers_affected),
    )
    labourer = session.get(Labourer, labourer_id) if labourer_id is not None else None
    if labourer is not None:
        complaint.county, complaint.township = labourer.county, labourer.township
    if contact_phone is not None:
        complaint.contact_phone_enc, complaint.contact_phone_hash, complaint.contact_phone_masked = contact_phone
    session.add(complaint)
    session.flush()
    for media_id in media_ids:
        add_evidence(session, complaint, channel=channel, media_id=media_id)
    return complaint


def add_evidence(session: Session, complaint: Complaint, *, channel: str, media_id: str, kind: str = "image") -> ComplaintEvidence:
    evidence = ComplaintEvidence(complaint_id=complaint.id, channel=channel, kind=kind, media_id=media_id)
    session.add(evidence)
    session.flush()
    return evidence


def transition_complaint(complaint: Complaint, to: str, *, actor: str, assignee: str | None = None) -> None:
    """The one place a ticket's status changes."""
    allowed = TRANSITIONS.get(complaint.status, ())
    if to not in allowed:
        raise ComplaintTransitionError(f"{complaint.ticket_no}: {complaint.status} → {to} is not allowed ({actor})")
    complaint.status = to
    if to == "assigned":
        complaint.assignee = assignee or actor
    complaint.closed_at = utcnow() if to == "closed" else None


def add_note(session: Session, complaint: Complaint, *, author: str, body: str, public: bool) -> ComplaintNote:
    note = ComplaintNote(complaint_id=complaint.id, author=author, body=body, visibility="public" if public else "internal")
    session.add(note)
    session.flush()
    return note


def latest_public_reply(session: Session, complaint_id: int) -> ComplaintNote | None:
    return session.scalars(
        select(ComplaintNote)
        .where(ComplaintNote.complaint_id == complaint_id, ComplaintNote.visibility == "public")
        .order_by(ComplaintNote.created_at.desc(), ComplaintNote.id.desc())
        .limit(1)
    ).first()
