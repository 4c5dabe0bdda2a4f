"""Officials' knowledge under /api/admin/knowledge: policy entries, reply texts and catalogue items over the
packaged files, their history (diff, revert), "试一试" (also against a draft) and the unanswered messages.

A change that breaks a check answers 422 with `problem` (the rule, e.g. "answer_too_long") and stores
nothing; a stored one is live in this process at once and in the others within the poll interval.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from bot import knowledge_edits as edits
from bot.api.deps import NOT_FOUND, STAFF_RESPONSES, ServicesDep, SessionDep, require_role
from bot.api.fields import PathId, Text
from bot.auth import Actor
from bot.conversation import Services
from bot.knowledge import KnowledgeError
from bot.knowledge_tryout import MAX_TRY_CHARS, as_api, try_message
from bot.models import KnowledgeRevision, utcnow

router = APIRouter(prefix="/api/admin/knowledge", tags=["knowledge"], responses=STAFF_RESPONSES)
EDITORS = ("admin", "official")
Editor = Annotated[Actor, require_role(*EDITORS)]
REFUSED: dict[int | str, dict[str, Any]] = {422: {"description": "refused by a check: `problem` names the rule"}}
Key = Annotated[str, Path(min_length=1, max_length=150, pattern=r"^[^\x00-\x1f\x7f]+$")]


class EntryIn(BaseModel):
    topic: Text = Field(max_length=40)
    title: Text = Field(min_length=1, max_length=128)
    questions: list[Annotated[Text, Field(max_length=200)]] = Field(min_length=1, max_length=edits.MAX_QUESTIONS)
    answer: Text = Field(min_length=1, max_length=1000)
    detail: Text = Field(default="", max_length=edits.MAX_FIELD)
    source: Text = Field(default="", max_length=500)
    note: Text | None = Field(default=None, max_length=500)


class TextIn(BaseModel):
    text: Text = Field(min_length=1, max_length=2000)
    note: Text | None = Field(default=None, max_length=500)


class ItemIn(BaseModel):
    aliases: list[Annotated[Text, Field(max_length=32)]] = Field(default_factory=list, max_length=edits.MAX_QUESTIONS)
    category: Text = Field(default="", max_length=32)
    description: Text = Field(default="", max_length=200)
    note: Text | None = Field(default=None, max_length=500)


class EntryOut(BaseModel):
    id: str
    topic: str
    title: str
    questions: list[str]
    answer: str
    detail: str
    source: str
    changed: bool  # differs from the packaged default (or is not in the files at all)


class RevisionOut(BaseModel):
    id: int
    kind: str
    key: str
    value: dict[str, Any] | None
    note: str | None
    reverts: int | None
    author: str
    created_at: datetime


class TryIn(BaseModel):
    text: Text = Field(min_length=1, max_length=MAX_TRY_CHARS)
    # Try against this change too, before it is stored: {"kind": "entry", "key": "pwp_kinds", "value": {...}}.
    draft_kind: Text | None = Field(default=None, max_length=16)
    draft_key: Text | None = Field(default=None, max_length=150)
    draft_value: dict[str, Any] | None = None


class UnansweredOut(BaseModel):
    text: str
    count: int
    last_at: datetime
    intents: dict[str, int]
    examples: list[str]


def refuse(exc: KnowledgeError) -> NoReturn:
    raise HTTPException(422, {"problem": exc.problem, "message": str(exc), **exc.values}) from exc


def store_change(session: Session, services: Services, actor: Actor, item: edits.Item, value: dict[str, Any] | None,
                 note: str | None = None) -> KnowledgeRevision:
    try:
        revision = edits.propose(session, services.knowledge, actor, item, value, note=note)
    except KnowledgeError as exc:
        refuse(exc)
    session.commit()
    services.knowledge.refresh()  # live here at once; other processes within the poll interval
    return revision


@router.get("/entries", response_model=list[EntryOut])
def get_entries(services: ServicesDep, _actor: Editor,
                topic: Annotated[str | None, Query(max_length=40)] = None) -> list[EntryOut]:
    kb, defaults = services.kb, services.knowledge.defaults()
    return [EntryOut(**edits.entry_value(e), id=e.id, changed=defaults.entries.get(e.id) != e)
            for e in kb.entries.values() if topic is None or e.topic == topic]


@router.put("/entries/{entry_id}", response_model=RevisionOut, responses=REFUSED)
def put_entry(entry_id: Key, body: EntryIn, session: SessionDep, services: ServicesDep, actor: Editor) -> KnowledgeRevision:
    """Edit an entry, or add one under a new id (lower-case letters, digits and _)."""
    try:
        value = edits.clean_entry(body.model_dump(exclude={"note"}))
    except KnowledgeError as exc:
        refuse(exc)
    return store_change(session, services, actor, ("entry", entry_id), value, body.note)


@router.put("/texts/{key}", response_model=RevisionOut, responses=REFUSED)
def put_text(key: Key, body: TextIn, session: SessionDep, services: ServicesDep, actor: Editor) -> KnowledgeRevision:
    """A reply sentence by key: "texts:out_of_scope", "dialogs:register_training.done"."""
    return store_change(session, services, actor, ("text", key), {"text": body.text}, body.note)


@router.put("/catalogues/{catalogue}/{name}", response_model=RevisionOut, responses=REFUSED)
def put_item(catalogue: Annotated[str, Path(pattern="^(training_types|job_types|formats)$")], name: Key, body: ItemIn,
             session: SessionDep, services: ServicesDep, actor: Editor) -> KnowledgeRevision:
    try:
        value = edits.clean_item(body.model_dump(exclude={"note"}))
    except KnowledgeError as exc:
        refuse(exc)
    return store_change(session, services, actor, ("catalogue", f"{catalogue}:{name}"), value, body.note)


@router.get("/revisions", response_model=list[RevisionOut])
def get_revisions(session: SessionDep, _actor: Editor) -> list[KnowledgeRevision]:
    return edits.history(session)


@router.post("/revisions/{revision_id}/revert", response_model=RevisionOut, responses={**NOT_FOUND, **REFUSED})
def post_revert(revision_id: PathId, session: SessionDep, services: ServicesDep, actor: Editor) -> KnowledgeRevision:
    try:
        revision = edits.revert(session, services.knowledge, actor, revision_id)
    except KnowledgeError as exc:
        refuse(exc)
    session.commit()
    services.knowledge.refresh()
    return revision


@router.post("/try", responses=REFUSED)
def post_try(body: TryIn, services: ServicesDep, _actor: Editor) -> dict[str, Any]:
    """What the bot makes of `text` and how it answers, with the live knowledge or with a draft change."""
    snapshot = None
    if body.draft_kind:
        item = (body.draft_kind, body.draft_key or "")
        try:
            value = edits.clean_value(item[0], body.draft_value or {})
            edits.check_item(services.knowledge, item, value)
            snapshot = services.knowledge.draft({item: value})
        except KnowledgeError as exc:
            refuse(exc)
    return as_api(try_message(services, body.text, snapshot=snapshot))


@router.get("/unanswered", response_model=list[UnansweredOut])
def get_unanswered(session: SessionDep, actor: Editor,
                   days: Annotated[int, Query(ge=1, le=90)] = 7) -> list[edits.Unanswered]:
    return edits.unanswered(session, actor, since=utcnow() - timedelta(days=days))
