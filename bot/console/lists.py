"""Console pages of the five lists (五名单), in the viewer's area: each with filters, counts by township,
one page of rows (masked), the startup and public-welfare lists editable (a flag on the labourer), and
the Excel export (audited; ID numbers and phones masked unless asked for in clear by a role that may see
them). The work is bot.roster_lists'."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from bot.api.deps import SessionDep, SettingsDep
from bot.auth import Actor
from bot.console.deps import console_role
from bot.console.pages import render
from bot.reveal import may_reveal
from bot.console.labourers import RowId, page_links
from bot.roster_lists import LISTS, export_list, filter_choices, list_count, list_rows, township_counts
from bot.scope import visible_areas
from bot.validation import has_control_chars

router = APIRouter(prefix="/console/lists", include_in_schema=False)
Registry = Annotated[Actor, console_role("admin", "official", "assistant")]
ListKey = Literal["training_need", "job_wish", "working_away", "startup", "public_welfare_post"]
XLSX_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CHOICES_SECONDS = 300
TOWNSHIP_SECONDS = 60
T = TypeVar("T")


def _filters(request: Request, key: str) -> dict[str, str]:
    names = ("township", "village", *(name for name, _label, _column in LISTS[key].filters))
    values = {}
    for name in names:
        value = request.query_params.get(name, "")[:32]
        if value.strip() and not has_control_chars(value):
            values[name] = value.strip()
    return values


@router.get("", response_class=HTMLResponse)
def lists_index(request: Request, session: SessionDep, actor: Registry) -> HTMLResponse:
    totals = {key: list_count(session, actor, key, {}) for key in LISTS}
    return render(request, "lists/index.html", actor, lists=LISTS, totals=totals)


def _kept(request: Request, name: str, index: tuple[Any, ...], seconds: float, count: Callable[[], T]) -> T:
    """`count()`, kept `seconds` per app and `index` (in app.state.<name>)."""
    kept: dict[tuple[Any, ...], tuple[float, Any]] | None = getattr(request.app.state, name, None)
    if kept is None:
        kept = {}
        setattr(request.app.state, name, kept)
    now = time.monotonic()
    if index in kept and now - kept[index][0] < seconds:
        return kept[index][1]
    if len(kept) > 1000:
        kept.clear()
    value = count()
    kept[index] = (now, value)
    return value


@router.get("/{key}", response_class=HTMLResponse)
def list_page(key: ListKey, request: Request, session: SessionDep, actor: Registry, after: RowId = 0,
              before: RowId = 0) -> HTMLResponse:
    filters = _filters(request, key)
    page, total = list_rows(session, actor, key, filters, after=after, before=before)
    area = (actor.role == "admin", visible_areas(actor))
    # The filters' values, and the counts by township of the three lists of rows (which officials do not edit
    # here; joined to the registry, they are a scan of the list), are kept a while; the flag lists are counted
    # from their own indexes, so a name taken off shows at once.
    if LISTS[key].model is None:
        by_township, counted = township_counts(session, actor, key, filters), None
    else:
        by_township = _kept(request, "list_townships", (key, area, tuple(sorted(filters.items()))), TOWNSHIP_SECONDS,
                            lambda: township_counts(session, actor, key, filters))
        counted = TOWNSHIP_SECONDS
    choices = _kept(request, "list_choices", (key, area), CHOICES_SECONDS, lambda: filter_choices(session, actor, key))
    return render(request, "lists/list.html", actor, spec=LISTS[key], rows=page.rows, total=total,
                  by_township=by_township, township_seconds=counted, filters=filters, choices=choices,
                  page=page_links(page, filters),
                  query=urlencode(filters), may_clear=may_reveal(actor, "labourer", "phone"),
                  back=str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""))


@router.get("/{key}/export.xlsx")
def list_export(key: ListKey, request: Request, session: SessionDep, settings: SettingsDep, actor: Registry,
                clear: Annotated[bool, Query()] = False) -> Response:
    body = export_list(session, actor, key, _filters(request, key), reveal=clear, data_key=settings.data_key)
    return Response(body, media_type=XLSX_MEDIA, headers={"Content-Disposition": f'attachment; filename="{key}.xlsx"'})
