"""Console sessions and CSRF: what every console route depends on.

The session cookie holds a random session id signed with itsdangerous (HttpOnly, SameSite=Lax, Secure in
production, path /console); the server keeps only its hash, so a session is revoked by a row update and
ends after `console_idle_minutes` without a request. Every POST carries the session's CSRF token, as the
form field `csrf_token` or, for htmx, the `X-CSRF-Token` header that base.html sets on every request.
The login form, which has no session yet, carries a token that must match a signed cookie of its own.

    @router.get("/console/things")
    def things(request: Request, session: SessionDep, actor: Annotated[Actor, console_role("admin", "official")]):
        return render(request, "things.html", actor, rows=...)
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request
from itsdangerous import BadSignature, Signer
from sqlalchemy.orm import Session

from bot.api.deps import SessionDep, SettingsDep, client_ip
from bot.auth import Actor, actor_for_secret
from bot.db import session_scope
from bot.security import same_secret
from bot.settings import Settings

SESSION_COOKIE = "gongyou_session"
LOGIN_CSRF_COOKIE = "gongyou_login_csrf"
COOKIE_PATH = "/console"
LOGIN_PATH = "/console/login"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DEV_SECRET = "gongyou-development-only-console-key"


def signer(settings: Settings, purpose: str) -> Signer:
    # Derived from the data key production already requires; each purpose signs with its own salt.
    secret = hashlib.sha256(b"gongyou-console:" + (settings.data_key or _DEV_SECRET).encode()).digest()
    return Signer(secret, salt=f"gongyou-{purpose}")


def unsign(settings: Settings, purpose: str, value: str | None) -> str | None:
    if not value or len(value) > 256:
        return None
    try:
        return signer(settings, purpose).unsign(value).decode()
    except BadSignature:
        return None


def set_cookie(response: Any, settings: Settings, name: str, value: str, purpose: str, *,
               max_age: int | None = None) -> None:
    response.set_cookie(name, signer(settings, purpose).sign(value).decode(), max_age=max_age, path=COOKIE_PATH,
                        httponly=True, samesite="lax", secure=settings.env == "production")


def login_required(request: Request) -> HTTPException:
    if request.headers.get("HX-Request"):  # htmx follows HX-Redirect with a full page load
        return HTTPException(401, "请先登录", headers={"HX-Redirect": LOGIN_PATH})
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return HTTPException(303, "请先登录", headers={"Location": f"{LOGIN_PATH}?next={quote(target)}"})


def _cookie_actor(request: Request, session: Session, settings: Settings) -> Actor | None:
    secret = unsign(settings, "session", request.cookies.get(SESSION_COOKIE))
    actor = actor_for_secret(session, secret, kind="console", settings=settings) if secret else None
    return actor.at(client_ip(request)) if actor is not None else None


def console_actor(request: Request, session: SessionDep, settings: SettingsDep) -> Actor:
    actor = _cookie_actor(request, session, settings)
    if actor is None:
        raise login_required(request)
    return actor


def signed_in(request: Request) -> Actor | None:
    """The member this request's session cookie belongs to, or None: for pages rendered outside a route's
    dependencies (an error raised before they ran), which must still show the navigation."""
    if not request.cookies.get(SESSION_COOKIE):
        return None
    with session_scope(request.app.state.sessionmaker) as session:
        return _cookie_actor(request, session, request.app.state.settings)


def tokens_match(given: object, expected: str | None) -> bool:
    # as bytes: hmac.compare_digest refuses str with non-ASCII characters (a TypeError, so a 500)
    return isinstance(given, str) and bool(given) and bool(expected) and same_secret(given, expected or "")


async def csrf_checked(request: Request, actor: Annotated[Actor, Depends(console_actor)]) -> Actor:
    if request.method in UNSAFE_METHODS:
        given = request.headers.get("X-CSRF-Token") or (await request.form()).get("csrf_token")
        if not tokens_match(given, actor.csrf_token):
            raise HTTPException(403, "表单已过期，请刷新页面后重试")
    return actor


ConsoleStaff = Annotated[Actor, Depends(csrf_checked)]


def console_role(*roles: str) -> Any:
    """The signed-in staff member (CSRF checked on POST), if their role is one of `roles` (403 otherwise)."""

    def check(actor: ConsoleStaff) -> Actor:
        if actor.role not in roles:
            raise HTTPException(403, "您的账号没有权限使用此页面")
        return actor

    return Depends(check)
