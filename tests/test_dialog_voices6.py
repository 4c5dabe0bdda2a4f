"""The kinds of failure the sixth held-out batch (conversations_voices6_heldout.jsonl) showed on its first
reading (issue #14), each through the simulator endpoint as a labourer types it."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.models import Labourer, SignUp

from test_dialog_signup import events, known_person  # noqa: F401  (the events fixture)
from test_dialog_support import rows, state_of, valid_id_number
from test_dialog_voices import clear
from test_dialog_voices5 import PHONE, _job_until, _training_until


# ---- time ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("said", ["过了国庆", "过完国庆", "国庆过了"])
def test_after_the_national_day_is_from_the_first_of_october(say, app, said):
    _training_until(say, "想学电焊", "啥时候有空")
    say(said)
    available = state_of(app, "labourer-1").slots["available"]
    today = datetime.now(ZoneInfo(app.state.settings.timezone)).date()
    first = date(today.year, 10, 1) if date(today.year, 10, 1) >= today else date(today.year + 1, 10, 1)
    assert available["text"] == said and available["date"] == first.isoformat()


# ---- sign-ups -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("said", ["算了 不去了", "算了不去了", "哎 去不了了"])
def test_not_going_said_after_a_softener_cancels(app, say, events, said):  # noqa: F811
    known_person(app)
    say("最近有啥子培训", user="p1")
    say("1", user="p1")
    assert "已取消" in say(said, user="p1")[0]
    assert [s.status for s in rows(app, SignUp)] == ["cancelled"]


# ---- what belongs to which slot -----------------------------------------------------------------------


def test_slack_season_said_as_when_one_is_free_is_no_format(say, app):
    say("想学做卤菜 冬天农闲的时候有空")
    slots = state_of(app, "labourer-1").slots
    assert "format" not in slots and slots["available"]["text"] == "冬天农闲的时候有空"
    assert "哪种班" in _training_until(say, "王小明", "哪种班")[-1]  # the format is still asked


@pytest.mark.parametrize("opening", ["找点活路做 就在屋门口", "想在屋跟前找点活"])
def test_work_at_the_door_is_local(say, app, opening):
    say(opening)
    assert state_of(app, "labourer-1").slots["place"]["scope"] == "本地"


def test_at_the_door_answered_to_the_place_question_is_local(say, app):
    _job_until(say, "想找个保洁的活", "在哪里做")
    say("屋门口")
    assert state_of(app, "labourer-1").slots["place"]["scope"] == "本地"


def test_how_long_contributions_went_unpaid_is_kept(say, app):
    say("物流公司两年都没给我们交社保")
    slots = state_of(app, "labourer-1").slots
    assert slots["category"] == "社保"
    assert (slots["period"]["value"], slots["period"]["unit"]) == (2, "year")


def test_of_two_grievances_said_as_plainly_the_first_is_the_problem(say, app):
    say("在成都美甲店干了一年多 老板一直不签合同 还乱扣钱")
    assert state_of(app, "labourer-1").slots["category"] == "未签合同"


# ---- openings -----------------------------------------------------------------------------------------


def test_a_trade_one_could_learn_wished_as_work_with_its_pay_is_a_job_wish(say, app):
    first = say("过完年想去内蒙古开大车 一个月1万2")[0]
    state = state_of(app, "labourer-1")
    assert state.dialog == "register_job" and "找工作" in first
    assert state.slots["pay"] == 12000 and state.slots["place"]["scope"] == "省外"


@pytest.mark.parametrize("opening", ["帮我儿子登记一下 他在广东中山的灯具厂", "帮我妈登记 她在浙江宁波的服装厂"])
def test_where_the_relative_spoken_for_works_now_is_the_working_away_record(say, app, opening):
    first = say(opening)[0]
    assert state_of(app, "labourer-1").dialog == "working_away" and "在外务工" in first


# ---- corrections never lose a value -------------------------------------------------------------------


def test_an_id_number_given_at_the_read_back_beside_the_phone_keeps_the_phone(say, app):
    id_number = valid_id_number()
    _training_until(say, "我想学电焊", "核对")  # the phone given for the ID number
    reply = say(f"身份证号也留一个 {id_number}")[0]
    assert f"{PHONE[:3]}****{PHONE[-4:]}" in reply and "5119" in reply and "核对" in reply  # both read back
    assert "登记好了" in say("确认")[0]
    [labourer] = rows(app, Labourer)
    assert clear(app, labourer.id_number_enc) == id_number
    assert clear(app, labourer.phone_enc) == PHONE


def test_pay_held_back_said_beside_another_problem_asks_the_sum(say, app):
    say("在成都美甲店干了一年多 老板一直不签合同 还乱扣钱")
    reply = say("成都某某美甲店")[0]
    assert "多少钱" in reply
    say("扣了我一千八")
    slots = state_of(app, "labourer-1").slots
    assert (slots["category"], slots["amount"]) == ("未签合同", 1800)  # the contract is the problem, the sum kept
