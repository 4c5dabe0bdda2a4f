"""The help desk's API under /api/helpdesk: the queue, a case, replies and notes, status, assignment.

Every route is for admins and help-desk staff, within their area (bot.scope): a ticket of another
area answers 404 exactly like one that does not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from bot import helpdesk
from bot.api.deps import NOT_FOUND, STAFF_RESPONSES, ServicesDep, SessionDep, SettingsDep, require_role
from bot.api.fields import PathId, Text
from bot.api.routes.labourers import RevealOut
from bot.auth import Actor
from bot.helpdesk_sla import SlaPolicy
from bot.models import Ticket, TicketEvent, TicketMessage, utcnow
from bot.models.complaints import KINDS, STATUSES
from bot.reveal import reveal

router = APIRouter(prefix="/api/helpdesk", tags=["helpdesk"], responses=STAFF_RESPONSES)
DeskStaff = Annotated[Actor, require_role("admin", "helpdesk")]
TicketNo = Annotated[str, Path(min_length=3, max_length=20, pattern=r"^[A-Z]{2}-[0-9-]{1,17}$")]
CONFLICT: dict[int | str, dict[str, str]] = {409: {"description": "the workflow does not allow this"}}
Filter = Annotated[str | None, Query(max_length=64)]


class TicketOut(BaseModel):
    ticket_no: str
    kind: Literal["complaint", "handoff"]
    status: str
    category: str | None
    urgent: bool
    county: str | None
    township: str | None
    assignee: str | None
    created_at: datetime
    contact_phone: str | None = Field(description="masked (139****4567); POST …/complaints/{id}/reveal shows it")
    channel: str
    overdue: bool
    first_response_due_at: datetime | None
    resolve_due_at: datetime | None

    @classmethod
    def of(cls, ticket: Ticket, now: datetime) -> "TicketOut":
        return cls(ticket_no=ticket.ticket_no, kind=ticket.kind, status=ticket.status,  # type: ignore[arg-type]
                   category=ticket.category, urgent=ticket.urgent, county=ticket.county, township=ticket.township,
                   assignee=ticket.assignee, created_at=ticket.created_at, contact_phone=ticket.contact_phone_masked,
                   channel=ticket.channel, overdue=ticket.overdue(now),
                   first_response_due_at=ticket.first_response_due_at, resolve_due_at=ticket.resolve_due_at)


class TicketList(BaseModel):
    items: list[TicketOut]
    total: int


class EventOut(BaseModel):
    kind: str
    from_status: str | None
    to_status: str | None
    actor: str
    at: datetime
    detail: dict

    @classmethod
    def of(cls, event: TicketEvent) -> "EventOut":
        return cls(kind=event.kind, from_status=event.from_status, to_status=event.to_status, actor=event.actor,
                   at=event.created_at, detail=event.detail or {})


class MessageOut(BaseModel):
    id: int
    source: Literal["labourer", "bot", "staff"]
    author: str | None
    visibility: Literal["public", "internal"]
    body: str
    delivery: str | None
    at: datetime

    @classmethod
    def of(cls, message: TicketMessage, delivered: helpdesk.Delivered) -> "MessageOut":
        return cls(id=message.id, source=message.source, author=message.author,  # type: ignore[arg-type]
                   visibility=message.visibility, body=message.body, delivery=delivered.state,  # type: ignore[arg-type]
                   at=message.created_at)


class CaseOut(TicketOut):
    complaint_id: int | None
    handoff_id: int | None
    merged_into: str | None
    events: list[EventOut]
    messages: list[MessageOut]


class MessageIn(BaseModel):
    body: Text = Field(min_length=1, max_length=2000)
    visibility: Literal["public", "internal"]


class TransitionIn(BaseModel):
    to: Literal[STATUSES]  # type: ignore[valid-type]


class AssignIn(BaseModel):
    assignee: Text = Field(min_length=1, max_length=64)


def _flag(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")


@router.get("/tickets", response_model=TicketList)
def get_tickets(session: SessionDep, actor: DeskStaff, status: Filter = None, category: Filter = None,
                urgent: Filter = None, county: Filter = None, township: Filter = None, assignee: Filter = None,
                overdue: Filter = None, kind: Annotated[Literal[KINDS] | None, Query()] = None,  # type: ignore[valid-type]
                channel: Filter = None, offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
                limit: Annotated[int, Query(ge=1, le=500)] = helpdesk.PAGE_SIZE) -> TicketList:
    """The queue within the caller's area, newest first. `county=none`: cases nobody could place."""
    now = utcnow()
    filters = helpdesk.QueueFilter(status=status, category=category, urgent=_flag(urgent), county=county,
                                   township=township, assignee=assignee, overdue=_flag(overdue), kind=kind,
                                   channel=channel)
    rows, total = helpdesk.list_tickets(session, actor, filters, now=now, offset=offset, limit=limit)
    return TicketList(items=[TicketOut.of(t, now) for t in rows], total=total)


