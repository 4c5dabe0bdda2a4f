"""One address, one resolver: who is writing, on WeChat (signed pushes through POST /wechat) and in the
simulator, whose users live in a namespace of their own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.models import Labourer, TrainingNeed
from tests.fakes.wechat_api import FakeWeChatApi
from tests.fakes.wechat_platform import AES_KEY, APPID, SECRET, TOKEN, WeChatPlatform

from test_dialog_support import add_roster_labourer, db, rows, text_by_sms, valid_id_number

ID_NUMBER = valid_id_number()


@pytest.fixture
def fake_api() -> Iterator[FakeWeChatApi]:
    with FakeWeChatApi(appid=APPID, secret=SECRET) as server:
        yield server


@pytest.fixture
def settings(make_settings, fake_api):  # noqa: ANN001, ANN201
    return make_settings(wechat_token=TOKEN, wechat_aes_key=AES_KEY, wechat_appid=APPID, wechat_secret=SECRET,
                         wechat_api_base=fake_api.base)


@pytest.fixture
def wx(client) -> WeChatPlatform:  # noqa: ANN001
    return WeChatPlatform(client, mode="aes")


def register_training(talk, *answers: str) -> list[str]:  # noqa: ANN001
    return [talk(text) for text in ("我想学电焊", *answers)]


def test_a_roster_labourer_on_wechat_is_asked_once_then_recognised(wx, app):
    known = add_roster_labourer(app, name="王小明", id_number=ID_NUMBER)
    say = lambda text: wx.say("o-wang", text)  # noqa: E731
    replies = register_training(say, "王小明", ID_NUMBER, "1", "下个月", "江口镇", "1")
    assert "姓名" in replies[0]  # first contact: who is this?
    assert "登记好了" in replies[-1]
    with db(app) as session:
        assert session.get(Labourer, known).wechat_openid == "o-wang"
    again = say("我想找个工作")
    assert "姓名" not in again and "身份证" not in again  # bound: the roster already says who she is
    assert [lab.id for lab in rows(app, Labourer)] == [known]
    [need] = rows(app, TrainingNeed)
    assert need.labourer_id == known and need.township == "江口镇"  # the roster's township, never asked


def test_an_opt_out_before_binding_carries_over(wx, app):
    add_roster_labourer(app, name="王小明", phone="13812345678")
    assert "已退订" in wx.say("o-early", "退订")
    register_training(lambda text: wx.say("o-early", text), "王小明", "13812345678", "1", "下个月", "江口镇", "1")
    [labourer] = rows(app, Labourer)
    assert labourer.wechat_openid == "o-early" and labourer.subscribed_wechat is False


def test_a_simulator_user_named_like_an_openid_is_nobody_on_wechat(wx, say, app):
    known = add_roster_labourer(app, name="王小明", id_number=ID_NUMBER)
    register_training(lambda text: wx.say("o-victim", text), "王小明", ID_NUMBER, "1", "下个月", "江口镇", "1")
    records = say("查一下我的登记", user="o-victim")[0]
    assert "焊工" not in records  # the simulator's "o-victim" is not the WeChat follower
    say("退订", user="o-victim")
    with db(app) as session:
        victim = session.get(Labourer, known)
        assert victim.subscribed_wechat is True and victim.wechat_openid == "o-victim"
    assert "焊工" in wx.say("o-victim", "查一下我的登记")


def test_unsubscribe_flips_only_the_channel_it_came_from(wx, client, app):
    add_roster_labourer(app, name="王小明", id_number=ID_NUMBER, phone="13812345678")
    register_training(lambda text: wx.say("o-wang", text), "王小明", ID_NUMBER, "1", "下个月", "江口镇", "1")
    assert "已退订" in wx.say("o-wang", "退订")
    [labourer] = rows(app, Labourer)
    assert (labourer.subscribed_wechat, labourer.subscribed_sms) == (False, True)
    text_by_sms(client, "13812345678", "TD")
    wx.say("o-wang", "订阅")
    [labourer] = rows(app, Labourer)
    assert (labourer.subscribed_wechat, labourer.subscribed_sms) == (True, False)
