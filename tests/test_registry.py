"""The registry: who is talking (binding by name + ID number or phone), per-channel subscriptions,
(reading personal data in clear: tests/test_staff_audit.py)."""

from __future__ import annotations

from bot.models import Labourer, TrainingNeed

from test_dialog_support import add_roster_labourer, db, rows, send, state_of, valid_id_number

ID_NUMBER = valid_id_number()


def register(talk, name: str, identity: str) -> None:
    talk("我想学电焊")
    talk(name)
    talk(identity)
    talk("1")
    talk("下个月")
    talk("江口镇")
    talk("1")


def test_an_id_number_on_the_roster_with_another_name_does_not_bind(say, app):
    known = add_roster_labourer(app, name="李秀英", id_number=ID_NUMBER)
    register(say, "王小明", ID_NUMBER)
    people = {lab.id: lab for lab in rows(app, Labourer)}
    assert people[known].wechat_openid is None  # nobody takes over a roster entry with a wrong name
    [stranger] = [lab for lab in people.values() if lab.id != known]
    assert stranger.source == "self_reported" and not stranger.verified and stranger.id_number_hash is None
    assert "姓名不符" in stranger.verify_note


def test_sms_users_are_known_by_their_number(app):
    known = add_roster_labourer(app, name="张大山", phone="13812345678")
    replies = send(app, "13812345678", "我想学电焊", channel="sms")
    assert "姓名" not in replies[0] and "哪种班" in replies[0]  # the roster has this number: no questions
    for text in ("2", "过完年", "1"):
        send(app, "13812345678", text, channel="sms")
    [need] = rows(app, TrainingNeed)
    assert need.labourer_id == known and need.channel == "sms" and need.township == "江口镇"
    assert state_of(app, "13812345678", channel="sms").labourer_id == known


def test_unsubscribe_flips_only_the_channel_it_came_from(say, app):
    add_roster_labourer(app, name="王小明", id_number=ID_NUMBER, phone="13812345678")
    register(say, "王小明", ID_NUMBER)
    assert "已退订" in say("退订")[0]
    [labourer] = rows(app, Labourer)
    assert (labourer.subscribed_wechat, labourer.subscribed_sms) == (False, True)
    send(app, "13812345678", "TD", channel="sms")
    send(app, "labourer-1", "订阅")
    [labourer] = rows(app, Labourer)
    assert (labourer.subscribed_wechat, labourer.subscribed_sms) == (True, False)


def test_an_opt_out_before_binding_carries_over(say, app):
    assert "已退订" in say("退订")[0]
    register(say, "王小明", "13812345678")
    [labourer] = rows(app, Labourer)
    assert labourer.subscribed_wechat is False and labourer.wechat_openid == "labourer-1"
