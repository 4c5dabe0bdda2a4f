"""The help desk: the queue, a case and what staff do to it, the labourer's side of it.

Every query goes through bot.scope (a ticket outside the actor's area is NotFound, never counted);
every change is audited. Staff replies leave through the one send boundary,
`bot.channels.outbound.deliver`, over the channel the labourer used; internal notes never reach it.

While the desk waits for the labourer, for a few days after a complaint was resolved, and while a person
handles a hand-off, the conversation
carries a marker (`context["desk"]`): the pre-route hook `labourer_message` then files what the
labourer writes on the ticket — a waiting ticket continues and a resolved one reopens (in_progress) —
and a hand-off being handled
keeps the bot quiet. The marker saves every other message a query; the hook checks it against the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from rapidfuzz import fuzz
from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from bot.audit import audit
from bot.db import session_scope
from bot.auth import Actor
from bot.channels.base import Reply, SendResult
from bot.conversation import Services, Turn
from bot.errors import Invalid, NotFound
from bot.helpdesk_evidence import FETCHABLE_CHANNELS
from bot.helpdesk_sla import SlaPolicy
from bot.models import (
    Complaint,
    ComplaintEvidence,
    ConversationState,
    OutboundMessage,
    Staff,
    StaffNotification,
    Ticket,
    TicketEvent,
    TicketMessage,
    utcnow,
)
from bot.models.complaints import (
    OPEN_STATUSES,
    STATUSES,
    WAITING,
    ComplaintTransitionError,
    add_message,
    transition_ticket,
)
from bot.scope import covers, scope_where, visible_areas

PAGE_SIZE = 50
# The desk's replies are answers to the person (essential: no opt-out or frequency cap applies).
DESK_PURPOSE = "reply"
ATTENDED_HANDOFF = ("assigned", "in_progress", WAITING)  # a person is on it: the bot keeps quiet
DUE_SOON = timedelta(hours=2)  # a target this close is shown as a reminder to the assignee
REOPEN_DAYS = 7  # a labourer who writes this soon after their complaint was resolved reopens it
NO_AREA = "none"  # the `county` filter value for cases nobody could place (the unassigned-area queue)
SIMILAR_EMPLOYER = 85  # rapidfuzz score from which two tickets name the same employer (collective case)
REOPENED = ("resolved", "rejected", "closed")  # a ticket moving from these to in_progress was reopened


class DeskConflict(ComplaintTransitionError):
    """A desk action the case's state does not allow (merging a ticket into itself, …): a 409."""


@dataclass(frozen=True)
class QueueFilter:
    status: str | None = None
    category: str | None = None
    urgent: bool | None = None
    county: str | None = None  # NO_AREA: cases without an area
    township: str | None = None
    assignee: str | None = None
    overdue: bool | None = None
    due_soon: bool = False  # not overdue yet, but within DUE_SOON of a target
    kind: str | None = None
    channel: str | None = None
    open_only: bool = False
    unassigned: bool = False


def not_merged() -> Any:
    # Said by id against the few merged ones (their own index), so a queue filtered by area and status is
    # still read from the index alone.
    return Ticket.id.not_in(select(Ticket.id).where(Ticket.merged_into_id.is_not(None)).scalar_subquery())


def overdue_condition(now: datetime) -> Any:
    """Open, and past a target (a first response not given in time, or the resolution)."""
    return and_(
        Ticket.status.in_(OPEN_STATUSES),
        or_(and_(Ticket.first_response_at.is_(None), Ticket.first_response_due_at < now), Ticket.resolve_due_at < now),
    )


def due_soon_condition(now: datetime) -> Any:
    """Open, not overdue, and a target falls within DUE_SOON: the reminder on the assignee's queue."""
    soon = now + DUE_SOON
    return and_(~overdue_condition(now), Ticket.status.in_(OPEN_STATUSES), or_(
        and_(Ticket.first_response_at.is_(None), Ticket.first_response_due_at < soon), Ticket.resolve_due_at < soon))


