"""POST /api/nlu/parse — the router's view of one message (DESIGN.md contract)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

router = APIRouter()


class ParseRequest(BaseModel):
    text: str = Field(max_length=20_000)


@router.post("/api/nlu/parse")
def parse(body: ParseRequest, request: Request) -> dict[str, Any]:
    services = request.app.state.services
    return services.router.parse(body.text[: services.settings.max_message_chars]).as_api()
