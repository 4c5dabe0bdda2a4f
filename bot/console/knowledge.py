"""Console pages of the knowledge (officials and admins): policy entries, reply texts, catalogues, their
history with diffs and revert, "试一试" (live or against the draft being edited) and what labourers asked
that the knowledge could not answer. Everything goes through bot.knowledge_edits, as the API does."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from bot import knowledge_edits as edits
from bot.api.deps import ServicesDep, SessionDep
from bot.api.fields import PathId
from bot.auth import Actor
from bot.console.deps import console_role
from bot.console.pages import render
from bot.conversation import Services
from bot.knowledge import CATALOGUES, KnowledgeError
from bot.knowledge_tryout import MAX_TRY_CHARS, try_message
from bot.models import utcnow
from bot.nlu.types import TOPICS

router = APIRouter(prefix="/console/knowledge", include_in_schema=False)
Editor = Annotated[Actor, console_role("admin", "official")]
Short = Annotated[str, Form(max_length=256)]
Long = Annotated[str, Form(max_length=20_000)]
EntryId = Annotated[str, Path(pattern=edits.ENTRY_ID.pattern)]


def _topics(services: Services) -> list[tuple[str, str]]:
    return [(t, services.kb.topics.get(t, {}).get("name", t)) for t in TOPICS]


def _store(session: Session, services: Services, actor: Actor, item: edits.Item,
           value: dict[str, Any] | None, note: str = "") -> None:
    """Store the change and make it live here; KnowledgeError (nothing stored) goes to the caller."""
    edits.propose(session, services.knowledge, actor, item, value, note=note)
    session.commit()
    services.knowledge.refresh()


# ---- entries --------------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
def index(request: Request, services: ServicesDep, actor: Editor,
          q: Annotated[str, Query(max_length=64)] = "", topic: Annotated[str, Query(max_length=40)] = "") -> HTMLResponse:
    kb, defaults = services.kb, services.knowledge.defaults()
    needle = q.strip()
    entries = [e for e in kb.entries.values()
               if (not topic or e.topic == topic)
               and (not needle or needle in e.title or needle in e.answer or any(needle in x for x in e.questions))]
    changed = {e.id for e in entries if defaults.entries.get(e.id) != e}
    return render(request, "knowledge/index.html", actor, entries=entries, changed=changed, topics=_topics(services),
                  q=needle, topic=topic, version=services.knowledge.current.version,
                  error=services.knowledge.last_error)


def _entry_page(request: Request, services: Services, actor: Actor, *, entry_id: str | None, value: dict[str, Any],
                error: KnowledgeError | None = None, message: str | None = None, status_code: int = 200) -> HTMLResponse:
    default = edits.value_in(services.knowledge.defaults(), ("entry", entry_id)) if entry_id else None
    return render(request, "knowledge/entry.html", actor, status_code=status_code, entry_id=entry_id, value=value,
                  default=default, topics=_topics(services), error=error, message=message)


@router.get("/entries/new", response_class=HTMLResponse)
def new_entry(request: Request, services: ServicesDep, actor: Editor,
              topic: Annotated[str, Query(max_length=40)] = "", question: Annotated[str, Query(max_length=200)] = "") -> HTMLResponse:
    value = {"topic": topic if topic in TOPICS else TOPICS[0], "title": "", "questions": [question] if question else [],
             "answer": "", "detail": "", "source": ""}
    return _entry_page(request, services, actor, entry_id=None, value=value)


@router.post("/entries/new", response_class=HTMLResponse)
def create_entry(request: Request, session: SessionDep, services: ServicesDep, actor: Editor, topic: Short,
                 title: Short, questions: Long, answer: Long, detail: Long = "", source: Short = "",
                 note: Short = "") -> Response:
    raw = {"topic": topic, "title": title, "questions": questions, "answer": answer, "detail": detail, "source": source}
    try:
        value = edits.clean_entry(raw)
        entry_id = edits.new_entry_id(services.kb, value["topic"]) if value["topic"] in TOPICS else "x_new"
        _store(session, services, actor, ("entry", entry_id), value, note)
    except KnowledgeError as exc:
        session.rollback()
        return _entry_page(request, services, actor, entry_id=None, value={**raw, "questions": questions.splitlines()},
                           error=exc, status_code=422)
    return RedirectResponse(f"/console/knowledge/entries/{entry_id}?saved=1", status_code=303)


@router.get("/entries/{entry_id}", response_class=HTMLResponse)
def entry_page(entry_id: EntryId, request: Request, session: SessionDep,
               services: ServicesDep, actor: Editor, saved: Annotated[str, Query(max_length=1)] = "") -> HTMLResponse:
    value = edits.value_in(services.kb, ("entry", entry_id))
    if value is None:
        return render(request, "error.html", actor, status_code=404, status=404)
    return render(request, "knowledge/entry.html", actor, entry_id=entry_id, value=value,
                  default=edits.value_in(services.knowledge.defaults(), ("entry", entry_id)),
                  topics=_topics(services), error=None, message="已保存，已生效" if saved else None,
                  revisions=edits.history(session, ("entry", entry_id), limit=20))


@router.post("/entries/{entry_id}", response_class=HTMLResponse)
def save_entry(entry_id: EntryId, request: Request, session: SessionDep,
               services: ServicesDep, actor: Editor, topic: Short, title: Short, questions: Long, answer: Long,
               detail: Long = "", source: Short = "", note: Short = "") -> Response:
    if entry_id not in services.kb.entries:
        return render(request, "error.html", actor, status_code=404, status=404)
    raw = {"topic": topic, "title": title, "questions": questions, "answer": answer, "detail": detail, "source": source}
    try:
        _store(session, services, actor, ("entry", entry_id), edits.clean_entry(raw), note)
    except KnowledgeError as exc:
        session.rollback()
        return _entry_page(request, services, actor, entry_id=entry_id,
                           value={**raw, "questions": questions.splitlines()}, error=exc, status_code=422)
    return RedirectResponse(f"/console/knowledge/entries/{entry_id}?saved=1", status_code=303)


# ---- 试一试 ------------------------------------------------------------------------------------------


@router.post("/try", response_class=HTMLResponse)
def try_page(request: Request, services: ServicesDep, actor: Editor, text: Annotated[str, Form(max_length=MAX_TRY_CHARS)],
             draft_kind: Short = "", draft_key: Short = "", topic: Short = "", title: Short = "", questions: Long = "",
             answer: Long = "", detail: Long = "", source: Short = "", aliases: Long = "", category: Short = "",
             description: Short = "", draft_text: Long = "") -> HTMLResponse:
    """An htmx fragment: the live answer and, when the form carries a draft, the draft's answer beside it."""
    if not text.strip():
        return render(request, "knowledge/_try.html", actor, results=[], problem=None)
    results = [("当前生效", try_message(services, text))]
    problem = None
    if draft_kind in edits.KINDS:
        raw = {"topic": topic, "title": title, "questions": questions, "answer": answer, "detail": detail,
               "source": source, "aliases": aliases, "category": category, "description": description,
               "text": draft_text}
        key = draft_key or "draft_new"
        try:
            value = edits.clean_value(draft_kind, raw)
            edits.check_item(services.knowledge, (draft_kind, key), value)
            results.append(("修改后（草稿，未保存）", try_message(services, text,
                                                              snapshot=services.knowledge.draft({(draft_kind, key): value}))))
        except KnowledgeError as exc:
            problem = exc
    return render(request, "knowledge/_try.html", actor, results=results, problem=problem,
                  topics=dict(_topics(services)))


