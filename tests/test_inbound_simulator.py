"""The simulator: mounted in development only (GONGYOU_SIMULATOR), its users in a namespace of their own
(a WeChat follower's openid or a labourer's phone typed as the user name reaches nobody), and its inbox:
what was pushed to a simulator user outside the answers to their own messages, oldest first."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from bot import pii
from bot.app import create_app
from bot.channels.base import Reply
from bot.channels.outbound import deliver
from bot.db import session_scope
from bot.models import Labourer, TrainingNeed, WeChatFollower

STRONG = dict(wechat_token="Wx7Tk2Qm9Lp4Zr8Vb3Nc", data_key="Zq8v1c0m3XbT5nUe7Lr2Wd9Hs4Kp6Ya8Fg1Jt3Vx5Qw7")
SIMULATOR_PATHS = [("get", "/simulator", None), ("post", "/api/simulator/message", {"user": "u1", "text": "你好"}),
                   ("get", "/api/simulator/inbox?user=u1", None)]


def _statuses(application) -> list[int]:  # noqa: ANN001
    try:
        with TestClient(application) as client:
            return [getattr(client, method)(path, **({"json": body} if body else {})).status_code
                    for method, path, body in SIMULATOR_PATHS]
    finally:
        application.state.engine.dispose()


def test_production_has_no_simulator_unless_asked(make_settings):
    assert _statuses(create_app(make_settings(env="production", **STRONG), configure_logs=False)) == [404, 404, 404]
    assert _statuses(create_app(make_settings(simulator=False), configure_logs=False)) == [404, 404, 404]
    assert _statuses(create_app(make_settings(env="production", simulator=True, **STRONG),
                                configure_logs=False)) == [200, 200, 200]


PHONE = "13981234567"


@pytest.fixture
def follower(app):  # noqa: ANN001, ANN201
    """A WeChat follower bound to a roster labourer with a phone and a training need on the list."""
    settings = app.state.settings
    phone = pii.protect_phone(PHONE, settings.data_key)
    with session_scope(app.state.sessionmaker) as session:
        labourer = Labourer(name="赵德华", county="平昌县", source="roster", verified=True, wechat_openid="oREAL-follower",
                            phone_enc=phone.encrypted, phone_hash=phone.lookup_hash, phone_masked=phone.masked)
        session.add(labourer)
        session.flush()
        session.add(TrainingNeed(labourer_id=labourer.id, training_type="电工", status="open", channel="wechat"))
        session.add(WeChatFollower(openid="oREAL-follower", subscribed=True, cs_sent=0))
        return labourer.id


def test_a_simulator_user_named_like_a_follower_or_a_phone_reaches_nobody(app, say, follower):  # noqa: ANN001
    key = app.state.settings.data_key
    for name in ("oREAL-follower", PHONE, pii.lookup_hash(PHONE, key)):
        records = "\n".join(say("查一下我的登记", user=name))
        assert "电工" not in records and "赵德华" not in records
        assert say("退订", user=name)  # answered, in the simulator's own conversation
    with app.state.sessionmaker() as session:
        labourer = session.get(Labourer, follower)
        assert labourer.subscribed_wechat and labourer.subscribed_sms and labourer.wechat_openid == "oREAL-follower"
        assert session.get(WeChatFollower, "oREAL-follower").subscribed


def push(app, user: str, text: str, purpose: str) -> None:  # noqa: ANN001
    services = app.state.services
    with session_scope(services.sessionmaker) as session:
        assert deliver(session, services, channel="simulator", user_id=user, reply=Reply(text), purpose=purpose).ok


def test_the_inbox_holds_what_was_pushed_oldest_first_and_not_the_replies(app, client, say):  # noqa: ANN001
    assert client.get("/api/simulator/inbox", params={"user": "sim-a"}).json() == {"messages": []}
    say("你好", user="sim-a")  # a direct reply: not in the inbox
    push(app, "sim-a", "您的投诉WQ-1已受理，工作人员会联系您", "reply")
    push(app, "sim-b", "别人的通知", "notice")
    push(app, "sim-a", "【演示】招聘会下周三开，回1报名", "marketing")
    push(app, "sim-a", "我的电话15928765432，身份证511923200103151238", "notice")
    inbox = client.get("/api/simulator/inbox", params={"user": "sim-a"}).json()["messages"]
    assert [(m["text"][:6], m["purpose"]) for m in inbox] == [
        ("您的投诉WQ", "reply"), ("【演示】招聘", "marketing"), ("我的电话15", "notice")]
    assert all(m["at"].startswith("20") for m in inbox)
    assert "15928765432" not in inbox[-1]["text"] and "159****5432" in inbox[-1]["text"]
    assert client.get("/api/simulator/inbox").status_code == 422  # which user, said clearly
    assert client.get("/api/simulator/inbox", params={"user": "sim\x00a"}).status_code == 422  # not a 500 on PostgreSQL


@pytest.mark.browser
def test_the_page_shows_a_push_as_it_arrives(app, live_server, browser_page):  # noqa: ANN001
    page = browser_page
    page.goto(f"{live_server.url}/simulator")
    page.fill("#user", "sim-browser")
    page.fill("#text", "你好")
    page.click("button[type=submit]")
    page.wait_for_selector(".msg.bot")
    push(app, "sim-browser", "工作人员回复：老板已答应周五前结清工资", "reply")
    page.wait_for_selector(".msg.push", timeout=10_000)
    shown = page.inner_text(".msg.push")
    assert "老板已答应周五前结清工资" in shown and "工作人员回复" in shown
