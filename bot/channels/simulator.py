"""The simulator channel: POST /api/simulator/message and the chat page at /simulator.

It goes through exactly the pipeline WeChat and SMS use; it only translates JSON to InboundMessage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from bot.api.fields import Text
from bot.channels.base import Address, InboundMessage, Reply
from bot.conversation import handle_message

router = APIRouter()
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


@router.get("/simulator", response_class=HTMLResponse)
def simulator_page() -> HTMLResponse:
    return HTMLResponse(PAGE.read_text(encoding="utf-8"))
