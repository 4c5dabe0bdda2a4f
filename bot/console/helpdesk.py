"""Console pages of the help desk (admins and help-desk staff, within their area): the queue with filters,
views and counts (updated in place with htmx), the Excel export, and a case — the conversation, the reply
box and internal notes, status buttons, assignment, the masked phone with 显示, duplicates merged and
complaints against the same employer grouped into one collective case. The work is done by bot.helpdesk,
as for the API."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import helpdesk, pii
from bot.api.deps import ServicesDep, SessionDep, SettingsDep
from bot.api.routes.helpdesk import TicketNo
from bot.audit import audit
from bot.auth import Actor
from bot.console.deps import console_role
from bot.console.pages import render
from bot.errors import Invalid, NotFound
from bot.api.fields import PathId
from bot.helpdesk_evidence import SHOWN_TYPES, case_evidence, pending_ids
from bot.helpdesk_evidence import evidence_file as stored_file
from bot.helpdesk_evidence import state_of as evidence_state
from bot.helpdesk_sla import SlaPolicy
from bot.models import Complaint, Handoff, JobWish, Labourer, Staff, Ticket, TrainingNeed, WorkingAway, utcnow
from bot.models.complaints import CATEGORIES, KINDS, STATUSES, TRANSITIONS, ComplaintTransitionError
from bot.reveal import may_reveal
from bot.scope import covers, scope_where, visible_areas

router = APIRouter(prefix="/console/helpdesk", include_in_schema=False)
Desk = Annotated[Actor, console_role("admin", "helpdesk")]
Pick = Annotated[str, Query(max_length=64)]
Short = Annotated[str, Form(max_length=64)]
Body = Annotated[str, Form(max_length=2000)]
VIEWS = ("open", "mine", "unassigned", "overdue", "urgent", "noarea", "all", "due_soon")
EXPORT_LIMIT = 100_000
PAGE_FETCHES = 4  # evidence photos a case page fetches from WeChat while the desk member waits
XLSX_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
EXPORT_HEADERS = ("工单号", "类型", "状态", "类别", "紧急", "县区", "乡镇", "负责人", "渠道", "联系电话（已隐藏）",
                  "用人单位", "建立时间", "应首次回复", "应办结", "已超时")
LABELS = {  # what the export's cells say for stored values (the pages use helpdesk/_labels.html)
    "status": {"new": "新工单", "assigned": "已分派", "in_progress": "处理中", "waiting_on_labourer": "等工友回复",
               "resolved": "已解决", "rejected": "不予受理", "closed": "已关闭"},
    "kind": {"complaint": "投诉", "handoff": "转人工"},
    "channel": {"wechat": "微信", "sms": "短信", "simulator": "模拟器"},
}


def desk_now(request: Request) -> datetime:
    """The desk pages' clock: now, unless a test set `app.state.desk_clock` (overdue and due-soon depend on it)."""
    clock = getattr(request.app.state, "desk_clock", None)
    return clock() if clock is not None else utcnow()


def _filters(actor: Actor, view: str, status: str, category: str, urgent: str, county: str, township: str,
             assignee: str, overdue: str, kind: str, channel: str) -> helpdesk.QueueFilter:
    """The queue's filter from the form: a value the form could not have sent is no filter."""
    return helpdesk.QueueFilter(
        status=status if status in STATUSES else None,
        category=category if category in CATEGORIES else None,
        urgent=True if urgent == "1" or view == "urgent" else None,
        county=helpdesk.NO_AREA if view == "noarea" else (county.strip() or None),
        township=township.strip() or None,
        assignee=actor.username if view in ("mine", "due_soon") else (assignee.strip() or None),
        overdue=True if overdue == "1" or view == "overdue" else None,
        kind=kind if kind in KINDS else None,
        channel=channel if channel in LABELS["channel"] else None,
        open_only=view != "all",
        unassigned=view == "unassigned",
        due_soon=view == "due_soon",
    )


def _places(services: Any, actor: Actor) -> list[dict[str, Any]]:
    areas = visible_areas(actor)
    return [{"name": c["name"], "townships": [t["name"] for t in c.get("townships") or ()]}
            for c in (services.kb.regions or {}).get("counties") or ()
            if areas is None or any(a.county == c["name"] for a in areas)]


