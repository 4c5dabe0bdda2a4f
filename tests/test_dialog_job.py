"""register_job → 求职名单, and "已经在外务工" → 转移就业名单, through the simulator endpoint."""

from __future__ import annotations

from bot.models import JobWish, Labourer, WorkingAway

from test_dialog_support import rows, state_of


def test_job_wish_happy_path(say, app):
    first = say("想找个活路，开挖机的")
    assert "挖掘机" in first[0] and "姓名" in first[0]
    say("王小明")
    assert "哪里做" in say("13812345678")[0]
    assert "最少" in say("丽水")[0]
    assert "上班" in say("三千五一个月")[0]
    assert "公益性岗位" in say("过完年")[0]
    assert "手工活" in say("不愿意")[0]
    confirmation = say("2")[0]
    assert "省外（丽水）" in confirmation and "3500元" in confirmation and "138****5678" in confirmation
    assert "登记好了" in say("对的")[0]
    [wish] = rows(app, JobWish)
    assert (wish.job_type, wish.place_scope, wish.place, wish.min_monthly_pay) == ("挖掘机司机", "省外", "丽水", 3500)
    assert (wish.accepts_public_welfare, wish.accepts_home_based) == (False, False)
    assert wish.start_when == "过完年" and wish.start_date is not None
    [labourer] = rows(app, Labourer)
    assert labourer.phone_masked == "138****5678" and labourer.employment_status == "unemployed"


def test_job_wish_with_local_scope_skipped_pay_and_public_welfare_post(say, app):
    say("我想找工作")
    say("李秀英")
    assert "想做啥子" in say("13912345678")[0]
    say("我想做保洁")
    say("1")  # 本地
    say("跳过")  # no figure in mind
    say("马上")
    say("愿意")
    assert "（未填）" in say("要得")[0]
    assert "公益性岗位由村里" in say("1")[0]
    [wish] = rows(app, JobWish)
    assert wish.place_scope == "本地" and wish.min_monthly_pay is None and wish.accepts_public_welfare is True


def test_already_working_away_goes_to_the_working_away_list(say, app):
    assert "在外务工" in say("我已经在外务工了")[0]
    say("王小明")
    say("13812345678")
    say("浙江丽水")
    say("工地")
    say("跳过")
    say("今年3月份")
    assert "已记下您在丽水务工" in say("1")[0]
    [away] = rows(app, WorkingAway)
    assert (away.place, away.job_type, away.employer, away.since) == ("丽水", "建筑工", None, "今年3月份")
    assert rows(app, Labourer)[0].employment_status == "working_away"
    assert rows(app, JobWish) == []


def test_no_at_a_yes_no_question_is_an_answer_not_an_unsubscribe(say, app):
    say("我想找工作")
    say("王小明")
    say("13812345678")
    say("保洁")
    say("县内")
    say("3000")
    say("下个月")
    assert "手工活" in say("不想")[0]
    assert "核对" in say("不要")[0]
    assert "是要退订所有通知吗" in say("别给我发通知了")[0]  # asked once inside a dialog
    replies = say("是")
    assert "已退订" in replies[0] and "核对" in replies[-1]
    say("1")
    [wish] = rows(app, JobWish)
    assert (wish.accepts_public_welfare, wish.accepts_home_based, wish.place_scope) == (False, False, "县内")
    assert state_of(app, "labourer-1").context["unsubscribed"] is True  # the simulator's own choice
