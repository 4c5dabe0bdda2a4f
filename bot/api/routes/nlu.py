"""POST /api/nlu/parse — the router's view of one message (DESIGN.md contract)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from bot.api.deps import ServicesDep

router = APIRouter(tags=["nlu"])


class ParseRequest(BaseModel):
    text: str = Field(max_length=20_000)


class EntityOut(BaseModel):
    type: str
    value: Any
    text: str
    start: int = -1
    end: int = -1


class CandidateOut(BaseModel):
    intent: str
    confidence: float
    topic: str | None = None
    entry_id: str | None = None


class ParseOut(BaseModel):
    model_config = ConfigDict(extra="allow")  # what the router adds later is passed on, not dropped

    intent: str
    confidence: float
    topic: str | None
    entry_id: str | None = None
    entities: list[EntityOut]
    tokens: list[str]
    ranking: list[CandidateOut]
    ambiguous: list[CandidateOut] = []
    normalized: str = ""


@router.post("/api/nlu/parse", response_model=ParseOut)
def parse(body: ParseRequest, services: ServicesDep) -> dict[str, Any]:
    return services.router.parse(body.text[: services.settings.max_message_chars]).as_api()
