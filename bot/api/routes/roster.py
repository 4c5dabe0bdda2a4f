"""Roster imports under /api/admin/roster/imports: upload (validated, nothing written), correct the column
mapping, commit the valid rows, download the rows with problems as Excel. See bot.roster."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from bot.api.deps import NOT_FOUND, STAFF_RESPONSES, ServicesDep, SessionDep, SettingsDep, require_role
from bot.api.fields import PathId
from bot.audit import audit
from bot.auth import Actor
from bot.models import RosterImport
from bot.roster import commit_import, error_workbook, get_import, remap_import, validate_upload

router = APIRouter(prefix="/api/admin/roster", tags=["roster"], responses=STAFF_RESPONSES)
Importer = Annotated[Actor, require_role("admin", "official", "assistant")]
XLSX_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class RowProblem(BaseModel):
    row: int = Field(description="the spreadsheet's own row number (the header is row 1)")
    field: str
    problem: str


class ImportReport(BaseModel):
    id: int
    rows: int
    valid: int
    to_create: int
    to_update: int
    errors: list[RowProblem]


class ImportDetail(ImportReport):
    status: str
    filename: str
    headers: list[str]
    mapping: dict[str, int]
    progress: int
    created: int | None
    updated: int | None
    skipped: int | None


class MappingIn(BaseModel):
    mapping: dict[str, int] = Field(description="field (name, id_number, phone, county, …) → column index from 0",
                                    max_length=32)


class CommitOut(BaseModel):
    created: int
    updated: int
    skipped: int


def report(upload: RosterImport) -> ImportReport:
    return ImportReport(id=upload.id, rows=upload.rows, valid=upload.valid, to_create=upload.to_create,
                        to_update=upload.to_update, errors=[RowProblem(**e) for e in upload.errors])


def detail(upload: RosterImport) -> ImportDetail:
    return ImportDetail(**report(upload).model_dump(), status=upload.status, filename=upload.filename,
                        headers=upload.headers, mapping=upload.mapping, progress=upload.progress,
                        created=upload.created, updated=upload.updated, skipped=upload.skipped)


@router.post("/imports", response_model=ImportReport, status_code=201)
def post_import(file: Annotated[UploadFile, File(description=".xlsx or .csv, the header in the first row")],
                session: SessionDep, settings: SettingsDep, services: ServicesDep, actor: Importer) -> ImportReport:
    upload = validate_upload(session, actor, filename=file.filename or "", data=file.file.read(),
                             regions=services.kb.regions, data_key=settings.data_key)
    return report(upload)


@router.get("/imports/{import_id}", response_model=ImportDetail, responses=NOT_FOUND)
def get_import_detail(import_id: PathId, session: SessionDep, actor: Importer) -> ImportDetail:
    return detail(get_import(session, import_id, actor))


@router.put("/imports/{import_id}/mapping", response_model=ImportReport, responses=NOT_FOUND)
def put_mapping(import_id: PathId, body: MappingIn, session: SessionDep, settings: SettingsDep,
                services: ServicesDep, actor: Importer) -> ImportReport:
    upload = remap_import(session, actor, get_import(session, import_id, actor), body.mapping,
                          regions=services.kb.regions, data_key=settings.data_key)
    return report(upload)


@router.post("/imports/{import_id}/commit", response_model=CommitOut, responses=NOT_FOUND)
def post_commit(import_id: PathId, request: Request, session: SessionDep, settings: SettingsDep,
                actor: Importer) -> CommitOut:
    get_import(session, import_id, actor)
    session.commit()  # the commit writes in transactions of its own: this request's must not hold the writer
    counts = commit_import(request.app.state.sessionmaker, import_id, actor, data_key=settings.data_key)
    return CommitOut(**counts)


@router.get("/imports/{import_id}/errors.xlsx", response_class=Response, responses={
    **NOT_FOUND, 200: {"content": {XLSX_MEDIA: {}}, "description": "the rows with problems, and what is wrong"}})
def get_errors_xlsx(import_id: PathId, session: SessionDep, settings: SettingsDep, actor: Importer) -> Response:
    return errors_xlsx_response(session, actor, get_import(session, import_id, actor), settings.data_key)


def errors_xlsx_response(session: Session, actor: Actor, upload: RosterImport, data_key: str) -> Response:
    """The error file (the rows as typed hold personal data): audited as an export (the API and the console)."""
    audit(session, actor, "export", object_type="roster_import", object_id=upload.id,
          detail={"what": "roster_errors_xlsx", "rows": len({e["row"] for e in upload.errors})})
    body = error_workbook(upload, data_key)
    return Response(body, media_type=XLSX_MEDIA,
                    headers={"Content-Disposition": f'attachment; filename="roster-{upload.id}-errors.xlsx"'})
