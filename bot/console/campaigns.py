"""Console pages of events and campaigns (officials and admins, in their own area): job fairs and training
sessions; the campaign builder with a live count of the audience as filters change (htmx), split by channel
and township, a masked sample and the message as each channel shows it; schedule / pause / resume /
cancel; live progress and the report (chart, sign-ups against capacity, waiting list, opt-outs) and the
Excel export. The work is done by scheduler.manage / scheduler.report and bot.api.routes.campaigns, as for
the API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.api.deps import ServicesDep, SessionDep, SettingsDep
from bot.api.fields import PathId
from bot.api.routes.campaigns import CampaignIn, audience_counts, change_state, timeline, xlsx_response
from bot.api.routes.events import EventIn
from bot.auth import Actor
from bot.channels import sms
from bot.console.deps import console_role
from bot.console.pages import render
from bot.conversation import Services
from bot.errors import Invalid
from bot.models import Audience, Campaign, Event, SignUp
from bot.scope import get_scoped, visible_areas
from bot.settings import Settings
from scheduler.audience import LISTS, AudienceError
from scheduler.campaigns import TransitionError
from scheduler.manage import (
    cancel_event,
    create_campaign,
    create_event,
    list_campaigns,
    list_events,
    signup_counts,
)
from bot.render import default_templates
from scheduler.render import Renderer
from scheduler.report import preview, report

router = APIRouter(prefix="/console", include_in_schema=False)
Official = Annotated[Actor, console_role("admin", "official")]
Short = Annotated[str, Form(max_length=256)]
Long = Annotated[str, Form(max_length=4000)]
Many = Annotated[list[str], Form(max_length=1000)]
SAMPLE_NAME = "张三"


def _local(value: str, tz: str) -> datetime | None:
    """A datetime-local field ("2026-03-10T09:00") in the programme's time zone; None when empty or unreadable."""
    try:
        return datetime.fromisoformat(value).replace(tzinfo=ZoneInfo(tz)) if value.strip() else None
    except ValueError:
        return None


def _places(services: Services, actor: Actor) -> list[dict[str, Any]]:
    """The counties and townships an actor may pick (their own area, or all for admins)."""
    counties = (services.kb.regions or {}).get("counties") or ()
    areas = visible_areas(actor)
    shown = []
    for county in counties:
        townships = [t["name"] for t in county.get("townships") or ()]
        if areas is not None:
            mine = [a for a in areas if a.county == county["name"]]
            if not mine:
                continue
            if all(a.township for a in mine):
                townships = [t for t in townships if any(a.township == t for a in mine)]
        shown.append({"name": county["name"], "townships": townships})
    return shown


# ---- events --------------------------------------------------------------------------------------------


def _events_page(request: Request, session: Session, services: Services, settings: Settings, actor: Actor, *,
                 error: str | None = None, message: str | None = None, status_code: int = 200) -> HTMLResponse:
    events = list_events(session, actor)
    counts = {e.id: signup_counts(session, e.id) for e in events}
    return render(request, "campaigns/events.html", actor, status_code=status_code, events=events, counts=counts,
                  places=_places(services, actor), formats=[f.name for f in services.kb.formats],
                  training_types=[t.name for t in services.kb.training_types], tz=settings.timezone, error=error,
                  message=message)


@router.get("/events", response_class=HTMLResponse)
def events_page(request: Request, session: SessionDep, services: ServicesDep, settings: SettingsDep,
                actor: Official) -> HTMLResponse:
    return _events_page(request, session, services, settings, actor)


def _whole(value: str) -> int | str | None:
    """A form's number field: a whole number, or the text as typed (which EventIn refuses with a reason)."""
    value = value.strip()
    return int(value) if value.isdigit() else (value or None)


@router.post("/events", response_class=HTMLResponse)
def add_event(request: Request, session: SessionDep, services: ServicesDep, settings: SettingsDep, actor: Official,
              kind: Short, title: Short, starts_at: Short, ends_at: Short = "", venue: Short = "", county: Short = "",
              township: Short = "", organiser: Short = "", jobs_count: Short = "", training_type: Short = "",
              training_format: Short = "", capacity: Short = "", cost_note: Short = "",
              signup_enabled: Short = "") -> HTMLResponse:
    fields = {"kind": kind, "title": title, "starts_at": _local(starts_at, settings.timezone),
              "ends_at": _local(ends_at, settings.timezone), "venue": venue or None, "county": county or None,
              "township": township or None, "organiser": organiser or None,
              "jobs_count": _whole(jobs_count), "training_type": training_type or None,
              "training_format": training_format or None, "capacity": _whole(capacity), "cost_note": cost_note or None,
              "signup_enabled": bool(signup_enabled)}
    try:
        event = create_event(session, actor, EventIn(**fields).model_dump())
    except ValidationError as exc:
        return _events_page(request, session, services, settings, actor, status_code=422,
                            error="；".join(_field_problem(e) for e in exc.errors()))
    except Invalid:
        session.rollback()
        return _events_page(request, session, services, settings, actor, status_code=422,
                            error="活动地点不在您负责的范围内")
    session.commit()
    return _events_page(request, session, services, settings, actor, message=f"已新建：{event.title}")


