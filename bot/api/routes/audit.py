"""The audit log under /api/admin/audit (admins only, read-only): filter by actor, action and date."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import Select, func, select

from bot.api.deps import STAFF_RESPONSES, SessionDep, SettingsDep, require_role
from bot.api.fields import Text
from bot.auth import Actor
from bot.models import AuditLog

router = APIRouter(prefix="/api/admin/audit", tags=["audit"], responses=STAFF_RESPONSES)
Admin = Annotated[Actor, require_role("admin")]
PAGE = 100


class AuditOut(BaseModel):
    id: int
    created_at: datetime
    actor: str
    action: str
    object_type: str | None
    object_id: str | None
    ip: str | None
    detail: dict[str, Any]
    note: str | None


class AuditPage(BaseModel):
    items: list[AuditOut]
    total: int


def audit_query(*, actor: str | None = None, action: str | None = None, day_from: date | None = None,
                day_to: date | None = None, tz: str) -> Select[Any]:
    """The audit rows matching the filters (dates are whole local days, both ends included), newest first."""
    query = select(AuditLog)
    if actor:
        query = query.where(AuditLog.actor == actor)
    if action:
        query = query.where(AuditLog.action == action)
    zone = ZoneInfo(tz)
    if day_from:
        query = query.where(AuditLog.created_at >= datetime.combine(day_from, time(), zone))
    if day_to:
        query = query.where(AuditLog.created_at < datetime.combine(day_to + timedelta(days=1), time(), zone))
    return query.order_by(AuditLog.id.desc())


@router.get("", response_model=AuditPage)
def get_audit(session: SessionDep, settings: SettingsDep, _admin: Admin,
              actor: Annotated[Text | None, Query(max_length=64)] = None,
              action: Annotated[Text | None, Query(max_length=48)] = None,
              day_from: Annotated[date | None, Query(alias="from")] = None,
              day_to: Annotated[date | None, Query(alias="to")] = None,
              offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> AuditPage:
    query = audit_query(actor=actor, action=action, day_from=day_from, day_to=day_to, tz=settings.timezone)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    rows = session.scalars(query.offset(offset).limit(PAGE))
    return AuditPage(items=[AuditOut.model_validate(r, from_attributes=True) for r in rows], total=total)
