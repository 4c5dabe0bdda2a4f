"""The help desk's console pages: the queue (views, filters, counts, only the desk's area), a case (the
conversation, reply and note, status buttons, assignment, 显示 audited), merging duplicates, collective
cases, and the Excel export (masked, audited)."""

from __future__ import annotations

import io

from openpyxl import load_workbook
from sqlalchemy import select

from bot.db import session_scope
from bot.models import AuditLog, Complaint, OutboundMessage, Ticket
from bot.models.complaints import create_complaint

from test_console import csrf_of, login
from test_dialog_support import add_roster_labourer, rows
from test_helpdesk import PINGCHANG, file_by_sms


def complaint(app, employer: str, *, county: str | None = "平昌县", township: str | None = "江口镇",  # noqa: ANN001
              workers: int = 1, category: str = "欠薪", site: str | None = None) -> str:
    from datetime import date

    from bot import pii

    phone = pii.protect_phone("13912344567", app.state.settings.data_key)
    with session_scope(app.state.sessionmaker) as session:
        made = create_complaint(session, day=date.today(), channel="sms", user_id=f"u-{employer}", category=category,
                                employer=employer, site=site, workers_affected=workers, area=(county, township),
                                contact_phone=(phone.encrypted, phone.lookup_hash, phone.masked))
        return made.ticket_no


def signed_in(client, make_staff, name: str = "desk-pc", areas=None) -> None:  # noqa: ANN001
    make_staff(name, "helpdesk", PINGCHANG if areas is None else areas)
    assert login(client, name).status_code == 303


def test_the_queue_lists_the_desks_area_with_views_and_counts(client, app, make_staff):
    mine = complaint(app, "巴中某某建筑公司")
    urgent = complaint(app, "某某劳务公司", workers=12)
    other = complaint(app, "巴州某厂", county="巴州区", township="曾口镇")
    nowhere = complaint(app, "不知道哪里的公司", county=None, township=None)
    signed_in(client, make_staff)
    page = client.get("/console/helpdesk")
    assert page.status_code == 200 and "维权服务台" in page.text
    assert mine in page.text and urgent in page.text and other not in page.text and nowhere not in page.text
    assert "139****4567" in page.text and "13912344567" not in page.text
    assert 'data-view="noarea"' not in page.text  # a county desk does not see the unassigned-area queue
    only_urgent = client.get("/console/helpdesk", params={"view": "urgent"}, headers={"HX-Request": "true"})
    assert urgent in only_urgent.text and mine not in only_urgent.text and "<html" not in only_urgent.text
    assert client.get("/console/helpdesk", params={"kind": "handoff"}).text.count("/console/helpdesk/WQ-") == 0
    assert client.get(f"/console/helpdesk/{other}").status_code == 404  # another county, by URL


def test_an_all_county_desk_sees_the_unassigned_area_queue(client, app, make_staff):
    nowhere = complaint(app, "不知道哪里的公司", county=None, township=None)
    complaint(app, "巴中某某建筑公司")
    signed_in(client, make_staff, "desk-all", [])
    page = client.get("/console/helpdesk", params={"view": "noarea"})
    assert 'data-view="noarea"' in page.text and nowhere in page.text and page.text.count("/console/helpdesk/WQ-") == 1


