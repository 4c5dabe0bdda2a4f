"""Console pages of labourers (officials, village assistants and admins, in their own area): search by name,
the last digits of an ID number or phone, or a whole one; one labourer's page with their lists,
registrations, complaints, sign-ups, channel bindings and messages, masked, with an audited reveal per
value (POST /console/reveal/labourer/…, bot.console.pages) and the startup / public-welfare flags."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bot.api.deps import SessionDep, SettingsDep
from bot.api.fields import PathId
from bot.auth import Actor
from bot.console.deps import console_role
from bot.console.pages import render
from bot.roster_lists import CHANNEL_WORDS, EMPLOYMENT_WORDS, LISTS, STATUS_WORDS, Page, labourer_profile, \
    search_labourers, set_flag
from bot.validation import has_control_chars

router = APIRouter(prefix="/console/labourers", include_in_schema=False)
Registry = Annotated[Actor, console_role("admin", "official", "assistant")]
SearchText = Annotated[str, Query(max_length=32)]
RowId = Annotated[int, Query(ge=0, le=2**63 - 1)]  # a page's neighbour, by id (0: none)


def _clean(value: str) -> str:
    return "" if has_control_chars(value) else value.strip()


@router.get("", response_class=HTMLResponse)
def labourer_search(request: Request, session: SessionDep, settings: SettingsDep, actor: Registry,
                    q: SearchText = "", township: SearchText = "", village: SearchText = "",
                    after: RowId = 0, before: RowId = 0) -> HTMLResponse:
    q, township, village = _clean(q), _clean(township), _clean(village)
    found, total = search_labourers(session, actor, q=q, township=township, village=village, after=after,
                                    before=before, data_key=settings.data_key)
    filters = {k: v for k, v in (("q", q), ("township", township), ("village", village)) if v}
    return render(request, "labourers/search.html", actor, found=[row[0] for row in found.rows], total=total, q=q,
                  township=township, village=village, page=page_links(found, filters), employment=EMPLOYMENT_WORDS)


def page_links(page: Page, filters: dict[str, str]) -> dict[str, str | None]:
    """The query strings of the links to the pages before and after (keyset: by the ids around this one)."""
    return {"prev": urlencode({**filters, "before": page.before}) if page.before else None,
            "next": urlencode({**filters, "after": page.after}) if page.after else None}


@router.get("/{labourer_id}", response_class=HTMLResponse)
def labourer_page(labourer_id: PathId, request: Request, session: SessionDep, settings: SettingsDep,
                  actor: Registry) -> HTMLResponse:
    return render(request, "labourers/detail.html", actor, p=labourer_profile(session, actor, labourer_id),
                  tz=settings.timezone, employment=EMPLOYMENT_WORDS, channels=CHANNEL_WORDS, statuses=STATUS_WORDS,
                  lists=LISTS)


@router.post("/{labourer_id}/flags")
def labourer_flag(labourer_id: PathId, session: SessionDep, actor: Registry,
                  flag: Annotated[str, Form(max_length=32)], on: Annotated[str, Form(max_length=8)] = "",
                  back: Annotated[str, Form(max_length=512)] = "") -> Response:
    set_flag(session, actor, labourer_id, flag, on in ("1", "on", "true"))
    session.commit()  # before the redirect: the request's own commit may come after the browser follows it
    target = back if back.startswith("/console/") and not back.startswith("//") and "\\" not in back \
        else f"/console/labourers/{labourer_id}"
    return RedirectResponse(target, status_code=303)
