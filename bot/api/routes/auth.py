"""POST /api/auth/token (OAuth2 password flow, DESIGN.md contract), who am I, and signing out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from bot.api.deps import STAFF_RESPONSES, SessionDep, SettingsDep, StaffDep, client_ip
from bot.api.routes.staff import AreaOut
from bot.auth import SignInRefused, authenticate, close_session, open_session

router = APIRouter(prefix="/api/auth", tags=["auth"])


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"


class MeOut(BaseModel):
    username: str
    role: str
    areas: list[AreaOut]


@router.post("/token", response_model=TokenOut, responses={
    401: {"description": "wrong username or password"},
    429: {"description": "too many failed sign-ins for this account or address; try again later"}})
def post_token(form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request, session: SessionDep,
               settings: SettingsDep) -> TokenOut:
    ip = client_ip(request)
    try:
        staff = authenticate(session, form.username, form.password, ip=ip, settings=settings)
    except SignInRefused as refused:
        session.commit()  # the failure is audited (and counted) even though the answer is an error
        if refused.reason == "rate_limited":
            raise HTTPException(429, "too many failed sign-ins; try again later",
                                headers={"Retry-After": str(settings.login_window_minutes * 60)}) from None
        raise HTTPException(401, "wrong username or password", headers={"WWW-Authenticate": "Bearer"}) from None
    token, _actor = open_session(session, staff, kind="token", ip=ip, user_agent=request.headers.get("user-agent"),
                                 settings=settings)
    return TokenOut(access_token=token)


@router.get("/me", response_model=MeOut, responses=STAFF_RESPONSES)
def get_me(actor: StaffDep) -> MeOut:
    return MeOut(username=actor.username, role=actor.role, areas=[AreaOut(**a.as_dict()) for a in actor.areas])


@router.post("/logout", status_code=204, responses=STAFF_RESPONSES)
def post_logout(actor: StaffDep, session: SessionDep) -> Response:
    close_session(session, actor)
    return Response(status_code=204)
