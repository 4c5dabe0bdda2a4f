"""The dispatcher through the channels' own senders (bot.channels.outbound / bot.channels.sms) against
the loopback fakes of the WeChat API and the Aliyun SMS API: WeChat → SMS fallback, per-number opt-out,
crash reconciliation from the channels' outbox, receipts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
from sqlalchemy import select

from bot import pii
from bot.channels import outbound, sms
from bot.db import make_engine, make_sessionmaker, session_scope
from bot.models import CampaignStep, Delivery, Labourer, WeChatFollower, utcnow
from scheduler import hooks
from scheduler.campaigns import transition
from scheduler.dispatch import DispatchConfig, Dispatcher
from scheduler.planning import fire_step
from scheduler.senders import OutboundDelivery, channel_senders
from scheduler.synthetic import make_campaign
from tests.fakes.sms_gateways import FakeAliyunSms
from tests.fakes.wechat_api import FakeWeChatApi

APPID, SECRET = "wx-test-app", "test-secret"


@pytest.fixture
def fakes() -> Iterator[tuple[FakeWeChatApi, FakeAliyunSms]]:
    with FakeWeChatApi(appid=APPID, secret=SECRET) as wechat, FakeAliyunSms() as aliyun:
        yield wechat, aliyun


@pytest.fixture
def settings(make_settings, fakes):
    wechat, aliyun = fakes
    return make_settings(wechat_appid=APPID, wechat_secret=SECRET, wechat_api_base=wechat.base,
                         sms_provider="aliyun", sms_api_base=aliyun.base, sms_access_key_id="LTAI-test",
                         sms_access_key_secret="aliyun-secret", sms_template_id="SMS_1")


@pytest.fixture
def factory(settings):
    engine = make_engine(settings.database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def _people(factory, settings) -> dict[str, int]:
    """in-window WeChat follower; WeChat follower WeChat refuses (45015); SMS only; SMS only but opted out."""
    ids = {}
    with session_scope(factory) as s:
        for name, openid, phone in (("甲", "o-in", "13980000001"), ("乙", "o-gone", "13980000002"),
                                    ("丙", None, "13980000003"), ("丁", None, "13980000004")):
            p = pii.protect_phone(phone, settings.data_key)
            labourer = Labourer(name=name, wechat_openid=openid, phone_enc=p.encrypted, phone_hash=p.lookup_hash,
                                phone_masked=p.masked)
            s.add(labourer)
            s.flush()
            ids[name] = labourer.id
            if openid:
                s.add(WeChatFollower(openid=openid, subscribed=True, window_closed=False, cs_sent=0,
                                     last_interaction_at=utcnow() - timedelta(hours=1)))
        sms.set_opt_out(s, settings, "13980000004", out=True, word="R")
    return ids


def _launch(factory) -> int:
    with session_scope(factory) as s:
        campaign = make_campaign(s, template="{姓名}您好，电工培训班下周开课。", sms_template="电工培训班下周开课")
        transition(s, campaign, "scheduled")
        step_id = s.scalars(select(CampaignStep.id).where(CampaignStep.campaign_id == campaign.id)).one()
        fire_step(s, step_id)
        return campaign.id


def _rows(factory) -> dict[int, Delivery]:
    with session_scope(factory) as s:
        return {d.labourer_id: d for d in s.scalars(select(Delivery))}


def _numbers(aliyun: FakeAliyunSms) -> list[str]:
    return [p["PhoneNumbers"] for p in aliyun.sent]


def test_broadcast_through_the_channels(settings, factory, fakes) -> None:
    wechat, aliyun = fakes
    ids = _people(factory, settings)
    wechat.out_of_window.add("o-gone")
    # 丁 opted out: planning already marks the row (the opt-out unsubscribed the registry record too).
    _launch(factory)
    dispatcher = Dispatcher(factory, channel_senders(settings, factory), DispatchConfig(rates={}, windows={}))
    dispatcher.run(until_idle=True)

    rows = _rows(factory)
    assert (rows[ids["甲"]].status, rows[ids["甲"]].channel) == ("sent", "wechat")
    assert (rows[ids["乙"]].status, rows[ids["乙"]].channel, rows[ids["乙"]].error_code) == ("sent", "sms", "45015")
    assert (rows[ids["丙"]].status, rows[ids["丙"]].channel) == ("sent", "sms")
    assert (rows[ids["丁"]].status, rows[ids["丁"]].failure_reason) == ("skipped", "unsubscribed")
    assert [m["touser"] for m in wechat.sent] == ["o-in"]
    assert sorted(_numbers(aliyun)) == ["13980000002", "13980000003"]
    params = parse_qs("&".join(f"{k}={v}" for k, v in aliyun.sent[0].items()))
    assert "电工培训班下周开课" in params["TemplateParam"][0]

    # The provider's report reaches the delivery row through the channels' receipt listeners.
    hooks.install()
    biz_id = rows[ids["丙"]].provider_message_id
    assert biz_id
    with session_scope(factory) as s:
        outbound.record_receipt(s, provider="aliyun", provider_message_id=biz_id, delivered=True)
    assert _rows(factory)[ids["丙"]].status == "delivered"


def test_opt_out_after_planning_is_refused_by_the_sms_channel(settings, factory, fakes) -> None:
    _wechat, aliyun = fakes
    ids = _people(factory, settings)
    _launch(factory)
    with session_scope(factory) as s:  # opted out by SMS after planning, before sending
        row = sms.number_row(s, settings, "13980000003", lock=True)
        row.opted_out = True  # the number only: the registry record still says subscribed
    Dispatcher(factory, channel_senders(settings, factory), DispatchConfig(rates={}, windows={})).run(until_idle=True)
    rows = _rows(factory)
    assert (rows[ids["丙"]].status, rows[ids["丙"]].error_code) == ("failed", "opted_out")
    assert "13980000003" not in _numbers(aliyun)


def test_crash_is_reconciled_from_the_channels_outbox(settings, factory, fakes) -> None:
    wechat, aliyun = fakes
    _people(factory, settings)
    _launch(factory)
    senders = channel_senders(settings, factory)
    now = [utcnow()]
    dying = Dispatcher(factory, senders, DispatchConfig(rates={}, windows={}, lease=timedelta(seconds=30)),
                       clock=lambda: now[0], worker_id="dying")
    rows, _ = dying._claim(["wechat", "sms"], now[0])
    first = rows[0]  # 甲 on WeChat reached the provider; then the worker was killed
    senders["wechat"].send(OutboundDelivery(first.id, first.campaign_id, first.labourer_id, "wechat", first.openid,
                                            first.key), "x")
    now[0] += timedelta(minutes=1)
    survivor = Dispatcher(factory, senders, DispatchConfig(rates={}, windows={}), clock=lambda: now[0])
    survivor.run(until_idle=True)
    assert survivor.totals.reconciled == 3
    assert Counter(m["touser"] for m in wechat.sent) == {"o-in": 1, "o-gone": 1}  # o-in not sent twice
    assert _numbers(aliyun) == ["13980000003"]  # none lost
    assert Counter(d.status for d in _rows(factory).values()) == {"sent": 3, "skipped": 1}
