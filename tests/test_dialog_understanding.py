"""Dialogs that understand people (issue #14): every fact taken from any message, an answer never taken for
a command, when-free answers accepted, corrections to the slot they name, digressions answered once.
Each test is one of the failures people hit, through the simulator endpoint or POST /sms/inbound."""

from __future__ import annotations

import pytest

from bot import pii
from bot.models import Complaint, Handoff, JobWish, Labourer, TrainingNeed

from test_dialog_support import rows, state_of, text_by_sms, valid_id_number

PHONE = "13812345678"


def menus(replies: list[dict]) -> int:
    return sum(1 for r in replies if len(r["choices"]) >= 2)


@pytest.fixture
def talk(client):  # noqa: ANN001, ANN201
    """Like `say`, with the choices: [{"text", "choices"}]."""

    def send(text: str, user: str = "labourer-1") -> list[dict]:
        response = client.post("/api/simulator/message", json={"user": user, "text": text})
        assert response.status_code == 200, response.text
        return response.json()["replies"]

    return send


def job_until_yes_no(say) -> None:  # noqa: ANN001
    say("我想找工作")
    say("王小明")
    say(PHONE)
    say("保洁")
    say("县内")
    say("3000")
    assert "公益性岗位" in say("下个月")[0]


# ---- an answer taken as a command -------------------------------------------------------------------


@pytest.mark.parametrize("no", ["不用", "不需要", "不要", "算了", "不用了"])
def test_no_words_at_a_yes_no_question_are_answers_never_an_unsubscribe_or_a_cancel(say, app, no):
    job_until_yes_no(say)
    assert "手工活" in say(no)[0]
    assert "核对" in say(no)[0]
    assert "登记好了" in say("确认")[0]
    [wish] = rows(app, JobWish)
    assert (wish.accepts_public_welfare, wish.accepts_home_based) == (False, False)
    [labourer] = rows(app, Labourer)
    assert labourer.subscribed_wechat is True and not state_of(app, "labourer-1").context.get("unsubscribed")


def test_a_soft_opt_out_inside_a_dialog_is_asked_about_once(say, app):
    job_until_yes_no(say)
    assert "是要退订所有通知吗" in say("以后别给我发消息了")[0]
    replies = say("不是")
    assert "公益性岗位" in replies[-1]  # the question again, nothing stopped
    assert not state_of(app, "labourer-1").context.get("unsubscribed")
    assert "已退订" in say("退订")[0]  # the carriers' word still works at once


def file_until_workers(say) -> None:  # noqa: ANN001
    say("老板欠我工资")
    say("张老板的装修队")
    say("丽水莲都区")
    say("两万")
    assert "几个工友" in say("三个月")[0]


@pytest.mark.parametrize("count, expected", [("我们有8个人", 8), ("3个人", 3), ("好多人，二十多个", 20)])
def test_a_head_count_is_a_number_not_a_hand_off(say, app, count, expected):
    file_until_workers(say)
    assert "咋回事" in say(count)[0]
    assert rows(app, Handoff) == []
    for answer in ("跳过", "王小明", PHONE, "没有", "江口镇"):
        say(answer)
    say("确认")
    [complaint] = rows(app, Complaint)
    assert complaint.workers_affected == expected


def test_a_typo_of_a_format_name_is_taken_as_the_format(say, app):
    say("我想学电焊")
    say("王小明")
    say(PHONE)
    assert "啥时候有空" in say("小造班")[0]  # not a policy answer about 小灶班
    say("下个月")
    assert "上课方式：小灶班" in say("江口镇")[0]


# ---- ordinary answers refused ------------------------------------------------------------------------


@pytest.mark.parametrize("when, dated", [("晚上", False), ("开春过后", True), ("明年开春", True), ("到时候再说嘛", False),
                                         ("不晓得", False), ("过两个月", True), ("入冬以后", True), ("端午过后", True)])
def test_when_free_answers_are_accepted(say, app, when, dated):
    say("我想学电焊")
    say("王小明")
    say(PHONE)
    say("1")
    assert "哪个乡镇" in say(when)[0]
    say("江口镇")
    say("确认")
    [need] = rows(app, TrainingNeed)
    assert need.available_from == when and (need.available_date is not None) is dated


# ---- facts given early or out of turn ---------------------------------------------------------------


def test_facts_in_the_opening_are_kept_and_not_asked(say, app):
    first = say("我是白衣镇的，想学电焊，冬天有空")[0]
    assert "白衣镇" in first and "焊工" in first and "冬天" in first
    say("王小明")
    assert "哪种班" in say(PHONE)[0]
    confirmation = say("2")[0]  # no question about the free time or the township
    assert "核对" in confirmation and "白衣镇" in confirmation
    say("确认")
    [need] = rows(app, TrainingNeed)
    assert (need.township, need.preferred_format, need.available_from) == ("白衣镇", "流动班", "冬天有空")


def test_pay_said_while_the_place_is_asked_is_kept(say, app):
    say("找工作")
    say("王小明")
    say(PHONE)
    say("进厂")
    reply = say("工资要五千以上")[0]
    assert "5000元" in reply and "哪里做" in reply  # said back, then the place asked again
    assert "上班" in say("成都")[0]  # the pay is not asked
    for answer in ("下个月", "不愿意", "不愿意"):
        say(answer)
    say("确认")
    [wish] = rows(app, JobWish)
    assert (wish.min_monthly_pay, wish.place, wish.place_scope) == (5000, "成都", "省内")


def test_the_start_in_the_opening_is_not_asked_again(say, app):
    say("下个月就能上班，想找个保安的活")
    say("王小明")
    assert "哪里做" in say(PHONE)[0]
    say("县城")
    assert "公益性岗位" in say("4000")[0]  # no 啥时候能上班


