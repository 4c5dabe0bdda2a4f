"""Sign-ups: capacity and waiting list in the ledger, and through the conversation as a labourer answers
a broadcast ("报名", "1", "我去", "不去了")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.db import session_scope
from bot.models import (
    CampaignStep,
    ConversationState,
    Event,
    Labourer,
    OutboundMessage,
    SignUp,
)
from scheduler.campaigns import transition
from scheduler.dispatch import DispatchConfig, Dispatcher
from scheduler.planning import fire_step
from bot.signups import cancel, classify, sign_up
from tests.doubles import RecordingSender
from tests.synthetic import insert_labourers, make_campaign


@pytest.fixture
def factory(app):
    return app.state.sessionmaker


def _event(factory, capacity: int | None, **fields) -> int:
    with session_scope(factory) as s:
        event = Event(kind="training", title="电工农闲班", starts_at=datetime.now(UTC) + timedelta(days=5),
                      venue="兴文镇就业扶贫站", capacity=capacity, cost_note="免费，结业发补贴", **fields)
        s.add(event)
        s.flush()
        return event.id


def test_capacity_and_waiting_list(factory) -> None:
    with session_scope(factory) as s:
        insert_labourers(s, 5)
    event_id = _event(factory, capacity=2)
    with session_scope(factory) as s:
        outcomes = [sign_up(s, event_id, n) for n in (1, 2, 3, 4)]
        assert [(o.status, o.position) for o in outcomes] == [
            ("registered", None), ("registered", None), ("waitlisted", 1), ("waitlisted", 2)]
        assert sign_up(s, event_id, 1).status == "already_registered"
        assert (sign_up(s, event_id, 4).status, sign_up(s, event_id, 4).position) == ("already_waitlisted", 2)
        # A registered person cancels: the first on the waiting list moves up.
        assert cancel(s, event_id, 2).promoted_labourer_id == 3
        # A waiting person cancels: nobody moves.
        assert cancel(s, event_id, 4).promoted_labourer_id is None
        assert cancel(s, event_id, 4).status == "not_signed_up"
        # Signing up again after cancelling joins at the back.
        assert sign_up(s, event_id, 2).status == "waitlisted"
        statuses = dict(s.execute(select(SignUp.labourer_id, SignUp.status)).all())
    assert statuses == {1: "registered", 2: "waitlisted", 3: "registered", 4: "cancelled"}


def test_closed_event(factory) -> None:
    with session_scope(factory) as s:
        insert_labourers(s, 1)
    event_id = _event(factory, capacity=None, status="cancelled")
    with session_scope(factory) as s:
        assert sign_up(s, event_id, 1).status == "closed"


def test_reply_words() -> None:
    assert [classify(t) for t in ("报名", "1", "我去！", " 我要参加。", "不去了", "取消报名", "报名培训")] == [
        "signup", "signup", "signup", "signup", "cancel", "cancel", None]


def _broadcast(factory, event_id: int, people: int) -> None:
    with session_scope(factory) as s:
        insert_labourers(s, people, openid=None)
        for n in range(1, people + 1):  # the simulator user "p<n>" is labourer n
            s.add(ConversationState(channel="simulator", user_id=f"p{n}", labourer_id=n, slots={}, context={}))
        event = s.get(Event, event_id)
        campaign = make_campaign(s, event=event, channels=["sms"])
        transition(s, campaign, "scheduled")
        step_id = s.scalars(select(CampaignStep.id).where(CampaignStep.campaign_id == campaign.id)).one()
        fire_step(s, step_id)
    sms = RecordingSender("sms")
    Dispatcher(factory, {"sms": sms}, DispatchConfig(rates={}, windows={})).run(until_idle=True)
    assert len(sms.sent) == people
    assert "回1报名" in sms.sent[0][1]


def test_signing_up_by_replying_to_the_broadcast(factory, say) -> None:
    event_id = _event(factory, capacity=2)
    _broadcast(factory, event_id, 4)
    assert "报名成功" in say("报名", user="p1")[0]
    assert "报名成功" in say("1", user="p2")[0]
    waiting = say("我去", user="p3")[0]
    assert "候补" in waiting and "第1位" in waiting
    assert "已经报过名" in say("报名", user="p1")[0]
    assert "已取消" in say("不去了", user="p1")[0]
    with session_scope(factory) as s:
        statuses = dict(s.execute(select(SignUp.labourer_id, SignUp.status)).all())
        # p3 moved up from the waiting list and was told so by SMS (the `log` provider's outbox).
        p3_hash = s.scalar(select(Labourer.phone_hash).where(Labourer.id == 3))
        notices = s.scalars(select(OutboundMessage.text).where(OutboundMessage.user_id == p3_hash)).all()
    assert statuses == {1: "cancelled", 2: "registered", 3: "registered"}
    assert len(notices) == 1 and "有空位" in notices[0]


def test_one_picks_from_a_newer_menu(factory, say) -> None:
    event_id = _event(factory, capacity=None)
    _broadcast(factory, event_id, 1)
    say("你好", user="p1")  # the main menu is now the newest thing the person saw
    replies = say("1", user="p1")
    assert not any("报名成功" in r for r in replies)
    assert "报名成功" in say("报名", user="p1")[0]  # the word still means the broadcast


def test_without_a_broadcast_the_router_decides(factory, say) -> None:
    with session_scope(factory) as s:
        insert_labourers(s, 1)
        s.add(ConversationState(channel="simulator", user_id="p1", labourer_id=1, slots={}, context={}))
    _event(factory, capacity=None)
    assert not any("报名成功" in r for r in say("报名", user="p1"))


def test_query_events_lists_upcoming_and_signs_up_by_number(factory, say) -> None:
    with session_scope(factory) as s:
        insert_labourers(s, 1)
        s.add(ConversationState(channel="simulator", user_id="p1", labourer_id=1, slots={}, context={}))
    _event(factory, capacity=10)
    with session_scope(factory) as s:
        s.add(Event(kind="job_fair", title="丽水专场招聘会", starts_at=datetime.now(UTC) - timedelta(days=1)))
    listing = say("最近有啥子招聘会没得", user="p1")[0]
    assert "电工农闲班" in listing and "丽水专场招聘会" not in listing  # past events are not listed
    assert "报名成功" in say("1", user="p1")[0]
