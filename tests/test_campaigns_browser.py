"""Officials in Debian's chromium against the real HTTP server: build and preview a campaign with a live count,
schedule it and watch it go out (the in-process scheduler and dispatcher against the loopback Aliyun SMS
gateway), edit a policy answer and see the simulator's answer change without a restart, and a township
official who can neither see nor export another township's campaign. Screenshots go to `artifacts`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest

from bot import pii
from bot.app import create_app
from bot.db import session_scope
from bot.models import Audience, Campaign, Event, Labourer, Staff, utcnow
from conftest import STAFF_PASSWORD, LiveServer, _staff_password_hash
from tests.fakes.sms_gateways import FakeAliyunSms

pytestmark = pytest.mark.browser

BAIYI = {"county": "平昌县", "township": "白衣镇"}
# On a loaded machine a save that rebuilds the router, or a broadcast through the in-process scheduler and
# dispatcher, takes several times what it takes alone: waits are long, what is waited for is exact.
PATIENCE_MS = 90_000
CAMPAIGN_PAGE = re.compile(r".*/console/campaigns/\d+$")  # not /console/campaigns/new?event_id=…


def sign_in(page, server: LiveServer, username: str) -> None:  # noqa: ANN001
    page.goto(f"{server.url}/console/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", STAFF_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/console/")


def add_labourers(app, count: int, *, township: str, start: int, phone: bool = True) -> None:  # noqa: ANN001
    key = app.state.settings.data_key
    with session_scope(app.state.sessionmaker) as session:
        for n in range(start, start + count):
            fields = {}
            if phone:
                p = pii.protect_phone(f"1398{n:07d}", key)
                fields = {"phone_enc": p.encrypted, "phone_hash": p.lookup_hash, "phone_masked": p.masked}
            session.add(Labourer(name=f"王小{n}", county="平昌县", township=township, village="长沙村", **fields))


@pytest.fixture
def aliyun() -> Iterator[FakeAliyunSms]:
    with FakeAliyunSms() as fake:
        yield fake


@pytest.fixture
def sending_app(make_settings, aliyun):  # noqa: ANN001, ANN201
    settings = make_settings(scheduler_enabled=True, sms_provider="aliyun", sms_api_base=aliyun.base,
                             sms_access_key_id="LTAI-test", sms_access_key_secret="aliyun-secret",
                             sms_template_id="SMS_1", sms_send_hours="00:00-24:00", wechat_send_hours="00:00-24:00",
                             dispatch_rate_sms=4, broadcast_weekly_cap=0)
    application = create_app(settings, configure_logs=False)
    yield application
    application.state.engine.dispose()


def test_an_official_builds_previews_schedules_and_watches_a_campaign(sending_app, browser_page, aliyun, artifacts):
    app = sending_app
    with session_scope(app.state.sessionmaker) as session:
        session.add(Staff(username="baiyi-li", password_hash=_staff_password_hash(), role="official", areas=[BAIYI]))
    add_labourers(app, 12, township="白衣镇", start=1)
    add_labourers(app, 2, township="白衣镇", start=50, phone=False)  # no address: unreachable
    add_labourers(app, 5, township="岳家镇", start=100)  # another township: never counted

    with LiveServer(app) as server:
        page = browser_page
        page.set_default_timeout(PATIENCE_MS)
        sign_in(page, server, "baiyi-li")
        page.click("nav >> text=招聘会和培训班")
        page.fill("input[name=title]", "白衣镇电工培训班")
        page.select_option("#event-form select[name=kind]", "training")
        page.fill("input[name=starts_at]", (utcnow() + timedelta(days=7)).strftime("%Y-%m-%dT09:00"))
        page.fill("input[name=venue]", "镇政府三楼")
        page.fill("input[name=capacity]", "30")
        page.click("#event-form button[type=submit]")
        assert "已新建：白衣镇电工培训班" in page.inner_text("[role=status]")
        page.screenshot(path=str(artifacts / "1-event-created.png"), full_page=True)

        page.click("tr.event a:text-is(\"发通知\")")
        page.wait_for_url("**/console/campaigns/new?event_id=*")
        # The count follows the filters as they change: all of the official's area first, then a list.
        page.wait_for_function("document.querySelector('#audience-total') && "
                               "document.querySelector('#audience-total').textContent == '14'")
        assert page.inner_text("#count-sms") == "12" and page.inner_text("#count-unreachable") == "2"
        assert "白衣镇" in page.inner_text("table.townships") and "岳家镇" not in page.inner_text("#audience")
        sample = page.inner_text("table.sample")
        assert "王*1" in sample and "139****0001" in sample  # masked: no full name, no full number
        sms_preview = page.inner_text(".sms-preview")
        assert sms_preview.startswith("【") and sms_preview.endswith("拒收请回复R") and "白衣镇电工培训班" in sms_preview
        assert "条短信" in page.inner_text("#sms-length")
        page.screenshot(path=str(artifacts / "2-builder-live-count.png"), full_page=True)
        page.check("input[name=lists][value=training_need]")
        page.wait_for_function("document.querySelector('#audience-total').textContent == '0'")
        page.uncheck("input[name=lists][value=training_need]")
        page.wait_for_function("document.querySelector('#audience-total').textContent == '14'")
        page.fill("textarea[name=sms_template]", "{活动}{时间}开班，地点{地点}，回1报名")
        page.wait_for_function("document.querySelector('.sms-preview').textContent.includes('回1报名')")

        page.click("#campaign-form button[type=submit]")
        page.wait_for_url(CAMPAIGN_PAGE)
        assert page.inner_text("#state") == "草稿"
        page.screenshot(path=str(artifacts / "3-campaign-preview.png"), full_page=True)

        page.click("button[value=schedule]")
        page.wait_for_function("document.querySelector('#done') && document.querySelector('#total') && "
                               "document.querySelector('#total').textContent == '14' && "
                               "document.querySelector('#done').textContent == '14'")
        page.wait_for_selector("#timeline-chart")
        # The page's heading and buttons follow the state the progress reports: nothing left to pause.
        page.wait_for_function("document.querySelector('#state').textContent == '已发完'")
        assert page.locator("button[value=pause]").count() == 0 and page.locator("button[value=cancel]").count() == 0
        page.screenshot(path=str(artifacts / "4-campaign-sent.png"), full_page=True)
        progress = page.inner_text("#progress")
        assert "已发出" in progress and "没有微信和手机号" in progress and "已报名 0 / 名额 30" in progress

    assert len(aliyun.sent) == 12  # each reachable labourer exactly once
    texts = [" ".join(map(str, json.loads(p["TemplateParam"]).values())) for p in aliyun.sent]
    assert all("白衣镇电工培训班" in t and "回1报名" in t for t in texts), texts[:1]


def test_an_edited_answer_changes_the_simulator_reply_without_a_restart(live_server, app, make_staff, browser_page,
                                                                       artifacts):
    make_staff("kb-li", "official", [BAIYI])
    question = "公益性岗位有哪几种"
    entry_id = app.state.services.router.parse(question).entry_id
    page = browser_page
    page.set_default_timeout(PATIENCE_MS)
    labourer = page.context.browser.new_page()
    labourer.set_default_timeout(PATIENCE_MS)
    labourer.goto(f"{live_server.url}/simulator")
    labourer.fill("#user", "browser-labourer")
    labourer.fill("#text", question)
    labourer.click("button[type=submit]")
    labourer.wait_for_selector(".msg.bot")
    before = labourer.locator(".msg.bot").last.inner_text()
    assert "护林员、保洁员、修路员" not in before

    sign_in(page, live_server, "kb-li")
    page.click("nav >> text=知识库")
    page.fill("input[name=q]", "公益性岗位")
    page.click("form.filters button[type=submit]")
    page.click(f"a[href='/console/knowledge/entries/{entry_id}'] >> nth=0")
    page.fill("#answer", "公益性岗位有：护林员、保洁员、修路员，空岗请问村协理员。")
    # 试一试 against the draft: the live answer and the draft's, side by side, before anything is saved.
    page.fill("section.try input[name=text]", question)
    page.click("section.try button[type=submit]")
    page.wait_for_selector("[data-which=draft]")
    assert "护林员、保洁员、修路员" in page.inner_text("[data-which=draft] .sms-reply")
    assert "护林员、保洁员、修路员" not in page.inner_text("[data-which=live]")
    page.screenshot(path=str(artifacts / "1-try-draft.png"), full_page=True)
    page.click("#entry-form button[type=submit]")
    assert "已保存，已生效" in page.inner_text("[role=status]")
    page.screenshot(path=str(artifacts / "2-saved.png"), full_page=True)

    answered = labourer.locator(".msg.bot").count()  # however many messages the first answer took
    labourer.fill("#text", question)
    labourer.click("button[type=submit]")
    labourer.wait_for_function(f"document.querySelectorAll('.msg.bot').length > {answered}")
    assert "护林员、保洁员、修路员" in labourer.locator(".msg.bot").nth(answered).inner_text()
    labourer.screenshot(path=str(artifacts / "3-simulator-new-answer.png"), full_page=True)

    # Too long for one SMS: refused in the console with the reason, and the labourer's answer stays.
    page.fill("#answer", "很长" * 80)
    page.click("#entry-form button[type=submit]")
    assert "超过了一条短信能放的 140 个字" in page.inner_text("[role=alert]")
    page.screenshot(path=str(artifacts / "4-refused.png"), full_page=True)


def test_a_township_official_cannot_see_or_export_another_townships_campaign(live_server, app, make_staff,
                                                                            browser_page, artifacts):
    make_staff("baiyi-wang", "official", [BAIYI])
    with session_scope(app.state.sessionmaker) as session:
        ids = {}
        for township, title in (("白衣镇", "白衣镇招聘会通知"), ("曾口镇", "曾口镇招聘会通知")):
            county = "平昌县" if township == "白衣镇" else "巴州区"
            event = Event(kind="job_fair", title=title, starts_at=utcnow() + timedelta(days=3), county=county,
                          township=township, owner_county=county, owner_township=township)
            audience = Audience(name=title, filter={"township": [township]})
            session.add_all([event, audience])
            session.flush()
            campaign = Campaign(name=title, event_id=event.id, audience_id=audience.id, template="t", sms_template="t",
                                channels=["sms"], owner_county=county, owner_township=township)
            session.add(campaign)
            session.flush()
            ids[township] = campaign.id
    page = browser_page
    page.set_default_timeout(PATIENCE_MS)
    sign_in(page, live_server, "baiyi-wang")
    page.click("nav >> text=群发通知")
    listed = page.inner_text("table")
    assert "白衣镇招聘会通知" in listed and "曾口镇招聘会通知" not in listed
    page.screenshot(path=str(artifacts / "1-own-campaigns-only.png"), full_page=True)
    page.click("nav >> text=招聘会和培训班")
    assert "曾口镇招聘会通知" not in page.inner_text("main")

    for path in (f"/console/campaigns/{ids['曾口镇']}", f"/console/campaigns/{ids['曾口镇']}/progress"):
        answer = page.goto(f"{live_server.url}{path}")
        assert answer.status == 404 and "曾口镇" not in page.inner_text("body")
    page.screenshot(path=str(artifacts / "2-other-township-404.png"), full_page=True)
    export = page.request.get(f"{live_server.url}/console/campaigns/{ids['曾口镇']}/export.xlsx")
    assert export.status == 404
    own = page.request.get(f"{live_server.url}/console/campaigns/{ids['白衣镇']}/export.xlsx")
    assert own.status == 200 and own.headers["content-type"].startswith("application/vnd.openxmlformats")
