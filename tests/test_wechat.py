"""The WeChat callback end to end: wechatpy's WeChatCrypto plays the WeChat server against /wechat,
the loopback fake plays the WeChat API, the database is the real one."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bot.app import create_app
from bot.models import Labourer, MessageLog, OutboundMessage, WeChatFollower
from tests.fakes.wechat_api import FakeWeChatApi
from tests.fakes.wechat_platform import AES_KEY, APPID, SECRET, TOKEN, WeChatPlatform, sign


@pytest.fixture
def fake_api() -> Iterator[FakeWeChatApi]:
    with FakeWeChatApi(appid=APPID, secret=SECRET) as server:
        yield server


@pytest.fixture
def wechat_settings(make_settings, fake_api):  # noqa: ANN001, ANN201
    def build(**overrides: object):  # noqa: ANN202
        values = dict(wechat_token=TOKEN, wechat_aes_key=AES_KEY, wechat_appid=APPID, wechat_secret=SECRET,
                      wechat_api_base=fake_api.base)
        values.update(overrides)
        return make_settings(**values)

    return build


@pytest.fixture
def settings(wechat_settings):  # noqa: ANN001, ANN201
    """conftest's `app` and `client` fixtures, built with the Official Account configured."""
    return wechat_settings()


@pytest.fixture
def plain_client(wechat_settings):  # noqa: ANN001, ANN201
    """An account in plaintext mode (no AES key): the only kind that hears unencrypted pushes."""
    application = create_app(wechat_settings(wechat_aes_key=""), configure_logs=False)
    with TestClient(application) as test_client:
        yield test_client
    application.state.engine.dispose()


@pytest.fixture
def wx(client) -> WeChatPlatform:  # noqa: ANN001
    return WeChatPlatform(client, mode="aes")


def count_in(app, openid: str) -> int:  # noqa: ANN001
    with app.state.sessionmaker() as session:
        return session.scalar(
            select(func.count()).select_from(MessageLog).where(
                MessageLog.channel == "wechat", MessageLog.user_id == openid, MessageLog.direction == "in"
            )
        )


# ---- URL verification and the three modes ---------------------------------------------------------


def test_url_verification_echoes_echostr(client):
    ts, nonce = str(int(time.time())), "abc"
    ok = client.get("/wechat", params={"signature": sign(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce, "echostr": "e-123"})
    assert ok.status_code == 200 and ok.text == "e-123"
    bad = client.get("/wechat", params={"signature": "f" * 40, "timestamp": ts, "nonce": nonce, "echostr": "e-123"})
    assert bad.status_code == 403 and "e-123" not in bad.text


@pytest.mark.parametrize("mode", ["aes", "compatible", "plain"])
def test_sichuanese_question_gets_an_on_topic_reply_in_every_mode(request, mode):
    wx = WeChatPlatform(request.getfixturevalue("plain_client" if mode == "plain" else "client"), mode=mode)
    response = wx.post(wx.text("o-user-1", "公益性岗位咋个申请嘛"))
    assert response.headers["content-type"].startswith("application/xml")
    if mode != "plain":
        assert "<Encrypt>" in response.text and "公益性岗位" not in response.text  # the answer travels encrypted
    node = wx.reply(response)
    assert node["MsgType"] == "text" and node["ToUserName"] == "o-user-1" and node["FromUserName"] == "gh_gongyou"
    assert "公益性岗位" in node["Content"] or "岗位" in node["Content"]


# ---- platform rules -------------------------------------------------------------------------------


def test_a_retried_msgid_is_processed_once(wx, app):
    xml = wx.text("o-retry", "培训补贴有好多钱", msg_id="778899")
    first = wx.reply(wx.post(xml))
    assert first is not None and first["Content"]
    second = wx.post(xml)  # WeChat retries with the same MsgId (and a new nonce)
    assert second.status_code == 200 and second.text == "success"
    assert count_in(app, "o-retry") == 1


def test_forged_stale_oversize_entity_and_malformed_requests_get_a_clean_4xx(wx, plain_client, app):
    good = wx.text("o-bad", "你好")
    assert wx.post(good, forge=True).status_code == 403  # forged msg_signature
    assert wx.post(good, timestamp=int(time.time()) - 301).status_code == 403  # replayed / stale
    plain = WeChatPlatform(plain_client, mode="plain")
    assert plain.post(good, forge=True).status_code == 403  # forged signature in plaintext mode
    bomb = ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            "<xml><ToUserName>x</ToUserName><FromUserName>o-bad</FromUserName><MsgType>text</MsgType>"
            "<Content>&b;</Content><MsgId>1</MsgId></xml>")
    assert plain.post(bomb).status_code == 400
    assert wx.post(bomb).status_code == 400  # the same bomb inside the encrypted envelope
    assert plain.post("", raw_body=b"<xml><Content>unclosed").status_code == 400
    assert plain.post("", raw_body=b"\xff\xfe not xml at all").status_code == 400
    assert wx.post("", raw_body=b"<xml><Encrypt><![CDATA[bm90IGEgcmVhbCBjaXBoZXJ0ZXh0]]></Encrypt></xml>").status_code == 403
    huge = wx.text("o-bad", "长" * 40_000)
    assert plain.post(huge).status_code == 413
    assert count_in(app, "o-bad") == 0  # none of them reached the conversation


