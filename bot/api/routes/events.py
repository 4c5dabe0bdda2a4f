"""Officials' events (job fairs, training sessions) under /api/admin/events, in the caller's area."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, model_validator
from sqlalchemy.orm import Session

from bot.api.deps import NOT_FOUND, STAFF_RESPONSES, SessionDep, require_role
from bot.api.fields import Count, Flag, Moment, PathId, Text
from bot.auth import Actor
from bot.models import Event
from bot.scope import get_scoped
from scheduler.manage import cancel_event, create_event, list_events, signup_counts

router = APIRouter(prefix="/api/admin/events", tags=["events"], responses=STAFF_RESPONSES)
OFFICIAL_ROLES = ("admin", "official")
Official = Annotated[Actor, require_role(*OFFICIAL_ROLES)]


class EventIn(BaseModel):
    kind: Literal["job_fair", "training"]
    title: Text = Field(min_length=1, max_length=128)
    organiser: Text | None = Field(default=None, max_length=128)
    starts_at: Moment
    ends_at: Moment | None = None
    venue: Text | None = Field(default=None, max_length=128)
    county: Text | None = Field(default=None, max_length=32)
    township: Text | None = Field(default=None, max_length=32)
    jobs_count: Count | None = Field(default=None, ge=0, le=1_000_000)
    employers: list[Text] = Field(default_factory=list, max_length=500)
    training_type: Text | None = Field(default=None, max_length=32)
    training_format: Text | None = Field(default=None, max_length=16)
    capacity: Count | None = Field(default=None, ge=1, le=1_000_000)
    cost_note: Text | None = Field(default=None, max_length=128)
    signup_enabled: Flag = True

    @model_validator(mode="after")
    def _order(self) -> EventIn:
        if self.ends_at is not None and self.ends_at < self.starts_at:
            raise ValueError("ends_at is before starts_at")
        return self


class EventOut(BaseModel):
    id: int
    kind: str
    title: str
    organiser: str | None
    starts_at: datetime
    ends_at: datetime | None
    venue: str | None
    county: str | None
    township: str | None
    jobs_count: int | None
    employers: list[str]
    training_type: str | None
    training_format: str | None
    capacity: int | None
    cost_note: str | None
    signup_enabled: bool
    status: str
    owner_county: str | None
    owner_township: str | None
    signups: dict[str, int]


def event_out(session: Session, event: Event) -> EventOut:
    fields = {name: getattr(event, name) for name in EventOut.model_fields if name != "signups"}
    return EventOut(**fields, signups=signup_counts(session, event.id))


@router.post("", status_code=201, response_model=EventOut, responses={422: {"description": "invalid, or outside your area"}})
def post_event(body: EventIn, session: SessionDep, actor: Official) -> EventOut:
    return event_out(session, create_event(session, actor, body.model_dump()))


@router.get("", response_model=list[EventOut])
def get_events(session: SessionDep, actor: Official, upcoming: bool = False) -> list[EventOut]:
    return [event_out(session, e) for e in list_events(session, actor, upcoming=upcoming)]


@router.get("/{event_id}", response_model=EventOut, responses=NOT_FOUND)
def get_event(event_id: PathId, session: SessionDep, actor: Official) -> EventOut:
    return event_out(session, get_scoped(session, Event, event_id, actor))


@router.post("/{event_id}/cancel", response_model=EventOut, responses=NOT_FOUND)
def post_cancel_event(event_id: PathId, session: SessionDep, actor: Official) -> EventOut:
    return event_out(session, cancel_event(session, actor, event_id))
