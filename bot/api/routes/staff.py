"""Staff accounts under /api/admin/staff (admins only): list, add, disable, reset a password."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from sqlalchemy import select

from bot.api.deps import NOT_FOUND, STAFF_RESPONSES, ServicesDep, SessionDep, require_role
from bot.api.fields import Text
from bot.auth import Actor, create_staff, find_staff, resolve_areas, update_staff
from bot.errors import NotFound
from bot.models import Staff

router = APIRouter(prefix="/api/admin/staff", tags=["staff"], responses=STAFF_RESPONSES)
Admin = Annotated[Actor, require_role("admin")]
Username = Annotated[Text, Path(min_length=1, max_length=64)]


class AreaOut(BaseModel):
    county: str
    township: str | None = None
    village: str | None = None


class StaffOut(BaseModel):
    username: str
    role: str
    areas: list[AreaOut]
    active: bool
    created_at: datetime


class StaffIn(BaseModel):
    username: Text = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=256)
    role: Literal["admin", "official", "assistant", "helpdesk"]
    counties: list[Text] = Field(default_factory=list, max_length=20)
    township: Text | None = Field(default=None, max_length=32)
    village: Text | None = Field(default=None, max_length=32)


class PasswordIn(BaseModel):
    password: str = Field(min_length=8, max_length=256)


def staff_out(staff: Staff) -> StaffOut:
    return StaffOut(username=staff.username, role=staff.role, areas=[AreaOut(**a) for a in staff.areas or []],
                    active=staff.active, created_at=staff.created_at)


def _staff(session: SessionDep, username: str) -> Staff:
    staff = find_staff(session, username)
    if staff is None:
        raise NotFound("no such staff account")
    return staff


@router.get("", response_model=list[StaffOut])
def get_staff(session: SessionDep, _admin: Admin) -> list[StaffOut]:
    return [staff_out(s) for s in session.scalars(select(Staff).order_by(Staff.username))]


@router.post("", status_code=201, response_model=StaffOut, responses={
    409: {"description": "the username is taken"}, 422: {"description": "invalid, or an area not in regions.yaml"}})
def post_staff(body: StaffIn, session: SessionDep, services: ServicesDep, admin: Admin) -> StaffOut:
    areas = resolve_areas(body.role, counties=body.counties, township=body.township, village=body.village,
                          regions=services.kb.regions)
    return staff_out(create_staff(session, admin, username=body.username, password=body.password, role=body.role,
                                  areas=areas))


@router.post("/{username}/disable", response_model=StaffOut, responses=NOT_FOUND)
def post_disable(username: Username, session: SessionDep, admin: Admin) -> StaffOut:
    return staff_out(update_staff(session, admin, _staff(session, username), active=False))


@router.post("/{username}/enable", response_model=StaffOut, responses=NOT_FOUND)
def post_enable(username: Username, session: SessionDep, admin: Admin) -> StaffOut:
    return staff_out(update_staff(session, admin, _staff(session, username), active=True))


@router.post("/{username}/password", response_model=StaffOut, responses=NOT_FOUND)
def post_password(username: Username, body: PasswordIn, session: SessionDep, admin: Admin) -> StaffOut:
    return staff_out(update_staff(session, admin, _staff(session, username), password=body.password))
