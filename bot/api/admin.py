"""Officials' API under /api/admin/: events, campaigns, preview, schedule / pause / resume / cancel, report.

Protected by the bearer token GONGYOU_ADMIN_TOKEN until the console brings roles. Creating a campaign
takes an `Idempotency-Key` header: the same key with the same body answers with the campaign already
made, so a double-click never makes two campaigns; the same key with another body is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bot.api.fields import Moment, PathId, RowId, Text
from bot.db import SessionDep, session_scope
from bot.models import (
    AccessLog,
    Audience,
    Campaign,
    Event,
    IdempotencyKey,
    SignUp,
    utcnow,
)
from scheduler.audience import AudienceError, validate_filter
from scheduler.campaigns import TransitionError, transition
from scheduler.render import campaign_texts, default_templates
from scheduler.report import preview, report, report_csv

# Documented for every operation: what the token check answers.
router = APIRouter(prefix="/api/admin", tags=["admin"], responses={
    401: {"description": "bearer token missing or wrong"},
    503: {"description": "the admin API is off: GONGYOU_ADMIN_TOKEN is not set"},
})
NOT_FOUND = {404: {"description": "no such event or campaign"}}


def require_admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    token = request.app.state.settings.admin_token
    if not token:
        raise HTTPException(503, "the admin API is off: set GONGYOU_ADMIN_TOKEN")
    scheme, _, given = (authorization or "").partition(" ")
    # compare_digest: the time taken must not tell how much of the token was right.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(401, "bearer token required", headers={"WWW-Authenticate": "Bearer"})
    return "admin-token"


AdminDep = Annotated[str, Depends(require_admin)]


# ---- events -------------------------------------------------------------------------------------


class EventIn(BaseModel):
    kind: Literal["job_fair", "training"]
    title: Text = Field(min_length=1, max_length=128)
    organiser: Text | None = Field(default=None, max_length=128)
    starts_at: Moment
    ends_at: Moment | None = None
    venue: Text | None = Field(default=None, max_length=128)
    county: Text | None = Field(default=None, max_length=32)
    township: Text | None = Field(default=None, max_length=32)
    jobs_count: int | None = Field(default=None, ge=0, le=1_000_000)
    employers: list[Text] = Field(default_factory=list, max_length=500)
    training_type: Text | None = Field(default=None, max_length=32)
    training_format: Text | None = Field(default=None, max_length=16)
    capacity: int | None = Field(default=None, ge=1, le=1_000_000)
    cost_note: Text | None = Field(default=None, max_length=128)
    signup_enabled: bool = True

    @model_validator(mode="after")
    def _order(self) -> EventIn:
        if self.ends_at is not None and self.ends_at < self.starts_at:
            raise ValueError("ends_at is before starts_at")
        return self


def event_out(session: Any, event: Event) -> dict[str, Any]:
    counts = dict(
        session.execute(select(SignUp.status, func.count()).where(SignUp.event_id == event.id).group_by(SignUp.status)).all()
    )
    return {
        "id": event.id, "kind": event.kind, "title": event.title, "organiser": event.organiser,
        "starts_at": event.starts_at.isoformat(), "ends_at": event.ends_at.isoformat() if event.ends_at else None,
        "venue": event.venue, "county": event.county, "township": event.township, "jobs_count": event.jobs_count,
        "employers": event.employers, "training_type": event.training_type, "training_format": event.training_format,
        "capacity": event.capacity, "cost_note": event.cost_note, "signup_enabled": event.signup_enabled,
        "status": event.status, "signups": counts,
    }


@router.post("/events", status_code=201)
def create_event(body: EventIn, session: SessionDep, _admin: AdminDep) -> dict[str, Any]:
    event = Event(**body.model_dump())
    session.add(event)
    session.flush()
    return event_out(session, event)


@router.get("/events")
def list_events(session: SessionDep, _admin: AdminDep, upcoming: bool = False) -> list[dict[str, Any]]:
    query = select(Event).order_by(Event.starts_at)
    if upcoming:
        query = query.where(Event.starts_at > utcnow())
    return [event_out(session, e) for e in session.scalars(query.limit(500))]


def _event(session: Any, event_id: int) -> Event:
    event = session.get(Event, event_id)
    if event is None:
        raise HTTPException(404, "no such event")
    return event


@router.get("/events/{event_id}", responses=NOT_FOUND)
def get_event(event_id: PathId, session: SessionDep, _admin: AdminDep) -> dict[str, Any]:
    return event_out(session, _event(session, event_id))


@router.post("/events/{event_id}/cancel", responses=NOT_FOUND)
def cancel_event(event_id: PathId, session: SessionDep, _admin: AdminDep) -> dict[str, Any]:
    event = _event(session, event_id)
    event.status = "cancelled"
    return event_out(session, event)


# ---- campaigns ----------------------------------------------------------------------------------


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


def campaign_out(campaign: Campaign, audience: Audience | None = None) -> dict[str, Any]:
    return {
        "id": campaign.id, "name": campaign.name, "event_id": campaign.event_id, "state": campaign.state,
        "state_changed_at": campaign.state_changed_at.isoformat(), "state_reason": campaign.state_reason,
        "audience_id": campaign.audience_id,
        "audience": {"filter": audience.filter, "include_ids": audience.include_ids,
                     "exclude_ids": audience.exclude_ids} if audience else None,
        "template": campaign.template, "sms_template": campaign.sms_template, "channels": campaign.channels,
        "send_at": campaign.send_at.isoformat() if campaign.send_at else None,
        "recurrence": campaign.recurrence, "reminders": campaign.reminders, "signup": campaign.signup,
    }


def _request_hash(body: CampaignIn) -> str:
    return hashlib.sha256(json.dumps(body.model_dump(mode="json"), sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@router.post("/campaigns", status_code=201, responses={
    400: {"description": "no Idempotency-Key header"},
    422: {"description": "invalid body, or this Idempotency-Key was used for a different request"}})
def create_campaign(
    body: CampaignIn, request: Request, admin: AdminDep,
    idempotency_key: Annotated[Text | None, Header(
        alias="Idempotency-Key", max_length=128,
        description="required: a fresh random value per new campaign; the same key again answers with that campaign")] = None,
) -> JSONResponse:
    if not idempotency_key:
        raise HTTPException(400, "the Idempotency-Key header is required (a fresh random value per new campaign)")
    factory = request.app.state.sessionmaker
    digest = _request_hash(body)
    replay = _replay(factory, idempotency_key, digest)
    if replay is not None:
        return replay
    try:
        with session_scope(factory) as session:
            # The key row goes in first, in the campaign's transaction: a concurrent duplicate waits on it
            # and then fails on the primary key, never making a second campaign.
            record = IdempotencyKey(scope="campaign_create", key=idempotency_key, request_hash=digest, status_code=201)
            session.add(record)
            session.flush()
            campaign = _new_campaign(session, body, admin, request.app.state.settings.knowledge_dir)
            out = campaign_out(campaign, session.get(Audience, campaign.audience_id))
            record.response = out
    except IntegrityError:
        replay = _replay(factory, idempotency_key, digest)
        if replay is None:
            raise
        return replay
    return JSONResponse(out, status_code=201)


def _replay(factory: Any, key: str, digest: str) -> JSONResponse | None:
    with session_scope(factory) as session:
        done = session.get(IdempotencyKey, ("campaign_create", key))
        if done is None:
            return None
        if done.request_hash != digest:
            raise HTTPException(422, "this Idempotency-Key was used for a different request")
        return JSONResponse(done.response, status_code=done.status_code, headers={"Idempotent-Replayed": "true"})


def _new_campaign(session: Any, body: CampaignIn, admin: str, knowledge_dir: Any) -> Campaign:
    try:
        spec = validate_filter(body.audience.filter)
    except AudienceError as exc:
        raise HTTPException(422, str(exc)) from exc
    event = _event(session, body.event_id) if body.event_id is not None else None
    for reminder in body.reminders:
        if event is None:
            raise HTTPException(422, "reminders need an event to count from")
        if reminder.hours_before is None and reminder.at is None:
            raise HTTPException(422, "a reminder needs hours_before, or days_before with at")
    template, sms_template = default_templates(event.kind if event else None, campaign_texts(knowledge_dir))
    audience = Audience(name=body.audience.name or body.name, filter=spec, include_ids=body.audience.include_ids,
                        exclude_ids=body.audience.exclude_ids)
    session.add(audience)
    session.flush()
    campaign = Campaign(
        name=body.name, event_id=event.id if event else None, audience_id=audience.id,
        template=body.template or template, sms_template=body.sms_template or sms_template,
        channels=list(dict.fromkeys(body.channels)), send_at=body.send_at, recurrence=body.recurrence,
        recurrence_until=body.recurrence_until,
        reminders=[r.model_dump(exclude_none=True) for r in body.reminders], signup=body.signup,
        state="draft", created_by=admin,
    )
    session.add(campaign)
    session.flush()
    return campaign


def _campaign(session: Any, campaign_id: int, *, lock: bool = False) -> Campaign:
    query = select(Campaign).where(Campaign.id == campaign_id)
    campaign = session.scalars(query.with_for_update() if lock else query).one_or_none()
    if campaign is None:
        raise HTTPException(404, "no such campaign")
    return campaign


@router.get("/campaigns")
def list_campaigns(session: SessionDep, _admin: AdminDep, state: Text | None = None) -> list[dict[str, Any]]:
    query = select(Campaign).order_by(Campaign.id.desc())
    if state:
        query = query.where(Campaign.state == state)
    return [campaign_out(c) for c in session.scalars(query.limit(500))]


@router.get("/campaigns/{campaign_id}", responses=NOT_FOUND)
def get_campaign(campaign_id: PathId, session: SessionDep, _admin: AdminDep) -> dict[str, Any]:
    campaign = _campaign(session, campaign_id)
    return campaign_out(campaign, session.get(Audience, campaign.audience_id))


@router.get("/campaigns/{campaign_id}/preview", responses=NOT_FOUND)
def preview_campaign(campaign_id: PathId, request: Request, session: SessionDep, _admin: AdminDep) -> dict[str, Any]:
    return preview(session, _campaign(session, campaign_id), request.app.state.settings)


ACTIONS = {"schedule": "scheduled", "pause": "paused", "resume": "resume", "cancel": "cancelled"}


@router.post("/campaigns/{campaign_id}/{action}", responses={**NOT_FOUND, 409: {"description": "not allowed in the campaign's state"}})
def change_state(campaign_id: PathId, action: str, request: Request, session: SessionDep, admin: AdminDep) -> dict[str, Any]:
    if action not in ACTIONS:
        raise HTTPException(404, f"unknown action {action!r}; one of {sorted(ACTIONS)}")
    campaign = _campaign(session, campaign_id, lock=True)
    try:
        transition(session, campaign, ACTIONS[action], reason=f"{action} by {admin}",
                   tz=request.app.state.settings.timezone)
    except TransitionError as exc:
        raise HTTPException(409, str(exc)) from exc
    scheduler = getattr(request.app.state, "campaign_scheduler", None)
    if scheduler is not None:  # the in-process leader picks up the new steps now rather than at its next sync
        session.commit()
        scheduler.sync()
    return campaign_out(campaign)


@router.get("/campaigns/{campaign_id}/report", responses=NOT_FOUND)
def campaign_report(campaign_id: PathId, session: SessionDep, _admin: AdminDep) -> dict[str, Any]:
    return report(session, _campaign(session, campaign_id))


@router.get("/campaigns/{campaign_id}/report.csv", response_class=StreamingResponse, responses={
    **NOT_FOUND, 200: {"content": {"text/csv": {}}, "description": "the report as CSV (UTF-8 with BOM, for Excel)"}})
def campaign_report_csv(campaign_id: PathId, request: Request, session: SessionDep, admin: AdminDep) -> StreamingResponse:
    campaign = _campaign(session, campaign_id)
    # Names and villages of recipients are personal data: the export is logged like any other look.
    session.add(AccessLog(actor=admin, action="export_campaign_report", detail={"campaign_id": campaign_id}))
    session.commit()
    factory = request.app.state.sessionmaker
    tz = request.app.state.settings.timezone

    def rows() -> Any:
        with session_scope(factory) as export_session:
            yield from report_csv(export_session, export_session.get(Campaign, campaign_id), tz=tz)

    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="campaign-{campaign.id}.csv"'})