def _field_problem(error: dict[str, Any]) -> str:
    names = {"kind": "类型", "title": "名称", "starts_at": "开始时间", "ends_at": "结束时间", "capacity": "名额",
             "jobs_count": "岗位数", "name": "名称"}
    where = names.get(str(error["loc"][0]) if error.get("loc") else "", "某一项")
    if error.get("type") == "missing" or (error.get("input") in (None, "") and where != "某一项"):
        return f"请填写{where}"
    return f"{where}填得不对"


@router.post("/events/{event_id}/cancel", response_class=HTMLResponse)
def cancel_event_page(event_id: PathId, request: Request, session: SessionDep, services: ServicesDep,
                      settings: SettingsDep, actor: Official) -> HTMLResponse:
    event = cancel_event(session, actor, event_id)
    session.commit()
    return _events_page(request, session, services, settings, actor, message=f"已取消：{event.title}")


# ---- the campaign builder --------------------------------------------------------------------------------


def _filter(county: str, township: str, village: str, lists: list[str], training_types: list[str],
            job_types: list[str], gender: str, age_min: str, age_max: str) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    for key, value in (("county", county), ("township", township), ("village", village)):
        if value.strip():
            spec[key] = [value.strip()]
    for key, values in (("lists", lists), ("training_types", training_types), ("job_types", job_types)):
        chosen = [v for v in values if v]
        if chosen:
            spec[key] = chosen
    if gender in ("M", "F"):
        spec["gender"] = gender
    for key, value in (("age_min", age_min), ("age_max", age_max)):
        if value.strip().isdigit():
            spec[key] = int(value)
    return spec


def _channels(channels: list[str]) -> list[str]:
    return [c for c in ("wechat", "sms") if c in channels] or ["wechat", "sms"]


def _message_preview(services: Services, settings: Settings, event: Event | None, template: str, sms_template: str,
                     signup: bool) -> dict[str, Any]:
    """The message as each channel shows it, for a sample name: SMS with its signature and opt-out text."""
    texts = services.kb.campaign_texts
    default, default_sms = default_templates(event.kind if event else None, texts)
    draft = Campaign(template=template.strip() or default, sms_template=sms_template.strip() or default_sms,
                     signup=signup)
    renderer = Renderer(draft, event, tz=settings.timezone, texts=texts)
    phone = sms.render(settings, renderer.render("sms", SAMPLE_NAME), purpose="marketing",
                       opt_out_suffix=services.kb.text("channels.sms_opt_out_suffix"))
    return {"wechat": renderer.render("wechat", SAMPLE_NAME), "sms": phone, "sms_length": len(phone),
            "sms_segments": sms.segments(phone), "template": draft.template, "sms_template": draft.sms_template}


def _upcoming(session: Session, actor: Actor) -> list[Event]:
    return [e for e in list_events(session, actor, upcoming=True) if e.status == "open"]


@router.get("/campaigns", response_class=HTMLResponse)
def campaigns_page(request: Request, session: SessionDep, settings: SettingsDep, actor: Official) -> HTMLResponse:
    return render(request, "campaigns/list.html", actor, campaigns=list_campaigns(session, actor), tz=settings.timezone)


@router.get("/campaigns/new", response_class=HTMLResponse)
def new_campaign(request: Request, session: SessionDep, services: ServicesDep, settings: SettingsDep,
                 actor: Official, event_id: int | None = None) -> HTMLResponse:
    events = _upcoming(session, actor)
    event = next((e for e in events if e.id == event_id), None)
    return render(request, "campaigns/new.html", actor, events=events, event=event, places=_places(services, actor),
                  lists=LISTS, training_types=[t.name for t in services.kb.training_types],
                  job_types=[j.name for j in services.kb.job_types],
                  message=_message_preview(services, settings, event, "", "", True), error=None, form={})


@router.post("/campaigns/audience", response_class=HTMLResponse)
def audience_fragment(request: Request, session: SessionDep, services: ServicesDep, settings: SettingsDep,
                      actor: Official, county: Short = "", township: Short = "", village: Short = "",
                      lists: Many = [], training_types: Many = [], job_types: Many = [],  # noqa: B006
                      gender: Short = "", age_min: Short = "", age_max: Short = "", channels: Many = [],  # noqa: B006
                      event_id: Short = "", template: Long = "", sms_template: Long = "",
                      signup: Short = "") -> HTMLResponse:
    """htmx: the live count and the message preview for the builder's current filters."""
    spec = _filter(county, township, village, lists, training_types, job_types, gender, age_min, age_max)
    event = get_scoped(session, Event, int(event_id), actor) if event_id.isdigit() else None
    message = _message_preview(services, settings, event, template, sms_template, bool(signup))
    try:
        counts = audience_counts(session, actor, spec, _channels(channels), tz=settings.timezone)
    except (AudienceError, Invalid) as exc:
        return render(request, "campaigns/_audience.html", actor, counts=None, error=str(exc), message=message)
    return render(request, "campaigns/_audience.html", actor, counts=counts, error=None, message=message)


