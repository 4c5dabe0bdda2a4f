"""Labourers under /api/admin/labourers, in the caller's area: masked by default, one audited reveal."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from bot.api.deps import NOT_FOUND, STAFF_RESPONSES, SessionDep, SettingsDep, require_role
from bot.api.fields import PathId, Text
from bot.auth import Actor
from bot.models import Labourer
from bot.reveal import reveal
from bot.roster_lists import search_condition
from bot.scope import get_scoped, scope_where

router = APIRouter(prefix="/api/admin/labourers", tags=["labourers"], responses=STAFF_RESPONSES)
RegistryStaff = Annotated[Actor, require_role("admin", "official", "assistant")]
PAGE = 100


class LabourerOut(BaseModel):
    id: int
    name: str
    id_number: str | None = Field(description="masked")
    phone: str | None = Field(description="masked")
    county: str | None
    township: str | None
    village: str | None
    household_status: str
    employment_status: str
    source: str
    verified: bool


class LabourerPage(BaseModel):
    items: list[LabourerOut]
    total: int


class RevealIn(BaseModel):
    field: Literal["id_number", "phone"]
    reason: Text | None = Field(default=None, max_length=200)


class RevealOut(BaseModel):
    value: str | None


def labourer_out(labourer: Labourer) -> LabourerOut:
    return LabourerOut(
        id=labourer.id, name=labourer.name, id_number=labourer.id_number_masked, phone=labourer.phone_masked,
        county=labourer.county, township=labourer.township, village=labourer.village,
        household_status=labourer.household_status, employment_status=labourer.employment_status,
        source=labourer.source, verified=labourer.verified,
    )


@router.get("", response_model=LabourerPage)
def get_labourers(session: SessionDep, settings: SettingsDep, actor: RegistryStaff,
                  name: Annotated[Text | None, Query(max_length=32)] = None,
                  q: Annotated[Text | None, Query(max_length=32, description=(
                      "a name or its beginning, the last digits of an ID number or phone, or a whole one"))] = None,
                  township: Annotated[Text | None, Query(max_length=32)] = None,
                  village: Annotated[Text | None, Query(max_length=32)] = None,
                  offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> LabourerPage:
    query = scope_where(select(Labourer), actor)
    for column, value in ((Labourer.name, name), (Labourer.township, township), (Labourer.village, village)):
        if value:
            query = query.where(column == value)
    condition = search_condition(q or "", settings.data_key, codepoint_order=session.get_bind().dialect.name == "sqlite")
    if condition is not None:
        query = query.where(condition)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Labourer.id).offset(offset).limit(PAGE))
    return LabourerPage(items=[labourer_out(r) for r in rows], total=total)


@router.get("/{labourer_id}", response_model=LabourerOut, responses=NOT_FOUND)
def get_labourer(labourer_id: PathId, session: SessionDep, actor: RegistryStaff) -> LabourerOut:
    return labourer_out(get_scoped(session, Labourer, labourer_id, actor))


@router.post("/{labourer_id}/reveal", response_model=RevealOut, responses=NOT_FOUND)
def post_reveal(labourer_id: PathId, body: RevealIn, session: SessionDep, settings: SettingsDep,
                actor: RegistryStaff) -> RevealOut:
    return RevealOut(value=reveal(session, actor, "labourer", labourer_id, body.field, data_key=settings.data_key,
                                  reason=body.reason))
