"""The dispatcher through the channels' own senders (bot.channels.outbound / bot.channels.sms) against
the loopback fakes of the WeChat API and the Aliyun SMS API: WeChat → SMS fallback, per-number opt-out,
crash reconciliation from the channels' outbox (including a worker killed between the provider's
acceptance and the commit of its answer), receipts."""

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
from bot.models import (
    CampaignStep,
    Delivery,
    Labourer,
    OutboundMessage,
    WeChatFollower,
    utcnow,
)
from scheduler import hooks
from scheduler.campaigns import transition
from scheduler.dispatch import DispatchConfig, Dispatcher
from scheduler.planning import fire_step
from scheduler.senders import OutboundDelivery, channel_senders
from scheduler.synthetic import make_campaign
from tests.fakes.sms_gateways import FakeAliyunSms, FakeTencentSms
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
                         sms_access_key_secret="aliyun-secret", sms_template_id="SMS_1",
                         sms_callback_token="cb-dispatch-0123456789abcdef0123")


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


# ---- killed between the provider's acceptance and the commit of its answer ---------------------------


class Killed:
    """Wraps a channel's SMS gateway: on the `at`-th send the process "dies" (SystemExit) — after the
    provider accepted the message (`after_accept`) or just before the request left (`before_call`).
    The outbox row was committed as "sending" before, so only the provider knows what happened."""

    def __init__(self, gateway, at: int, when: str) -> None:
        self.gateway, self.at, self.when, self.calls = gateway, at, when, 0
        self.name = gateway.name

    def send(self, numbers, text, body, *, marketing, key=None):
        self.calls += 1
        if self.calls == self.at and self.when == "before_call":
            raise SystemExit("killed before the request left")
        results = self.gateway.send(numbers, text, body, marketing=marketing, key=key)
        if self.calls == self.at:
            raise SystemExit("killed after the provider accepted")
        return results

    def lookup(self, number, key, since):
        return self.gateway.lookup(number, key, since)


def _sms_people(factory, settings, count: int) -> list[str]:
    numbers = [f"1398100{i:04d}" for i in range(count)]
    with session_scope(factory) as s:
        for i, number in enumerate(numbers):
            p = pii.protect_phone(number, settings.data_key)
            s.add(Labourer(name=f"工友{i}", phone_enc=p.encrypted, phone_hash=p.lookup_hash, phone_masked=p.masked))
    return numbers


def _crash_then_restart(settings, factory, kill) -> Dispatcher:
    """One worker runs a batch and is killed inside it (`kill(senders)` arms the kill); a second worker
    starts after the first one's lease ran out and finishes the broadcast."""
    senders = channel_senders(settings, factory)
    kill(senders)
    now = [utcnow()]
    config = DispatchConfig(rates={}, windows={}, lease=timedelta(seconds=30))
    with pytest.raises(SystemExit):
        Dispatcher(factory, senders, config, clock=lambda: now[0], worker_id="killed").run_once()
    with session_scope(factory) as s:
        assert s.scalars(select(Delivery.status)).all().count("sending") > 0  # the kill left rows in flight
    now[0] += timedelta(minutes=1)
    restarted = Dispatcher(factory, channel_senders(settings, factory), config, clock=lambda: now[0], worker_id="restarted")
    restarted.run(until_idle=True)
    return restarted


def _kill_sms(at: int, when: str):
    def arm(senders) -> None:
        chans = outbound.channels(senders["sms"].services)
        chans.sms = Killed(chans.sms, at, when)
    return arm


@pytest.mark.parametrize("when", ["after_accept", "before_call"])
def test_aliyun_killed_mid_send_then_restarted_sends_each_once(settings, factory, fakes, when) -> None:
    _wechat, aliyun = fakes
    numbers = _sms_people(factory, settings, 5)
    _launch(factory)
    restarted = _crash_then_restart(settings, factory, _kill_sms(3, when))

    assert Counter(_numbers(aliyun)) == dict.fromkeys(numbers, 1)  # zero duplicates, zero lost
    assert Counter(d.status for d in _rows(factory).values()) == {"sent": 5}
    assert restarted.totals.reconciled == 5  # the whole claimed batch was left "sending"
    # QuerySendDetails found the accepted one by OutId (= the delivery's key); the other was sent anew.
    assert [q["Action"] for q in map(_params, aliyun.requests)].count("QuerySendDetails") >= 1
    with session_scope(factory) as s:
        outbox = s.scalars(select(OutboundMessage)).all()
        keys = {d.idempotency_key for d in s.scalars(select(Delivery))}
    assert {m.idempotency_key for m in outbox} == keys and {m.status for m in outbox} == {"sent"}
    assert {p["OutId"] for p in aliyun.sent} == keys


