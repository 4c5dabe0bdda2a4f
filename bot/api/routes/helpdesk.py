"""The help desk's API under /api/helpdesk (the desk itself lands with the help-desk issue)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from bot.api.deps import NOT_FOUND, STAFF_RESPONSES, SessionDep, SettingsDep, require_role
from bot.api.fields import PathId, Text
from bot.api.routes.labourers import RevealOut
from bot.auth import Actor
from bot.reveal import reveal

router = APIRouter(prefix="/api/helpdesk", tags=["helpdesk"], responses=STAFF_RESPONSES)
DeskStaff = Annotated[Actor, require_role("admin", "helpdesk")]


class ComplaintRevealIn(BaseModel):
    field: Literal["contact_phone"] = "contact_phone"
    reason: Text | None = Field(default=None, max_length=200)


@router.post("/complaints/{complaint_id}/reveal", response_model=RevealOut, responses=NOT_FOUND)
def post_reveal(complaint_id: PathId, body: ComplaintRevealIn, session: SessionDep, settings: SettingsDep,
                actor: DeskStaff) -> RevealOut:
    return RevealOut(value=reveal(session, actor, "complaint", complaint_id, body.field, data_key=settings.data_key,
                                  reason=body.reason))
