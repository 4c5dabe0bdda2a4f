"""The dashboard of the programme's figures (bot.roster_figures), by county or township in the viewer's
area, with Chart.js charts (vendored) and an Excel export (audited)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from bot.api.deps import SessionDep
from bot.audit import audit
from bot.auth import Actor
from bot.console.deps import console_role
from bot.console.pages import render
from bot.roster_figures import CHANNELS, FIGURES, FORMATS, figures_workbook, programme_figures
from bot.validation import has_control_chars

router = APIRouter(prefix="/console/dashboard", include_in_schema=False)
Viewer = Annotated[Actor, console_role("admin", "official", "assistant")]
County = Annotated[str, Query(max_length=32)]
XLSX_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _county(value: str) -> str | None:
    return None if not value.strip() or has_control_chars(value) else value.strip()


@router.get("", response_class=HTMLResponse)
def dashboard(request: Request, session: SessionDep, actor: Viewer, county: County = "") -> HTMLResponse:
    figures = programme_figures(session, actor, county=_county(county))
    charts = {
        "places": figures.chart(("labourers", "trained", "employed", "working_away")),
        "channels": {"labels": list(CHANNELS.values()),
                     "values": [figures.total.get(f"channel_{k}", 0) for k in CHANNELS]},
        "formats": {"labels": list(FORMATS), "values": [figures.total.get(f"trained_{f}", 0) for f in FORMATS]},
    }
    return render(request, "dashboard.html", actor, figures=figures, labels=dict(FIGURES), order=FIGURES,
                  charts=charts)


@router.get("/export.xlsx")
def dashboard_export(session: SessionDep, actor: Viewer, county: County = "") -> Response:
    chosen = _county(county)
    figures = programme_figures(session, actor, county=chosen)
    audit(session, actor, "export", object_type="figures", detail={"what": "dashboard_xlsx", "county": chosen})
    return Response(figures_workbook(figures), media_type=XLSX_MEDIA,
                    headers={"Content-Disposition": 'attachment; filename="figures.xlsx"'})
