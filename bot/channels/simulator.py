"""The simulator channel: POST /api/simulator/message, GET /api/simulator/inbox and the chat page at /simulator.

It goes through exactly the pipeline WeChat and SMS use; it only translates JSON to InboundMessage. Its users
live in their own namespace (Address("simulator", name)): a name that is someone's openid or phone number
never reaches that person's records (bot.registry.resolve_labourer). Mounted in development only, unless
GONGYOU_SIMULATOR turns it on (bot.app).

The inbox is what was pushed to a simulator user outside the answers to their own messages (help-desk
replies, status notices, broadcasts, reminders): bot.channels.outbound.deliver writes those to the message
log with their purpose, and the page polls the inbox to show them as they arrive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from bot.api.fields import Text
from bot.channels.base import Address, InboundMessage, Reply
from bot.conversation import handle_message
from bot.models import MessageLog

router = APIRouter()
INBOX_LIMIT = 500  # the newest this many, oldest first
PAGE = Path(__file__).resolve().parent.parent / "static" / "simulator.html"


class SimulatorMessage(BaseModel):
    user: Text = Field(min_length=1, max_length=64)
    text: str = Field(default="", max_length=20_000)  # anything a person types; the pipeline cleans it
    msg_id: Text | None = Field(default=None, max_length=128)


def render(reply: Reply) -> dict[str, Any]:
    return {"text": reply.plain_text(), "choices": [c.label for c in reply.choices]}


@router.post("/api/simulator/message")
def simulator_message(body: SimulatorMessage, request: Request) -> dict[str, Any]:
    message = InboundMessage(Address("simulator", body.user), text=body.text, external_id=body.msg_id)
    outcome = handle_message(request.app.state.services, message)
    return {"replies": [render(r) for r in outcome.replies], "duplicate": outcome.duplicate}


class InboxMessage(BaseModel):
    text: str
    at: str  # ISO 8601, UTC
    purpose: str  # reply (a help-desk answer) | notice | marketing


class Inbox(BaseModel):
    messages: list[InboxMessage]


@router.get("/api/simulator/inbox", response_model=Inbox)
def simulator_inbox(request: Request, user: Annotated[Text, Query(min_length=1, max_length=64)]) -> Inbox:
    # Annotated, not `= Query(...)`: a Query default drops Text's own check, and a NUL reached PostgreSQL.
    M = MessageLog
    with request.app.state.sessionmaker() as session:
        rows = session.execute(
            select(M.text, M.created_at, M.purpose)
            .where(M.channel == "simulator", M.user_id == user, M.direction == "out", M.purpose.is_not(None))
            .order_by(M.id.desc()).limit(INBOX_LIMIT)
        ).all()
    return Inbox(messages=[InboxMessage(text=text, at=at.isoformat(), purpose=purpose) for text, at, purpose in reversed(rows)])


@router.get("/simulator", response_class=HTMLResponse)
def simulator_page() -> HTMLResponse:
    return HTMLResponse(PAGE.read_text(encoding="utf-8"))
