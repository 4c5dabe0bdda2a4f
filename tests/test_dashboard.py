"""The programme's figures: by county for the city, by township inside a county, only the viewer's area;
trained by format, employed by channel, working away, complaints and money recovered; export audited."""

from __future__ import annotations

import re
from io import BytesIO

from openpyxl import load_workbook
from datetime import timedelta

from sqlalchemy import select, update

from bot.db import session_scope
from bot.models import AuditLog, Complaint, FiguresSnapshot, JobWish, Labourer, TrainingNeed, utcnow

from test_console import login
from test_dialog_support import db


def _world(app) -> None:  # noqa: ANN001
    people = [
        # (county, township, poor, channel, status, trained format)
        ("平昌县", "白衣镇", True, "public_welfare", "local", "农闲班"),
        ("平昌县", "白衣镇", True, "labour_export", "working_away", "流动班"),
        ("平昌县", "白衣镇", False, None, "unemployed", None),
        ("平昌县", "江口镇", True, "workshop", "local", "农闲班"),
        ("巴州区", "曾口镇", True, "flexible", "local", "网络班"),
    ]
    with session_scope(app.state.sessionmaker) as session:
        for n, (county, township, poor, channel, status, trained) in enumerate(people):
            lab = Labourer(name=f"工友{n}", county=county, township=township, employment_channel=channel,
                           employment_status=status, household_status="registered_poor" if poor else "general")
            session.add(lab)
            session.flush()
            if trained:
                session.add(TrainingNeed(labourer_id=lab.id, training_type="电焊", preferred_format=trained,
                                         status="trained"))
            session.add(TrainingNeed(labourer_id=lab.id, training_type="厨师"))  # an open need too
            if n % 2 == 0:
                session.add(JobWish(labourer_id=lab.id, job_type="保洁"))
        for n, (county, township, status, recovered) in enumerate([("平昌县", "白衣镇", "resolved", 12000),
                                                                  ("平昌县", "白衣镇", "new", None),
                                                                  ("巴州区", "曾口镇", "closed", 5000)]):
            session.add(Complaint(ticket_no=f"WQ-20260301-000{n}", channel="sms", user_id=f"u{n}", category="欠薪",
                                  employer="某公司", county=county, township=township, status=status,
                                  recovered_amount=recovered))


def _cell(html: str, key: str) -> list[str]:
    row = re.search(rf'<tr class="figure-{key}">(.*?)</tr>', html, re.S).group(1)
    return re.findall(r"<td>(?:<b>)?([^<]*)", row)[1:]


def test_the_city_sees_counties_and_a_county_official_sees_its_townships(client, app, make_staff):
    _world(app)
    make_staff("boss", "admin")
    login(client, "boss")
    page = client.get("/console/dashboard").text
    assert re.findall(r'dashboard\?county=[^"]+">([^<]+)<', page) == ["平昌县", "巴州区"]
    assert _cell(page, "labourers") == ["5", "4", "1"]
    assert _cell(page, "poor") == ["4", "3", "1"]
    assert _cell(page, "trained") == ["4", "3", "1"] and _cell(page, "training_needs") == ["5", "4", "1"]
    assert _cell(page, "trained_农闲班") == ["2", "2", "0"] and _cell(page, "trained_网络班") == ["1", "0", "1"]
    assert _cell(page, "employed") == ["4", "3", "1"]
    assert _cell(page, "channel_public_welfare") == ["1", "1", "0"]
    assert _cell(page, "working_away") == ["1", "1", "0"] and _cell(page, "job_wishes") == ["3", "2", "1"]
    assert _cell(page, "complaints_open") == ["1", "1", "0"] and _cell(page, "complaints_resolved") == ["2", "1", "1"]
    assert _cell(page, "recovered") == ["17000", "12000", "5000"]
    assert "chart.umd.js" in page and '"channels"' in page

    drilled = client.get("/console/dashboard", params={"county": "平昌县"}).text
    assert _cell(drilled, "labourers") == ["4", "3", "1"]  # 白衣镇, 江口镇

    make_staff("pc", "official", [{"county": "平昌县"}])
    client.cookies.clear()
    login(client, "pc")
    mine = client.get("/console/dashboard").text
    assert _cell(mine, "labourers") == ["4", "3", "1"] and "曾口镇" not in mine
    # Naming another county shows nothing of it.
    assert _cell(client.get("/console/dashboard", params={"county": "巴州区"}).text, "labourers") == ["0"]


def test_the_export_has_the_figures_and_is_audited(client, app, make_staff):
    _world(app)
    make_staff("bai", "official", [{"county": "平昌县", "township": "白衣镇"}])
    login(client, "bai")
    response = client.get("/console/dashboard/export.xlsx")
    assert response.status_code == 200
    table = {r[0]: r[1:] for r in load_workbook(BytesIO(response.content)).active.iter_rows(values_only=True)}
    assert table["指标"] == ("合计", "白衣镇") and table["登记劳动力"] == (3, 3) and table["挽回经济损失（元）"] == (12000, 12000)
    with db(app) as session:
        assert session.scalars(select(AuditLog.object_type).where(AuditLog.action == "export")).all() == ["figures"]


def test_the_page_keeps_its_figures_a_minute_and_the_export_counts_afresh(client, app, make_staff):
    _world(app)
    make_staff("bai", "official", [{"county": "平昌县", "township": "白衣镇"}])
    login(client, "bai")
    assert _cell(client.get("/console/dashboard").text, "labourers") == ["3", "3"]
    with session_scope(app.state.sessionmaker) as session:
        session.add(Labourer(name="新来的", county="平昌县", township="白衣镇"))
    assert _cell(client.get("/console/dashboard").text, "labourers") == ["3", "3"]
    table = {r[0]: r[1:] for r in load_workbook(BytesIO(client.get("/console/dashboard/export.xlsx").content))
             .active.iter_rows(values_only=True)}
    assert table["登记劳动力"] == (4, 4)
    with session_scope(app.state.sessionmaker) as session:  # as a minute later
        session.execute(update(FiguresSnapshot).values(computed_at=utcnow() - timedelta(minutes=2)))
    # The page that finds them old still answers at once with them, and has them counted afresh after it.
    assert _cell(client.get("/console/dashboard").text, "labourers") == ["3", "3"]
    assert _cell(client.get("/console/dashboard").text, "labourers") == ["4", "4"]


def test_one_worker_counts_afresh_and_the_others_keep_the_stored_figures(app):
    from bot.roster_figures import claim_refresh, refresh_figures

    _world(app)
    with session_scope(app.state.sessionmaker) as session:
        refresh_figures(session)
    with session_scope(app.state.sessionmaker) as session:
        assert not claim_refresh(session, timedelta(seconds=60))  # fresh: nobody counts
        session.execute(update(FiguresSnapshot).values(computed_at=utcnow() - timedelta(minutes=2)))
    with session_scope(app.state.sessionmaker) as session:
        assert claim_refresh(session, timedelta(seconds=60))
    with session_scope(app.state.sessionmaker) as session:
        assert not claim_refresh(session, timedelta(seconds=60))  # another is counting
        refresh_figures(session)
    with session_scope(app.state.sessionmaker) as session:
        snapshot = session.get(FiguresSnapshot, 1)
        assert snapshot.refreshing_at is None and utcnow() - snapshot.computed_at < timedelta(seconds=30)
        assert sum(values.get("labourers", 0) for *_place, values in snapshot.groups) == 5