def queue_query(actor: Actor, filters: QueueFilter, now: datetime) -> Select[Any]:
    query = scope_where(select(Ticket), actor)
    f = filters
    if f.status:
        query = query.where(Ticket.status == f.status)
    elif f.open_only:
        query = query.where(Ticket.status.in_(OPEN_STATUSES))
    if not (f.open_only or f.status) or f.status == "closed":  # a merged ticket is closed: only then look
        query = query.where(not_merged())
    for column, value in ((Ticket.category, f.category), (Ticket.kind, f.kind), (Ticket.channel, f.channel),
                          (Ticket.township, f.township), (Ticket.assignee, f.assignee)):
        if value:
            query = query.where(column == value)
    if f.county == NO_AREA:
        query = query.where(Ticket.county.is_(None))
    elif f.county:
        query = query.where(Ticket.county == f.county)
    if f.urgent is not None:
        query = query.where(Ticket.urgent.is_(f.urgent))
    if f.unassigned:
        query = query.where(Ticket.assignee.is_(None))
    if f.overdue is not None:
        condition = overdue_condition(now)
        query = query.where(condition if f.overdue else ~condition)
    if f.due_soon:
        query = query.where(due_soon_condition(now))
    return query


def list_tickets(session: Session, actor: Actor, filters: QueueFilter, *, now: datetime | None = None,
                 offset: int = 0, limit: int = PAGE_SIZE) -> tuple[list[Ticket], int]:
    """One page of the queue (newest first) and the number of tickets it has."""
    query = queue_query(actor, filters, now or utcnow())
    total = session.scalar(query.with_only_columns(func.count(), maintain_column_froms=True)) or 0
    newest = (Ticket.created_at.desc(), Ticket.id.desc())
    # The page's ids first, from the index where the filter allows it; then only those rows are read.
    page = query.with_only_columns(Ticket.id).order_by(*newest).offset(offset).limit(limit)
    rows = session.scalars(select(Ticket).where(Ticket.id.in_(page)).order_by(*newest)).all()
    return list(rows), total


