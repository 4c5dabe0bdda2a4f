"""Console pages of roster imports: upload a file, read the validation report (counts, the first rows of
each kind of problem, the rows with problems as an Excel file), correct the column mapping, commit with a
progress bar (htmx polling while the rows are written in the background). The work is bot.roster's."""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, File, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from bot.api.deps import ServicesDep, SessionDep, SettingsDep
from bot.api.fields import PathId
from bot.api.routes.roster import errors_xlsx_response
from bot.auth import Actor
from bot.console.deps import console_role
from bot.console.pages import render
from bot.errors import Conflict, Invalid
from bot.models import RosterImport
from bot.roster import COLUMNS, commit_import, get_import, list_imports, remap_import, validate_upload

log = logging.getLogger(__name__)
router = APIRouter(prefix="/console/roster", include_in_schema=False)
Importer = Annotated[Actor, console_role("admin", "official", "assistant")]
FIRST_ROWS = 5  # rows shown per kind of problem
_DETAIL = re.compile(r"：.*$|第\d+行|\d+")


def problem_kinds(upload: RosterImport) -> list[dict[str, Any]]:
    """The problems grouped by field and kind (the text without the value it quotes), largest first, each
    with its count and first rows."""
    kinds: dict[tuple[str, str], dict[str, Any]] = {}
    for error in upload.errors:
        key = (error["field"], _DETAIL.sub("", error["problem"]))
        kind = kinds.setdefault(key, {"field": error["field"], "label": COLUMNS.get(error["field"]).label
                                      if error["field"] in COLUMNS else error["field"],
                                      "problem": error["problem"], "count": 0, "rows": []})
        kind["count"] += 1
        if len(kind["rows"]) < FIRST_ROWS:
            kind["rows"].append(error)
    return sorted(kinds.values(), key=lambda k: -k["count"])


def _page(request: Request, actor: Actor, upload: RosterImport, *, error: str | None = None,
          status_code: int = 200) -> HTMLResponse:
    return render(request, "roster/import.html", actor, status_code=status_code, upload=upload,
                  kinds=problem_kinds(upload), columns=COLUMNS, error=error)


@router.get("", response_class=HTMLResponse)
def roster_home(request: Request, session: SessionDep, settings: SettingsDep, actor: Importer) -> HTMLResponse:
    return render(request, "roster/index.html", actor, imports=list_imports(session, actor), columns=COLUMNS,
                  tz=settings.timezone)


@router.post("/imports", response_class=HTMLResponse)
def roster_upload(request: Request, session: SessionDep, settings: SettingsDep, services: ServicesDep,
                  actor: Importer, file: Annotated[UploadFile, File()]) -> Response:
    try:
        upload = validate_upload(session, actor, filename=file.filename or "", data=file.file.read(),
                                 regions=services.kb.regions, data_key=settings.data_key)
    except Invalid as exc:
        session.rollback()
        return render(request, "roster/index.html", actor, status_code=422, imports=list_imports(session, actor),
                      columns=COLUMNS, tz=settings.timezone, error=str(exc))
    session.commit()  # before the redirect: the request's own commit may come after the browser follows it
    return RedirectResponse(f"/console/roster/imports/{upload.id}", status_code=303)


@router.get("/imports/{import_id}", response_class=HTMLResponse)
def roster_import(import_id: PathId, request: Request, session: SessionDep, actor: Importer) -> HTMLResponse:
    return _page(request, actor, get_import(session, import_id, actor))


@router.post("/imports/{import_id}/mapping", response_class=HTMLResponse)
async def roster_mapping(import_id: PathId, request: Request, session: SessionDep, settings: SettingsDep,
                         services: ServicesDep, actor: Importer) -> Response:
    form = await request.form()
    mapping = {}
    for name in COLUMNS:
        chosen = str(form.get(f"col_{name}") or "")
        if chosen.isdigit():
            mapping[name] = int(chosen)
    upload = get_import(session, import_id, actor)
    try:
        remap_import(session, actor, upload, mapping, regions=services.kb.regions, data_key=settings.data_key)
    except Conflict as exc:
        return _page(request, actor, upload, error=str(exc), status_code=409)
    session.commit()  # before the redirect, as above
    return RedirectResponse(f"/console/roster/imports/{import_id}", status_code=303)


def _commit_in_background(factory: sessionmaker[Session], import_id: int, actor: Actor, data_key: str) -> None:
    try:
        commit_import(factory, import_id, actor, data_key=data_key)
    except Conflict:
        pass  # another request is committing it; the page shows that one's progress
    except Exception:  # the import is marked failed; the page says so and the official may try again
        log.exception("roster import commit failed", extra={"import_id": import_id})


@router.post("/imports/{import_id}/commit", response_class=HTMLResponse)
def roster_commit(import_id: PathId, request: Request, tasks: BackgroundTasks, session: SessionDep,
                  settings: SettingsDep, actor: Importer) -> Response:
    upload = get_import(session, import_id, actor)
    if upload.status in ("validated", "failed"):
        tasks.add_task(_commit_in_background, request.app.state.sessionmaker, import_id, actor, settings.data_key)
    if request.headers.get("HX-Request"):
        return render(request, "roster/_progress.html", actor, upload=upload, starting=True, fragment=True)
    return RedirectResponse(f"/console/roster/imports/{import_id}", status_code=303)


@router.get("/imports/{import_id}/progress", response_class=HTMLResponse)
def roster_progress(import_id: PathId, request: Request, session: SessionDep, actor: Importer) -> HTMLResponse:
    return render(request, "roster/_progress.html", actor, upload=get_import(session, import_id, actor),
                  starting=False, fragment=True)


@router.get("/imports/{import_id}/errors.xlsx")
def roster_errors(import_id: PathId, session: SessionDep, settings: SettingsDep, actor: Importer) -> Response:
    return errors_xlsx_response(session, actor, get_import(session, import_id, actor), settings.data_key)
