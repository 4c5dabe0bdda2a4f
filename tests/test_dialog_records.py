"""我的登记 (issue #14): training needs, job wishes, complaints and event sign-ups with their status, each
offered to change or withdraw; "我之前报的电焊，时间要改一下" reopens only the slot named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.db import session_scope
from bot.models import Event, JobWish, SignUp, TrainingNeed

from test_dialog_support import rows

PHONE = "13812345678"


def register_welding(say) -> None:  # noqa: ANN001
    say("我想学电焊")
    say("王小明")
    say(PHONE)
    say("1")
    say("下个月")
    say("江口镇")
    assert "登记好了" in say("确认")[0]


def test_my_records_lists_everything_with_its_status_and_sign_ups(app, say):
    register_welding(say)
    with session_scope(app.state.sessionmaker) as s:
        s.add(Event(kind="training", title="电工农闲班", starts_at=datetime.now(UTC) + timedelta(days=5), capacity=5))
    say("最近有啥子培训")
    assert "报名成功" in say("报名", user="labourer-1")[0]
    listing = say("我的登记")[0]
    assert "培训：焊工（已登记，等开班）" in listing
    assert "报名：电工农闲班（已报名）" in listing
    assert "1. 改/撤回 培训：焊工" in listing and "2. 撤回报名 电工农闲班" in listing


def test_changing_the_time_of_a_training_need_asks_only_the_time(app, say):
    register_welding(say)
    asked = say("我之前报的电焊，时间要改一下")[0]
    assert "啥时候有空" in asked
    confirmation = say("过完年")[0]
    assert "核对" in confirmation and "过完年" in confirmation and "江口镇" in confirmation  # nothing else asked
    assert "更新" in say("确认")[0]
    [need] = rows(app, TrainingNeed)
    assert (need.available_from, need.township, need.status) == ("过完年", "江口镇", "open")


def test_a_record_is_withdrawn_from_the_list(app, say):
    register_welding(say)
    say("我的登记")
    assert "修改" in say("1")[0]
    assert "已撤回" in say("2")[0]
    assert rows(app, TrainingNeed)[0].status == "cancelled"
    assert "已取消" in say("我的登记")[0]


def test_changing_a_job_wish_from_the_list_through_the_edit_menu(app, say):
    say("找工作")
    for answer in ("王小明", PHONE, "保洁", "县内", "3000", "下个月", "不愿意", "不愿意"):
        say(answer)
    say("确认")
    say("我的登记")
    say("1")
    assert "要改哪一项" in say("1")[0]  # 修改 → which one
    say("每月最少要多少")
    assert "4500元" in say("4500")[0]
    say("确认")
    [wish] = rows(app, JobWish)
    assert (wish.min_monthly_pay, wish.job_type, wish.place_scope) == (4500, "保洁", "县内")


def test_a_sign_up_is_withdrawn_from_the_list(app, say):
    register_welding(say)
    with session_scope(app.state.sessionmaker) as s:
        s.add(Event(kind="training", title="电工农闲班", starts_at=datetime.now(UTC) + timedelta(days=5), capacity=5))
    say("最近有啥子培训")
    say("报名")
    say("我的登记")
    assert "已取消" in say("2")[0]
    assert [s.status for s in rows(app, SignUp)] == ["cancelled"]
