"""Signing up for a listed event is a dialog step (issue #14): after the events list, "报名", "我去",
"报名 做菜那个", a number or the event's name signs up for that event, never a training registration; an
unregistered person gives only a name and a phone; capacity and the waiting list hold; "不去了" cancels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.db import session_scope
from bot.models import ConversationState, Event, Labourer, SignUp, TrainingNeed

from test_dialog_support import rows, text_by_sms


@pytest.fixture
def events(app):  # noqa: ANN001, ANN201
    """Two upcoming sessions; returns their ids by title."""
    made = {}
    with session_scope(app.state.sessionmaker) as s:
        for title, trade, capacity, days in (("电工农闲班", "电工", 10, 5), ("中式烹调小灶班", "中式烹调", 1, 6)):
            event = Event(kind="training", title=title, training_type=trade, starts_at=datetime.now(UTC) + timedelta(days=days),
                          venue="江口镇就业扶贫站", township="江口镇", capacity=capacity)
            s.add(event)
            s.flush()
            made[title] = event.id
    return made


def known_person(app, user: str = "p1") -> int:  # noqa: ANN001
    with session_scope(app.state.sessionmaker) as s:
        labourer = Labourer(name="王小明", county="平昌县", township="江口镇")
        s.add(labourer)
        s.flush()
        s.add(ConversationState(channel="simulator", user_id=user, labourer_id=labourer.id, slots={}, context={}))
        return labourer.id


def signups(app) -> dict[tuple[int, int], str]:  # noqa: ANN001
    with session_scope(app.state.sessionmaker) as s:
        return {(r.event_id, r.labourer_id): r.status for r in s.scalars(select(SignUp))}


@pytest.mark.parametrize("said, title", [("报名 做菜那个", "中式烹调小灶班"), ("我去电工那个", "电工农闲班"),
                                         ("2", "中式烹调小灶班"), ("电工农闲班", "电工农闲班")])
def test_a_sign_up_said_to_the_events_list_signs_up_for_that_event(app, say, events, said, title):
    person = known_person(app)
    listing = say("最近有啥子培训", user="p1")[0]
    assert "电工农闲班" in listing and "中式烹调小灶班" in listing
    assert "报名成功" in say(said, user="p1")[0]
    assert signups(app) == {(events[title], person): "registered"}
    assert rows(app, TrainingNeed) == []  # not a training registration


def test_an_unclear_sign_up_asks_which_one(app, say, events):
    person = known_person(app)
    say("最近有啥子培训", user="p1")
    asked = say("我去", user="p1")[0]
    assert "哪一个" in asked and "中式烹调小灶班" in asked
    assert "报名成功" in say("1", user="p1")[0]
    assert signups(app) == {(events["电工农闲班"], person): "registered"}
    assert rows(app, TrainingNeed) == []


def test_an_unregistered_person_gives_only_name_and_phone(app, say, events):
    say("有啥子招聘会和培训", user="new")
    assert "姓名" in say("报名 电工", user="new")[0]
    assert "手机号" in say("李春花", user="new")[0]
    assert "报名成功" in say("13812345678", user="new")[0]
    [labourer] = rows(app, Labourer)
    assert labourer.name == "李春花" and labourer.phone_masked == "138****5678"
    assert signups(app) == {(events["电工农闲班"], labourer.id): "registered"}
    assert rows(app, TrainingNeed) == []


def test_the_waiting_list_and_cancelling_hold_for_listed_sign_ups(app, say, events):
    first, second = known_person(app, "p1"), known_person(app, "p2")
    for user in ("p1", "p2"):
        say("最近有啥子培训", user=user)
    assert "报名成功" in say("报名 做菜那个", user="p1")[0]
    assert "候补" in say("报名 做菜那个", user="p2")[0]  # one place only
    assert "已取消" in say("不去了", user="p1")[0]
    cooking = events["中式烹调小灶班"]
    assert signups(app) == {(cooking, first): "cancelled", (cooking, second): "registered"}


def test_an_sms_sign_up_asks_only_the_name(client, app, events):
    phone = "13700001111"
    text_by_sms(client, phone, "最近有啥子培训")
    assert "姓名" in text_by_sms(client, phone, "报名 电工")[0]
    assert "报名成功" in text_by_sms(client, phone, "黄建华")[0]
    [labourer] = rows(app, Labourer)
    assert signups(app) == {(events["电工农闲班"], labourer.id): "registered"}


def test_without_the_events_list_bao_ming_is_still_what_the_router_says(app, say, events):
    known_person(app)
    replies = say("报名", user="p1")
    assert not any("报名成功" in r for r in replies)
    assert signups(app) == {}


@pytest.mark.parametrize("said, title", [("我想报那个电工的", "电工农闲班"), ("做菜那个我去", "中式烹调小灶班"),
                                         ("电工的我想去听一哈", "电工农闲班")])
def test_a_sign_up_word_anywhere_in_the_message_signs_up_for_the_event_it_names(app, say, events, said, title):
    person = known_person(app)
    say("最近有啥子培训", user="p1")
    assert "报名成功" in say(said, user="p1")[0]
    assert signups(app) == {(events[title], person): "registered"}
    assert rows(app, TrainingNeed) == []  # not a training registration


def test_both_listed_events_wanted_asks_which_one_first(app, say, events):
    person = known_person(app)
    say("最近有啥子培训", user="p1")
    assert "哪一个" in say("两个都想去", user="p1")[0]
    assert "报名成功" in say("1", user="p1")[0]
    assert signups(app) == {(events["电工农闲班"], person): "registered"}
