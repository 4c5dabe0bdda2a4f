"""The kinds of failure the fourth batch of scripted people (conversations_voices4_heldout.jsonl) showed on
its first reading (issue #14), each through the simulator endpoint as a labourer types it: an amount said
with the employer is the amount, not part of the employer's name; a deal promised (说包进厂) is not a
business; "不去了" with a reason after it still cancels the sign-up."""

from __future__ import annotations

from bot.models import Complaint, SignUp

from test_dialog_heard import _complaint_to
from test_dialog_signup import events, known_person, signups  # noqa: F401  (the events fixture)
from test_dialog_support import rows, state_of


def test_an_amount_said_with_the_employer_is_the_amount_and_not_in_the_employers_name(say, app):
    _complaint_to(say, "包工头跑了 工钱没给", "哪个老板")
    reply = say("包工头姓杨 一共欠了两万三")[0]
    assert "23000" in reply and "一共欠您多少钱" not in reply
    slots = state_of(app, "labourer-1").slots
    assert slots["amount"] == 23000
    assert slots["employer"] == "包工头姓杨"


def test_a_deal_promised_is_not_a_business(say, app):
    first = say("中介收了我一千五 说包进厂 结果没得这个厂")[0]
    assert "中介收费" in first and "进厂" not in first
    assert "employer" not in state_of(app, "labourer-1").slots
    assert "哪个老板" in first


def test_not_going_with_a_reason_after_it_still_cancels(app, say, events):  # noqa: F811
    person = known_person(app)
    say("最近有啥子培训", user="p1")
    assert "报名成功" in say("报名 电工", user="p1")[0]
    assert "已取消" in say("不去了 屋头有事", user="p1")[0]
    assert signups(app) == {(events["电工农闲班"], person): "cancelled"}
    assert [s.status for s in rows(app, SignUp)] == ["cancelled"]


def test_the_sum_an_agent_took_is_kept_though_no_amount_is_asked(say, app):
    first = say("中介收了我一千五 说包进厂 结果没得这个厂")[0]
    assert "1500" in first
    for said in ("一个姓孙的中介", "巴中汽车站旁边", "我们三个", "跳过", "孙小芳", "13881280024", "没有", "跳过"):
        replies = say(said)
        assert "一共欠您多少钱" not in replies[-1]  # never asked
    assert "1500" in replies[-1] and "请核对" in replies[-1]
    say("确认")
    [complaint] = rows(app, Complaint)
    assert complaint.category == "中介收费" and complaint.amount_owed == 1500 and "孙" in complaint.employer
