"""The registry: who is talking (binding by name + ID number or phone), per-channel subscriptions,
(reading personal data in clear: tests/test_staff_audit.py)."""

from __future__ import annotations

from bot.models import Labourer, TrainingNeed

from test_dialog_support import add_roster_labourer, db, rows, send, sms_state, text_by_sms, valid_id_number

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


def test_sms_users_are_known_by_their_number(client, app):
    known = add_roster_labourer(app, name="张大山", phone="13812345678")
    replies = text_by_sms(client, "13812345678", "我想学电焊")
    assert "姓名" not in replies[0] and "哪种班" in replies[0]  # the roster has this number: no questions
    for text in ("2", "过完年", "1"):
        text_by_sms(client, "13812345678", text)
    [need] = rows(app, TrainingNeed)
    assert need.labourer_id == known and need.channel == "sms" and need.township == "江口镇"
    assert sms_state(app, "13812345678").labourer_id == known
    assert [lab.id for lab in rows(app, Labourer)] == [known]  # no second, self-reported labourer


def test_a_shared_family_number_asks_who_is_writing(client, app):
    father = add_roster_labourer(app, name="张大山", phone="13812345678")
    daughter = add_roster_labourer(app, name="张小花", phone="13812345678")
    replies = text_by_sms(client, "13812345678", "我想学电焊")
    assert "姓名" in replies[0]  # the number is two people's: it says nobody
    text_by_sms(client, "13812345678", "张小花")
    for text in ("2", "过完年", "江口镇", "1"):
        text_by_sms(client, "13812345678", text)
    [need] = rows(app, TrainingNeed)
    assert need.labourer_id == daughter and need.township == "江口镇"
    assert {lab.id for lab in rows(app, Labourer)} == {father, daughter}
    [sms_bound] = {lab.sms_number_hash for lab in rows(app, Labourer)}
    assert sms_bound is None  # the number still identifies neither of them on its own


def test_wechat_user_bound_once_is_never_asked_again(say, app):
    known = add_roster_labourer(app, name="王小明", id_number=ID_NUMBER)
    register(say, "王小明", ID_NUMBER)
    replies = say("我还想找个工作")
    assert "姓名" not in replies[0] and "身份证" not in replies[0]
    assert [lab.id for lab in rows(app, Labourer)] == [known]