def _case(session: SessionDep, ticket: Ticket) -> CaseOut:
    now = utcnow()
    merged_into = session.get(Ticket, ticket.merged_into_id).ticket_no if ticket.merged_into_id else None
    return CaseOut(**TicketOut.of(ticket, now).model_dump(), complaint_id=ticket.complaint_id,
                   handoff_id=ticket.handoff_id, merged_into=merged_into,
                   events=[EventOut.of(e) for e in helpdesk.case_events(session, ticket)],
                   messages=[MessageOut.of(m, d) for m, d in helpdesk.case_messages(session, ticket)])


@router.get("/tickets/{ticket_no}", response_model=CaseOut, responses=NOT_FOUND)
def get_ticket(ticket_no: TicketNo, session: SessionDep, actor: DeskStaff) -> CaseOut:
    return _case(session, helpdesk.find_ticket(session, actor, ticket_no))


@router.post("/tickets/{ticket_no}/messages", response_model=MessageOut, status_code=201, responses=NOT_FOUND)
def post_message(ticket_no: TicketNo, body: MessageIn, session: SessionDep, services: ServicesDep,
                 actor: DeskStaff) -> MessageOut:
    """A public reply is sent to the labourer over the channel they used (`delivery` says how it went);
    an internal note never leaves the desk."""
    ticket = helpdesk.find_ticket(session, actor, ticket_no)
    message = helpdesk.post_message(session, services, actor, ticket, body=body.body, visibility=body.visibility)
    return MessageOut.of(message, helpdesk.delivered(message, None))  # just sent: no receipt yet


@router.post("/tickets/{ticket_no}/transition", response_model=CaseOut, responses={**NOT_FOUND, **CONFLICT})
def post_transition(ticket_no: TicketNo, body: TransitionIn, session: SessionDep, services: ServicesDep,
                    settings: SettingsDep, actor: DeskStaff) -> CaseOut:
    ticket = helpdesk.find_ticket(session, actor, ticket_no)
    before = ticket.status
    helpdesk.change_status(session, actor, ticket, body.to, sla=SlaPolicy.of(settings))
    helpdesk.notify_status(session, services, ticket, before)
    return _case(session, ticket)


@router.post("/tickets/{ticket_no}/assign", response_model=CaseOut, responses={**NOT_FOUND, **CONFLICT})
def post_assign(ticket_no: TicketNo, body: AssignIn, session: SessionDep, services: ServicesDep,
                settings: SettingsDep, actor: DeskStaff) -> CaseOut:
    ticket = helpdesk.find_ticket(session, actor, ticket_no)
    before = ticket.status
    helpdesk.assign(session, actor, ticket, body.assignee, sla=SlaPolicy.of(settings))
    helpdesk.notify_status(session, services, ticket, before)
    return _case(session, ticket)


class ComplaintRevealIn(BaseModel):
    field: Literal["contact_phone"] = "contact_phone"
    reason: Text | None = Field(default=None, max_length=200)


@router.post("/complaints/{complaint_id}/reveal", response_model=RevealOut, responses=NOT_FOUND)
def post_reveal(complaint_id: PathId, body: ComplaintRevealIn, session: SessionDep, settings: SettingsDep,
                actor: DeskStaff) -> RevealOut:
    return RevealOut(value=reveal(session, actor, "complaint", complaint_id, body.field, data_key=settings.data_key,
                                  reason=body.reason))
