"""The dashboard of the programme's figures (bot.roster_figures), by county or township in the viewer's
area, with Chart.js charts (vendored) and an Excel export (audited).

The page reads the figures from the stored snapshot (counted for the whole city by village, then summed for
the viewer's area): city-wide counting is seconds of scanning on a quarter of a million labourers. Once the
snapshot is FRESH_SECONDS old, the page is still served from it and one worker counts afresh after the
response; the page says when the figures were counted. The export always counts afresh."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from bot.api.deps import SessionDep, SettingsDep
from bot.audit import audit
from bot.auth import Actor
from bot.console.deps import console_role
from bot.console.pages import render
from bot.db import session_scope
from bot.models import utcnow
from bot.roster_figures import CHANNELS, FIGURES, FORMATS, claim_refresh, figures_workbook, programme_figures, \
    refresh_figures, stored_figures
from bot.validation import has_control_chars

router = APIRouter(prefix="/console/dashboard", include_in_schema=False)
Viewer = Annotated[Actor, console_role("admin", "official", "assistant")]
County = Annotated[str, Query(max_length=32)]
XLSX_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FRESH_SECONDS = 60
log = logging.getLogger(__name__)


def _refresh(factory: sessionmaker[Session]) -> None:
    try:
        with session_scope(factory) as session:
            if not claim_refresh(session, timedelta(seconds=FRESH_SECONDS)):
                return  # fresh again, or another worker is counting
        with session_scope(factory) as session:
            refresh_figures(session)
    except Exception:  # the page keeps the figures it has; the next view tries again
        log.exception("counting the dashboard figures failed")


def _county(value: str) -> str | None:
    return None if not value.strip() or has_control_chars(value) else value.strip()


@router.get("", response_class=HTMLResponse)
def dashboard(request: Request, tasks: BackgroundTasks, session: SessionDep, settings: SettingsDep, actor: Viewer,
              county: County = "") -> HTMLResponse:
    snapshot = stored_figures(session)
    if snapshot is None:  # the first view ever: count now
        snapshot = refresh_figures(session)
        session.commit()
    elif utcnow() - snapshot.computed_at > timedelta(seconds=FRESH_SECONDS):
        tasks.add_task(_refresh, request.app.state.sessionmaker)
    figures = programme_figures(session, actor, county=_county(county), groups=snapshot.groups)
    charts = {
        "places": figures.chart(("labourers", "trained", "employed", "working_away")),
        "channels": {"labels": list(CHANNELS.values()),
                     "values": [figures.total.get(f"channel_{k}", 0) for k in CHANNELS]},
        "formats": {"labels": list(FORMATS), "values": [figures.total.get(f"trained_{f}", 0) for f in FORMATS]},
    }
    return render(request, "dashboard.html", actor, figures=figures, labels=dict(FIGURES), order=FIGURES,
                  charts=charts, fresh_minutes=FRESH_SECONDS // 60, counted_at=snapshot.computed_at,
                  tz=settings.timezone)


@router.get("/export.xlsx")
def dashboard_export(session: SessionDep, actor: Viewer, county: County = "") -> Response:
    chosen = _county(county)
    figures = programme_figures(session, actor, county=chosen)
    audit(session, actor, "export", object_type="figures", detail={"what": "dashboard_xlsx", "county": chosen})
    return Response(figures_workbook(figures), media_type=XLSX_MEDIA,
                    headers={"Content-Disposition": 'attachment; filename="figures.xlsx"'})