def _params(request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.body.decode()).items()}


@pytest.fixture
def tencent_settings(make_settings):
    with FakeTencentSms() as tencent:
        yield tencent, make_settings(sms_provider="tencent", sms_api_base=tencent.base, sms_access_key_id="AKID-test",
                                     sms_access_key_secret="tencent-secret", sms_app_id="1400000001",
                                     sms_template_id="T1")


@pytest.mark.parametrize("reported", [True, False])
def test_tencent_killed_after_accept_is_settled_by_its_status_report(tencent_settings, reported) -> None:
    tencent, settings = tencent_settings
    engine = make_engine(settings.database_url)
    factory = make_sessionmaker(engine)
    numbers = _sms_people(factory, settings, 3)
    _launch(factory)
    tencent.reports = reported  # False: the carrier has not reported yet, so Tencent lists nothing
    _crash_then_restart(settings, factory, _kill_sms(2, "after_accept"))

    sent_to = Counter(n.removeprefix("+86") for body in tencent.sent for n in body["PhoneNumberSet"])
    assert sent_to == dict.fromkeys(numbers, 1)  # never twice, whatever the report says
    statuses = Counter((d.status, d.failure_reason) for d in _rows(factory).values())
    if reported:  # PullSmsSendStatusByPhoneNumber lists it with our SessionContext
        assert statuses == {("sent", None): 3}
    else:  # not listed proves nothing for Tencent: failed as outcome_unknown rather than risk a second SMS
        assert statuses == {("sent", None): 2, ("failed", "outcome_unknown"): 1}
    engine.dispose()


def test_wechat_killed_after_accept_fails_as_outcome_unknown(settings, factory, fakes) -> None:
    """WeChat cannot be asked whether a customer-service message went out: the delivery fails with
    outcome_unknown; it is neither resent nor sent again by SMS."""
    wechat, aliyun = fakes
    ids = _people(factory, settings)
    _launch(factory)

    def arm(senders) -> None:
        api = outbound.channels(senders["wechat"].services).wechat
        real = api.send_text

        def send_text(openid, content):
            real(openid, content)
            raise SystemExit("killed after WeChat accepted")
        api.send_text = send_text

    _crash_then_restart(settings, factory, arm)
    rows = _rows(factory)
    assert (rows[ids["甲"]].status, rows[ids["甲"]].failure_reason) == ("failed", "outcome_unknown")
    assert Counter(m["touser"] for m in wechat.sent) == {"o-in": 1, "o-gone": 1}  # each once
    assert "13980000001" not in _numbers(aliyun)  # no SMS fallback for a message that may have arrived


def test_a_delivery_settled_after_a_crash_learns_its_receipt_by_out_id(settings, factory, fakes, client) -> None:
    """QuerySendDetails lists no BizId; Aliyun's delivery report echoes OutId (our key) and is matched by it."""
    _wechat, aliyun = fakes
    _sms_people(factory, settings, 5)
    _launch(factory)
    _crash_then_restart(settings, factory, _kill_sms(3, "after_accept"))
    with session_scope(factory) as s:
        settled = [d for d in s.scalars(select(Delivery)) if d.provider_message_id is None]
        keys = {d.idempotency_key for d in settled}
    assert settled  # the accepted-then-killed send was settled without a provider id
    reports = [
        {"phone_number": p["PhoneNumbers"], "send_time": "2026-11-26 10:00:00", "report_time": "2026-11-26 10:00:05",
         "success": True, "err_code": "DELIVERED", "err_msg": "用户接收成功", "sms_size": "1",
         "biz_id": f"biz-late-{i}", "out_id": p["OutId"]}
        for i, p in enumerate(aliyun.sent) if p["OutId"] in keys
    ]
    response = client.post("/sms/inbound", params={"token": settings.sms_callback_token}, json=reports)
    assert response.status_code == 200 and response.json()["code"] == 0
    with session_scope(factory) as s:
        for delivery in s.scalars(select(Delivery).where(Delivery.idempotency_key.in_(keys))):
            assert delivery.status == "delivered" and delivery.provider_message_id.startswith("biz-late-")
        for message in s.scalars(select(OutboundMessage).where(OutboundMessage.idempotency_key.in_(keys))):
            assert message.status == "delivered" and message.provider_message_id.startswith("biz-late-")