@router.get("", response_class=HTMLResponse)
def queue(request: Request, session: SessionDep, services: ServicesDep, settings: SettingsDep, actor: Desk,
          view: Pick = "open", status: Pick = "", category: Pick = "", urgent: Pick = "", county: Pick = "",
          township: Pick = "", assignee: Pick = "", overdue: Pick = "", kind: Pick = "", channel: Pick = "",
          offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> HTMLResponse:
    view = view if view in VIEWS else "open"
    filters = _filters(actor, view, status, category, urgent, county, township, assignee, overdue, kind, channel)
    now = desk_now(request)
    rows, total = helpdesk.list_tickets(session, actor, filters, now=now, offset=offset)
    form = {"view": view, "status": status, "category": category, "urgent": urgent, "county": county,
            "township": township, "assignee": assignee, "overdue": overdue, "kind": kind, "channel": channel}
    kept = {k: v for k, v in form.items() if v}
    page = {
        "prev": urlencode({**kept, "offset": max(offset - helpdesk.PAGE_SIZE, 0)}) if offset else None,
        "next": urlencode({**kept, "offset": offset + helpdesk.PAGE_SIZE})
        if offset + helpdesk.PAGE_SIZE < total else None,
        "export": urlencode(kept),
    }
    context = dict(rows=rows, total=total, form=form, page=page, now=now, tz=settings.timezone,
                   counts=helpdesk.queue_counts(session, actor, now=now), statuses=STATUSES, categories=CATEGORIES,
                   places=_places(services, actor), sees_unplaced=helpdesk.sees_unplaced(actor),
                   recovered=helpdesk.recovered_by_county(session, actor),
                   desk_members=_members(session, actor), reminders=helpdesk.unread_reminders(session, actor),
                   may_clear=may_reveal(actor, "complaint", "contact_phone"))
    template = "helpdesk/_queue.html" if request.headers.get("HX-Request") else "helpdesk/queue.html"
    return render(request, template, actor, **context)


def _members(session: Session, actor: Actor, ticket: Ticket | None = None) -> list[str]:
    """Desk accounts (help desk and admins) the actor may hand a ticket to: those serving its area."""
    names = []
    for staff in session.scalars(select(Staff).where(Staff.role.in_(("admin", "helpdesk")), Staff.active.is_(True))
                                 .order_by(Staff.username)):
        if ticket is None or covers(Actor.of(staff), ticket.county, ticket.township):
            names.append(staff.username)
    return names


@router.get("/export.xlsx")
def export(request: Request, session: SessionDep, settings: SettingsDep, actor: Desk, view: Pick = "open", status: Pick = "",
           category: Pick = "", urgent: Pick = "", county: Pick = "", township: Pick = "", assignee: Pick = "",
           overdue: Pick = "", kind: Pick = "", channel: Pick = "",
           clear: Annotated[bool, Query()] = False) -> StreamingResponse:
    """The queue as filtered, phones masked — in clear only when asked (`clear=1`) by a role that may reveal
    them (bot.reveal); audited as an export with the filter used and whether phones were in clear."""
    filters = _filters(actor, view if view in VIEWS else "open", status, category, urgent, county, township,
                       assignee, overdue, kind, channel)
    now = desk_now(request)
    rows, total = helpdesk.list_tickets(session, actor, filters, now=now, limit=EXPORT_LIMIT)
    in_clear = clear and may_reveal(actor, "complaint", "contact_phone")
    phones = _clear_phones(session, rows, settings.data_key) if in_clear else None
    audit(session, actor, "export", object_type="ticket", detail={
        "what": "helpdesk_queue_xlsx", "rows": len(rows), "filter": {k: v for k, v in vars(filters).items() if v},
        "clear": ["contact_phone"] if in_clear else []})
    session.commit()
    body = b"".join(_xlsx(rows, now, settings.timezone, phones))
    stamp = now.astimezone(ZoneInfo(settings.timezone)).strftime("%Y%m%d-%H%M")
    return StreamingResponse(iter([body]), media_type=XLSX_MEDIA,
                             headers={"Content-Disposition": f'attachment; filename="helpdesk-{stamp}.xlsx"'})


def _clear_phones(session: Session, rows: list[Ticket], data_key: str) -> dict[int, str]:
    """ticket id → the complaint's contact phone in clear (the rows are already the actor's area)."""
    by_complaint = {t.complaint_id: t.id for t in rows if t.complaint_id is not None}
    phones: dict[int, str] = {}
    ids = list(by_complaint)
    for start in range(0, len(ids), 1000):
        for complaint_id, token in session.execute(select(Complaint.id, Complaint.contact_phone_enc).where(
                Complaint.id.in_(ids[start:start + 1000]), Complaint.contact_phone_enc.is_not(None))):
            phones[by_complaint[complaint_id]] = pii.decrypt(token, data_key)
    return phones


def _xlsx(rows: list[Ticket], now: datetime, tz: str, phones: dict[int, str] | None = None) -> Iterator[bytes]:
    from openpyxl import Workbook

    def local(moment: datetime | None) -> str:
        return moment.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M") if moment else ""

    book = Workbook(write_only=True)
    sheet = book.create_sheet("工单")
    headers = list(EXPORT_HEADERS)
    if phones is not None:
        headers[headers.index("联系电话（已隐藏）")] = "联系电话"
    sheet.append(headers)
    for t in rows:
        phone = phones.get(t.id, t.contact_phone_masked or "") if phones is not None else t.contact_phone_masked or ""
        sheet.append([t.ticket_no, LABELS["kind"].get(t.kind, t.kind), LABELS["status"].get(t.status, t.status),
                      t.category or "", "是" if t.urgent else "", t.county or "未分区", t.township or "",
                      t.assignee or "", LABELS["channel"].get(t.channel, t.channel), phone,
                      t.employer or "", local(t.created_at), local(t.first_response_due_at),
                      local(t.resolve_due_at), "是" if t.overdue(now) else ""])
    with tempfile.TemporaryFile() as out:
        book.save(out)
        out.seek(0)
        while chunk := out.read(1 << 16):
            yield chunk


@router.get("/reminders", response_class=HTMLResponse)
def reminders(request: Request, session: SessionDep, actor: Desk) -> HTMLResponse:
    """The signed-in member's unread reminders (the pages ask again every minute)."""
    return render(request, "helpdesk/_reminders.html", actor, reminders=helpdesk.unread_reminders(session, actor))


@router.post("/reminders/{notification_id}/read", response_class=HTMLResponse)
def reminder_read(notification_id: PathId, request: Request, session: SessionDep, actor: Desk) -> Response:
    helpdesk.mark_read(session, actor, notification_id)
    if request.headers.get("HX-Request"):
        session.commit()
        return render(request, "helpdesk/_reminders.html", actor, reminders=helpdesk.unread_reminders(session, actor))
    return RedirectResponse("/console/helpdesk", status_code=303)


# ---- one case ------------------------------------------------------------------------------------------


def _case_page(request: Request, session: Session, settings: Any, actor: Actor, ticket: Ticket, *,
               error: str | None = None, status_code: int = 200) -> HTMLResponse:
    now = desk_now(request)
    complaint = session.get(Complaint, ticket.complaint_id) if ticket.complaint_id else None
    handoff = session.get(Handoff, ticket.handoff_id) if ticket.handoff_id else None
    labourer = session.get(Labourer, ticket.labourer_id) if ticket.labourer_id else None
    evidence = case_evidence(session, ticket.complaint_id, helpdesk.case_ids(session, ticket))
    history = []
    if ticket.labourer_id is not None:
        history = scope_where(select(Ticket), actor).where(
            Ticket.labourer_id == ticket.labourer_id, Ticket.id != ticket.id).order_by(Ticket.created_at.desc())
        history = list(session.scalars(history.limit(20)))
    merged_into = session.get(Ticket, ticket.merged_into_id) if ticket.merged_into_id else None
    registrations = _registrations(session, ticket.labourer_id) if labourer is not None else None
    return render(
        request, "helpdesk/case.html", actor, status_code=status_code, t=ticket, complaint=complaint, handoff=handoff,
        labourer=labourer, evidence=[(e, evidence_state(e, now)) for e in evidence], history=history,
        merged_into=merged_into, now=now, tz=settings.timezone,
        messages=helpdesk.case_messages(session, ticket), events=helpdesk.case_events(session, ticket),
        moves=[s for s in TRANSITIONS.get(ticket.status, ()) if s != "assigned"],
        members=_members(session, actor, ticket), similar=helpdesk.similar(session, actor, ticket),
        group=helpdesk.group_members(session, actor, ticket), error=error,
        places=_places(request.app.state.services, actor),
        canned_values={"姓名": labourer.name if labourer else "工友", "工单号": ticket.ticket_no},
        reminders=helpdesk.unread_reminders(session, actor), registrations=registrations,
    )


def _registrations(session: Session, labourer_id: int) -> dict[str, list[Any]]:
    """What the labourer registered (training needs, job wishes, where they work away), newest first: the
    desk sees who it is helping, and where they said they work when the employer is the question."""
    def newest(model: Any) -> list[Any]:
        return list(session.scalars(select(model).where(model.labourer_id == labourer_id)
                                    .order_by(model.created_at.desc()).limit(10)))

    return {"training": newest(TrainingNeed), "jobs": newest(JobWish), "away": newest(WorkingAway)}


def _refused(request: Request, session: Session, settings: Any, actor: Actor, ticket_no: str, error: str,
             status_code: int) -> HTMLResponse:
    """The case page again, saying why the change was refused (nothing of it is kept)."""
    session.rollback()
    ticket = helpdesk.find_ticket(session, actor, ticket_no)
    return _case_page(request, session, settings, actor, ticket, error=error, status_code=status_code)


def _back(ticket: Ticket, note: str = "") -> RedirectResponse:
    return RedirectResponse(f"/console/helpdesk/{ticket.ticket_no}{note}", status_code=303)


@router.get("/{ticket_no}", response_class=HTMLResponse)
def case(ticket_no: TicketNo, request: Request, session: SessionDep, services: ServicesDep, settings: SettingsDep,
         actor: Desk) -> HTMLResponse:
    ticket = helpdesk.find_ticket(session, actor, ticket_no)
    waiting = pending_ids(session, evidence_ids=[e.id for e in case_evidence(
        session, ticket.complaint_id, helpdesk.case_ids(session, ticket))], untried=True, limit=PAGE_FETCHES)
    if waiting:  # photos nobody fetched yet (no scheduler running, say): fetch a few now, the sweep the rest
        session.rollback()  # nothing written: a fresh read afterwards sees what the fetch stored
        helpdesk.fetch_evidence(services, waiting)
        ticket = helpdesk.find_ticket(session, actor, ticket_no)
    return _case_page(request, session, settings, actor, ticket)


@router.get("/{ticket_no}/evidence/{evidence_id}")
def evidence_file(ticket_no: TicketNo, evidence_id: PathId, session: SessionDep, settings: SettingsDep,
                  actor: Desk) -> Response:
    """One stored photo of the case (never cached by the browser: it is personal data)."""
    ticket = helpdesk.find_ticket(session, actor, ticket_no)
    found = stored_file(session, ticket, helpdesk.case_ids(session, ticket), evidence_id, settings.data_key)
    if found is None:
        raise NotFound("no such evidence")
    data, content_type = found
    if content_type not in SHOWN_TYPES:  # served to the browser only as an image it can show, never as HTML
        content_type = "application/octet-stream"
    return Response(data, media_type=content_type, headers={
        "Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f'inline; filename="{ticket.ticket_no}-{evidence_id}"'})


@router.post("/{ticket_no}/messages", response_class=HTMLResponse)
def post_message(ticket_no: TicketNo, request: Request, session: SessionDep, services: ServicesDep,
                 settings: SettingsDep, actor: Desk, body: Body = "", visibility: Short = "public") -> Response:
    ticket = helpdesk.find_ticket(session, actor, ticket_no)
    if visibility not in ("public", "internal") or not body.strip():
        return _case_page(request, session, settings, actor, ticket, error="请先写好内容再发送", status_code=422)
    helpdesk.post_message(session, services, actor, ticket, body=body, visibility=visibility)
    return _back(ticket, "#messages")


@router.post("/{ticket_no}/transition", response_class=HTMLResponse)
def post_transition(ticket_no: TicketNo, request: Request, session: SessionDep, services: ServicesDep,
                    settings: SettingsDep, actor: Desk, to: Short = "") -> Response:
    ticket = helpdesk.find_ticket(session, actor, ticket_no)
    before = ticket.status
    try:
        helpdesk.change_status(session, actor, ticket, to, sla=SlaPolicy.of(settings))
    except (ComplaintTransitionError, Invalid):
        return _refused(request, session, settings, actor, ticket_no, "当前状态不能这样改，请刷新页面后再试", 409)
    helpdesk.notify_status(session, services, ticket, before)
    return _back(ticket)


@router.post("/{ticket_no}/assign", response_class=HTMLResponse)
def post_assign(ticket_no: TicketNo, request: Request, session: SessionDep, services: ServicesDep,
                settings: SettingsDep, actor: Desk, assignee: Short = "") -> Response:
    ticket = helpdesk.find_ticket(session, actor, ticket_no)
    before = ticket.status
    try:
        if assignee == "auto":
            helpdesk.assign_round_robin(session, actor, ticket, sla=SlaPolicy.of(settings))
        else:
            helpdesk.assign(session, actor, ticket, assignee or actor.username, sla=SlaPolicy.of(settings))
    except Invalid as exc:
        return _refused(request, session, settings, actor, ticket_no, f"不能分派：{exc}", 422)
    helpdesk.notify_status(session, services, ticket, before)
    return _back(ticket)


@router.post("/{ticket_no}/merge", response_class=HTMLResponse)
def post_merge(ticket_no: TicketNo, request: Request, session: SessionDep, settings: SettingsDep, actor: Desk,
               into: Short = "") -> Response:
    ticket = helpdesk.find_ticket(session, actor, ticket_no)
    try:
        target = helpdesk.find_ticket(session, actor, into.strip().upper())
        helpdesk.merge(session, actor, ticket, target, sla=SlaPolicy.of(settings))
    except (NotFound, ComplaintTransitionError) as exc:
        problem = "没有这个工单号" if isinstance(exc, NotFound) else "只能合并到另一个未合并的工单"
        return _refused(request, session, settings, actor, ticket_no, problem, 409)
    return _back(target)


@router.post("/{ticket_no}/link", response_class=HTMLResponse)
def post_link(ticket_no: TicketNo, request: Request, session: SessionDep, settings: SettingsDep, actor: Desk,
              others: Annotated[list[str], Form(max_length=200)] = []) -> Response:  # noqa: B006 - FastAPI form default
    ticket = helpdesk.find_ticket(session, actor, ticket_no)
    found = [helpdesk.find_ticket(session, actor, no) for no in dict.fromkeys(others) if no != ticket.ticket_no]
    if not found:
        return _case_page(request, session, settings, actor, ticket, error="请勾选要并案的工单", status_code=422)
    helpdesk.link(session, actor, ticket, found)
    return _back(ticket, "#group")


@router.post("/{ticket_no}/area", response_class=HTMLResponse)
def post_area(ticket_no: TicketNo, request: Request, session: SessionDep, services: ServicesDep,
              settings: SettingsDep, actor: Desk, county: Short = "", township: Short = "") -> Response:
    """A case nobody could place goes to a county's queue (admins and all-county desk staff triage them)."""
    ticket = helpdesk.find_ticket(session, actor, ticket_no)
    try:
        helpdesk.place(session, actor, ticket, county.strip(), township.strip() or None, regions=services.kb.regions)
    except Invalid:
        return _refused(request, session, settings, actor, ticket_no, "请选择本辖区内的县区和乡镇", 422)
    session.commit()
    if helpdesk.find_ticket_or_none(session, actor, ticket_no) is None:  # moved out of the actor's sight
        return RedirectResponse("/console/helpdesk", status_code=303)
    return _back(ticket)


@router.post("/{ticket_no}/recovered", response_class=HTMLResponse)
def post_recovered(ticket_no: TicketNo, request: Request, session: SessionDep, settings: SettingsDep, actor: Desk,
                   amount: Short = "") -> Response:
    ticket = helpdesk.find_ticket(session, actor, ticket_no)
    try:
        helpdesk.record_recovered(session, actor, ticket, int(amount.strip().removesuffix("元").replace(",", "")))
    except (ValueError, Invalid):
        return _refused(request, session, settings, actor, ticket_no, "请填写挽回的金额（元），比如 8000", 422)
    return _back(ticket)
