"""Officials' campaigns under /api/admin/campaigns: create (with Idempotency-Key), preview, schedule / pause /
resume / cancel, report, its timeline, CSV and Excel export — each in the caller's area; and the live count of
an audience not saved yet (`POST /audience`), which the console's campaign builder shows as filters change.

Creating a campaign takes an `Idempotency-Key` header: the same key with the same body answers with the
campaign already made, so a double-click never makes two campaigns; the same key with another body is refused.
"""

from __future__ import annotations

import csv
import hashlib
import json
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.api.deps import NOT_FOUND, STAFF_RESPONSES, ServicesDep, SessionDep, SettingsDep, require_role
from bot.api.fields import Count, Flag, Moment, Number, PathId, RowId, Text
from bot.audit import audit
from bot.auth import Actor
from bot.db import session_scope
from bot.models import Audience, Campaign, Delivery, IdempotencyKey, Labourer, utcnow
from bot.models.campaigns import DeliveryOutcome as Outcome
from bot.scope import get_scoped, scoped_filter
from bot.settings import Settings
from scheduler.audience import audience_where, validate_filter
from scheduler.manage import CampaignSpec, change_campaign_state, create_campaign, list_campaigns
from scheduler.planning import channel_expr
from scheduler.report import CSV_COLUMNS, preview, report, report_csv

router = APIRouter(prefix="/api/admin/campaigns", tags=["campaigns"], responses=STAFF_RESPONSES)
Official = Annotated[Actor, require_role("admin", "official")]


class AudienceIn(BaseModel):
    name: Text = Field(default="", max_length=128)
    filter: dict[str, Any] = Field(default_factory=dict)
    include_ids: list[RowId] = Field(default_factory=list, max_length=100_000)
    exclude_ids: list[RowId] = Field(default_factory=list, max_length=100_000)


class Reminder(BaseModel):
    days_before: Count | None = Field(default=None, ge=0, le=60)
    at: str | None = Field(default=None, pattern=r"^\d{2}:\d{2}$")
    hours_before: Number | None = Field(default=None, gt=0, le=24 * 60)
    to: Literal["signed_up", "audience"] = "signed_up"


class CampaignIn(BaseModel):
    name: Text = Field(min_length=1, max_length=128)
    event_id: RowId | None = None
    audience: AudienceIn
    template: Text | None = Field(default=None, max_length=2000)
    sms_template: Text | None = Field(default=None, max_length=500)
    channels: list[Literal["wechat", "sms"]] = Field(default_factory=lambda: ["wechat", "sms"], min_length=1)
    send_at: Moment | None = None
    recurrence: Text | None = Field(default=None, max_length=64)
    recurrence_until: Moment | None = None
    reminders: list[Reminder] = Field(default_factory=list, max_length=5)
    signup: Flag = True

    @field_validator("recurrence")
    @classmethod
    def _crontab(cls, value: str | None) -> str | None:
        if value:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(value)
            except ValueError as exc:
                raise ValueError(f"recurrence must be a crontab line (m h dom mon dow): {exc}") from exc
        return value or None

    def spec(self) -> CampaignSpec:
        return CampaignSpec(
            name=self.name, audience_filter=self.audience.filter, channels=list(self.channels), event_id=self.event_id,
            audience_name=self.audience.name, include_ids=self.audience.include_ids,
            exclude_ids=self.audience.exclude_ids, template=self.template, sms_template=self.sms_template,
            send_at=self.send_at, recurrence=self.recurrence, recurrence_until=self.recurrence_until,
            reminders=[r.model_dump(exclude_none=True) for r in self.reminders], signup=self.signup,
        )


class AudienceOut(BaseModel):
    filter: dict[str, Any]
    include_ids: list[int]
    exclude_ids: list[int]


class CampaignOut(BaseModel):
    id: int
    name: str
    event_id: int | None
    state: str
    state_changed_at: datetime
    state_reason: str | None
    audience_id: int
    audience: AudienceOut | None
    template: str
    sms_template: str
    channels: list[str]
    send_at: datetime | None
    recurrence: str | None
    reminders: list[dict[str, Any]]
    signup: bool
    created_by: str | None
    owner_county: str | None
    owner_township: str | None


class Sample(BaseModel):
    channel: str
    text: str


class PreviewOut(BaseModel):
    campaign_id: int
    audience_total: int
    recipients: int
    by_channel: dict[str, int]
    by_township: dict[str, int]
    unreachable: dict[str, int]
    samples: list[Sample]
    estimated_seconds: float | None


class StepOut(BaseModel):
    id: int
    kind: str
    due_at: str
    status: str
    planned: int | None
    skip_reason: str | None


class ReportOut(BaseModel):
    campaign_id: int
    state: str
    total: int
    by_status: dict[str, int]
    by_channel: dict[str, dict[str, int]]
    failures_by_reason: dict[str, int]
    fallbacks: int
    opt_outs: int
    signups: dict[str, int]
    steps: list[StepOut]