def queue_counts(session: Session, actor: Actor, *, now: datetime | None = None) -> dict[str, int]:
    """Counters for the queue's views, all within the actor's area: per status (merged tickets not
    counted), and the open tickets that are mine, unassigned, overdue, urgent or without an area."""
    now = now or utcnow()

    def count_if(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    overdue = overdue_condition(now)
    row = session.execute(scope_where(select(
        func.count().label("open"),
        count_if(Ticket.assignee == actor.username).label("mine"),
        count_if(Ticket.assignee.is_(None)).label("unassigned"),
        count_if(overdue).label("overdue"),
        count_if(and_(Ticket.assignee == actor.username, due_soon_condition(now))).label("mine_due_soon"),
        count_if(Ticket.urgent.is_(True)).label("urgent"),
        count_if(Ticket.county.is_(None)).label("no_area"),
    ).select_from(Ticket).where(Ticket.status.in_(OPEN_STATUSES)), actor, Ticket)).one()
    counts = {k: int(v or 0) for k, v in row._mapping.items()}
    by_status = dict(session.execute(
        scope_where(select(Ticket.status, func.count()), actor, Ticket).where(not_merged()).group_by(Ticket.status)).all())
    counts.update({status: int(by_status.get(status, 0)) for status in STATUSES})
    return counts


def find_ticket(session: Session, actor: Actor, ticket_no: str) -> Ticket:
    """The ticket by number, or NotFound — also for one outside the actor's area."""
    ticket = session.scalars(scope_where(select(Ticket).where(Ticket.ticket_no == ticket_no), actor)).one_or_none()
    if ticket is None:
        raise NotFound("no such ticket")
    return ticket


def find_ticket_or_none(session: Session, actor: Actor, ticket_no: str) -> Ticket | None:
    try:
        return find_ticket(session, actor, ticket_no)
    except NotFound:
        return None


def case_ids(session: Session, ticket: Ticket) -> list[int]:
    """The ticket and those merged into it: one history."""
    merged = session.scalars(select(Ticket.id).where(Ticket.merged_into_id == ticket.id)).all()
    return [ticket.id, *merged]


@dataclass(frozen=True)
class Delivered:
    """How a message's delivery reads on the case page and in the API: the desk's own state of the send
    (sending, sent, failed before the provider took it, unknown after a timeout) until the provider's receipt
    settles its outbox row (delivered, or failed with the provider's error), read through `outbound_id`."""

    state: str | None
    error: str | None


def delivered(message: TicketMessage, outbox: OutboundMessage | None) -> Delivered:
    if message.delivery == "sent" and outbox is not None and outbox.receipt_at is not None:
        error = None if outbox.status == "delivered" else f"{outbox.error_code}: {outbox.error or ''}"[:200]
        return Delivered(outbox.status, error)
    return Delivered(message.delivery, message.delivery_error)


def case_messages(session: Session, ticket: Ticket) -> list[tuple[TicketMessage, Delivered]]:
    """The case's messages, oldest first, each with its delivery (see Delivered)."""
    rows = session.execute(
        select(TicketMessage, OutboundMessage).outerjoin(OutboundMessage, OutboundMessage.id == TicketMessage.outbound_id)
        .where(TicketMessage.ticket_id.in_(case_ids(session, ticket)))
        .order_by(TicketMessage.created_at, TicketMessage.id))
    return [(message, delivered(message, outbox)) for message, outbox in rows]


def case_events(session: Session, ticket: Ticket) -> list[TicketEvent]:
    return list(session.scalars(select(TicketEvent).where(TicketEvent.ticket_id.in_(case_ids(session, ticket)))
                                .order_by(TicketEvent.created_at, TicketEvent.id)))


# ---- what staff do --------------------------------------------------------------------------------


def change_status(session: Session, actor: Actor, ticket: Ticket, to: str, *, sla: SlaPolicy,
                  now: datetime | None = None) -> TicketEvent:
    if to not in STATUSES:
        raise Invalid(f"unknown status {to!r}; one of: {', '.join(STATUSES)}")
    before = ticket.status
    event = transition_ticket(session, ticket, to, actor=actor.username, sla=sla, now=now)
    mark_attention(session, ticket)
    audit(session, actor, "ticket_transition", object_type=ticket.kind, object_id=ticket.ticket_no,
          detail={"from": before, "to": to})
    return event


def desk_member(session: Session, username: str, ticket: Ticket) -> Staff:
    staff = session.scalars(select(Staff).where(Staff.username == username)).one_or_none()
    if staff is None or not staff.active or staff.role not in ("admin", "helpdesk"):
        raise Invalid(f"{username} is not an active help-desk account")
    if not covers(Actor.of(staff), ticket.county, ticket.township):
        raise Invalid(f"{username} does not serve this ticket's area")
    return staff


def assign(session: Session, actor: Actor, ticket: Ticket, username: str, *, sla: SlaPolicy,
           now: datetime | None = None) -> None:
    """Give the ticket to a desk member of its area; a new ticket becomes "assigned"."""
    staff = desk_member(session, username.strip(), ticket)
    now = now or utcnow()
    before = ticket.assignee
    ticket.assignee = staff.username
    session.add(TicketEvent(ticket_id=ticket.id, kind="assign", actor=actor.username, created_at=now,
                            detail={"from": before, "to": staff.username}))
    if ticket.status == "new":
        transition_ticket(session, ticket, "assigned", actor=actor.username, sla=sla, now=now)
    mark_attention(session, ticket)
    audit(session, actor, "ticket_assign", object_type=ticket.kind, object_id=ticket.ticket_no,
          detail={"from": before, "to": staff.username})


def assign_round_robin(session: Session, actor: Actor, ticket: Ticket, *, sla: SlaPolicy) -> str:
    """Give the ticket to the area's desk member with the fewest open tickets (by name on a tie)."""
    members = [s for s in session.scalars(select(Staff).where(Staff.role == "helpdesk", Staff.active.is_(True))
                                          .order_by(Staff.username))
               if covers(Actor.of(s), ticket.county, ticket.township)]
    if not members:
        raise Invalid("no help-desk account serves this ticket's area")
    load = dict(session.execute(select(Ticket.assignee, func.count()).where(Ticket.status.in_(OPEN_STATUSES))
                                .group_by(Ticket.assignee)).all())
    chosen = min(members, key=lambda s: (load.get(s.username, 0), s.username))
    assign(session, actor, ticket, chosen.username, sla=sla)
    return chosen.username


def post_message(session: Session, services: Services, actor: Actor, ticket: Ticket, *, body: str,
                 visibility: str) -> TicketMessage:
    """A staff reply (public: sent now to the labourer over their channel) or internal note (never sent).
    The message is committed before the send, so it is kept whatever the provider answers."""
    body = body.strip()
    if not body:
        raise Invalid("the message is empty")
    message = add_message(session, ticket, source="staff", author=actor.username, body=body, visibility=visibility)
    audit(session, actor, "ticket_reply" if visibility == "public" else "ticket_note", object_type=ticket.kind,
          object_id=ticket.ticket_no, detail={"message_id": message.id})
    if visibility == "public":
        send_to_labourer(session, services, ticket, message)
    return message


def send_to_labourer(session: Session, services: Services, ticket: Ticket, message: TicketMessage) -> SendResult:
    from bot.channels.outbound import deliver  # the send boundary (it imports the channel clients)

    session.commit()  # deliver commits its outbox row itself: the reply is stored before any provider call
    result = deliver(session, services, channel=ticket.channel, user_id=ticket.user_id, reply=Reply(message.body),
                     purpose=DESK_PURPOSE)
    # A timeout: the provider may have it; only a receipt (or the outbox's reconciliation) can tell.
    message.delivery = "sent" if result.ok else ("unknown" if result.unknown else "failed")
    message.delivery_error = None if result.ok else f"{result.error_code}: {result.error}"[:200]
    message.outbound_id = result.outbound_id  # where its receipt will be (see Delivered)
    session.flush()
    return result


def notice_for(ticket: Ticket, before: str, to: str) -> str | None:
    """Which status change the labourer is told of (the text's key under helpdesk.), if any: a person took
    the case, the desk waits for them, it was resolved, rejected, closed without either, or reopened.
    Moving between the desk's own working states (assigned → in progress) is not news to them."""
    if before == to:
        return None
    if to == "assigned" and before == "new":
        return f"{ticket.kind}_assigned"
    if to == WAITING:
        return "status_waiting"
    if to in ("resolved", "rejected"):
        return "handoff_resolved" if ticket.kind == "handoff" else f"status_{to}"
    if to == "closed" and before not in ("resolved", "rejected"):
        return "handoff_resolved" if ticket.kind == "handoff" else "status_closed"
    if to == "in_progress" and before in REOPENED:
        return "status_reopened"
    return None


def notify_status(session: Session, services: Services, ticket: Ticket, before: str) -> TicketMessage | None:
    """Tell the labourer, on their channel, that their case changed from `before` to its status now (see
    notice_for); the notice is on the ticket with its delivery, like a reply."""
    key = notice_for(ticket, before, ticket.status)
    if key is None:
        return None
    body = services.kb.text(f"helpdesk.{key}", ticket=ticket.ticket_no)
    message = add_message(session, ticket, source="bot", body=body)
    message.delivery = "sending"
    send_to_labourer(session, services, ticket, message)
    return message


def place(session: Session, actor: Actor, ticket: Ticket, county: str, township: str | None, *,
          regions: dict[str, Any]) -> None:
    """Put a case nobody could place (or placed wrongly) in an area: a county of the regions, and one of its
    townships or none. The actor must serve the area it goes to; the complaint follows; audited."""
    known = {c["name"]: {t["name"] for t in c.get("townships") or ()} for c in (regions or {}).get("counties") or ()}
    if county not in known or (township and township not in known[county]):
        raise Invalid(f"unknown place {county}{township or ''}")
    if not covers(actor, county, township):
        raise Invalid("that area is not yours to give cases to")
    before = {"county": ticket.county, "township": ticket.township}
    ticket.county, ticket.township = county, township or None
    complaint = session.get(Complaint, ticket.complaint_id) if ticket.complaint_id is not None else None
    if complaint is not None:
        complaint.county, complaint.township = ticket.county, ticket.township
    after = {"county": ticket.county, "township": ticket.township}
    session.add(TicketEvent(ticket_id=ticket.id, kind="area", actor=actor.username, created_at=utcnow(),
                            detail={"from": before, "to": after}))
    audit(session, actor, "ticket_area", object_type=ticket.kind, object_id=ticket.ticket_no,
          detail={"from": before, "to": after})


MAX_AMOUNT = 100_000_000  # yuan: anything larger is a typing slip


def record_recovered(session: Session, actor: Actor, ticket: Ticket, amount: int) -> None:
    """The money recovered for the labourer on a complaint (挽回经济损失), in yuan."""
    complaint = session.get(Complaint, ticket.complaint_id) if ticket.complaint_id is not None else None
    if complaint is None:
        raise Invalid("money recovered is recorded on a complaint")
    if not 0 <= amount <= MAX_AMOUNT:
        raise Invalid(f"an amount between 0 and {MAX_AMOUNT} yuan")
    before = complaint.recovered_amount
    complaint.recovered_amount = amount
    session.add(TicketEvent(ticket_id=ticket.id, kind="recovered", actor=actor.username, created_at=utcnow(),
                            detail={"from": before, "to": amount}))
    audit(session, actor, "ticket_recovered", object_type=ticket.kind, object_id=ticket.ticket_no,
          detail={"from": before, "to": amount})


def recovered_by_county(session: Session, actor: Actor) -> list[tuple[str | None, int, int]]:
    """(county, yuan recovered, cases) within the actor's area, most first."""
    query = scope_where(
        select(Ticket.county, func.sum(Complaint.recovered_amount), func.count())
        .join(Complaint, Complaint.id == Ticket.complaint_id)
        .where(Complaint.recovered_amount > 0, Ticket.merged_into_id.is_(None))
        .group_by(Ticket.county), actor, Ticket)
    rows = [(county, int(total or 0), int(cases)) for county, total, cases in session.execute(query)]
    return sorted(rows, key=lambda row: -row[1])


def merge(session: Session, actor: Actor, duplicate: Ticket, into: Ticket, *, sla: SlaPolicy) -> None:
    """A duplicate joins another ticket: it is closed and its messages and events show in the other's
    history (nothing is moved or lost)."""
    if duplicate.id == into.id or into.merged_into_id is not None or duplicate.merged_into_id is not None:
        raise DeskConflict("a ticket merges into another open ticket, once")
    now = utcnow()
    if duplicate.status != "closed":
        transition_ticket(session, duplicate, "closed", actor=actor.username, sla=sla, now=now,
                          detail={"merged_into": into.ticket_no})
    duplicate.merged_into_id = into.id
    for ticket, other in ((duplicate, into), (into, duplicate)):
        session.add(TicketEvent(ticket_id=ticket.id, kind="merge", actor=actor.username, created_at=now,
                                detail={"into": into.ticket_no, "from": duplicate.ticket_no, "other": other.ticket_no}))
    mark_attention(session, duplicate)
    audit(session, actor, "ticket_merge", object_type=duplicate.kind, object_id=duplicate.ticket_no,
          detail={"into": into.ticket_no})


def similar(session: Session, actor: Actor, ticket: Ticket, *, limit: int = 20) -> list[tuple[Ticket, int]]:
    """Other complaints in the actor's area naming the same employer (or site): a collective case. Scored on
    the newest 2,000 complaints' names alone (no rows loaded but the ones shown)."""
    if not ticket.employer:
        return []
    candidates = session.execute(
        scope_where(select(Ticket.id, Ticket.employer, Ticket.site, Ticket.group_id, Ticket.created_at), actor, Ticket)
        .where(Ticket.id != ticket.id, Ticket.kind == "complaint", Ticket.merged_into_id.is_(None),
               Ticket.employer.is_not(None))
        .order_by(Ticket.created_at.desc()).limit(2000)
    ).all()
    scored = []
    for other_id, employer, site, group_id, created_at in candidates:
        score = fuzz.token_set_ratio(ticket.employer, employer or "")
        if ticket.site and site:
            score = max(score, min(fuzz.token_set_ratio(ticket.site, site), score + 10))
        if score >= SIMILAR_EMPLOYER or (ticket.group_id is not None and group_id == ticket.group_id):
            scored.append((other_id, int(score), created_at))
    scored.sort(key=lambda found: (-found[1], found[2]))
    chosen = scored[:limit]
    rows = {t.id: t for t in session.scalars(select(Ticket).where(Ticket.id.in_([c[0] for c in chosen])))}
    return [(rows[other_id], score) for other_id, score, _ in chosen if other_id in rows]


def link(session: Session, actor: Actor, lead: Ticket, others: list[Ticket]) -> None:
    """Group complaints into one collective case led by `lead` (its group id is the lead's id)."""
    group = lead.group_id or lead.id
    lead.group_id = group
    now = utcnow()
    for other in others:
        if other.id == lead.id:
            continue
        other.group_id = group
        session.add(TicketEvent(ticket_id=other.id, kind="link", actor=actor.username, created_at=now,
                                detail={"group": lead.ticket_no}))
    session.add(TicketEvent(ticket_id=lead.id, kind="link", actor=actor.username, created_at=now,
                            detail={"members": [o.ticket_no for o in others]}))
    audit(session, actor, "ticket_link", object_type=lead.kind, object_id=lead.ticket_no,
          detail={"members": [o.ticket_no for o in others]})


def group_members(session: Session, actor: Actor, ticket: Ticket) -> list[Ticket]:
    if ticket.group_id is None:
        return []
    return list(session.scalars(scope_where(select(Ticket), actor)
                                .where(Ticket.group_id == ticket.group_id, Ticket.id != ticket.id)
                                .order_by(Ticket.created_at)))


def sees_unplaced(actor: Actor) -> bool:
    """Whether the actor sees the cases nobody could place (admins and all-county desk staff)."""
    return visible_areas(actor) is None


# ---- reminders to the assignee ---------------------------------------------------------------------

TARGETS = {"first_response": "首次回复", "resolve": "办结"}
REMIND_LATE = timedelta(days=1)  # a target passed longer ago than this (the scheduler was away) is not news


def remind_due(session: Session, *, now: datetime | None = None, tz: str = "Asia/Shanghai") -> list[StaffNotification]:
    """A reminder for the assignee of each open ticket with a target within DUE_SOON (or just passed): one per
    (ticket, target, due moment), so a sweep that runs again adds nothing, and a target that moved (the clock
    paused, the case reopened) is reminded again when it comes near."""
    now = now or utcnow()
    soon = now + DUE_SOON
    first_due = and_(Ticket.first_response_at.is_(None), Ticket.first_response_due_at < soon,
                     Ticket.first_response_due_at > now - REMIND_LATE)
    resolve_due = and_(Ticket.resolve_due_at < soon, Ticket.resolve_due_at > now - REMIND_LATE)
    tickets = list(session.scalars(select(Ticket).where(
        Ticket.status.in_(OPEN_STATUSES), Ticket.assignee.is_not(None), Ticket.merged_into_id.is_(None),
        or_(first_due, resolve_due))))
    if not tickets:
        return []
    known = {tuple(row) for row in session.execute(
        select(StaffNotification.ticket_id, StaffNotification.kind, StaffNotification.due_at)
        .where(StaffNotification.ticket_id.in_([t.id for t in tickets])))}
    made = []
    for ticket in tickets:
        targets = (("first_response", ticket.first_response_due_at if ticket.first_response_at is None else None),
                   ("resolve", ticket.resolve_due_at))
        for kind, due in targets:
            if due is None or not now - REMIND_LATE < due < soon or (ticket.id, kind, due) in known:
                continue
            made.append(StaffNotification(username=ticket.assignee, ticket_id=ticket.id, kind=kind, due_at=due,
                                          text=reminder_text(ticket.ticket_no, kind, due, now, tz), created_at=now))
    session.add_all(made)
    session.flush()
    return made


def reminder_text(ticket_no: str, kind: str, due: datetime, now: datetime, tz: str) -> str:
    when = due.astimezone(ZoneInfo(tz)).strftime("%m月%d日 %H:%M")
    if due <= now:
        return f"工单 {ticket_no} 已超过{TARGETS[kind]}时限（{when}），请尽快处理。"
    minutes = max(1, int((due - now).total_seconds() // 60))
    return f"工单 {ticket_no} 的{TARGETS[kind]}时限是 {when}，还剩 {minutes} 分钟。"


def unread_reminders(session: Session, actor: Actor, *, limit: int = 20) -> list[tuple[StaffNotification, str]]:
    """The actor's unread reminders, newest first, with their ticket's number (tickets still in the area)."""
    query = scope_where(select(StaffNotification, Ticket.ticket_no).join(Ticket, Ticket.id == StaffNotification.ticket_id)
                        .where(StaffNotification.username == actor.username, StaffNotification.read_at.is_(None)),
                        actor, Ticket)
    return [(n, no) for n, no in session.execute(query.order_by(StaffNotification.id.desc()).limit(limit))]


def mark_read(session: Session, actor: Actor, notification_id: int) -> None:
    found = session.get(StaffNotification, notification_id)
    if found is None or found.username != actor.username:
        raise NotFound("no such reminder")
    found.read_at = found.read_at or utcnow()


PUSH_FOR = timedelta(hours=1)  # a webhook that failed is tried again on the next sweeps for this long


def push_reminders(factory: sessionmaker[Session], webhook: str, *, now: datetime | None = None,
                   timeout: float = 5.0) -> int:
    """Post reminders not pushed yet to the reminder webhook (WeCom group robot JSON); returns how many went.
    The posts happen outside any transaction; a failure is kept and tried again on the next sweeps."""
    import requests

    if not webhook:
        return 0
    now = now or utcnow()
    with session_scope(factory) as session:
        todo = list(session.execute(select(StaffNotification.id, StaffNotification.username, StaffNotification.text)
                                    .where(or_(StaffNotification.pushed.is_(None), StaffNotification.pushed == "failed"),
                                           StaffNotification.created_at > now - PUSH_FOR)
                                    .order_by(StaffNotification.id).limit(100)))
    pushed = 0
    for notification_id, username, text in todo:
        body = {"msgtype": "text", "text": {"content": f"【维权服务台提醒】{username}：{text}"}}
        try:
            response = requests.post(webhook, json=body, timeout=timeout)
            ok = response.status_code == 200 and int((response.json() or {}).get("errcode", 0)) == 0
        except (requests.RequestException, ValueError):
            ok = False
        with session_scope(factory) as session:
            row = session.get(StaffNotification, notification_id)
            if row is not None:
                row.pushed = "pushed" if ok else "failed"
        pushed += ok
    return pushed


def sweep(settings: Any, factory: sessionmaker[Session], *, now: datetime | None = None,
          media: Any = None) -> dict[str, int]:
    """The desk's periodic work (the scheduler runs it every minute): reminders for near targets, their push
    to the webhook, and evidence photos not fetched yet (`media`: the WeChat API, when configured)."""
    from bot.helpdesk_evidence import fetch_pending

    with session_scope(factory) as session:
        reminded = len(remind_due(session, now=now, tz=settings.timezone))
    return {"reminded": reminded,
            "pushed": push_reminders(factory, settings.helpdesk_reminder_webhook, now=now),
            "fetched": fetch_pending(factory, media, settings.data_key, now=now) if media is not None else 0}


# ---- the labourer's side ------------------------------------------------------------------------------


def attending(ticket: Ticket, now: datetime) -> bool:
    """Whether what the labourer writes now belongs on this ticket."""
    if ticket.merged_into_id is not None:
        return False
    if ticket.kind == "handoff":
        return ticket.status in ATTENDED_HANDOFF
    return ticket.status == WAITING or (
        ticket.status == "resolved" and ticket.resolved_at is not None
        and now - ticket.resolved_at < timedelta(days=REOPEN_DAYS))


def mark_attention(session: Session, ticket: Ticket) -> None:
    """Keep the conversation's marker in step with the ticket: set while the desk waits for the
    labourer or handles a hand-off, removed otherwise."""
    attended = attending(ticket, utcnow())
    state = session.scalars(select(ConversationState).where(
        ConversationState.channel == ticket.channel, ConversationState.user_id == ticket.user_id)).one_or_none()
    if state is None:
        return
    context = dict(state.context or {})
    marked = context.get("desk")
    if attended:
        context["desk"] = ticket.ticket_no
    elif marked == ticket.ticket_no:
        context.pop("desk")
    else:
        return
    state.context = context


MEDIA_LABELS = {"image": "[照片]", "voice": "[语音]", "video": "[视频]", "location": "[位置]", "link": "[链接]"}


def labourer_message(turn: Turn) -> list[Reply] | None:
    """Pre-route hook: what the labourer writes while the desk waits for them (or handles their hand-off)
    goes on the ticket. A waiting ticket continues; a hand-off being handled keeps the bot quiet. A photo
    goes to the labourer's open ticket as evidence even when the desk is not waiting for them (fetched
    from WeChat once the message is committed)."""
    marked = (turn.state.context or {}).get("desk")
    msg = turn.message
    if msg.kind == "image" and msg.media_id and msg.channel in FETCHABLE_CHANNELS:
        # Whoever keeps the photo (the ticket here, the complaint dialog after filing), fetch it once committed.
        turn.after_commit(partial(fetch_evidence, turn.services, media_ids=[msg.media_id]))
    if not marked:
        return _photo_for_open_ticket(turn)
    session = turn.session
    ticket = session.scalars(select(Ticket).where(Ticket.ticket_no == marked)).one_or_none()
    attended = ticket is not None and ticket.channel == msg.channel and ticket.user_id == msg.user_id and \
        attending(ticket, utcnow())
    if not attended:
        context = dict(turn.state.context)
        context.pop("desk", None)
        turn.state.context = context
        return _photo_for_open_ticket(turn)
    assert ticket is not None
    _file_on_ticket(turn, ticket)
    if ticket.status in (WAITING, "resolved"):  # the labourer answered, or says it is not solved after all
        transition_ticket(session, ticket, "in_progress", actor="labourer", sla=SlaPolicy.of(turn.settings))
    if ticket.kind == "handoff":
        return []  # a person is answering: the bot says nothing
    context = dict(turn.state.context)
    context.pop("desk", None)
    turn.state.context = context
    return [Reply(turn.say("helpdesk.received", ticket=ticket.ticket_no))]


def _file_on_ticket(turn: Turn, ticket: Ticket) -> None:
    """The message as the labourer's on the ticket; a photo also as evidence, fetched after the commit."""
    msg = turn.message
    body = msg.text or turn.text or MEDIA_LABELS.get(msg.kind, f"[{msg.kind}]")
    add_message(turn.session, ticket, source="labourer", body=body)
    if msg.kind != "image" or not msg.media_id:
        return
    evidence = ComplaintEvidence(complaint_id=ticket.complaint_id, ticket_id=ticket.id, channel=msg.channel,
                                 kind="image", media_id=msg.media_id[:256])
    turn.session.add(evidence)


def _photo_for_open_ticket(turn: Turn) -> list[Reply] | None:
    """A photo outside any dialog from someone with an open ticket: evidence for the newest one."""
    msg = turn.message
    if msg.kind != "image" or not msg.media_id or (turn.state.context or {}).get("attach_media"):
        return None  # (right after filing, the complaint dialog takes photos: bot.dialogs.receive_media)
    ticket = turn.session.scalars(
        select(Ticket).where(Ticket.channel == msg.channel, Ticket.user_id == msg.user_id,
                             Ticket.status.in_(OPEN_STATUSES), Ticket.merged_into_id.is_(None))
        .order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(1)).one_or_none()
    if ticket is None:
        return None
    _file_on_ticket(turn, ticket)
    return [Reply(turn.say("helpdesk.photo_received", ticket=ticket.ticket_no))]


def fetch_evidence(services: Services, evidence_ids: list[int] | None = None, *,
                   media_ids: list[str] | None = None) -> int:
    """Fetch evidence files from WeChat (those given, else every pending one): see bot.helpdesk_evidence."""
    from bot.channels.outbound import channels  # the per-app WeChat client (token cache, HTTP pool)
    from bot.helpdesk_evidence import fetch_pending

    api = channels(services).wechat
    if not api.configured:
        return 0
    return fetch_pending(services.sessionmaker, api, services.settings.data_key, evidence_ids=evidence_ids,
                         media_ids=media_ids)