def test_a_case_reply_note_status_and_assignment_from_the_console(client, app, make_staff):
    add_roster_labourer(app, name="李秀英", phone="13812345678")
    file_by_sms(client)
    [filed] = rows(app, Complaint)
    signed_in(client, make_staff)
    url = f"/console/helpdesk/{filed.ticket_no}"
    page = client.get(url)
    assert "老板欠我三个月工资" in page.text and "李秀英" in page.text and "138****5678" in page.text
    token = csrf_of(client, url)
    before = len(rows(app, OutboundMessage))

    assert client.post(f"{url}/assign", data={"assignee": "desk-pc", "csrf_token": token},
                       follow_redirects=False).status_code == 303
    client.post(f"{url}/messages", data={"body": "老板在外地，下周再联系", "visibility": "internal", "csrf_token": token})
    client.post(f"{url}/messages", data={"body": "李大姐您好，我们已经在联系老板了。", "visibility": "public",
                                         "csrf_token": token})
    sent = rows(app, OutboundMessage)[before:]
    assert [o.text for o in sent if "联系老板" in o.text] and not [o for o in sent if "下周再联系" in o.text]
    done = client.post(f"{url}/transition", data={"to": "resolved", "csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303
    refused = client.post(f"{url}/transition", data={"to": "waiting_on_labourer", "csrf_token": token})
    assert refused.status_code == 409 and "不能这样改" in refused.text
    page = client.get(url).text
    assert "已解决" in page and "内部备注" in page and "已发出" in page and "desk-pc" in page

    revealed = client.post(f"/console/reveal/complaint/{filed.id}/contact_phone", headers={"X-CSRF-Token": token})
    assert revealed.status_code == 200 and "13812345678" in revealed.text
    with session_scope(app.state.sessionmaker) as session:
        assert session.scalars(select(AuditLog).where(AuditLog.action == "reveal")).one().actor == "desk-pc"


def test_merging_a_duplicate_keeps_both_histories(client, app, make_staff):
    first = complaint(app, "巴中某某建筑公司")
    second = complaint(app, "巴中某某建筑公司")
    signed_in(client, make_staff)
    token = csrf_of(client, f"/console/helpdesk/{second}")
    client.post(f"/console/helpdesk/{second}/messages", data={"body": "重复提交的", "visibility": "internal",
                                                             "csrf_token": token})
    merged = client.post(f"/console/helpdesk/{second}/merge", data={"into": first, "csrf_token": token},
                         follow_redirects=False)
    assert merged.status_code == 303 and merged.headers["location"] == f"/console/helpdesk/{first}"
    page = client.get(f"/console/helpdesk/{first}").text
    assert "重复提交的" in page  # the duplicate's history shows on the case it joined
    queue = client.get("/console/helpdesk").text
    assert first in queue and second not in queue
    assert client.post(f"/console/helpdesk/{first}/merge", data={"into": first, "csrf_token": token}).status_code == 409
    assert client.post(f"/console/helpdesk/{second}/merge", data={"into": "WQ-19990101-0001",
                                                                  "csrf_token": token}).status_code == 409


def test_complaints_against_one_employer_are_grouped_into_a_collective_case(client, app, make_staff):
    lead = complaint(app, "巴中市某某建筑劳务有限公司", site="江口镇滨河路工地")
    crew = complaint(app, "巴中某某建筑劳务公司", site="滨河路工地")
    unrelated = complaint(app, "平昌县茶叶合作社")
    signed_in(client, make_staff)
    page = client.get(f"/console/helpdesk/{lead}").text
    assert crew in page and unrelated not in page.split('id="group"')[1].split("</section>")[0]
    token = csrf_of(client, f"/console/helpdesk/{lead}")
    client.post(f"/console/helpdesk/{lead}/link", data={"others": [crew], "csrf_token": token})
    with session_scope(app.state.sessionmaker) as session:
        groups = dict(session.execute(select(Ticket.ticket_no, Ticket.group_id)).all())
    assert groups[lead] is not None and groups[crew] == groups[lead] and groups[unrelated] is None
    assert "集体" in client.get("/console/helpdesk").text


def test_the_export_is_masked_and_audited(client, app, make_staff):
    mine = complaint(app, "巴中某某建筑公司")
    complaint(app, "巴州某厂", county="巴州区", township="曾口镇")
    signed_in(client, make_staff)
    response = client.get("/console/helpdesk/export.xlsx", params={"view": "all"})
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.content)).active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[0][0] == "工单号" and [r[0] for r in values[1:]] == [mine]
    assert "139****4567" in values[1] and "13912344567" not in str(values)
    with session_scope(app.state.sessionmaker) as session:
        entry = session.scalars(select(AuditLog).where(AuditLog.action == "export")).one()
    assert entry.actor == "desk-pc" and entry.detail["rows"] == 1


def test_money_recovered_is_recorded_per_case_and_rolled_up_by_county(client, app, make_staff):
    first = complaint(app, "巴中某某建筑公司")
    second = complaint(app, "某某劳务公司")
    complaint(app, "巴州某厂", county="巴州区", township="曾口镇")
    signed_in(client, make_staff)
    token = csrf_of(client, f"/console/helpdesk/{first}")
    for no, amount in ((first, "8000"), (second, "12,000元")):
        done = client.post(f"/console/helpdesk/{no}/recovered", data={"amount": amount, "csrf_token": token},
                           follow_redirects=False)
        assert done.status_code == 303
    refused = client.post(f"/console/helpdesk/{first}/recovered", data={"amount": "很多", "csrf_token": token})
    assert refused.status_code == 422 and "挽回的金额" in refused.text
    queue = client.get("/console/helpdesk").text
    assert "挽回经济损失" in queue and "20,000" in queue and "巴州区" not in queue.split("挽回经济损失")[1]
    assert "挽回经济损失记为 8000 元" in client.get(f"/console/helpdesk/{first}").text


def test_the_export_shows_phones_in_clear_only_when_asked_by_a_role_that_may_reveal_them(client, app, make_staff,
                                                                                       monkeypatch):
    from bot import reveal
    from bot.reveal import Revealable

    mine = complaint(app, "巴中某某建筑公司")
    signed_in(client, make_staff)
    assert "导出含完整电话" in client.get("/console/helpdesk").text

    def exported(**params: str) -> list[list]:
        response = client.get("/console/helpdesk/export.xlsx", params={"view": "all", **params})
        assert response.status_code == 200
        return [[c.value for c in row] for row in load_workbook(io.BytesIO(response.content)).active.iter_rows()]

    values = exported(clear="1")
    assert "联系电话" in values[0] and values[1][0] == mine and "13912344567" in values[1]
    # A desk whose role may not reveal phones gets them masked whatever it asks.
    monkeypatch.setitem(reveal.REVEALABLE, ("complaint", "contact_phone"),
                        Revealable(Complaint, "contact_phone_enc", ("admin",)))
    values = exported(clear="1")
    assert "联系电话（已隐藏）" in values[0] and "139****4567" in values[1] and "13912344567" not in str(values)
    assert "导出含完整电话" not in client.get("/console/helpdesk").text
    with session_scope(app.state.sessionmaker) as session:
        entries = session.scalars(select(AuditLog).where(AuditLog.action == "export").order_by(AuditLog.id)).all()
    assert [e.detail["clear"] for e in entries] == [["contact_phone"], []]
    assert {e.actor for e in entries} == {"desk-pc"}


