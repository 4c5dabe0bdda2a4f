"""GET /metrics after real traffic: signed WeChat callbacks (AES), SMS pushes, a late reply sent through the
customer-service API, a broadcast queue — and the door: no token, a wrong token, metrics off."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from bot.app import create_app
from bot.db import session_scope
from sqlalchemy import select

from bot.models import CampaignStep, Delivery, Labourer, utcnow
from tests.synthetic import insert_labourers, make_campaign
from tests.fakes.sms_gateways import aliyun_up
from tests.fakes.wechat_api import FakeWeChatApi
from tests.fakes.wechat_platform import AES_KEY, APPID, SECRET, TOKEN, WeChatPlatform

METRICS_TOKEN = "scrape-secret-0123456789"
SMS_TOKEN = "sms-callback-secret"
AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(figures: dict, name: str, **labels: str) -> float:
    return figures.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def fake_api() -> Iterator[FakeWeChatApi]:
    with FakeWeChatApi(appid=APPID, secret=SECRET) as server:
        yield server


@pytest.fixture
def client(make_settings, fake_api) -> Iterator[TestClient]:  # noqa: ANN001
    settings = make_settings(wechat_token=TOKEN, wechat_aes_key=AES_KEY, wechat_appid=APPID, wechat_secret=SECRET,
                             wechat_api_base=fake_api.base, sms_callback_token=SMS_TOKEN,
                             metrics_token=METRICS_TOKEN)
    application = create_app(settings, configure_logs=False)
    with TestClient(application) as test_client:
        yield test_client
    application.state.engine.dispose()


def test_the_door_is_shut_without_the_metrics_token(client, make_settings):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Basic {METRICS_TOKEN}"}).status_code == 401
    off = create_app(make_settings(), configure_logs=False)  # no GONGYOU_METRICS_TOKEN: nothing exposed
    with TestClient(off) as other:
        assert other.get("/metrics", headers=AUTH).status_code == 404
    off.state.engine.dispose()


def test_messages_in_and_out_by_channel_and_intent_after_real_callbacks(client):
    before = scrape(client)
    wx = WeChatPlatform(client)
    assert "培训" in wx.say("o-metrics-1", "参加技能培训有补贴吗")
    assert wx.say("o-metrics-2", "你好")
    response = client.post(f"/sms/inbound?token={SMS_TOKEN}", json=aliyun_up("13881234567", "打工的地方不给工钱怎么办", 9001))
    assert response.status_code == 200
    after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("gongyou_messages_total", channel="wechat", direction="in", intent="policy_question") == 1
    assert grew("gongyou_messages_total", channel="wechat", direction="out", intent="policy_question") >= 1
    assert grew("gongyou_messages_total", channel="wechat", direction="in", intent="greeting") == 1
    assert sum(v for (n, labels), v in after.items() if n == "gongyou_messages_total"
               and dict(labels)["channel"] == "sms" and dict(labels)["direction"] == "in") \
        - sum(v for (n, labels), v in before.items() if n == "gongyou_messages_total"
              and dict(labels)["channel"] == "sms" and dict(labels)["direction"] == "in") == 1
    # the SMS answer went out through the send boundary (the `log` provider records it as sent)
    assert grew("gongyou_sends_total", channel="sms", kind="sms", purpose="reply", outcome="ok") >= 1
    # every callback was timed: two WeChat, one SMS, all answered 200
    assert grew("gongyou_webhook_seconds_count", channel="wechat") == 2
    assert grew("gongyou_webhook_seconds_count", channel="sms") == 1
    assert grew("gongyou_webhook_responses_total", channel="wechat", status="200") == 2
    assert grew("gongyou_webhook_seconds_bucket", channel="wechat", le="+Inf") == 2
    # database pool use and what the database says
    assert value(after, "gongyou_db_pool_capacity", role="web") > 0
    assert value(after, "gongyou_database_up") == 1
    assert ("gongyou_delivery_queue", (("channel", "sms"), ("status", "queued"))) in after


def test_a_refused_callback_is_counted_with_its_status(client):
    before = scrape(client)
    wx = WeChatPlatform(client)
    assert wx.post(wx.text("o-forger", "你好"), forge=True).status_code == 403
    after = scrape(client)
    key = ("gongyou_webhook_responses_total", (("channel", "wechat"), ("status", "403")))
    assert after.get(key, 0) - before.get(key, 0) == 1


def test_a_late_reply_is_counted_and_goes_out_through_the_customer_service_api(make_settings, fake_api):
    settings = make_settings(wechat_token=TOKEN, wechat_aes_key=AES_KEY, wechat_appid=APPID, wechat_secret=SECRET,
                             wechat_api_base=fake_api.base, metrics_token=METRICS_TOKEN,
                             wechat_reply_deadline_seconds=0.0)  # no time at all: every reply is late
    application = create_app(settings, configure_logs=False)
    with TestClient(application) as late_client:
        before = scrape(late_client)
        wx = WeChatPlatform(late_client)
        assert wx.reply(wx.post(wx.text("o-late", "参加技能培训有补贴吗"))) is None  # "success" in time
        sent = fake_api.wait_for_sent(1)
        assert "培训" in sent[0]["text"]["content"]
        ok = ("gongyou_sends_total", (("channel", "wechat"), ("kind", "customer_service"), ("outcome", "ok"),
                                      ("purpose", "reply")))
        deadline = time.monotonic() + 10  # the send is counted once its answer is committed, just after the fake has it
        while (after := scrape(late_client)).get(ok, 0) == before.get(ok, 0) and time.monotonic() < deadline:
            time.sleep(0.05)
    application.state.engine.dispose()
    late = ("gongyou_replies_late_total", (("channel", "wechat"),))
    assert after.get(late, 0) - before.get(late, 0) == 1
    assert after.get(ok, 0) - before.get(ok, 0) == 1


def test_the_delivery_queue_and_failures_come_from_the_database(client):
    app = client.app
    with session_scope(app.state.sessionmaker) as session:
        insert_labourers(session, 5)
        people = list(session.scalars(select(Labourer.id).order_by(Labourer.id)))
        campaign = make_campaign(session, channels=["sms"], state="sending")
        step = CampaignStep(campaign_id=campaign.id, kind="send", due_at=utcnow())
        session.add(step)
        session.flush()
        statuses = [("queued", None), ("queued", None), ("sending", None), ("failed", "refused"), ("sent", None)]
        for i, (person, (status, reason)) in enumerate(zip(people, statuses)):
            session.add(Delivery(campaign_id=campaign.id, step_id=step.id, labourer_id=person, channel="sms",
                                 status=status, failure_reason=reason, idempotency_key=f"k-{i}"))
    figures = scrape(client)
    assert value(figures, "gongyou_delivery_queue", channel="sms", status="queued") == 2
    assert value(figures, "gongyou_delivery_queue", channel="sms", status="sending") == 1
    assert value(figures, "gongyou_delivery_queue", channel="wechat", status="queued") == 0
    assert value(figures, "gongyou_delivery_failures", channel="sms", reason="refused") == 1
    assert value(figures, "gongyou_deliveries", channel="sms", status="sent") == 1


def test_help_desk_cases_past_their_targets_are_counted_as_sla_breaches(client):
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from bot.helpdesk_sla import SlaPolicy
    from bot.models import Complaint
    from bot.models.complaints import add_message, open_ticket, transition_ticket

    def case(session, number: int, created: datetime):  # noqa: ANN001, ANN202
        complaint = Complaint(ticket_no=f"WQ-M-{number:04d}", channel="sms", user_id=f"u-{number}", category="欠薪",
                              employer="某公司", workers_affected=1, county="平昌县", created_at=created)
        session.add(complaint)
        session.flush()
        return open_ticket(session, complaint=complaint, now=created)

    def breaches() -> dict[str, float]:
        figures = scrape(client)
        return {target: value(figures, "gongyou_helpdesk_sla_breaches", target=target)
                for target in ("first_response", "resolution")}

    client.app.state.metric_sources[0].max_age = 0  # no 5-second cache: each scrape reads the database
    assert breaches() == {"first_response": 0, "resolution": 0}  # reported before any case, so alerts can be written
    month_ago = datetime.now(ZoneInfo("Asia/Shanghai")) - timedelta(days=30)
    with session_scope(client.app.state.sessionmaker) as session:
        case(session, 1, month_ago)  # nobody answered, nothing resolved: both targets missed
        answered = case(session, 2, month_ago)  # answered in time, still open: the resolution is late
        add_message(session, answered, source="staff", author="desk", body="已收到，正在核实", now=month_ago + timedelta(hours=1))
        done = case(session, 3, month_ago)  # resolved: not a breach any more
        transition_ticket(session, done, "resolved", actor="desk", sla=SlaPolicy(), now=month_ago + timedelta(days=2))
        case(session, 4, datetime.now(ZoneInfo("Asia/Shanghai")))  # new today: within its targets
    assert breaches() == {"first_response": 1, "resolution": 2}