def test_reply_text_containing_cdata_end_cannot_break_the_xml(wx):
    node = wx.reply(wx.post(wx.text("o-inject", "你好]]><MsgType>news</MsgType>")))
    assert node["MsgType"] == "text"


def test_render_passive_escapes_cdata_end_and_keeps_one_article():
    import xmltodict

    from bot.channels.base import Reply
    from bot.channels.wechat import render_passive

    evil = "答复]]><ToUserName>attacker</ToUserName><![CDATA["
    xml, rest = render_passive("o-1", "gh", [Reply(evil)])
    node = xmltodict.parse(xml)["xml"]
    assert node["Content"] == evil and node["ToUserName"] == "o-1" and rest == []
    xml, _ = render_passive("o-1", "gh", [Reply("标题\n说明", article_url="https://example.org/a")])
    node = xmltodict.parse(xml)["xml"]
    assert node["MsgType"] == "news" and node["ArticleCount"] == "1" and node["Articles"]["item"]["Title"] == "标题"


def test_voice_with_recognition_is_understood_and_without_asks_again(wx, app):
    node = wx.reply(wx.post(wx.xml("o-voice", "voice", {"MediaId": "m-1", "Format": "amr", "Recognition": "公益性岗位咋个申请"})))
    assert "岗位" in node["Content"]
    node = wx.reply(wx.post(wx.xml("o-voice", "voice", {"MediaId": "m-2", "Format": "amr", "Recognition": ""})))
    assert "没听清" in node["Content"] and "打字" in node["Content"]
    with app.state.sessionmaker() as session:
        kept = session.scalars(select(MessageLog.media_id).where(MessageLog.user_id == "o-voice", MessageLog.direction == "in")).all()
    assert "m-2" in kept


def test_image_location_and_link_are_acknowledged(wx):
    for msg_type, fields in [
        ("image", {"PicUrl": "http://x/p.jpg", "MediaId": "img-1"}),
        ("location", {"Location_X": "31.86", "Location_Y": "106.75", "Scale": "15", "Label": "巴州区"}),
        ("link", {"Title": "招工", "Description": "d", "Url": "http://x"}),
    ]:
        node = wx.reply(wx.post(wx.xml("o-media", msg_type, fields)))
        assert node is not None and node["Content"]