# ---- the right slot ------------------------------------------------------------------------------------


def test_money_said_to_the_place_question_is_the_amount(say, app):
    say("老板欠我工资不给")
    say("张老板的装修队")
    reply = say("欠了我三千五")[0]
    assert "3500元" in reply and "哪里干" in reply
    assert "多长时间" in say("丽水莲都区")[0]  # the amount is not asked again
    for answer in ("三个月", "我们有8个人", "跳过", "王小明", PHONE, "没有", "跳过"):
        say(answer)
    say("确认")
    [complaint] = rows(app, Complaint)
    assert (complaint.amount_owed, complaint.site, complaint.workers_affected) == (3500, "丽水莲都区", 8)


@pytest.mark.parametrize("said, scope, place", [
    ("我是恩阳的 想在巴中市里找个超市的工作", "市内", None),
    ("想去广东东莞进厂", "省外", "东莞"),
    ("想在江苏苏州进电子厂", "省外", "苏州"),
    ("想去绍兴进厂", "省外", "绍兴"),  # the Zhejiang job fairs' other cities, not only 丽水 and 杭州
    ("想在宜宾找个超市的工作", "省内", "宜宾"),
])
def test_the_work_place_is_where_they_want_to_work(say, app, said, scope, place):
    say(said)
    say("王小明")
    assert "最少" in say(PHONE)[0]
    for answer in ("3000", "马上", "不愿意", "不愿意"):
        say(answer)
    say("确认")
    [wish] = rows(app, JobWish)
    assert (wish.place_scope, wish.place) == (scope, place)


# ---- corrections ------------------------------------------------------------------------------------------


def test_a_phone_correction_at_the_read_back_keeps_the_id_number(say, app):
    id_number = valid_id_number()
    say("老板欠我工资")
    for answer in ("刘老板", "跳过", "两万", "半年", "3个人", "跳过", "王小明", id_number, PHONE, "没有"):
        say(answer)
    assert "核对" in say("江口镇")[0]
    reply = say("电话打错了，是13900001234")[0]
    assert "139****1234" in reply and "核对" in reply
    say("确认")
    [complaint] = rows(app, Complaint)
    assert complaint.contact_phone_masked == "139****1234"
    [labourer] = rows(app, Labourer)
    key = app.state.settings.data_key
    assert labourer.id_number_enc is not None and pii.decrypt(labourer.id_number_enc, key) == id_number


def test_a_correction_while_another_question_is_asked_goes_to_its_slot(say, app):
    say("我想找工作，做厨师")
    say("王小明")
    say(PHONE)
    assert "最少" in say("重庆")[0]
    reply = say("不对，是成都，不是重庆")[0]
    assert "成都" in reply and "最少" in reply  # corrected, then the pay asked again
    for answer in ("4500", "马上", "不想", "算了"):
        say(answer)
    say("确认")
    [wish] = rows(app, JobWish)
    assert (wish.place, wish.place_scope, wish.min_monthly_pay, wish.accepts_home_based) == ("成都", "省内", 4500, False)


def test_an_answer_that_corrects_itself_means_the_second_value(say, app):
    say("想学电工")
    say("王小明")
    say(PHONE)
    say("网络班")
    say("下个月")
    assert "驷马镇" in say("江口镇，哦不对，是驷马镇")[0]


def test_a_correction_by_value_type_at_the_read_back(say, app):
    say("老板欠工资")
    for answer in ("某某公司", "东莞", "五千", "两个月", "就我", "跳过", "王小明", PHONE, "没有"):
        say(answer)
    assert "5000元" in say("跳过")[0]
    assert "6000元" in say("不对，欠的是六千")[0]
    say("确认")
    assert rows(app, Complaint)[0].amount_owed == 6000


# ---- digressions ------------------------------------------------------------------------------------------


def test_a_digression_is_answered_and_the_question_asked_again_with_one_menu(talk, app):
    talk("我想学挖机")
    talk("王小明")
    assert menus(talk(PHONE)) == 1
    replies = talk("学这个要不要交钱哦")
    assert menus(replies) == 1 and "哪种班" in replies[-1]["text"]  # the dialog's own menu, last
    assert len(replies) == 2 and "补贴" in replies[0]["text"]  # the fees question answered
    assert "啥时候有空" in talk("2")[0]["text"]  # "2" is the format, 流动班


def test_an_sms_conversation_takes_the_opening_facts_too(client, app):
    phone = "13700001111"
    first = text_by_sms(client, phone, "我是白衣镇的，想学电焊，冬天有空")
    assert "白衣镇" in first[0] and "姓名" in first[0]
    assert "哪种班" in text_by_sms(client, phone, "黄建华")[0]
    assert "核对" in text_by_sms(client, phone, "3")[0]
    text_by_sms(client, phone, "确认")
    [need] = rows(app, TrainingNeed)
    assert (need.township, need.preferred_format) == ("白衣镇", "小灶班")


def test_a_name_that_sounds_like_a_date_is_a_name(say, app):
    say("找工作")
    assert "身份证号" in say("贺国庆")[0]  # 国庆 in a name is not a start date


def test_a_range_is_stored_as_its_first_and_last_day(say, app):
    say("我想学电焊")
    say("王小明")
    say(PHONE)
    say("1")
    say("3月到5月")
    assert "3月1日—5月31日" in say("江口镇")[0]
    say("确认")
    [need] = rows(app, TrainingNeed)
    assert (need.available_from, need.available_date.month, need.available_until.month, need.available_until.day) == \
        ("3月到5月", 3, 5, 31)
