"""Officials' campaigns under /api/admin/campaigns: create (with Idempotency-Key), preview, schedule / pause /
resume / cancel, report and CSV export — each in the caller's area.

Creating a campaign takes an `Idempotency-Key` header: the same key with the same body answers with the
campaign already made, so a double-click never makes two campaigns; the same key with another body is refused.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, field_validator
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.api.deps import NOT_FOUND, STAFF_RESPONSES, SessionDep, SettingsDep, require_role
from bot.api.fields import Moment, PathId, RowId, Text
from bot.audit import audit
from bot.auth import Actor
from bot.db import session_scope
from bot.models import Audience, Campaign, IdempotencyKey
from bot.scope import get_scoped
from scheduler.manage import CampaignSpec, change_campaign_state, create_campaign, list_campaigns
from scheduler.report import preview, report, report_csv

router = APIRouter(prefix="/api/admin/campaigns", tags=["campaigns"], responses=STAFF_RESPONSES)
Official = Annotated[Actor, require_role("admin", "official")]


class AudienceIn(BaseModel):
    name: Text = Field(default="", max_length=128)
    filter: dict[str, Any] = Field(default_factory=dict)
    include_ids: list[RowId] = Field(default_factory=list, max_length=100_000)
    exclude_ids: list[RowId] = Field(default_factory=list, max_length=100_000)


class Reminder(BaseModel):
    days_before: int | None = Field(default=None, ge=0, le=60)
    at: str | None = Field(default=None, pattern=r"^\d{2}:\d{2}$")
    hours_before: float | None = Field(default=None, gt=0, le=24 * 60)
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
    signup: bool = True

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
    body: CampaignIn, request: Request, settings: SettingsDep, actor: Official,
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
            campaign = create_campaign(session, actor, body.spec(), knowledge_dir=settings.knowledge_dir)
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
def get_preview(campaign_id: PathId, session: SessionDep, settings: SettingsDep, actor: Official) -> dict[str, Any]:
    return preview(session, get_scoped(session, Campaign, campaign_id, actor), settings)


@router.post("/{campaign_id}/{action}", response_model=CampaignOut,
             responses={**NOT_FOUND, 409: {"description": "not allowed in the campaign's state"}})
def post_action(campaign_id: PathId, action: str, request: Request,
                session: SessionDep, settings: SettingsDep, actor: Official) -> CampaignOut:
    campaign = change_campaign_state(session, actor, campaign_id, action, tz=settings.timezone)
    scheduler = getattr(request.app.state, "campaign_scheduler", None)
    if scheduler is not None:  # the in-process leader picks up the new steps now rather than at its next sync
        session.commit()
        scheduler.sync()
    return campaign_out(campaign)


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
