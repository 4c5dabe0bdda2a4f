"""The outbound WeChat client and the channel choice, against the loopback fake WeChat API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot import pii
from bot.channels.base import Reply
from bot.channels.outbound import deliver, send_mass_by_tag
from bot.channels.wechat_api import WeChatApi, WeChatApiError
from bot.app import compose
from bot.conversation import Services
from bot.db import make_engine, make_sessionmaker, session_scope
from bot.models import Labourer, OutboundMessage, WeChatFollower, WeChatToken, utcnow
from tests.fakes.wechat_api import FakeWeChatApi
from tests.fakes.wechat_platform import APPID, SECRET


@pytest.fixture
def fake_api() -> Iterator[FakeWeChatApi]:
    with FakeWeChatApi(appid=APPID, secret=SECRET) as server:
        yield server


@pytest.fixture
def services(make_settings, fake_api) -> Iterator[Services]:  # noqa: ANN001
    settings = make_settings(wechat_appid=APPID, wechat_secret=SECRET, wechat_api_base=fake_api.base)
    engine = make_engine(settings.database_url)
    yield compose(settings, make_sessionmaker(engine))
    engine.dispose()


def api(services: Services) -> WeChatApi:
    """A fresh client: as another worker process would have (nothing cached in memory)."""
    return WeChatApi(services.settings, services.sessionmaker)


def test_token_is_fetched_once_and_shared_by_every_process(services, fake_api):
    api(services).send_text("o-1", "一")
    api(services).send_text("o-1", "二")  # another "process": reads the token from the database
    assert fake_api.token_calls == [False]
    assert [m["text"]["content"] for m in fake_api.sent] == ["一", "二"]


def test_expired_token_is_refreshed_once_then_the_call_succeeds(services, fake_api):
    client = api(services)
    client.send_text("o-1", "一")
    fake_api.expire_token()
    client.send_text("o-1", "二")
    assert fake_api.token_calls == [False, False]  # stable_token normal mode gave a new one: no force
    other = api(services)  # a process that still had nothing: takes the new token from the database
    other.send_text("o-1", "三")
    assert fake_api.token_calls == [False, False] and len(fake_api.sent) == 3


def test_rejected_token_that_stable_token_still_returns_is_force_refreshed(services, fake_api):
    client = api(services)
    client.send_text("o-1", "一")
    fake_api.fail_next("message/custom/send", 40001)
    client.send_text("o-1", "二")
    assert fake_api.token_calls == [False, False, True]


def test_token_errors_do_not_loop(services, fake_api):
    client = api(services)
    fake_api.fail_next("message/custom/send", 40001, 40001, 40001, 40001)
    with pytest.raises(WeChatApiError) as caught:
        client.send_text("o-1", "一")
    assert caught.value.errcode == 40001
    assert len(fake_api.token_calls) <= 3 and fake_api.sent == []


def _posts(fake_api: FakeWeChatApi, endpoint: str) -> int:
    return len([r for r in fake_api.requests if r.path.endswith(endpoint)])


def test_busy_is_not_posted_again_by_the_client(services, fake_api):
    """-1 "system busy" is WeChat's answer to a message it may still be working on: the client raises it as
    retryable at once and the caller's retry (the dispatcher's, minutes later) decides."""
    fake_api.fail_next("message/custom/send", -1)
    with pytest.raises(WeChatApiError) as caught:
        api(services).send_text("o-1", "不行")
    assert caught.value.errcode == -1 and caught.value.retryable and not caught.value.unknown
    assert _posts(fake_api, "custom/send") == 1


def test_a_timeout_after_wechat_accepted_is_unknown_and_never_posted_again(make_settings, fake_api):
    settings = make_settings(wechat_appid=APPID, wechat_secret=SECRET, wechat_api_base=fake_api.base,
                             wechat_api_timeout_seconds=0.3)
    engine = make_engine(settings.database_url)
    client = WeChatApi(settings, make_sessionmaker(engine))
    client.send_text("o-1", "先拿令牌")  # the token fetch is not what is tested
    fake_api.stall_next("message/custom/send", 1.5)
    with pytest.raises(WeChatApiError) as caught:
        client.send_text("o-1", "只发一次")
    assert caught.value.unknown and not caught.value.retryable
    assert [m["text"]["content"] for m in fake_api.sent] == ["先拿令牌", "只发一次"]  # WeChat has it, once
    assert _posts(fake_api, "custom/send") == 2
    engine.dispose()


def test_a_refused_connection_is_a_plain_temporary_failure(make_settings):
    """Nothing listens: the request never left, so this one is safe to try again later."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = make_settings(wechat_appid=APPID, wechat_secret=SECRET, wechat_api_base=f"http://127.0.0.1:{port}/cgi-bin/")
    engine = make_engine(settings.database_url)
    factory = make_sessionmaker(engine)
    with session_scope(factory) as session:  # a token another process fetched: only the message call is tried
        session.add(WeChatToken(appid=APPID, access_token="TOKEN-x", expires_at=utcnow() + timedelta(hours=1)))
    client = WeChatApi(settings, factory)
    with pytest.raises(WeChatApiError) as caught:
        client.call("post", "message/custom/send", data={"touser": "o-1"})
    assert caught.value.errmsg.startswith("ConnectionError")  # the message call, not the token fetch
    assert caught.value.retryable and not caught.value.unknown
    engine.dispose()