def campaign_out(campaign: Campaign, audience: Audience | None = None) -> CampaignOut:
    fields = {name: getattr(campaign, name) for name in CampaignOut.model_fields if name != "audience"}
    shown = AudienceOut(filter=audience.filter, include_ids=audience.include_ids or [],
                        exclude_ids=audience.exclude_ids or []) if audience else None
    return CampaignOut(**fields, audience=shown)


def _request_hash(body: CampaignIn) -> str:
    return hashlib.sha256(json.dumps(body.model_dump(mode="json"), sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@router.post("", status_code=201, response_model=CampaignOut, responses={
    400: {"description": "no Idempotency-Key header"},
    **NOT_FOUND,
    422: {"description": "invalid body, an audience outside your area, or this Idempotency-Key was used for a "
                         "different request"}})
def post_campaign(
    body: CampaignIn, request: Request, services: ServicesDep, actor: Official,
    idempotency_key: Annotated[Text | None, Header(
        alias="Idempotency-Key", max_length=128,
        description="required: a fresh random value per new campaign; the same key again answers with that campaign")] = None,
) -> JSONResponse:
    if not idempotency_key:
        raise HTTPException(400, "the Idempotency-Key header is required (a fresh random value per new campaign)")
    factory = request.app.state.sessionmaker
    # Keys are per account: another official's key never answers with (or reveals) someone else's campaign.
    scope, key = f"campaign_create:{actor.id}", idempotency_key
    digest = _request_hash(body)
    replay = _replay(factory, scope, key, digest)
    if replay is not None:
        return replay
    try:
        with session_scope(factory) as session:
            # The key row goes in first, in the campaign's transaction: a concurrent duplicate waits on it
            # and then fails on the primary key, never making a second campaign.
            record = IdempotencyKey(scope=scope, key=key, request_hash=digest, status_code=201)
            session.add(record)
            session.flush()
            campaign = create_campaign(session, actor, body.spec(), texts=services.kb.campaign_texts)
            out = campaign_out(campaign, session.get(Audience, campaign.audience_id)).model_dump(mode="json")
            record.response = out
    except IntegrityError:
        replay = _replay(factory, scope, key, digest)
        if replay is None:
            raise
        return replay
    return JSONResponse(out, status_code=201)


def _replay(factory: sessionmaker[Session], scope: str, key: str, digest: str) -> JSONResponse | None:
    with session_scope(factory) as session:
        done = session.get(IdempotencyKey, (scope, key))
        if done is None:
            return None
        if done.request_hash != digest:
            raise HTTPException(422, "this Idempotency-Key was used for a different request")
        return JSONResponse(done.response, status_code=done.status_code, headers={"Idempotent-Replayed": "true"})


@router.get("", response_model=list[CampaignOut])
def get_campaigns(session: SessionDep, actor: Official, state: Text | None = None) -> list[CampaignOut]:
    return [campaign_out(c) for c in list_campaigns(session, actor, state=state)]


@router.get("/{campaign_id}", response_model=CampaignOut, responses=NOT_FOUND)
def get_campaign(campaign_id: PathId, session: SessionDep, actor: Official) -> CampaignOut:
    campaign = get_scoped(session, Campaign, campaign_id, actor)
    return campaign_out(campaign, session.get(Audience, campaign.audience_id))


@router.get("/{campaign_id}/preview", response_model=PreviewOut, responses=NOT_FOUND)
def get_preview(campaign_id: PathId, session: SessionDep, services: ServicesDep, actor: Official) -> dict[str, Any]:
    return preview(session, get_scoped(session, Campaign, campaign_id, actor), services.settings,
                   texts=services.kb.campaign_texts)


@router.post("/{campaign_id}/{action}", response_model=CampaignOut,
             responses={**NOT_FOUND, 409: {"description": "not allowed in the campaign's state"}})
def post_action(campaign_id: PathId, action: str, request: Request,
                session: SessionDep, settings: SettingsDep, actor: Official) -> CampaignOut:
    return campaign_out(change_state(request, session, settings, actor, campaign_id, action))


def change_state(request: Request, session: Session, settings: Settings, actor: Actor, campaign_id: int,
                 action: str) -> Campaign:
    """schedule / pause / resume / cancel (the API and the console alike)."""
    campaign = change_campaign_state(session, actor, campaign_id, action, tz=settings.timezone)
    scheduler = getattr(request.app.state, "campaign_scheduler", None)
    if scheduler is not None:  # the in-process leader picks up the new steps now rather than at its next sync
        session.commit()
        scheduler.sync()
    return campaign


@router.get("/{campaign_id}/report", response_model=ReportOut, responses=NOT_FOUND)
def get_report(campaign_id: PathId, session: SessionDep, actor: Official) -> dict[str, Any]:
    out = report(session, get_scoped(session, Campaign, campaign_id, actor))
    out["failures_by_reason"] = {reason or "unknown": n for reason, n in out["failures_by_reason"].items()}
    return out


@router.get("/{campaign_id}/report.csv", response_class=StreamingResponse, responses={
    **NOT_FOUND, 200: {"content": {"text/csv": {}}, "description": "the report as CSV (UTF-8 with BOM, for Excel)"}})
def get_report_csv(campaign_id: PathId, request: Request, session: SessionDep, settings: SettingsDep,
                   actor: Official) -> StreamingResponse:
    campaign = get_scoped(session, Campaign, campaign_id, actor)
    # Names and villages of recipients are personal data: the export is audited like any other look.
    audit(session, actor, "export", object_type="campaign", object_id=campaign_id,
          detail={"what": "campaign_report_csv"})
    session.commit()
    factory = request.app.state.sessionmaker

    def rows() -> Any:
        with session_scope(factory) as export_session:
            yield from report_csv(export_session, export_session.get(Campaign, campaign_id), tz=settings.timezone)

    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="campaign-{campaign.id}.csv"'})


# ---- the live count of an audience being built ------------------------------------------------------------

SAMPLE_SIZE = 5


class AudienceCountIn(BaseModel):
    filter: dict[str, Any] = Field(default_factory=dict)
    channels: list[Literal["wechat", "sms"]] = Field(default_factory=lambda: ["wechat", "sms"], min_length=1)


class SamplePerson(BaseModel):
    name: str  # masked: 张*明
    township: str | None
    village: str | None
    phone: str | None  # masked
    channel: str | None


class AudienceCountOut(BaseModel):
    total: int
    by_channel: dict[str, int]  # wechat / sms: who would be sent to on which channel
    unreachable: int  # in the audience, on none of the campaign's channels (no address, or unsubscribed)
    by_township: dict[str, int]
    sample: list[SamplePerson]


def mask_name(name: str | None) -> str:
    name = name or ""
    if len(name) <= 1:
        return name
    return name[0] + "*" * (len(name) - 2) + name[-1] if len(name) > 2 else name[0] + "*"


def audience_counts(session: Session, actor: Actor, spec: dict[str, Any], channels: list[str], *,
                    tz: str, now: datetime | None = None) -> dict[str, Any]:
    """Who an audience would reach right now, with the same expressions planning uses (audience filter,
    first reachable channel in the campaign's order), narrowed to the actor's area like a saved campaign.
    Raises AudienceError / Invalid for a filter that cannot be saved either."""
    narrowed = scoped_filter(actor, validate_filter(spec))
    today = (now or utcnow()).astimezone(ZoneInfo(tz)).date()
    where = audience_where(narrowed, [], [], today=today)
    chosen = channel_expr(list(channels)).label("channel")
    by_channel: dict[str, int] = {}
    by_township: dict[str, int] = {}
    total = unreachable = 0
    for channel, township, count in session.execute(
            select(chosen, Labourer.township, func.count()).where(where).group_by(chosen, Labourer.township)):
        total += count
        if channel is None:
            unreachable += count
            continue
        by_channel[channel] = by_channel.get(channel, 0) + count
        key = township or "未填乡镇"
        by_township[key] = by_township.get(key, 0) + count
    sample = [
        {"name": mask_name(name), "township": township, "village": village, "phone": phone, "channel": channel}
        for name, township, village, phone, channel in session.execute(
            select(Labourer.name, Labourer.township, Labourer.village, Labourer.phone_masked, chosen)
            .where(where).order_by(Labourer.id).limit(SAMPLE_SIZE))
    ]
    return {"total": total, "by_channel": by_channel, "unreachable": unreachable,
            "by_township": dict(sorted(by_township.items(), key=lambda kv: -kv[1])), "sample": sample}


@router.post("/audience", response_model=AudienceCountOut, responses={422: {"description": "a filter outside your area"}})
def post_audience_count(body: AudienceCountIn, session: SessionDep, settings: SettingsDep, actor: Official) -> dict[str, Any]:
    return audience_counts(session, actor, body.filter, list(body.channels), tz=settings.timezone)


# ---- over time, and the Excel export ---------------------------------------------------------------------

TIMELINE_POINTS = 120


def timeline(session: Session, campaign: Campaign, *, tz: str) -> dict[str, Any]:
    """Deliveries sent and failed (in the dispatcher, or reported undelivered by the provider's receipt),
    cumulated over time: at most TIMELINE_POINTS points, a second apart or more."""
    zone = ZoneInfo(tz)
    events: list[tuple[datetime, str]] = []
    for column, name in ((Delivery.sent_at, "sent"), (Outcome.failed_at, "failed")):
        second = _second(session, column)
        counted = select(second, func.count()).select_from(Outcome.JOINED if name == "failed" else Delivery)
        for at, count in session.execute(counted.where(Delivery.campaign_id == campaign.id,
                                                       column.is_not(None)).group_by(second)):
            events.append((_as_moment(at), name, count))  # type: ignore[arg-type]
    if not events:
        return {"labels": [], "sent": [], "failed": []}
    events.sort()
    start, end = events[0][0], events[-1][0]
    step = max(timedelta(seconds=1), (end - start) / TIMELINE_POINTS)
    labels: list[str] = []
    sent: list[int] = []
    failed: list[int] = []
    totals = {"sent": 0, "failed": 0}
    edge = start
    i = 0
    while edge <= end:
        while i < len(events) and events[i][0] <= edge:
            totals[events[i][1]] += events[i][2]
            i += 1
        labels.append(edge.astimezone(zone).strftime("%m-%d %H:%M:%S"))
        sent.append(totals["sent"])
        failed.append(totals["failed"])
        edge += step
    if i < len(events) or labels[-1] != end.astimezone(zone).strftime("%m-%d %H:%M:%S"):
        for _at, name, count in events[i:]:
            totals[name] += count
        labels.append(end.astimezone(zone).strftime("%m-%d %H:%M:%S"))
        sent.append(totals["sent"])
        failed.append(totals["failed"])
    return {"labels": labels, "sent": sent, "failed": failed}


def _second(session: Session, column: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("second", column)
    return func.strftime("%Y-%m-%d %H:%M:%S", column)


def _as_moment(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite's strftime: UTC, as the column stores it
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo("UTC"))


XLSX_HEADERS = {"delivery_id": "编号", "step": "哪一次", "name": "姓名", "township": "乡镇", "village": "村",
                "phone": "手机号（已隐藏）", "channel": "渠道", "status": "状态", "attempts": "尝试次数",
                "failure_reason": "失败原因", "error_code": "错误码", "sent_at": "发出时间", "delivered_at": "送达时间",
                "failed_at": "失败时间", "signup": "报名"}
XLSX_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def report_xlsx(session: Session, campaign: Campaign, settings: Settings) -> Iterator[bytes]:
    """The report as an Excel workbook: a summary sheet and one row per delivery (the CSV export's rows and
    columns, phones masked), written in openpyxl's streaming mode to a temporary file."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    summary = book.create_sheet("概况")
    figures = report(session, campaign)
    summary.append(["通知", campaign.name])
    summary.append(["状态", campaign.state])
    summary.append(["总数", figures["total"]])
    for status, count in figures["by_status"].items():
        summary.append([f"状态：{status}", count])
    for reason, count in figures["failures_by_reason"].items():
        summary.append([f"失败原因：{reason or 'unknown'}", count])
    summary.append(["退订", figures["opt_outs"]])
    for status, count in figures["signups"].items():
        summary.append([f"报名：{status}", count])
    rows = book.create_sheet("明细")
    lines = csv.reader(line for chunk in report_csv(session, campaign, tz=settings.timezone)
                       for line in chunk.lstrip("\ufeff").splitlines())
    header = next(lines)
    rows.append([XLSX_HEADERS.get(name, name) for name in header])
    for line in lines:
        rows.append(line)
    with tempfile.TemporaryFile() as out:
        book.save(out)
        out.seek(0)
        while chunk := out.read(1 << 16):
            yield chunk


@router.get("/{campaign_id}/report.xlsx", response_class=StreamingResponse, responses={
    **NOT_FOUND, 200: {"content": {XLSX_MEDIA: {}}, "description": "the report as an Excel workbook"}})
def get_report_xlsx(campaign_id: PathId, session: SessionDep, settings: SettingsDep, actor: Official) -> StreamingResponse:
    return xlsx_response(session, settings, actor, campaign_id)


def xlsx_response(session: Session, settings: Settings, actor: Actor, campaign_id: int) -> StreamingResponse:
    """The Excel report of a campaign in the actor's area, audited as an export (the API and the console)."""
    campaign = get_scoped(session, Campaign, campaign_id, actor)
    audit(session, actor, "export", object_type="campaign", object_id=campaign_id, detail={"what": "campaign_report_xlsx"})
    session.commit()
    body = b"".join(report_xlsx(session, campaign, settings))
    return StreamingResponse(iter([body]), media_type=XLSX_MEDIA,
                             headers={"Content-Disposition": f'attachment; filename="campaign-{campaign.id}.xlsx"'})


@router.get("/{campaign_id}/timeline", responses=NOT_FOUND)
def get_timeline(campaign_id: PathId, session: SessionDep, settings: SettingsDep, actor: Official) -> dict[str, Any]:
    return timeline(session, get_scoped(session, Campaign, campaign_id, actor), tz=settings.timezone)
