"""Console pages: sign-in and out, the landing page, staff accounts and the audit log (admins), reveal.

Add a page: a route here (or in a module of its own, included in create_app) taking
`actor: Annotated[Actor, console_role(...)]`, a template that extends base.html, an entry in base.html's
navigation list, and a row in tests/staff_routes.py (the permission table).
"""

from __future__ import annotations

import secrets
from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import func, select

from bot.api.deps import ServicesDep, SessionDep, SettingsDep, client_ip
from bot.api.fields import PathId
from bot.api.routes.audit import PAGE as AUDIT_PAGE
from bot.api.routes.audit import audit_query
from bot.api.routes.staff import Username
from bot.auth import Actor, SignInRefused, authenticate, close_session, create_staff, find_staff, open_session, \
    resolve_areas, update_staff
from bot.console.deps import LOGIN_CSRF_COOKIE, LOGIN_PATH, SESSION_COOKIE, COOKIE_PATH, console_role, set_cookie, \
    signed_in, tokens_match, unsign
from bot.errors import Conflict, Invalid, NotFound
from bot.models import Staff
from bot.models.staff import ROLES
from bot.reveal import reveal
from bot.validation import has_control_chars

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["localtime"] = lambda moment, tz: moment.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S")
router = APIRouter(prefix="/console", include_in_schema=False)
AnyStaff = Annotated[Actor, console_role(*ROLES)]
Admin = Annotated[Actor, console_role("admin")]
Field = Annotated[str, Form(max_length=256)]


def static_files() -> StaticFiles:
    return StaticFiles(directory=HERE / "static")


def render(request: Request, template: str, actor: Actor | None, status_code: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, template, {"actor": actor, **context}, status_code=status_code)


def error_page(request: Request, status: int, actor: Actor | None = None) -> HTMLResponse:
    # An error raised before or outside a route's dependencies still shows a signed-in member their navigation.
    return render(request, "error.html", actor or signed_in(request), status_code=status, status=status)


# ---- signing in and out ------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    # Only a console path: never an open redirect to another site ("//evil.example" or "/\\evil").
    if target and target.startswith("/console/") and not target.startswith(("//", "/\\")) and "\\" not in target:
        return target
    return "/console/"


def _login_form(request: Request, settings: Any, *, next_url: str, error: str | None = None, username: str = "",
                status_code: int = 200) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response = render(request, "login.html", None, status_code=status_code, csrf_token=token, next_url=next_url,
                      error=error, username=username)
    set_cookie(response, settings, LOGIN_CSRF_COOKIE, token, "login-csrf", max_age=3600)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, settings: SettingsDep, next: Annotated[str | None, Query(max_length=512)] = None) -> HTMLResponse:
    return _login_form(request, settings, next_url=_safe_next(next))


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, session: SessionDep, settings: SettingsDep, username: Field, password: Field,
          csrf_token: Field = "", next: Field = "/console/") -> Response:
    expected = unsign(settings, "login-csrf", request.cookies.get(LOGIN_CSRF_COOKIE))
    if not tokens_match(csrf_token, expected):
        return _login_form(request, settings, next_url=_safe_next(next), error="csrf", username=username,
                           status_code=403)
    ip = client_ip(request)
    try:
        staff = authenticate(session, username, password, ip=ip, settings=settings)
    except SignInRefused as refused:
        session.commit()  # the failure is audited (and counted)
        limited = refused.reason == "rate_limited"
        return _login_form(request, settings, next_url=_safe_next(next), error=refused.reason,
                           username="" if has_control_chars(username) else username,
                           status_code=429 if limited else 401)
    secret, _actor = open_session(session, staff, kind="console", ip=ip, user_agent=request.headers.get("user-agent"),
                                  settings=settings)
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_cookie(response, settings, SESSION_COOKIE, secret, "session")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=COOKIE_PATH)
    return response


@router.post("/logout")
def logout(session: SessionDep, actor: AnyStaff) -> Response:
    close_session(session, actor)
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request, actor: AnyStaff) -> HTMLResponse:
    return render(request, "home.html", actor)


# ---- staff accounts (admins) --------------------------------------------------------------------


