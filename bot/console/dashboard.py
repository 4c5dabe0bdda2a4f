"""The dashboard of the programme's figures (bot.roster_figures), by county or township in the viewer's
area, with Chart.js charts (vendored) and an Excel export (audited).

The page keeps each area's figures for FRESH_SECONDS: city-wide, they are grouped scans of a quarter of a
million labourers (seconds on SQLite), and a dashboard a minute old serves its readers as well. The export
always counts afresh."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from bot.api.deps import SessionDep
from bot.audit import audit
from bot.auth import Actor
from bot.console.deps import console_role
from bot.console.pages import render
from bot.roster_figures import CHANNELS, FIGURES, FORMATS, Figures, figures_workbook, programme_figures
from bot.scope import visible_areas
from bot.validation import has_control_chars

router = APIRouter(prefix="/console/dashboard", include_in_schema=False)
Viewer = Annotated[Actor, console_role("admin", "official", "assistant")]
County = Annotated[str, Query(max_length=32)]
XLSX_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FRESH_SECONDS = 60


def _recent(request: Request, session: Any, actor: Actor, county: str | None) -> Figures:
    """The figures for this area, counted at most FRESH_SECONDS ago (kept per app, per area and county)."""
    kept: dict[tuple[Any, ...], tuple[float, Figures]] | None = getattr(request.app.state, "dashboard_figures", None)
    if kept is None:
        kept = request.app.state.dashboard_figures = {}
    key = (actor.role == "admin", visible_areas(actor), county)
    now = time.monotonic()
    if key in kept and now - kept[key][0] < FRESH_SECONDS:
        return kept[key][1]
    if len(kept) > 1000:
        kept.clear()
    figures = programme_figures(session, actor, county=county)
    kept[key] = (now, figures)
    return figures


def _county(value: str) -> str | None:
    return None if not value.strip() or has_control_chars(value) else value.strip()


@router.get("", response_class=HTMLResponse)
def dashboard(request: Request, session: SessionDep, actor: Viewer, county: County = "") -> HTMLResponse:
    figures = _recent(request, session, actor, _county(county))
    charts = {
        "places": figures.chart(("labourers", "trained", "employed", "working_away")),
        "channels": {"labels": list(CHANNELS.values()),
                     "values": [figures.total.get(f"channel_{k}", 0) for k in CHANNELS]},
        "formats": {"labels": list(FORMATS), "values": [figures.total.get(f"trained_{f}", 0) for f in FORMATS]},
    }
    return render(request, "dashboard.html", actor, figures=figures, labels=dict(FIGURES), order=FIGURES,
                  charts=charts, fresh_minutes=FRESH_SECONDS // 60)


@router.get("/export.xlsx")
def dashboard_export(session: SessionDep, actor: Viewer, county: County = "") -> Response:
    chosen = _county(county)
    figures = programme_figures(session, actor, county=chosen)
    audit(session, actor, "export", object_type="figures", detail={"what": "dashboard_xlsx", "county": chosen})
    return Response(figures_workbook(figures), media_type=XLSX_MEDIA,
                    headers={"Content-Disposition": 'attachment; filename="figures.xlsx"'})
