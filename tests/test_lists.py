"""Labourers and the five lists in the console: search (name, last digits, a whole number, village), one
labourer's page masked with an audited reveal, each list with its counts by township inside the viewer's
area, the startup / public-welfare flags, and the Excel export (audited, masked unless asked in clear)."""

from __future__ import annotations

import re
from io import BytesIO

import pytest
from openpyxl import load_workbook
from sqlalchemy import event, select

from bot import pii
from bot.db import session_scope
from bot.models import AuditLog, ConversationState, JobWish, Labourer, MessageLog, TrainingNeed

from roster_support import id_number
from test_console import csrf_of, login
from test_dialog_support import db


def _people(app) -> dict[str, int]:  # noqa: ANN001
    key = app.state.settings.data_key
    made = {}
    with session_scope(app.state.sessionmaker) as session:
        for n, (name, township, village) in enumerate([("张大山", "白衣镇", "长沙村"), ("张小山", "白衣镇", "凤凰村"),
                                                       ("李秀英", "白衣镇", "长沙村"), ("王外镇", "江口镇", "茶园村")]):
            ident = pii.protect_id_number(id_number(n + 1), key)
            phone = pii.protect_phone(f"1391234{n:04d}", key)
            lab = Labourer(name=name, county="平昌县", township=township, village=village,
                           id_number_enc=ident.encrypted, id_number_hash=ident.lookup_hash, id_number_masked=ident.masked,
                           phone_enc=phone.encrypted, phone_hash=phone.lookup_hash, phone_masked=phone.masked)
            session.add(lab)
            session.flush()
            made[name] = lab.id
            session.add(TrainingNeed(labourer_id=lab.id, training_type="电焊" if n != 2 else "厨师", township=township))
        session.add(JobWish(labourer_id=made["李秀英"], job_type="保洁"))
        session.add(ConversationState(channel="simulator", user_id="zds", labourer_id=made["张大山"], slots={}, context={}))
        session.add(MessageLog(channel="simulator", user_id="zds", direction="in", text="我电话13912340000，工资没发"))
    return made


def _names(html: str) -> set[str]:
    return set(re.findall(r'/console/labourers/\d+">([^<]+)<', html))


def test_search_by_name_digits_number_and_village_inside_the_area(client, app, make_staff):
    _people(app)
    make_staff("bai", "official", [{"county": "平昌县", "township": "白衣镇"}])
    login(client, "bai")
    assert _names(client.get("/console/labourers").text) == {"张大山", "张小山", "李秀英"}  # not 江口镇's
    assert _names(client.get("/console/labourers", params={"q": "张"}).text) == {"张大山", "张小山"}
    assert _names(client.get("/console/labourers", params={"q": "0002"}).text) == {"李秀英"}  # phone suffix
    suffix = id_number(2)[-4:]
    assert _names(client.get("/console/labourers", params={"q": suffix}).text) == {"张小山"}
    assert _names(client.get("/console/labourers", params={"q": "13912340000"}).text) == {"张大山"}
    assert _names(client.get("/console/labourers", params={"q": id_number(3)}).text) == {"李秀英"}
    assert _names(client.get("/console/labourers", params={"village": "凤凰村"}).text) == {"张小山"}
    assert _names(client.get("/console/labourers", params={"q": "王外镇"}).text) == set()
    assert _names(client.get("/console/labourers", params={"q": "%"}).text) == set()


def test_a_labourers_page_is_masked_and_a_reveal_is_audited(client, app, make_staff):
    made = _people(app)
    make_staff("bai", "official", [{"county": "平昌县", "township": "白衣镇"}])
    login(client, "bai")
    page = client.get(f"/console/labourers/{made['张大山']}")
    assert page.status_code == 200
    assert "139****0000" in page.text and "13912340000" not in page.text  # the message text is redacted too
    assert "工资没发" in page.text and "电焊" in page.text
    assert id_number(1) not in page.text and pii.mask_id_number(id_number(1)) in page.text
    token = csrf_of(client, f"/console/labourers/{made['张大山']}")
    shown = client.post(f"/console/reveal/labourer/{made['张大山']}/phone", headers={"X-CSRF-Token": token,
                                                                                    "HX-Request": "true"})
    assert shown.status_code == 200 and "13912340000" in shown.text
    with db(app) as session:
        [row] = session.scalars(select(AuditLog).where(AuditLog.action == "reveal")).all()
    assert (row.actor, row.object_id, row.detail) == ("bai", str(made["张大山"]), {"field": "phone"})
    assert client.get(f"/console/labourers/{made['王外镇']}").status_code == 404  # another township


