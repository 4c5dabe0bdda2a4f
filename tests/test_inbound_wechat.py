"""POST /wechat as a forger would try it with a query string taken from a proxy or an access log: the same
timestamp, nonce and signature with XML of their own (another openid's unsubscribe), and a plaintext push
to an account in safe (AES) mode. Signed and encrypted with wechatpy's own crypto (tests/fakes)."""

from __future__ import annotations

import os
import time
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bot.app import create_app
from bot.models import Labourer, MessageLog, WeChatFollower
from tests.fakes.wechat_platform import TOKEN, WeChatPlatform, sign
from tests.test_wechat import fake_api, plain_client, settings, wechat_settings  # noqa: F401 (fixtures)

REDIS_URL = os.environ.get("GONGYOU_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def logged(app, openid: str) -> int:  # noqa: ANN001
    with app.state.sessionmaker() as session:
        return session.scalar(select(func.count()).select_from(MessageLog).where(
            MessageLog.channel == "wechat", MessageLog.user_id == openid))


def follows(app, openid: str) -> bool:  # noqa: ANN001
    with app.state.sessionmaker() as session:
        follower = session.get(WeChatFollower, openid)
        return follower is not None and follower.subscribed


def openid(name: str) -> str:
    # bot.channels.wechat remembers per process whom it recorded lately: a name of this test's own
    return f"o-{name}-{uuid.uuid4().hex[:8]}"


def replay(client, response, body: str, **query: str):  # noqa: ANN001, ANN201
    """POST `body` under the query string `response`'s push was signed with."""
    params = {"timestamp": response.ts, "nonce": response.nonce, "signature": sign(TOKEN, response.ts, response.nonce),
              "openid": "x", **query}
    return client.post("/wechat", params=params, content=body.encode(), headers={"Content-Type": "text/xml"})


def bind(app, openid: str) -> int:  # noqa: ANN001
    with app.state.sessionmaker() as session:
        labourer = Labourer(name="陈秀英", county="平昌县", source="roster", verified=True, wechat_openid=openid)
        session.add(labourer)
        session.commit()
        return labourer.id


def test_a_captured_query_string_cannot_carry_other_xml(plain_client, app):  # noqa: F811
    """Plaintext account: the signature covers token, timestamp and nonce only. The victim's follow and
    history must survive a replay of the forger's own push's query with an unsubscribe in the victim's name."""
    wx = WeChatPlatform(plain_client, mode="plain")
    victim_id = openid("victim")
    assert wx.reply(wx.post(wx.text(victim_id, "培训补贴有好多钱"))) is not None
    victim = bind(app, victim_id)
    mine = wx.post(wx.text("o-forger", "你好"))
    assert mine.status_code == 200
    forged = wx.event(victim_id, "unsubscribe")
    assert replay(plain_client, mine, forged).status_code == 403
    assert replay(plain_client, mine, wx.text(victim_id, "我要投诉欠工资")).status_code == 403
    assert follows(app, victim_id) and logged(app, victim_id) == 2
    with app.state.sessionmaker() as session:
        assert session.get(Labourer, victim).wechat_openid == victim_id


def test_wechats_own_retry_of_the_same_push_is_still_heard_once(plain_client, app):  # noqa: F811
    wx = WeChatPlatform(plain_client, mode="plain")
    who = openid("retry")
    push = wx.text(who, "公益性岗位咋个申请", msg_id="55501")
    first = wx.post(push)
    assert first.status_code == 200 and wx.reply(first) is not None
    again = replay(plain_client, first, push)  # same query, same body: the platform saw no answer and retried
    assert again.status_code == 200 and again.text == "success"
    assert logged(app, who) == 2  # one message in, one answer out


def test_plaintext_is_refused_when_the_account_is_in_safe_mode(client, app):  # noqa: F811
    aes = WeChatPlatform(client, mode="aes")
    victim_id = openid("victim")
    assert aes.reply(aes.post(aes.text(victim_id, "你好"))) is not None
    plain = WeChatPlatform(client, mode="plain")  # correctly signed, but not encrypted
    for xml in (plain.event(victim_id, "unsubscribe"), plain.text(victim_id, "查一下我的登记")):
        response = plain.post(xml)
        assert response.status_code == 403 and "AES" in response.text
    # and a captured AES push's query, with encrypt_type dropped and plaintext XML put in
    captured = aes.post(aes.text("o-forger", "你好"))
    assert replay(client, captured, plain.event(victim_id, "unsubscribe")).status_code == 403
    assert follows(app, victim_id) and logged(app, victim_id) == 2


def _second_worker(settings):  # noqa: ANN001, ANN202
    return create_app(settings, configure_logs=False)


@pytest.mark.parametrize("store", ["database", "redis"])
def test_the_nonce_is_remembered_across_workers(wechat_settings, store):  # noqa: F811
    if store == "redis":
        import redis

        try:
            redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        except redis.RedisError as exc:
            pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    settings = wechat_settings(wechat_aes_key="", redis_url=REDIS_URL if store == "redis" else "")
    one, two = _second_worker(settings), _second_worker(settings)
    try:
        with TestClient(one) as first, TestClient(two) as second:
            wx = WeChatPlatform(first, mode="plain")
            me = openid("me")
            mine = wx.post(wx.text(me, "你好"))
            assert mine.status_code == 200
            assert replay(second, mine, wx.event("o-someone-else", "unsubscribe")).status_code == 403
            # a fresh nonce on the other worker is heard as usual
            assert WeChatPlatform(second, mode="plain").post(wx.text(me, "培训")).status_code == 200
    finally:
        one.state.engine.dispose()
        two.state.engine.dispose()


def test_stale_timestamps_are_still_refused_before_the_cache(plain_client):  # noqa: F811
    wx = WeChatPlatform(plain_client, mode="plain")
    assert wx.post(wx.text("o-late", "你好"), timestamp=int(time.time()) - 400).status_code == 403