# ---- reply texts and catalogues ----------------------------------------------------------------------


def _texts_page(request: Request, services: Services, actor: Actor, *, q: str = "", error: KnowledgeError | None = None,
                message: str | None = None, status_code: int = 200) -> HTMLResponse:
    defaults = dict(edits.text_leaves(services.knowledge.defaults()))
    leaves = [(k, v, defaults.get(k)) for k, v in edits.text_leaves(services.kb) if not q or q in k or q in v]
    return render(request, "knowledge/texts.html", actor, status_code=status_code, leaves=leaves, q=q, error=error,
                  message=message)


@router.get("/texts", response_class=HTMLResponse)
def texts_page(request: Request, services: ServicesDep, actor: Editor,
               q: Annotated[str, Query(max_length=64)] = "") -> HTMLResponse:
    return _texts_page(request, services, actor, q=q.strip())


@router.post("/texts", response_class=HTMLResponse)
def save_text(request: Request, session: SessionDep, services: ServicesDep, actor: Editor, key: Short, text: Long,
              note: Short = "", q: Short = "") -> HTMLResponse:
    try:
        _store(session, services, actor, ("text", key), {"text": text.strip()}, note)
    except KnowledgeError as exc:
        session.rollback()
        return _texts_page(request, services, actor, q=q, error=exc, status_code=422)
    return _texts_page(request, services, actor, q=q, message=f"已保存 {key}，已生效")


def _catalogues_page(request: Request, services: Services, actor: Actor, *, error: KnowledgeError | None = None,
                     message: str | None = None, status_code: int = 200) -> HTMLResponse:
    kb = services.kb
    return render(request, "knowledge/catalogues.html", actor, status_code=status_code,
                  catalogues=[(name, getattr(kb, name)) for name in CATALOGUES], error=error, message=message)


