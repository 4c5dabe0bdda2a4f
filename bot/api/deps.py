"""What routes depend on: the database session, the services, and the signed-in staff member.

    @router.get("/things/{thing_id}", response_model=ThingOut)
    def get_thing(thing_id: PathId, session: SessionDep, actor: Annotated[Actor, require_role("admin", "official")]):
        return get_scoped(session, Thing, thing_id, actor)       # NotFound → 404 (bot.api.errors)

`StaffDep` (alias `CurrentStaff`) is any active account with a valid bearer token (else 401);
`require_role(...)` narrows it to some roles (else 403). The area is applied by the query, with
`bot.scope.scope_where` / `get_scoped`, never by the route comparing strings itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from bot.auth import Actor, actor_for_secret
from bot.conversation import Services
from bot.db import session_scope
from bot.settings import Settings

TOKEN_URL = "/api/auth/token"
_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


def get_session(request: Request) -> Iterator[Session]:
    """One unit of work per request: committed when the route returns, rolled back when it raises."""
    with session_scope(request.app.state.sessionmaker) as session:
        yield session


def get_services(request: Request) -> Services:
    return request.app.state.services


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


# scope="function": the commit runs when the route returns, before the response is sent. FastAPI's default
# ("request") commits after sending, so a browser following a sign-in's redirect raced the session row's commit,
# and a failed commit would follow a success already answered.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def client_ip(request: Request) -> str | None:
    # Behind a reverse proxy, run uvicorn with --proxy-headers so this is the person's address.
    return request.client.host if request.client else None


def current_staff(request: Request, session: SessionDep, settings: SettingsDep,
                  token: Annotated[str | None, Depends(_bearer)]) -> Actor:
    actor = actor_for_secret(session, token or "", kind="token", settings=settings)
    if actor is None:
        raise HTTPException(401, "a valid bearer token is required (POST /api/auth/token)",
                            headers={"WWW-Authenticate": "Bearer"})
    return actor.at(client_ip(request))


StaffDep = Annotated[Actor, Depends(current_staff)]
CurrentStaff = StaffDep


def require_role(*roles: str) -> Any:
    """A dependency: the signed-in staff member, if their role is one of `roles` (403 otherwise).
    Use as `actor: Annotated[Actor, require_role("admin")]` or in `dependencies=[require_role(...)]`."""

    def check(actor: StaffDep) -> Actor:
        if actor.role not in roles:
            raise HTTPException(403, f"this needs one of the roles: {', '.join(roles)}")
        return actor

    return Depends(check)


# Documented on every staff router, so the OpenAPI schema shows what the token check answers.
STAFF_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "no bearer token, or an expired or revoked one"},
    403: {"description": "the account's role may not do this"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such row in the caller's area"}}
