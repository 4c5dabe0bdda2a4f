"""The campaign builder's live count and the Excel report through HTTP: the count follows the filter and the
official's area (another area named is refused, never counted), the sample is masked, the export is audited
and its rows are the CSV report's with phones masked."""

from __future__ import annotations

import io

from openpyxl import load_workbook
from sqlalchemy import select

from bot import pii
from bot.db import session_scope
from bot.models import AuditLog, Labourer

from test_console import csrf_of, login


def _people(app) -> None:  # noqa: ANN001
    key = app.state.settings.data_key
    with session_scope(app.state.sessionmaker) as session:
        for n, (township, phone, openid) in enumerate([("白衣镇", True, None), ("白衣镇", True, "o-1"),
                                                       ("白衣镇", False, None), ("曾口镇", True, None)]):
            fields = {}
            if phone:
                p = pii.protect_phone(f"1397000000{n}", key)
                fields = {"phone_enc": p.encrypted, "phone_hash": p.lookup_hash, "phone_masked": p.masked}
            county = "平昌县" if township == "白衣镇" else "巴州区"
            session.add(Labourer(name=f"李大{n}", county=county, township=township, wechat_openid=openid, **fields))


def test_the_live_count_follows_the_filter_and_the_officials_area(client, app, make_staff):
    _people(app)
    official = make_staff("baiyi", "official", [{"county": "平昌县", "township": "白衣镇"}])
    counted = client.post("/api/admin/campaigns/audience", headers=official,
                          json={"filter": {}, "channels": ["wechat", "sms"]}).json()
    assert (counted["total"], counted["by_channel"], counted["unreachable"]) == (3, {"sms": 1, "wechat": 1}, 1)
    assert counted["by_township"] == {"白衣镇": 2}
    assert {p["name"] for p in counted["sample"]} == {"李*0", "李*1", "李*2"}
    assert all(p["phone"] is None or "****" in p["phone"] for p in counted["sample"])
    sms_only = client.post("/api/admin/campaigns/audience", headers=official, json={"filter": {}, "channels": ["sms"]})
    assert sms_only.json()["by_channel"] == {"sms": 2}
    outside = client.post("/api/admin/campaigns/audience", headers=official, json={"filter": {"township": "曾口镇"}})
    assert outside.status_code == 422 and "outside your area" in outside.text

    login(client, "baiyi")
    token = csrf_of(client, "/console/campaigns/new")
    fragment = client.post("/console/campaigns/audience", data={"township": "曾口镇", "csrf_token": token})
    assert fragment.status_code == 200 and "outside your area" in fragment.text and 'id="audience-total"' not in fragment.text


def test_the_excel_report_is_audited_and_masked(client, app, make_staff):
    _people(app)
    admin = make_staff("boss", "admin")
    created = client.post("/api/admin/campaigns", headers={**admin, "Idempotency-Key": "xlsx-1"},
                          json={"name": "Excel 测试", "audience": {"filter": {"county": "平昌县"}}, "channels": ["sms"]})
    campaign_id = created.json()["id"]
    from scheduler.campaigns import transition
    from scheduler.planning import fire_step
    from bot.models import Campaign, CampaignStep

    with session_scope(app.state.sessionmaker) as session:
        campaign = session.get(Campaign, campaign_id)
        transition(session, campaign, "scheduled")
        step = session.scalars(select(CampaignStep.id).where(CampaignStep.campaign_id == campaign_id)).one()
        fire_step(session, step)
    answer = client.get(f"/api/admin/campaigns/{campaign_id}/report.xlsx", headers=admin)
    assert answer.status_code == 200
    book = load_workbook(io.BytesIO(answer.content), read_only=True)
    rows = list(book["明细"].iter_rows(values_only=True))
    assert rows[0][:3] == ("编号", "哪一次", "姓名") and len(rows) == 4
    phones = [r[5] for r in rows[1:] if r[5]]
    assert phones and all("****" in p for p in phones)
    assert not any("13970000000" in str(cell) for row in rows for cell in row)
    summary = dict(r[:2] for r in book["概况"].iter_rows(values_only=True))
    assert summary["总数"] == 3
    with session_scope(app.state.sessionmaker) as session:
        audited = session.scalars(select(AuditLog).where(AuditLog.action == "export")).one()
        assert audited.detail == {"what": "campaign_report_xlsx"} and audited.object_id == str(campaign_id)
    timeline = client.get(f"/api/admin/campaigns/{campaign_id}/timeline", headers=admin).json()
    assert timeline == {"labels": [], "sent": [], "failed": []}  # nothing sent yet


def test_an_official_schedules_pauses_resumes_and_cancels_in_the_console(client, app, make_staff):
    import re

    _people(app)
    official = make_staff("baiyi", "official", [{"county": "平昌县", "township": "白衣镇"}])
    make_staff("zengkou", "official", [{"county": "巴州区", "township": "曾口镇"}])
    created = client.post("/api/admin/campaigns", headers={**official, "Idempotency-Key": "states-1"},
                          json={"name": "状态测试", "audience": {"filter": {}}, "channels": ["sms"],
                                "send_at": "2099-01-01T09:00:00+08:00"})
    page_url = f"/console/campaigns/{created.json()['id']}"

    def state_and_buttons() -> tuple[str, list[str]]:
        html = client.get(page_url).text
        return re.search(r'id="state">([^<]+)<', html).group(1), re.findall(r'name="do" value="(\w+)"', html)

    def press(action: str):  # noqa: ANN202
        return client.post(f"{page_url}/{action}", data={"csrf_token": csrf_of(client, page_url)},
                           follow_redirects=False)

    login(client, "baiyi")
    assert state_and_buttons() == ("草稿", ["schedule", "cancel"])
    assert press("schedule").headers["location"] == page_url
    assert state_and_buttons() == ("已安排", ["pause", "cancel"])
    press("pause")
    assert state_and_buttons() == ("已暂停", ["resume", "cancel"])
    press("resume")
    assert state_and_buttons() == ("已安排", ["pause", "cancel"])
    press("cancel")
    assert state_and_buttons() == ("已取消", [])
    refused = press("resume")  # not from cancelled: the page says so, nothing changes
    assert refused.headers["location"] == f"{page_url}?error=state"
    assert "这个操作在当前状态下不能做" in client.get(refused.headers["location"]).text
    assert state_and_buttons()[0] == "已取消"

    client.cookies.clear()
    login(client, "zengkou")  # another township's official: as if there were no such campaign
    assert client.get(page_url).status_code == 404
    assert press_as_stranger(client, page_url).status_code == 404


def press_as_stranger(client, page_url: str):  # noqa: ANN001, ANN201
    return client.post(f"{page_url}/pause", data={"csrf_token": csrf_of(client, "/console/campaigns")},
                       follow_redirects=False)