@router.get("/catalogues", response_class=HTMLResponse)
def catalogues_page(request: Request, services: ServicesDep, actor: Editor) -> HTMLResponse:
    return _catalogues_page(request, services, actor)


@router.post("/catalogues", response_class=HTMLResponse)
def save_item(request: Request, session: SessionDep, services: ServicesDep, actor: Editor, catalogue: Short,
              name: Short, aliases: Long = "", category: Short = "", description: Short = "",
              note: Short = "") -> HTMLResponse:
    try:
        value = edits.clean_item({"aliases": aliases, "category": category, "description": description})
        _store(session, services, actor, ("catalogue", f"{catalogue}:{name.strip()}"), value, note)
    except KnowledgeError as exc:
        session.rollback()
        return _catalogues_page(request, services, actor, error=exc, status_code=422)
    return _catalogues_page(request, services, actor, message=f"已保存 {name.strip()}，已生效")


# ---- history ------------------------------------------------------------------------------------------


def _history_page(request: Request, session: Session, services: Services, actor: Actor, *,
                  error: KnowledgeError | None = None, message: str | None = None, status_code: int = 200) -> HTMLResponse:
    revisions = edits.history(session)
    defaults = services.knowledge.defaults()
    rows = []
    for revision in revisions:
        before = edits.value_before(session, revision)
        if before is None:
            before = edits.value_in(defaults, (revision.kind, revision.key))
        after = revision.value if revision.value is not None else edits.value_in(defaults, (revision.kind, revision.key))
        rows.append((revision, edits.diff(before, after)))
    return render(request, "knowledge/history.html", actor, status_code=status_code, rows=rows, error=error,
                  message=message)


@router.get("/history", response_class=HTMLResponse)
def history_page(request: Request, session: SessionDep, services: ServicesDep, actor: Editor) -> HTMLResponse:
    return _history_page(request, session, services, actor)


@router.post("/revisions/{revision_id}/revert", response_class=HTMLResponse)
def revert_revision(revision_id: PathId, request: Request, session: SessionDep, services: ServicesDep,
                    actor: Editor) -> HTMLResponse:
    try:
        edits.revert(session, services.knowledge, actor, revision_id)
        session.commit()
        services.knowledge.refresh()
    except KnowledgeError as exc:
        session.rollback()
        return _history_page(request, session, services, actor, error=exc, status_code=422)
    return _history_page(request, session, services, actor, message=f"已撤销第 {revision_id} 号修改，已生效")


# ---- what the knowledge lacks ---------------------------------------------------------------------------


def _unanswered_page(request: Request, session: Session, services: Services, actor: Actor, *, days: int,
                     error: KnowledgeError | None = None, message: str | None = None,
                     status_code: int = 200) -> HTMLResponse:
    groups = edits.unanswered(session, actor, since=utcnow() - timedelta(days=days))
    router_ = services.router
    # The entry each group most likely belongs to, preselected: adding the phrasing is then one click.
    guesses = {}
    for group in groups:
        parse = router_.parse(group.text)
        guesses[group.text] = next((c.entry_id for c in parse.ranking if c.entry_id), None)
    entries = sorted(services.kb.entries.values(), key=lambda e: (TOPICS.index(e.topic), e.id))
    return render(request, "knowledge/unanswered.html", actor, status_code=status_code, groups=groups, days=days,
                  guesses=guesses, entries=entries, topics=dict(_topics(services)), error=error, message=message)


@router.get("/unanswered", response_class=HTMLResponse)
def unanswered_page(request: Request, session: SessionDep, services: ServicesDep, actor: Editor,
                    days: Annotated[int, Query(ge=1, le=90)] = 7) -> HTMLResponse:
    return _unanswered_page(request, session, services, actor, days=days)


@router.post("/unanswered", response_class=HTMLResponse)
def add_phrasing(request: Request, session: SessionDep, services: ServicesDep, actor: Editor, entry_id: Short,
                 question: Short, days: Annotated[int, Form(ge=1, le=90)] = 7) -> HTMLResponse:
    try:
        edits.add_question(session, services.knowledge, actor, entry_id, question)
        session.commit()
        services.knowledge.refresh()
    except KnowledgeError as exc:
        session.rollback()
        return _unanswered_page(request, session, services, actor, days=days, error=exc, status_code=422)
    title = services.kb.entries[entry_id].title
    return _unanswered_page(request, session, services, actor, days=days, message=f"已把“{question}”加为“{title}”的问法，已生效")