def test_lists_count_by_township_and_the_flags_are_editable(client, app, make_staff):
    made = _people(app)
    make_staff("pc", "official", [{"county": "平昌县"}])
    login(client, "pc")
    page = client.get("/console/lists/training_need")
    assert re.search(r'id="list-total">4<', page.text)
    assert re.search(r"<td>白衣镇</td><td>3</td>", page.text) and re.search(r"<td>江口镇</td><td>1</td>", page.text)
    cooks = client.get("/console/lists/training_need", params={"training_type": "厨师"})
    assert _names(cooks.text) == {"李秀英"}
    assert _names(client.get("/console/lists/job_wish").text) == {"李秀英"}
    assert client.get("/console/lists/nonsense").status_code == 422

    token = csrf_of(client, "/console/lists/startup")
    assert _names(client.get("/console/lists/startup").text) == set()
    added = client.post(f"/console/labourers/{made['张小山']}/flags", data={"csrf_token": token, "flag": "startup",
                                                                          "on": "1"}, follow_redirects=False)
    assert added.status_code == 303
    assert _names(client.get("/console/lists/startup").text) == {"张小山"}
    index = client.get("/console/lists")
    assert re.search(r'id="total-startup">1<', index.text) and re.search(r'id="total-training_need">4<', index.text)
    client.post(f"/console/labourers/{made['张小山']}/flags",
                data={"csrf_token": token, "flag": "startup", "back": "/console/lists/startup"})
    assert _names(client.get("/console/lists/startup").text) == set()
    with db(app) as session:
        actions = session.scalars(select(AuditLog.action).where(AuditLog.object_type == "labourer")).all()
    assert actions == ["list_added", "list_removed"]


def test_the_export_is_masked_unless_asked_in_clear_and_always_audited(client, app, make_staff):
    _people(app)
    make_staff("bai", "official", [{"county": "平昌县", "township": "白衣镇"}])
    login(client, "bai")

    def table(**params) -> list[list]:
        response = client.get("/console/lists/training_need/export.xlsx", params=params)
        assert response.status_code == 200
        return [list(r) for r in load_workbook(BytesIO(response.content)).active.iter_rows(values_only=True)]

    masked = table()
    assert masked[0][:3] == ["姓名", "身份证号（已隐藏）", "手机号（已隐藏）"]
    assert {r[0] for r in masked[1:]} == {"张大山", "张小山", "李秀英"}  # not 江口镇's
    assert all("****" in r[2] for r in masked[1:])
    clear = table(clear="1", village="长沙村")
    assert {r[0] for r in clear[1:]} == {"张大山", "李秀英"} and "13912340000" in {r[2] for r in clear[1:]}
    with db(app) as session:
        exports = session.scalars(select(AuditLog).where(AuditLog.action == "export").order_by(AuditLog.id)).all()
    assert [e.detail["clear"] for e in exports] == [[], ["id_number", "phone"]]
    assert exports[1].detail["filters"] == {"village": "长沙村"}


def test_the_api_searches_the_same_way(client, app, make_staff):
    _people(app)
    official = make_staff("bai", "official", [{"county": "平昌县", "township": "白衣镇"}])
    found = client.get("/api/admin/labourers", params={"q": "0002"}, headers=official).json()
    assert [p["name"] for p in found["items"]] == ["李秀英"] and found["items"][0]["phone"] == "139****0002"
    assert client.get("/api/admin/labourers", params={"q": "王外镇"}, headers=official).json()["total"] == 0


