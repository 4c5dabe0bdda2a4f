"""What officials do to events and campaigns, in their own area: create, find, cancel, change state.

Plain functions over a session for the HTTP layer (bot/api/routes) and the console to call. They raise
NotFound (also for a row outside the caller's area), Invalid, AudienceError or TransitionError, and
audit every change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from bot.audit import audit
from bot.auth import Actor
from bot.errors import Invalid, NotFound
from bot.models import Audience, Campaign, Event, Labourer, SignUp, utcnow
from bot.scope import covers, get_scoped, owner_area, scope_where, scoped_filter
from scheduler.audience import AudienceError, id_in, validate_filter
from scheduler.campaigns import transition
from bot.render import default_templates

LIST_LIMIT = 500


# ---- events -------------------------------------------------------------------------------------


def create_event(session: Session, actor: Actor, fields: dict[str, Any]) -> Event:
    """A new event, owned by the actor's area; a scoped official's event takes place in it (an empty
    county or township is filled with theirs, another one is refused)."""
    event = Event(**fields)
    event.owner_county, event.owner_township = owner_area(actor)
    event.county = event.county or event.owner_county
    event.township = event.township or event.owner_township
    if not covers(actor, event.county, event.township):
        raise Invalid("the event's place is outside your area")
    session.add(event)
    session.flush()
    audit(session, actor, "event_created", object_type="event", object_id=event.id, detail={"title": event.title})
    return event


def list_events(session: Session, actor: Actor, *, upcoming: bool = False) -> list[Event]:
    query = scope_where(select(Event), actor).order_by(Event.starts_at)
    if upcoming:
        query = query.where(Event.starts_at > utcnow())
    return list(session.scalars(query.limit(LIST_LIMIT)))


def cancel_event(session: Session, actor: Actor, event_id: int) -> Event:
    event = get_scoped(session, Event, event_id, actor)
    if event.status != "cancelled":
        event.status = "cancelled"
        audit(session, actor, "event_cancelled", object_type="event", object_id=event.id)
    return event


def signup_counts(session: Session, event_id: int) -> dict[str, int]:
    return dict(session.execute(  # type: ignore[arg-type]
        select(SignUp.status, func.count()).where(SignUp.event_id == event_id).group_by(SignUp.status)).all())


# ---- campaigns ----------------------------------------------------------------------------------


@dataclass
class CampaignSpec:
    """A new campaign as the official described it (the HTTP layer validates the shapes)."""

    name: str
    audience_filter: dict[str, Any]
    channels: list[str]
    event_id: int | None = None
    audience_name: str = ""
    include_ids: list[int] = field(default_factory=list)
    exclude_ids: list[int] = field(default_factory=list)
    template: str | None = None
    sms_template: str | None = None
    send_at: datetime | None = None
    recurrence: str | None = None
    recurrence_until: datetime | None = None
    reminders: list[dict[str, Any]] = field(default_factory=list)
    signup: bool = True


def create_campaign(session: Session, actor: Actor, spec: CampaignSpec, *, texts: dict[str, Any]) -> Campaign:
    """A draft campaign whose audience lies in the actor's area (the area is added to its filter; people
    named by id outside it are refused as if they did not exist). A template left out is the default of
    `texts` (the live knowledge's campaign texts) for the event's kind."""
    audience_filter = scoped_filter(actor, validate_filter(spec.audience_filter))
    if spec.include_ids:
        found = set(session.scalars(scope_where(select(Labourer.id).where(id_in(Labourer.id, spec.include_ids)), actor,
                                                Labourer)))
        missing = sorted(set(spec.include_ids) - found)
        if missing:
            raise AudienceError(f"include_ids: no such labourer {missing[:10]}")
    event = get_scoped(session, Event, spec.event_id, actor) if spec.event_id is not None else None
    for reminder in spec.reminders:
        if event is None:
            raise Invalid("reminders need an event to count from")
        if reminder.get("hours_before") is None and reminder.get("at") is None:
            raise Invalid("a reminder needs hours_before, or days_before with at")
    template, sms_template = default_templates(event.kind if event else None, texts)
    audience = Audience(name=spec.audience_name or spec.name, filter=audience_filter, include_ids=spec.include_ids,
                        exclude_ids=spec.exclude_ids)
    session.add(audience)
    session.flush()
    county, township = owner_area(actor)
    campaign = Campaign(
        name=spec.name, event_id=event.id if event else None, audience_id=audience.id,
        template=spec.template or template, sms_template=spec.sms_template or sms_template,
        channels=list(dict.fromkeys(spec.channels)), send_at=spec.send_at, recurrence=spec.recurrence,
        recurrence_until=spec.recurrence_until, reminders=spec.reminders, signup=spec.signup,
        state="draft", created_by=actor.username, owner_county=county, owner_township=township,
    )
    session.add(campaign)
    session.flush()
    audit(session, actor, "campaign_created", object_type="campaign", object_id=campaign.id,
          detail={"name": campaign.name, "filter": audience_filter})
    return campaign


def campaigns_query(actor: Actor, *, state: str | None = None) -> Select[tuple[Campaign]]:
    query = scope_where(select(Campaign), actor).order_by(Campaign.id.desc())
    return query.where(Campaign.state == state) if state else query


def list_campaigns(session: Session, actor: Actor, *, state: str | None = None) -> list[Campaign]:
    return list(session.scalars(campaigns_query(actor, state=state).limit(LIST_LIMIT)))


ACTIONS = {"schedule": "scheduled", "pause": "paused", "resume": "resume", "cancel": "cancelled"}


def change_campaign_state(session: Session, actor: Actor, campaign_id: int, action: str, *, tz: str) -> Campaign:
    """schedule / pause / resume / cancel: NotFound for an unknown action or campaign, TransitionError
    when the campaign's state does not allow it."""
    if action not in ACTIONS:
        raise NotFound(f"unknown action {action!r}; one of {sorted(ACTIONS)}")
    campaign = get_scoped(session, Campaign, campaign_id, actor, lock=True)
    before = campaign.state
    transition(session, campaign, ACTIONS[action], reason=f"{action} by {actor.username}", tz=tz)
    audit(session, actor, "campaign_" + action, object_type="campaign", object_id=campaign.id,
          detail={"from": before, "to": campaign.state})
    return campaign


def campaign_audience(session: Session, campaign: Campaign) -> Audience | None:
    return session.get(Audience, campaign.audience_id)
