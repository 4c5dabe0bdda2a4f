"""Rights complaints (维权投诉) and the help desk's tickets over them and over hand-off requests.

A complaint (what the labourer reported) and a hand-off request (bot.models.conversation.Handoff) each
open one `Ticket`: the desk's case, with its number, area, assignee, workflow status and service-level
clock. A complaint's ticket number reads WQ-YYYYMMDD-NNNN: NNNN counts the day's complaints (service time
zone), from one counter row per day incremented with INSERT … ON CONFLICT DO UPDATE … RETURNING, which
both SQLite (>= 3.35) and PostgreSQL run atomically, so two workers filing at once never share a number.
A hand-off's reads RG-<request id>, the number the bot gave the labourer ("编号 RG-12").

Everything said on a case is one `TicketMessage` with a visibility flag: the labourer's messages, the
bot's transcript, the desk's replies (public: sent to the labourer) and internal notes (never sent).
Status changes go through `transition_ticket`, nowhere else; it writes a `TicketEvent` row (from, to,
who, when) — the timeline, the service-level clock and the audit trail read those.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from lunardate import LunarDate
from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column, object_session

from bot.db import dialect_insert
from bot.helpdesk_sla import SlaPolicy
from bot.models.base import Base, Redacted, utcnow
from bot.models.conversation import Handoff, MessageLog
from bot.models.registry import Labourer

CATEGORIES = ("欠薪", "工伤", "未签合同", "社保", "中介收费", "其他")
URGENT_WORKERS = 10  # ten or more workers affected makes a ticket urgent (as does an injury)
# Wage arrears of a crew in the weeks before the Spring Festival: workers go home to pay for the year
# (the winter 根治欠薪 campaign runs up to the festival), so these cases cannot wait.
FESTIVAL_DAYS = 30
FESTIVAL_CREW = 3

STATUSES = ("new", "assigned", "in_progress", "waiting_on_labourer", "resolved", "rejected", "closed")
OPEN_STATUSES = ("new", "assigned", "in_progress", "waiting_on_labourer")
WAITING = "waiting_on_labourer"
# status → the statuses it may move to (resolved, rejected and closed may be reopened: in_progress)
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("assigned", "in_progress", WAITING, "resolved", "rejected", "closed"),
    "assigned": ("in_progress", WAITING, "resolved", "rejected", "closed"),
    "in_progress": (WAITING, "resolved", "rejected", "closed"),
    WAITING: ("in_progress", "resolved", "closed"),
    "resolved": ("closed", "in_progress"),
    "rejected": ("closed", "in_progress"),
    "closed": ("in_progress",),
}
KINDS = ("complaint", "handoff")
TRANSCRIPT_MESSAGES = 30  # the conversation copied into a new ticket, at most this many messages …
TRANSCRIPT_WINDOW = timedelta(hours=24)  # … of the last day


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
    status: Mapped[str] = mapped_column(String(24), default="new")  # its ticket's (transition_ticket)
    assignee: Mapped[str | None] = mapped_column(String(64))
    recovered_amount: Mapped[int | None]  # 挽回经济损失, yuan
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    closed_at: Mapped[datetime | None]


class ComplaintEvidence(Base):
    """A photo (or other media) the labourer sent for a complaint, or on a hand-off's ticket; media_id is the
    channel's handle. The file itself is fetched from the channel (WeChat keeps it three days) and stored
    encrypted in `content` (bot.helpdesk_evidence); `fetch_error` says why it could not be, yet or ever."""

    __tablename__ = "complaint_evidence"

    id: Mapped[int] = mapped_column(primary_key=True)
    complaint_id: Mapped[int | None] = mapped_column(ForeignKey("complaint.id", ondelete="CASCADE"), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16), default="image")
    media_id: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    content: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)  # encrypted (bot.pii.encrypt_bytes)
    content_type: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None]
    fetched_at: Mapped[datetime | None]
    fetch_attempts: Mapped[int] = mapped_column(Integer, default=0)
    fetch_error: Mapped[str | None] = mapped_column(String(200))


class Ticket(Base):
    """The desk's case over one complaint or one hand-off request."""

    __tablename__ = "ticket"
    __table_args__ = (
        Index("ix_ticket_queue", "status", "created_at"),
        Index("ix_ticket_area", "county", "township", "created_at"),
        # A county desk's queue and counters: its open statuses, newest first, counted from the index alone.
        Index("ix_ticket_county_status", "county", "status", "created_at"),
        Index("ix_ticket_assignee", "assignee", "status"),
        Index("ix_ticket_user", "channel", "user_id", "status"),
        Index("ix_ticket_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_no: Mapped[str] = mapped_column(String(20), unique=True)
    kind: Mapped[str] = mapped_column(String(10))  # complaint | handoff
    complaint_id: Mapped[int | None] = mapped_column(ForeignKey("complaint.id", ondelete="CASCADE"), unique=True)
    handoff_id: Mapped[int | None] = mapped_column(ForeignKey("handoff.id", ondelete="CASCADE"), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(128))
    labourer_id: Mapped[int | None] = mapped_column(ForeignKey("labourer.id", ondelete="SET NULL"), index=True)
    category: Mapped[str | None] = mapped_column(String(16))
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    employer: Mapped[str | None] = mapped_column(Redacted(128))  # for collective cases (bot.helpdesk.similar)
    site: Mapped[str | None] = mapped_column(Redacted(256))
    contact_phone_masked: Mapped[str | None] = mapped_column(String(16))
    # Where the case belongs (bot.scope); None when nobody knows: the "unassigned area" queue.
    county: Mapped[str | None] = mapped_column(String(32))
    township: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(24), default="new")
    assignee: Mapped[str | None] = mapped_column(String(64))
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id", ondelete="SET NULL"), index=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # The service-level clock (bot.helpdesk_sla): due moments are None while paused or once met.
    first_response_due_at: Mapped[datetime | None]
    resolve_due_at: Mapped[datetime | None]
    first_response_at: Mapped[datetime | None]
    waiting_since: Mapped[datetime | None]
    paused_seconds: Mapped[float] = mapped_column(Float, default=0.0)  # working seconds spent waiting
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def overdue(self, now: datetime) -> bool:
        return self.is_open and (
            (self.first_response_due_at is not None and self.first_response_at is None
             and self.first_response_due_at < now)
            or (self.resolve_due_at is not None and self.resolve_due_at < now)
        )


class TicketEvent(Base):
    """Something that happened to a ticket: a status change (from, to), an assignment, a merge, a link."""

    __tablename__ = "ticket_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # status | assign | merge | link
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str | None] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(64))  # a staff username, or "labourer" / "system"
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TicketMessage(Base):
    """One thing said on a case. visibility public: between the labourer and the desk (or the bot);
    internal: a note among staff, never sent. `delivery` follows a public staff reply to the channel."""

    __tablename__ = "ticket_message"
    __table_args__ = (Index("ix_ticket_message_ticket", "ticket_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(10))  # labourer | bot | staff
    author: Mapped[str | None] = mapped_column(String(64))  # the staff member's username
    visibility: Mapped[str] = mapped_column(String(8), default="public")  # public | internal
    body: Mapped[str] = mapped_column(Redacted())  # free text: IDs and phones masked (bot.pii.redact)
    # sending | sent | delivered | failed | unknown (staff replies and notices; receipts move sent on)
    delivery: Mapped[str | None] = mapped_column(String(12))
    delivery_error: Mapped[str | None] = mapped_column(String(200))
    # The outbox row the send left (bot.channels.outbound), which a delivery receipt updates.
    outbound_id: Mapped[int | None] = mapped_column(ForeignKey("outbound_message.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StaffNotification(Base):
    """A reminder for one staff member: a target of their ticket is near (or passed). Written once per
    (ticket, target, due moment) by bot.helpdesk.remind_due, shown in the console until read, and pushed
    to the optional reminder webhook."""

    __tablename__ = "staff_notification"
    __table_args__ = (
        UniqueConstraint("ticket_id", "kind", "due_at"),
        Index("ix_staff_notification_unread", "username", "read_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # first_response | resolve
    due_at: Mapped[datetime]
    text: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    pushed: Mapped[str | None] = mapped_column(String(16))  # pushed | failed (the webhook), None: no webhook
    read_at: Mapped[datetime | None]


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


def spring_festival(year: int) -> date:
    return LunarDate(year, 1, 1).to_solar_date()


def near_spring_festival(day: date) -> bool:
    """Within FESTIVAL_DAYS before the coming Spring Festival (or on it)."""
    festival = spring_festival(day.year)
    if festival < day:
        festival = spring_festival(day.year + 1)
    return (festival - day).days <= FESTIVAL_DAYS


def is_urgent(category: str, workers_affected: int | None, day: date | None = None) -> bool:
    workers = workers_affected or 0
    festival_crew = category == "欠薪" and workers >= FESTIVAL_CREW and day is not None and near_spring_festival(day)
    return category == "工伤" or workers >= URGENT_WORKERS or festival_crew


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
    area: tuple[str | None, str | None] | None = None,  # (county, township) said in the dialog
    sla: SlaPolicy | None = None,
) -> Complaint:
    """The complaint and its ticket. Its area is the labourer's registered township, else `area`."""
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
        urgent=is_urgent(category, workers_affected, day),
    )
    labourer = session.get(Labourer, labourer_id) if labourer_id is not None else None
    if labourer is not None and labourer.county:
        complaint.county, complaint.township = labourer.county, labourer.township
    elif area is not None:
        complaint.county, complaint.township = area
    if contact_phone is not None:
        complaint.contact_phone_enc, complaint.contact_phone_hash, complaint.contact_phone_masked = contact_phone
    session.add(complaint)
    session.flush()
    for media_id in media_ids:
        add_evidence(session, complaint, channel=channel, media_id=media_id)
    open_ticket(session, complaint=complaint, sla=sla)
    return complaint


def add_evidence(session: Session, complaint: Complaint, *, channel: str, media_id: str, kind: str = "image") -> ComplaintEvidence:
    evidence = ComplaintEvidence(complaint_id=complaint.id, channel=channel, kind=kind, media_id=media_id)
    session.add(evidence)
    session.flush()
    return evidence


# ---- tickets -----------------------------------------------------------------------------------


def open_ticket(session: Session, *, complaint: Complaint | None = None, handoff: Handoff | None = None,
                sla: SlaPolicy | None = None, now: datetime | None = None) -> Ticket:
    """The ticket of a new complaint or hand-off request, with the conversation so far as its first
    messages and its service-level clock started."""
    now = now or utcnow()
    sla = sla or SlaPolicy()
    if complaint is not None:
        ticket = Ticket(ticket_no=complaint.ticket_no, kind="complaint", complaint_id=complaint.id,
                        channel=complaint.channel, user_id=complaint.user_id, labourer_id=complaint.labourer_id,
                        category=complaint.category, urgent=complaint.urgent, employer=complaint.employer,
                        site=complaint.site, contact_phone_masked=complaint.contact_phone_masked,
                        county=complaint.county, township=complaint.township)
        transcript = _recent_log(session, complaint.channel, complaint.user_id, now)
    elif handoff is not None:
        labourer = session.get(Labourer, handoff.labourer_id) if handoff.labourer_id is not None else None
        ticket = Ticket(ticket_no=f"RG-{handoff.id}", kind="handoff", handoff_id=handoff.id,
                        channel=handoff.channel, user_id=handoff.user_id, labourer_id=handoff.labourer_id,
                        county=handoff.county, township=handoff.township,
                        contact_phone_masked=labourer.phone_masked if labourer is not None else None)
        transcript = [(m.get("direction"), m.get("text") or "", _moment(m.get("at"), now))
                      for m in handoff.transcript or ()]
    else:
        raise ValueError("a ticket is opened over a complaint or a hand-off request")
    ticket.status, ticket.created_at, ticket.paused_seconds = "new", now, 0.0
    session.add(ticket)
    session.flush()
    for direction, text, at in transcript:
        if text:
            session.add(TicketMessage(ticket_id=ticket.id, source="labourer" if direction == "in" else "bot",
                                      visibility="public", body=text, created_at=at))
    session.add(TicketEvent(ticket_id=ticket.id, kind="status", from_status=None, to_status="new", actor="labourer",
                            created_at=now))
    refresh_due(ticket, sla)
    session.flush()
    return ticket


def _recent_log(session: Session, channel: str, user_id: str, now: datetime) -> list[tuple[str, str, datetime]]:
    rows = session.scalars(
        select(MessageLog)
        .where(MessageLog.channel == channel, MessageLog.user_id == user_id,
               MessageLog.created_at >= now - TRANSCRIPT_WINDOW)
        .order_by(MessageLog.id.desc())
        .limit(TRANSCRIPT_MESSAGES)
    ).all()
    return [(m.direction, m.text, m.created_at) for m in reversed(rows)]


def _moment(value: object, default: datetime) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return default
    return moment if moment.tzinfo is not None else default


def refresh_due(ticket: Ticket, sla: SlaPolicy) -> None:
    """The due moments from the targets, the working time since filing and the time spent waiting."""
    if not ticket.is_open or ticket.status == WAITING:
        ticket.first_response_due_at = ticket.resolve_due_at = None  # met, given up, or paused
        return
    first, resolve = sla.target(kind=ticket.kind, category=ticket.category, urgent=ticket.urgent)
    paused = ticket.paused_seconds or 0.0
    ticket.first_response_due_at = None if ticket.first_response_at is not None else \
        sla.add_working(ticket.created_at, first * 3600 + paused)
    ticket.resolve_due_at = sla.add_working(ticket.created_at, resolve * 3600 + paused)


def transition_ticket(session: Session, ticket: Ticket, to: str, *, actor: str, sla: SlaPolicy,
                      now: datetime | None = None, detail: dict[str, Any] | None = None) -> TicketEvent:
    """The one place a ticket's status changes: checked against TRANSITIONS, an event row written, the
    clock paused or restarted, the complaint's or hand-off's own status kept in step."""
    if to not in TRANSITIONS.get(ticket.status, ()):
        raise ComplaintTransitionError(f"{ticket.ticket_no}: {ticket.status} → {to} is not allowed")
    now = now or utcnow()
    before = ticket.status
    if before == WAITING and ticket.waiting_since is not None:
        ticket.paused_seconds = (ticket.paused_seconds or 0.0) + sla.working_seconds(ticket.waiting_since, now)
        ticket.waiting_since = None
    if to == WAITING:
        ticket.waiting_since = now
    ticket.status = to
    ticket.resolved_at = now if to in ("resolved", "rejected") else (ticket.resolved_at if to == "closed" else None)
    ticket.closed_at = now if to == "closed" else None
    ticket.updated_at = now
    refresh_due(ticket, sla)
    event = TicketEvent(ticket_id=ticket.id, kind="status", from_status=before, to_status=to, actor=actor,
                        detail=detail or {}, created_at=now)
    session.add(event)
    if ticket.complaint_id is not None:
        complaint = session.get(Complaint, ticket.complaint_id)
        if complaint is not None:
            complaint.status, complaint.assignee = to, ticket.assignee
            complaint.closed_at = ticket.closed_at
    if ticket.handoff_id is not None:
        handoff = session.get(Handoff, ticket.handoff_id)
        if handoff is not None:
            handoff.status = "open" if to in OPEN_STATUSES else "closed"
    session.flush()
    return event


def ticket_of(session: Session, complaint: Complaint) -> Ticket:
    """The complaint's ticket (opened now for a complaint stored without one)."""
    ticket = session.scalars(select(Ticket).where(Ticket.complaint_id == complaint.id)).one_or_none()
    return ticket if ticket is not None else open_ticket(session, complaint=complaint, now=complaint.created_at)


def transition_complaint(complaint: Complaint, to: str, *, actor: str, assignee: str | None = None,
                         sla: SlaPolicy | None = None) -> None:
    """transition_ticket for a complaint's ticket (default service levels unless `sla` is given)."""
    session = object_session(complaint)
    if session is None:
        raise ValueError("the complaint must belong to a session")
    ticket = ticket_of(session, complaint)
    if to == "assigned":
        ticket.assignee = assignee or actor
    transition_ticket(session, ticket, to, actor=actor, sla=sla or SlaPolicy())


def add_message(session: Session, ticket: Ticket, *, source: str, body: str, visibility: str = "public",
                author: str | None = None, now: datetime | None = None) -> TicketMessage:
    if visibility not in ("public", "internal"):
        raise ValueError(f"visibility must be public or internal, not {visibility!r}")
    now = now or utcnow()
    message = TicketMessage(ticket_id=ticket.id, source=source, author=author, visibility=visibility, body=body,
                            created_at=now, delivery="sending" if source == "staff" and visibility == "public" else None)
    session.add(message)
    if source == "staff" and visibility == "public" and ticket.first_response_at is None:
        ticket.first_response_at = now
        ticket.first_response_due_at = None
    session.flush()
    return message


def add_note(session: Session, complaint: Complaint, *, author: str, body: str, public: bool) -> TicketMessage:
    """A staff reply (public) or internal note on a complaint's ticket, recorded without sending."""
    return add_message(session, ticket_of(session, complaint), source="staff", author=author, body=body,
                       visibility="public" if public else "internal")


def latest_public_reply(session: Session, complaint_id: int) -> TicketMessage | None:
    return session.scalars(
        select(TicketMessage)
        .join(Ticket, Ticket.id == TicketMessage.ticket_id)
        .where(Ticket.complaint_id == complaint_id, TicketMessage.visibility == "public",
               TicketMessage.source == "staff")
        .order_by(TicketMessage.created_at.desc(), TicketMessage.id.desc())
        .limit(1)
    ).first()