def test_round_robin_gives_a_case_to_the_areas_desk_member_with_the_fewest_open_cases(client, app, make_staff):
    busy = [complaint(app, f"甲公司{i}") for i in range(3)]
    fresh = [complaint(app, "乙公司"), complaint(app, "丙公司")]
    for name in ("desk-a", "desk-b", "desk-c"):
        make_staff(name, "helpdesk", PINGCHANG)
    make_staff("desk-bz", "helpdesk", [{"county": "巴州区"}])  # no work, but not of this area
    with session_scope(app.state.sessionmaker) as session:
        for no, who in zip(busy, ("desk-c", "desk-c", "desk-a")):
            session.scalars(select(Ticket).where(Ticket.ticket_no == no)).one().assignee = who
    signed_in(client, make_staff)  # desk-pc, of the area too, has nothing open either
    token = csrf_of(client, "/console/helpdesk")
    chosen = []
    for no in fresh:
        done = client.post(f"/console/helpdesk/{no}/assign", data={"assignee": "auto", "csrf_token": token},
                           follow_redirects=False)
        assert done.status_code == 303
        with session_scope(app.state.sessionmaker) as session:
            ticket = session.scalars(select(Ticket).where(Ticket.ticket_no == no)).one()
            chosen.append((ticket.assignee, ticket.status))
    assert chosen == [("desk-b", "assigned"), ("desk-pc", "assigned")]  # fewest open, then by name


def test_the_case_shows_what_the_labourer_registered_and_their_earlier_cases(client, app, make_staff):
    from bot.models import Labourer, TrainingNeed, WorkingAway

    labourer_id = add_roster_labourer(app, name="李秀英", phone="13812345678")
    with session_scope(app.state.sessionmaker) as session:
        session.add_all([TrainingNeed(labourer_id=labourer_id, training_type="电工", preferred_format="农闲班"),
                         WorkingAway(labourer_id=labourer_id, place="浙江丽水", employer="某某建筑公司", job_type="钢筋工")])
        assert session.get(Labourer, labourer_id) is not None
    file_by_sms(client)
    earlier = client.app  # the same person complains a second time: the first case is in the history
    file_by_sms(client)
    first, second = [c.ticket_no for c in rows(earlier, Complaint)]
    signed_in(client, make_staff)
    page = client.get(f"/console/helpdesk/{second}").text
    registered = page.split('id="registrations"')[1].split("</section>")[0]
    assert "培训需求：电工（农闲班）" in registered and "已登记" in registered
    assert "外出务工：浙江丽水 某某建筑公司 钢筋工" in registered
    assert f'/console/helpdesk/{first}"' in page.split("这位工友的其他工单")[1]


def test_a_case_nobody_could_place_is_put_in_a_countys_queue(client, app, make_staff):
    nowhere = complaint(app, "不知道哪里的公司", county=None, township=None)
    signed_in(client, make_staff, "desk-all", [])
    url = f"/console/helpdesk/{nowhere}"
    assert "划归地区（未分区工单）" in client.get(url).text
    token = csrf_of(client, url)
    for county, township in (("成都市", ""), ("平昌县", "曾口镇")):  # not a county of ours; not its township
        refused = client.post(f"{url}/area", data={"county": county, "township": township, "csrf_token": token})
        assert refused.status_code == 422 and "县区和乡镇" in refused.text
    placed = client.post(f"{url}/area", data={"county": "平昌县", "township": "江口镇", "csrf_token": token},
                         follow_redirects=False)
    assert placed.status_code == 303
    assert "划归 平昌县江口镇" in client.get(url).text

    signed_in(client, make_staff, "desk-pc")  # the county's desk has it now
    assert nowhere in client.get("/console/helpdesk").text
    token = csrf_of(client, url)
    away = client.post(f"{url}/area", data={"county": "巴州区", "township": "", "csrf_token": token})
    assert away.status_code == 422  # not an area of hers to give cases to
    with session_scope(app.state.sessionmaker) as session:
        complaint_row = session.scalars(select(Complaint).where(Complaint.ticket_no == nowhere)).one()
        assert (complaint_row.county, complaint_row.township) == ("平昌县", "江口镇")
        entry = session.scalars(select(AuditLog).where(AuditLog.action == "ticket_area")).one()
    assert entry.actor == "desk-all" and entry.detail["to"] == {"county": "平昌县", "township": "江口镇"}