def test_pages_go_forward_and_back_by_the_ids_around_them(client, app, make_staff):
    with session_scope(app.state.sessionmaker) as session:
        for n in range(120):
            lab = Labourer(name=f"翻页{n:03d}", county="平昌县", township="白衣镇", village="长沙村",
                           public_welfare_post=n % 2 == 0)
            session.add(lab)
    make_staff("bai", "official", [{"county": "平昌县", "township": "白衣镇"}])
    login(client, "bai")

    def walk(url: str) -> tuple[list[str], list[tuple[str, str]]]:
        html = client.get(url).text
        names = re.findall(r'/console/labourers/\d+">(翻页\d+)<', html)
        links = re.findall(r'<a href="\?([^"]+)">(上一页|下一页)</a>', html)
        return names, [(label, query.replace("&amp;", "&")) for query, label in links]

    first, links = walk("/console/labourers?q=翻页")
    assert first == [f"翻页{n:03d}" for n in range(50)] and [label for label, _ in links] == ["下一页"]
    second, links = walk("/console/labourers?" + dict(links)["下一页"])
    assert second == [f"翻页{n:03d}" for n in range(50, 100)] and [label for label, _ in links] == ["上一页", "下一页"]
    third, links = walk("/console/labourers?" + dict(links)["下一页"])
    assert third == [f"翻页{n:03d}" for n in range(100, 120)] and [label for label, _ in links] == ["上一页"]
    back, links = walk("/console/labourers?" + dict(links)["上一页"])
    assert back == second
    assert walk("/console/labourers?" + dict(links)["上一页"])[0] == first

    listed, links = walk("/console/lists/public_welfare_post")
    assert listed == [f"翻页{n:03d}" for n in range(0, 100, 2)] and [label for label, _ in links] == ["下一页"]
    rest, links = walk("/console/lists/public_welfare_post?" + dict(links)["下一页"])
    assert rest == [f"翻页{n:03d}" for n in range(100, 120, 2)] and [label for label, _ in links] == ["上一页"]
    assert ">60<" in client.get("/console/lists").text.replace(" ", "")  # the list's total on the index


def test_an_official_s_search_reads_the_search_indexes_not_every_labourer_of_the_township(client, app, make_staff):
    """At a city's size (benchmarks/console.py) the two searches an official types most, a name's beginning and
    the last four digits, must not read every labourer of their township: the name is read from the place
    index (migration 0022) and the last digits from their own indexes. SQLite's plans, as SQLite chooses them
    without statistics (PostgreSQL plans by its statistics of the tables)."""
    engine = app.state.engine
    if engine.dialect.name != "sqlite":
        pytest.skip("the plans checked are SQLite's")
    _people(app)
    make_staff("bai", "official", [{"county": "平昌县", "township": "白衣镇"}])
    login(client, "bai")
    statements: list[tuple[str, object]] = []

    def keep(_conn, _cursor, statement, parameters, _context, _many):  # noqa: ANN001
        if statement.lstrip().startswith("SELECT") and "FROM labourer" in statement:
            statements.append((statement, parameters))

    def plans(params: dict[str, str], path: str = "/console/labourers", *, of: str = "") -> list[str]:
        statements.clear()
        event.listen(engine, "before_cursor_execute", keep)
        try:
            page = client.get(path, params=params)
        finally:
            event.remove(engine, "before_cursor_execute", keep)
        assert page.status_code == 200
        with engine.connect() as conn:
            return [" | ".join(row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, args))
                    for sql, args in statements if (of or "labourer.name") in sql or (not of and "count(" in sql)]

    by_name = plans({"q": "张"})
    assert by_name and all("ix_labourer_place_name" in plan or "ix_labourer_name" in plan for plan in by_name), by_name
    by_digits = plans({"q": "0002"})
    assert by_digits and all("ix_labourer_phone_last4" in plan and "ix_labourer_id_last4" in plan
                             for plan in by_digits), by_digits
    # … and the flag lists still count from their own small indexes, not from the place index beside them
    flagged = plans({}, "/console/lists/public_welfare_post", of="public_welfare_post = 1")
    assert flagged and all("ix_labourer_public_welfare_post_place" in plan for plan in flagged), flagged


def test_a_list_s_filter_form_offers_the_values_found_in_the_viewer_s_area(app, make_staff):
    from fastapi.testclient import TestClient

    made = _people(app)
    with session_scope(app.state.sessionmaker) as session:
        session.add(TrainingNeed(labourer_id=made["王外镇"], training_type="挖掘机", preferred_format="流动班",
                                 township="江口镇"))
    make_staff("city", "admin")
    make_staff("bai", "official", [{"county": "平昌县", "township": "白衣镇"}])

    def offered(username: str) -> dict[str, set[str]]:
        with TestClient(app) as client:
            login(client, username)
            page = client.get("/console/lists/training_need").text
        return {name: set(re.findall(r"<option[^>]*>([^<]+)</option>", body)) - {"全部"}
                for name, body in re.findall(r'<select name="(\w+)">(.*?)</select>', page, re.S)}

    city = offered("city")
    assert city["training_type"] == {"电焊", "厨师", "挖掘机"} and city["format"] == {"流动班"}
    assert city["township"] == {"白衣镇", "江口镇"}
    assert offered("bai") == {"township": {"白衣镇"}, "training_type": {"电焊", "厨师"}, "format": set(),
                              "status": {"open"}}