def test_to_inbound_translates_media():
    from bot.channels.wechat import to_inbound

    image = to_inbound({"FromUserName": "o", "MsgType": "image", "MediaId": "img-9", "MsgId": "5"})
    assert image.kind == "image" and image.media_id == "img-9" and image.external_id == "5"
    where = to_inbound({"FromUserName": "o", "MsgType": "location", "Location_X": "31.86", "Location_Y": "106.75", "Label": "巴州区", "MsgId": "6"})
    assert where.kind == "location" and where.location == (31.86, 106.75) and where.label == "巴州区"
    event = to_inbound({"FromUserName": "o", "MsgType": "event", "Event": "subscribe", "EventKey": "qrscene_v1", "CreateTime": "123"})
    assert event.external_id == "o:123:subscribe" and event.event_key == "qrscene_v1"
    assert to_inbound({"FromUserName": "o", "MsgType": "event", "Event": "subscribe_msg_popup_event", "CreateTime": "1"}) is None


# ---- events -------------------------------------------------------------------------------------


def test_subscribe_gets_the_welcome_and_records_the_poster(wx, app):
    node = wx.reply(wx.post(wx.event("o-new", "subscribe", "qrscene_village_0412")))
    assert "欢迎" in node["Content"] and "1." in node["Content"]
    with app.state.sessionmaker() as session:
        follower = session.get(WeChatFollower, "o-new")
        assert follower.subscribed and follower.source == "village_0412" and follower.last_interaction_at is not None


def test_menu_click_runs_the_intent(wx):
    node = wx.reply(wx.post(wx.event("o-click", "CLICK", "policy_menu")))
    assert "政策" in node["Content"]


def test_unsubscribe_unbinds_and_deletes_the_chat_but_keeps_the_roster(wx, app):
    with app.state.sessionmaker() as session:
        session.add(Labourer(name="王大山", wechat_openid="o-leave", county="巴州区"))
        session.commit()
    wx.say("o-leave", "你好")
    assert count_in(app, "o-leave") == 1
    assert wx.post(wx.event("o-leave", "unsubscribe")).text == "success"
    assert count_in(app, "o-leave") == 0
    with app.state.sessionmaker() as session:
        person = session.scalars(select(Labourer).where(Labourer.name == "王大山")).one()
        assert person.wechat_openid is None and not person.subscribed_wechat and person.county == "巴州区"
        assert not session.get(WeChatFollower, "o-leave").subscribed


def test_template_job_finished_updates_the_delivery(wx, app):
    with app.state.sessionmaker() as session:
        session.add(OutboundMessage(channel="wechat", kind="template", user_id="o-t", provider="wechat",
                                    provider_message_id="4242", status="sent", text="x"))
        session.commit()
    xml = wx.xml("o-t", "event", {"Event": "TEMPLATESENDJOBFINISH", "MsgID": "4242", "Status": "failed:user block"})
    assert wx.post(xml).text == "success"
    with app.state.sessionmaker() as session:
        row = session.scalars(select(OutboundMessage).where(OutboundMessage.provider_message_id == "4242")).one()
        assert row.status == "failed" and row.error_code == "failed:user block"


# ---- the 5-second rule --------------------------------------------------------------------------------


def test_a_slow_answer_returns_success_in_time_and_arrives_by_customer_service(wechat_settings, fake_api, monkeypatch):
    import bot.channels.wechat as wechat

    real = wechat.handle_message

    def slow(services, message, **options):  # noqa: ANN001, ANN003, ANN202
        time.sleep(1.0)
        return real(services, message, **options)

    monkeypatch.setattr(wechat, "handle_message", slow)
    application = create_app(wechat_settings(wechat_reply_deadline_seconds=0.3), configure_logs=False)
    try:
        with TestClient(application) as client:
            wx = WeChatPlatform(client)
            started = time.monotonic()
            response = wx.post(wx.text("o-slow", "公益性岗位咋个申请嘛"))
            assert time.monotonic() - started < 1.0
            assert response.text == "success"
            sent = fake_api.wait_for_sent(1, timeout=10)
            assert sent and sent[0]["touser"] == "o-slow" and "岗位" in sent[0]["text"]["content"]
    finally:
        application.state.engine.dispose()