def test_daily_quota_is_not_retried(services, fake_api):
    fake_api.fail_next("message/custom/send", 45009)
    with pytest.raises(WeChatApiError) as caught:
        api(services).send_text("o-1", "一")
    assert caught.value.errcode == 45009
    assert _posts(fake_api, "custom/send") == 1


def test_mass_send_by_tag_uses_tag_id(services, fake_api):
    with session_scope(services.sessionmaker) as session:
        result = send_mass_by_tag(session, services, 103, Reply("招聘会下周三在巴州区举行"))
    assert result.ok and fake_api.mass[0]["filter"] == {"is_to_all": False, "tag_id": 103}


# ---- picking the channel -------------------------------------------------------------------------


def follow(services: Services, openid: str, hours_ago: float) -> None:
    with session_scope(services.sessionmaker) as session:
        session.add(WeChatFollower(openid=openid, subscribed=True, window_closed=False, cs_sent=0,
                                   last_interaction_at=utcnow() - timedelta(hours=hours_ago)))


def add_labourer(services: Services, openid: str, phone: str = "13980001234") -> None:
    protected = pii.protect_phone(phone, services.settings.data_key)
    with session_scope(services.sessionmaker) as session:
        session.add(Labourer(name="李四", wechat_openid=openid, phone_enc=protected.encrypted,
                             phone_hash=protected.lookup_hash, phone_masked=protected.masked))


def outbox(services: Services) -> list[OutboundMessage]:
    with session_scope(services.sessionmaker) as session:
        return list(session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))


def test_inside_the_window_a_customer_service_message_is_sent(services, fake_api):
    follow(services, "o-in", hours_ago=2)
    with session_scope(services.sessionmaker) as session:
        result = deliver(session, services, channel="wechat", user_id="o-in", reply=Reply("您的投诉已受理"))
    assert result.ok and fake_api.sent[0]["touser"] == "o-in"
    assert [(m.kind, m.status) for m in outbox(services)] == [("customer_service", "sent")]


def test_outside_the_window_a_template_message_is_used(make_settings, fake_api):
    settings = make_settings(wechat_appid=APPID, wechat_secret=SECRET, wechat_api_base=fake_api.base,
                             wechat_template_id="TPL-1", wechat_template_fields="thing1,thing2")
    engine = make_engine(settings.database_url)
    services = compose(settings, make_sessionmaker(engine))
    try:
        follow(services, "o-old", hours_ago=49)
        long_text = "巴州区春季招聘会3月12日上午9点在人民广场举行，带身份证，现场有200多个岗位"
        with session_scope(services.sessionmaker) as session:
            result = deliver(session, services, channel="wechat", user_id="o-old", reply=Reply(long_text), purpose="notice")
        assert result.ok and fake_api.sent == []  # no customer-service attempt outside the window
        sent = fake_api.templates[0]
        assert sent["template_id"] == "TPL-1" and set(sent["data"]) == {"thing1", "thing2"}
        assert all(len(v["value"]) <= 20 and "color" not in v for v in sent["data"].values())
        assert sent["data"]["thing1"]["value"] == long_text[:20]
    finally:
        engine.dispose()


def test_45015_without_template_falls_back_to_sms_to_the_labourers_phone(services, fake_api):
    follow(services, "o-gone", hours_ago=1)
    add_labourer(services, "o-gone")
    fake_api.out_of_window.add("o-gone")
    with session_scope(services.sessionmaker) as session:
        result = deliver(session, services, channel="wechat", user_id="o-gone", reply=Reply("培训班明天开课"))
    assert result.ok
    rows = outbox(services)
    assert [(m.kind, m.status) for m in rows] == [("customer_service", "failed"), ("sms", "logged")]
    assert rows[0].error_code == "45015"
    assert rows[1].text == "【巴中就业扶贫】培训班明天开课" and rows[1].number_masked == "139****1234"
    with session_scope(services.sessionmaker) as session:
        assert session.get(WeChatFollower, "o-gone").window_closed


def test_45047_closes_the_window_until_the_person_writes_again(services, fake_api):
    follow(services, "o-busy", hours_ago=1)
    fake_api.cs_limit = 1
    with session_scope(services.sessionmaker) as session:
        assert deliver(session, services, channel="wechat", user_id="o-busy", reply=Reply("一")).ok
    with session_scope(services.sessionmaker) as session:
        second = deliver(session, services, channel="wechat", user_id="o-busy", reply=Reply("二"))
    assert not second.ok and second.error_code == "45047"  # no template, no phone: nothing else to try
    with session_scope(services.sessionmaker) as session:
        third = deliver(session, services, channel="wechat", user_id="o-busy", reply=Reply("三"))
    assert not third.ok and len([r for r in fake_api.requests if r.path.endswith("custom/send")]) == 2


def test_wechat_menu_command_creates_the_menu(services, fake_api, monkeypatch):
    from bot.cli import main

    for key, value in (("DATABASE_URL", services.settings.database_url), ("WECHAT_APPID", APPID),
                       ("WECHAT_SECRET", SECRET), ("WECHAT_API_BASE", fake_api.base)):
        monkeypatch.setenv(f"GONGYOU_{key}", value)
    from bot.settings import get_settings

    get_settings.cache_clear()
    try:
        assert main(["wechat-menu"]) == 0
    finally:
        get_settings.cache_clear()
    menu = fake_api.menus[0]
    assert len(menu["button"]) <= 3 and menu["button"][0]["key"] == "policy_menu"