@router.post("/campaigns", response_class=HTMLResponse)
def add_campaign(request: Request, session: SessionDep, services: ServicesDep, settings: SettingsDep, actor: Official,
                 name: Short, county: Short = "", township: Short = "", village: Short = "",
                 lists: Many = [], training_types: Many = [], job_types: Many = [],  # noqa: B006
                 gender: Short = "", age_min: Short = "", age_max: Short = "", channels: Many = [],  # noqa: B006
                 event_id: Short = "", template: Long = "", sms_template: Long = "", send_at: Short = "",
                 signup: Short = "", reminder_hours: Short = "") -> Response:
    spec = _filter(county, township, village, lists, training_types, job_types, gender, age_min, age_max)
    event = get_scoped(session, Event, int(event_id), actor) if event_id.isdigit() else None
    reminders = [{"hours_before": float(reminder_hours)}] if reminder_hours.strip().replace(".", "", 1).isdigit() \
        and event is not None else []
    try:
        body = CampaignIn(name=name, event_id=event.id if event else None, audience={"filter": spec},
                          template=template.strip() or None, sms_template=sms_template.strip() or None,
                          channels=_channels(channels), send_at=_local(send_at, settings.timezone),
                          reminders=reminders, signup=bool(signup))
        campaign = create_campaign(session, actor, body.spec(), texts=services.kb.campaign_texts)
    except (ValidationError, AudienceError, Invalid) as exc:
        session.rollback()
        error = "；".join(_field_problem(e) for e in exc.errors()) if isinstance(exc, ValidationError) else str(exc)
        events = _upcoming(session, actor)
        return render(request, "campaigns/new.html", actor, status_code=422, events=events, event=event,
                      places=_places(services, actor), lists=LISTS,
                      training_types=[t.name for t in services.kb.training_types],
                      job_types=[j.name for j in services.kb.job_types], error=error,
                      message=_message_preview(services, settings, event, template, sms_template, bool(signup)),
                      form={"name": name, "county": county, "township": township})
    session.commit()
    return RedirectResponse(f"/console/campaigns/{campaign.id}", status_code=303)


# ---- one campaign: preview, actions, progress, report, export -------------------------------------------


def _progress(session: Session, campaign: Campaign, settings: Settings) -> dict[str, Any]:
    figures = report(session, campaign)
    event = session.get(Event, campaign.event_id) if campaign.event_id else None
    waiting = []
    if event is not None:
        waiting = session.execute(
            select(SignUp.id).where(SignUp.event_id == event.id, SignUp.status == "waitlisted")
            .order_by(SignUp.updated_at)).scalars().all()
    done = sum(n for s, n in figures["by_status"].items() if s not in ("queued", "sending"))
    return {"figures": figures, "event": event, "waiting": len(waiting), "done": done,
            "timeline": timeline(session, campaign, tz=settings.timezone),
            "live": campaign.state in ("scheduled", "sending")}


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
def campaign_page(campaign_id: PathId, request: Request, session: SessionDep, services: ServicesDep,
                  settings: SettingsDep, actor: Official, error: Annotated[str, Query(max_length=16)] = "") -> HTMLResponse:
    campaign = get_scoped(session, Campaign, campaign_id, actor)
    audience = session.get(Audience, campaign.audience_id)
    try:
        shown = preview(session, campaign, settings, texts=services.kb.campaign_texts)
    except AudienceError:  # a stored filter that no longer means anything: the page still shows why it failed
        shown = None
    return render(request, "campaigns/detail.html", actor, campaign=campaign, audience=audience, preview=shown,
                  progress=_progress(session, campaign, settings), tz=settings.timezone,
                  error="这个操作在当前状态下不能做" if error == "state" else None)


@router.get("/campaigns/{campaign_id}/progress", response_class=HTMLResponse)
def progress_fragment(campaign_id: PathId, request: Request, session: SessionDep, settings: SettingsDep,
                      actor: Official) -> HTMLResponse:
    campaign = get_scoped(session, Campaign, campaign_id, actor)
    return render(request, "campaigns/_progress.html", actor, campaign=campaign,
                  progress=_progress(session, campaign, settings), fragment=True)


@router.post("/campaigns/{campaign_id}/{action}", response_class=HTMLResponse)
def campaign_action(campaign_id: PathId, action: str, request: Request, session: SessionDep, settings: SettingsDep,
                    actor: Official) -> Response:
    try:
        change_state(request, session, settings, actor, campaign_id, action)
    except TransitionError:
        session.rollback()
        get_scoped(session, Campaign, campaign_id, actor)  # outside the area: 404, not a hint that it exists
        return RedirectResponse(f"/console/campaigns/{campaign_id}?error=state", status_code=303)
    session.commit()
    return RedirectResponse(f"/console/campaigns/{campaign_id}", status_code=303)


@router.get("/campaigns/{campaign_id}/export.xlsx")
def export_campaign(campaign_id: PathId, session: SessionDep, settings: SettingsDep, actor: Official) -> StreamingResponse:
    return xlsx_response(session, settings, actor, campaign_id)
