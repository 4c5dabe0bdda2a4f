"""Audiences against a seeded registry (exact recipients), set-based planning, duplicate fires, the
campaign state machine."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.db import make_engine, make_sessionmaker, session_scope
from bot.models import (
    Audience,
    Campaign,
    CampaignStep,
    Delivery,
    Event,
    JobWish,
    Labourer,
    TrainingNeed,
    WorkingAway,
)
from scheduler.audience import AudienceError, resolve, validate_filter
from scheduler.campaigns import TransitionError, reminder_due, transition
from scheduler.planning import fire_step
from tests.synthetic import labourer_row, make_campaign

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in Bazhong
TODAY = date(2026, 3, 2)


@pytest.fixture
def factory(db_url: str):
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def _add(session, n: int, name: str, **fields) -> int:
    row = labourer_row(n, name=name, **fields)
    labourer = Labourer(**row)
    session.add(labourer)
    session.flush()
    return labourer.id


@pytest.fixture
def registry(factory) -> dict[str, int]:
    """Eight people chosen so that every filter below picks a different, known set."""
    with session_scope(factory) as s:
        ids = {
            "王一": _add(s, 1, "王一", township="兴文镇", village="石门村", gender="M", birth_date=date(1980, 5, 1)),
            "李二": _add(s, 2, "李二", township="兴文镇", village="老君村", gender="F", birth_date=date(1970, 3, 2),
                         employment_status="working_away"),
            "张三": _add(s, 3, "张三", township="白衣镇", gender="M", birth_date=date(1990, 3, 3),
                         household_status="general", wants_startup=True),
            "刘四": _add(s, 4, "刘四", township="白衣镇", gender="F", birth_date=date(1960, 1, 1),
                         public_welfare_post=True, openid=None),
            "陈五": _add(s, 5, "陈五", township="玉堂镇", gender="M", birth_date=date(2000, 6, 6), phone=None),
            "杨六": _add(s, 6, "杨六", township="玉堂镇", gender="F", birth_date=date(1985, 8, 8),
                         subscribed_wechat=False),
            "赵七": _add(s, 7, "赵七", township="玉堂镇", gender="M", birth_date=date(1976, 3, 2),
                         openid=None, phone=None),
            "黄八": _add(s, 8, "黄八", county="恩阳区", township="柳林镇", gender="F", birth_date=date(1995, 2, 2),
                         subscribed_sms=False, openid=None),
        }
        s.add_all([
            TrainingNeed(labourer_id=ids["王一"], training_type="电工", status="open"),
            TrainingNeed(labourer_id=ids["李二"], training_type="家政服务", status="open"),
            TrainingNeed(labourer_id=ids["张三"], training_type="电工", status="trained"),  # closed: not on the list
            JobWish(labourer_id=ids["张三"], job_type="建筑工", place_scope="省外", place="浙江丽水", status="open"),
            JobWish(labourer_id=ids["陈五"], job_type="电子厂", place_scope="市内", status="open"),
            WorkingAway(labourer_id=ids["李二"], place="浙江丽水"),
        ])
    return ids


def names(factory, filter: dict, include=(), exclude=()) -> set[str]:
    with session_scope(factory) as s:
        audience = Audience(name="t", filter=filter, include_ids=list(include), exclude_ids=list(exclude))
        ids = resolve(s, audience, today=TODAY)
        return set(s.scalars(select(Labourer.name).where(Labourer.id.in_(ids))))


ALL = {"王一", "李二", "张三", "刘四", "陈五", "杨六", "赵七", "黄八"}


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({}, ALL),
        ({"county": "巴州区"}, ALL - {"黄八"}),
        ({"township": ["兴文镇", "白衣镇"]}, {"王一", "李二", "张三", "刘四"}),
        ({"village": "老君村"}, {"李二"}),
        ({"lists": ["training_need"]}, {"王一", "李二"}),
        ({"lists": ["job_wish"]}, {"张三", "陈五"}),
        ({"lists": ["working_away"]}, {"李二"}),
        ({"lists": ["startup", "public_welfare_post"]}, {"张三", "刘四"}),
        ({"training_types": ["电工"]}, {"王一"}),
        ({"job_types": ["建筑工"], "job_places": ["浙江丽水"]}, {"张三"}),
        ({"job_places": ["市内"]}, {"陈五"}),
        ({"employment_status": "working_away"}, {"李二"}),
        ({"household_status": "general"}, {"张三"}),
        ({"gender": "F"}, {"李二", "刘四", "杨六", "黄八"}),
        # Ages on 2026-03-02: 李二 turns 56 today, 赵七 turns 50 today, 陈五 is 25, 刘四 66.
        ({"age_min": 50, "age_max": 56}, {"李二", "赵七"}),
        ({"age_max": 49}, {"王一", "张三", "陈五", "杨六", "黄八"}),
        ({"age_min": 66}, {"刘四"}),
        ({"channel": "wechat"}, {"王一", "李二", "张三", "陈五", "杨六"}),
        ({"channel": "wechat", "subscribed": True}, {"王一", "李二", "张三", "陈五"}),
        ({"channel": "sms", "subscribed": True}, {"王一", "李二", "张三", "刘四", "杨六"}),
        ({"channel": "any", "subscribed": True}, ALL - {"赵七", "黄八"}),
        ({"township": "玉堂镇", "gender": "M", "channel": "any"}, {"陈五"}),
    ],
)
def test_audience_filters_pick_exactly(factory, registry, filter, expected) -> None:
    assert names(factory, filter) == expected


def test_include_and_exclude_lists(factory, registry) -> None:
    got = names(factory, {"township": "兴文镇"}, include=[registry["黄八"]], exclude=[registry["王一"]])
    assert got == {"李二", "黄八"}


def test_bad_filters_are_refused() -> None:
    for bad in ({"province": "四川"}, {"lists": ["nonsense"]}, {"age_min": 60, "age_max": 20},
                {"gender": "X"}, {"channel": "fax"}):
        with pytest.raises(AudienceError):
            validate_filter(bad)


def _scheduled(factory, **kwargs) -> tuple[int, int]:
    with session_scope(factory) as s:
        campaign = make_campaign(s, **kwargs)
        transition(s, campaign, "scheduled", now=NOW)
        step = s.scalars(select(CampaignStep).where(CampaignStep.campaign_id == campaign.id,
                                                    CampaignStep.kind == "initial")).one()
        return campaign.id, step.id


def _deliveries(factory, campaign_id: int) -> dict[str, tuple[str, str | None, str | None]]:
    with session_scope(factory) as s:
        rows = s.execute(
            select(Labourer.name, Delivery.status, Delivery.channel, Delivery.failure_reason)
            .join(Labourer, Labourer.id == Delivery.labourer_id)
            .where(Delivery.campaign_id == campaign_id)
        ).all()
        return {name: (status, channel, reason) for name, status, channel, reason in rows}


def test_planning_chooses_channels_and_records_the_unreachable(factory, registry) -> None:
    campaign_id, step_id = _scheduled(factory, channels=["wechat", "sms"])
    with session_scope(factory) as s:
        result = fire_step(s, step_id, now=NOW)
    assert result.status == "fired" and result.planned == 8
    assert _deliveries(factory, campaign_id) == {
        "王一": ("queued", "wechat", None),
        "李二": ("queued", "wechat", None),
        "张三": ("queued", "wechat", None),
        "刘四": ("queued", "sms", None),  # no WeChat
        "陈五": ("queued", "wechat", None),
        "杨六": ("queued", "sms", None),  # unsubscribed from WeChat, still takes SMS
        "赵七": ("skipped", None, "no_channel"),
        "黄八": ("skipped", None, "unsubscribed"),
    }
    with session_scope(factory) as s:
        assert s.get(Campaign, campaign_id).state == "sending"


def test_sms_only_campaign(factory, registry) -> None:
    campaign_id, step_id = _scheduled(factory, channels=["sms"], filter={"township": "玉堂镇"})
    with session_scope(factory) as s:
        fire_step(s, step_id, now=NOW)
    assert _deliveries(factory, campaign_id) == {
        "陈五": ("skipped", None, "no_channel"),
        "杨六": ("queued", "sms", None),
        "赵七": ("skipped", None, "no_channel"),
    }


def test_duplicate_fire_never_makes_a_second_delivery(factory, registry) -> None:
    campaign_id, step_id = _scheduled(factory)
    with session_scope(factory) as s:
        assert fire_step(s, step_id, now=NOW).planned == 8
    with session_scope(factory) as s:
        again = fire_step(s, step_id, now=NOW + timedelta(seconds=5))
    assert again.status == "already_fired" and again.planned == 0
    # Even a step forced back to pending (a job retried after a crash between insert and status) adds nothing.
    with session_scope(factory) as s:
        s.get(CampaignStep, step_id).status = "pending"
    with session_scope(factory) as s:
        forced = fire_step(s, step_id, now=NOW + timedelta(seconds=10))
    assert forced.status == "fired" and forced.planned == 0
    with session_scope(factory) as s:
        count = s.scalar(select(func.count()).select_from(Delivery).where(Delivery.campaign_id == campaign_id))
        keys = s.scalar(select(func.count(func.distinct(Delivery.idempotency_key))))
    assert count == 8 and keys == 8


def test_audience_is_resolved_when_the_step_fires(factory, registry) -> None:
    campaign_id, step_id = _scheduled(factory, filter={"township": "兴文镇"})
    with session_scope(factory) as s:  # someone moves in after the campaign was written
        _add(s, 9, "周九", township="兴文镇")
    with session_scope(factory) as s:
        fire_step(s, step_id, now=NOW)
    assert set(_deliveries(factory, campaign_id)) == {"王一", "李二", "周九"}


def test_state_machine_refuses_impossible_moves(factory, registry) -> None:
    with session_scope(factory) as s:
        campaign = make_campaign(s)
        with pytest.raises(TransitionError):
            transition(s, campaign, "sending", now=NOW)
        transition(s, campaign, "scheduled", now=NOW)
        transition(s, campaign, "paused", now=NOW)
        transition(s, campaign, "resume", now=NOW)
        assert campaign.state == "scheduled"
        transition(s, campaign, "cancelled", now=NOW)
        with pytest.raises(TransitionError):
            transition(s, campaign, "scheduled", now=NOW)
        steps = s.scalars(select(CampaignStep).where(CampaignStep.campaign_id == campaign.id)).all()
        assert [(st.status, st.skip_reason) for st in steps] == [("skipped", "cancelled")]


def test_reminders_and_misfires(factory, registry) -> None:
    start = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)  # 09:00 local on 10 March
    assert reminder_due(start, {"days_before": 1, "at": "18:00"}, "Asia/Shanghai") == datetime(2026, 3, 9, 10, 0, tzinfo=UTC)
    with session_scope(factory) as s:
        event = Event(kind="job_fair", title="丽水专场招聘会", starts_at=start, venue="巴州区人力资源市场")
        s.add(event)
        s.flush()
        campaign = make_campaign(s, event=event, reminders=[{"days_before": 1, "at": "18:00", "to": "audience"}])
        transition(s, campaign, "scheduled", now=NOW)
        steps = {st.kind: st.id for st in s.scalars(select(CampaignStep).where(CampaignStep.campaign_id == campaign.id))}
    # Downtime: the scheduler comes back after the fair began. Both steps are skipped and say why.
    late = start + timedelta(hours=1)
    with session_scope(factory) as s:
        assert fire_step(s, steps["reminder"], now=late).reason == "event_passed"
        assert fire_step(s, steps["initial"], now=late).reason == "event_passed"
    # A broadcast still relevant is sent late.
    with session_scope(factory) as s:
        campaign = make_campaign(s)
        transition(s, campaign, "scheduled", now=NOW - timedelta(days=2))
        step_id = s.scalars(select(CampaignStep.id).where(CampaignStep.campaign_id == campaign.id)).one()
    with session_scope(factory) as s:
        assert fire_step(s, step_id, now=NOW).status == "fired"