def _staff_page(request: Request, session: SessionDep, services: ServicesDep, actor: Actor, *,
                message: str | None = None, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    accounts = session.scalars(select(Staff).order_by(Staff.username)).all()
    regions = services.kb.regions or {}
    return render(request, "staff.html", actor, status_code=status_code, accounts=accounts, roles=ROLES,
                  counties=[c["name"] for c in regions.get("counties") or ()], message=message, error=error)


@router.get("/staff", response_class=HTMLResponse)
def staff_list(request: Request, session: SessionDep, services: ServicesDep, actor: Admin) -> HTMLResponse:
    return _staff_page(request, session, services, actor)


@router.post("/staff", response_class=HTMLResponse)
def staff_add(request: Request, session: SessionDep, services: ServicesDep, actor: Admin, username: Field,
              password: Field, role: Field, counties: Field = "", township: Field = "", village: Field = "") -> HTMLResponse:
    try:
        areas = resolve_areas(role, counties=counties.replace("，", ",").replace(" ", ",").split(","),
                              township=township.strip() or None, village=village.strip() or None,
                              regions=services.kb.regions)
        create_staff(session, actor, username=username, password=password, role=role, areas=areas)
    except (Invalid, Conflict) as exc:
        session.rollback()
        return _staff_page(request, session, services, actor, error=str(exc), status_code=422)
    return _staff_page(request, session, services, actor, message=f"已添加账号 {username.strip()}")


def _account(session: SessionDep, username: str) -> Staff:
    staff = find_staff(session, username)
    if staff is None:
        raise NotFound("no such staff account")
    return staff


@router.post("/staff/{username}/disable", response_class=HTMLResponse)
def staff_disable(username: Username, request: Request, session: SessionDep, services: ServicesDep,
                  actor: Admin) -> HTMLResponse:
    if username == actor.username:
        return _staff_page(request, session, services, actor, error="不能停用自己的账号", status_code=422)
    update_staff(session, actor, _account(session, username), active=False)
    return _staff_page(request, session, services, actor, message=f"已停用账号 {username}")


@router.post("/staff/{username}/enable", response_class=HTMLResponse)
def staff_enable(username: Username, request: Request, session: SessionDep, services: ServicesDep,
                 actor: Admin) -> HTMLResponse:
    update_staff(session, actor, _account(session, username), active=True)
    return _staff_page(request, session, services, actor, message=f"已启用账号 {username}")


@router.post("/staff/{username}/password", response_class=HTMLResponse)
def staff_password(username: Username, request: Request, session: SessionDep, services: ServicesDep, actor: Admin,
                   password: Field) -> HTMLResponse:
    try:
        update_staff(session, actor, _account(session, username), password=password)
    except Invalid as exc:
        return _staff_page(request, session, services, actor, error=str(exc), status_code=422)
    return _staff_page(request, session, services, actor, message=f"已重设 {username} 的密码，原有登录已失效")


# ---- the audit log (admins, read-only) --------------------------------------------------------------


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, session: SessionDep, settings: SettingsDep, actor: Admin,
               who: Annotated[str, Query(alias="actor", max_length=64)] = "",
               action: Annotated[str, Query(max_length=48)] = "",
               start: Annotated[str, Query(alias="from", max_length=10)] = "",
               end: Annotated[str, Query(alias="to", max_length=10)] = "",
               offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> HTMLResponse:
    # The filter form sends every field, empty ones too: an empty or unreadable field is simply no filter.
    who, action = ("" if has_control_chars(v) else v.strip() for v in (who, action))
    day_from, day_to = _day(start), _day(end)
    query = audit_query(actor=who or None, action=action or None, day_from=day_from, day_to=day_to,
                        tz=settings.timezone)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    rows = session.scalars(query.offset(offset).limit(AUDIT_PAGE)).all()
    filters = {"actor": who, "action": action, "from": day_from or "", "to": day_to or ""}
    more = {k: v for k, v in filters.items() if v}
    page = {
        "prev": urlencode({**more, "offset": max(offset - AUDIT_PAGE, 0)}) if offset else None,
        "next": urlencode({**more, "offset": offset + AUDIT_PAGE}) if offset + AUDIT_PAGE < total else None,
    }
    return render(request, "audit.html", actor, rows=rows, total=total, filters=filters, page=page,
                  offset=offset, tz=settings.timezone)


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


# ---- reveal one value (htmx) ----------------------------------------------------------------------


@router.post("/reveal/{object_type}/{row_id}/{field}", response_class=HTMLResponse)
def reveal_value(object_type: str, row_id: PathId, field: str, request: Request, session: SessionDep,
                 settings: SettingsDep, actor: AnyStaff) -> HTMLResponse:
    value = reveal(session, actor, object_type, row_id, field, data_key=settings.data_key)
    return render(request, "_revealed.html", actor, value=value)
