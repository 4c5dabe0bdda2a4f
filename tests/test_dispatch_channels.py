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
from bot.app import compose, dispatch_parts
from bot.db import make_engine, make_sessionmaker, session_scope
from bot.models import (
    Campaign,
    CampaignStep,
    Delivery,
    Labourer,
    OutboundMessage,
    WeChatFollower,
    utcnow,
)
from bot.models.campaigns import DeliveryOutcome
from scheduler.campaigns import transition
from scheduler.dispatch import DispatchConfig, Dispatcher
from scheduler.planning import fire_step
from scheduler.report import report
from scheduler.senders import OutboundDelivery
from tests.synthetic import make_campaign
from tests.fakes.sms_gateways import FakeAliyunSms, FakeTencentSms
from tests.fakes.wechat_api import FakeWeChatApi

APPID, SECRET = "wx-test-app", "test-secret"
CALLBACK_TOKEN = "k7Qm2Zt9Xc4Vb8Nw1Ls6Hp3Jd5Rf0Gy"  # the SMS push secret in the URL


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
                         sms_callback_token=CALLBACK_TOKEN)


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
    campaign_id = _launch(factory)
    services = compose(settings, factory)
    dispatcher = Dispatcher(factory, dict(services.senders), DispatchConfig(rates={}, windows={}))
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

    # Each sent delivery points at the outbox row of its key, which holds the provider's id and answer.
    with session_scope(factory) as s:
        outbox = {m.id: m for m in s.scalars(select(OutboundMessage))}
    for name in ("甲", "乙", "丙"):
        carried = outbox[rows[ids[name]].outbound_message_id]
        assert (carried.idempotency_key, carried.channel) == (rows[ids[name]].idempotency_key, rows[ids[name]].channel)
    assert rows[ids["丁"]].outbound_message_id is None  # never reached a provider
    biz_id = outbox[rows[ids["丙"]].outbound_message_id].provider_message_id
    assert biz_id

    # The provider's report settles that row, and the campaign's report reads it through the delivery's
    # pointer; a report from another provider naming the same id is that provider's message, not this one.
    def by_status() -> dict[str, int]:
        with session_scope(factory) as s:
            return report(s, s.get(Campaign, campaign_id))["by_status"]

    with session_scope(factory) as s:
        assert outbound.record_receipt(s, provider="tencent", provider_message_id=biz_id, delivered=False) == 0
    assert by_status() == {"sent": 3, "skipped": 1}
    with session_scope(factory) as s:
        outbound.record_receipt(s, provider="aliyun", provider_message_id=biz_id, delivered=True)
    assert by_status() == {"sent": 2, "delivered": 1, "skipped": 1}
    assert _rows(factory)[ids["丙"]].status == "sent"  # the delivery's own state: the receipt is the row's


def test_opt_out_after_planning_is_refused_by_the_sms_channel(settings, factory, fakes) -> None:
    _wechat, aliyun = fakes
    ids = _people(factory, settings)
    _launch(factory)
    with session_scope(factory) as s:  # opted out by SMS after planning, before sending
        row = sms.number_row(s, settings, "13980000003", lock=True)
        row.opted_out = True  # the number only: the registry record still says subscribed
    Dispatcher(factory, dispatch_parts(settings, factory)[0], DispatchConfig(rates={}, windows={})).run(until_idle=True)
    rows = _rows(factory)
    assert (rows[ids["丙"]].status, rows[ids["丙"]].error_code) == ("failed", "opted_out")
    assert "13980000003" not in _numbers(aliyun)


def test_crash_is_reconciled_from_the_channels_outbox(settings, factory, fakes) -> None:
    wechat, aliyun = fakes
    _people(factory, settings)
    _launch(factory)
    senders = dispatch_parts(settings, factory)[0]
    now = [utcnow()]
    dying = Dispatcher(factory, senders, DispatchConfig(rates={}, windows={}, lease=timedelta(seconds=30)),
                       clock=lambda: now[0], worker_id="dying")
    rows, _ = dying._claim(["wechat", "sms"], now[0])
    first = rows[0]  # 甲 on WeChat reached the provider; then the worker was killed
    senders["wechat"].send(OutboundDelivery(first.id, first.campaign_id, first.labourer_id, "wechat", first.wechat_openid,
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
    senders = dispatch_parts(settings, factory)[0]
    kill(senders)
    now = [utcnow()]
    config = DispatchConfig(rates={}, windows={}, lease=timedelta(seconds=30))
    with pytest.raises(SystemExit):
        Dispatcher(factory, senders, config, clock=lambda: now[0], worker_id="killed").run_once()
    with session_scope(factory) as s:
        assert s.scalars(select(Delivery.status)).all().count("sending") > 0  # the kill left rows in flight
    now[0] += timedelta(minutes=1)
    restarted = Dispatcher(factory, dispatch_parts(settings, factory)[0], config, clock=lambda: now[0], worker_id="restarted")
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
                                     sms_template_id="T1", sms_report_wait_seconds=0)  # no wait for a report


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


def _report(number: str, biz_id: str, success: bool, out_id: str = "") -> dict:
    return {"phone_number": number, "send_time": "2026-11-26 10:00:00", "report_time": "2026-11-26 10:00:05",
            "success": success, "err_code": "DELIVERED" if success else "MK:0001", "err_msg": "", "sms_size": "1",
            "biz_id": biz_id, "out_id": out_id}


def _push(client, reports: list[dict]) -> None:
    response = client.post(f"/sms/inbound?token={CALLBACK_TOKEN}", json=reports)
    assert response.status_code == 200 and response.json()["code"] == 0


def _sms_states(factory) -> dict[str, tuple[str, str]]:
    """key → (the delivery's outcome as the report shows it, its outbox row's status)"""
    with session_scope(factory) as s:
        return {key: (shown, row) for key, shown, row in s.execute(
            select(Delivery.idempotency_key, DeliveryOutcome.status, OutboundMessage.status)
            .select_from(DeliveryOutcome.JOINED))}


def test_receipts_are_matched_by_the_providers_own_id_only(settings, factory, fakes, client) -> None:
    """A forged Aliyun report — an unknown biz_id with our guessable out_id, or the real biz_id with another
    number — changes nothing; the provider's report with its own BizId marks the delivery."""
    _wechat, aliyun = fakes
    _sms_people(factory, settings, 3)
    _launch(factory)
    Dispatcher(factory, dispatch_parts(settings, factory)[0], DispatchConfig(rates={}, windows={})).run(until_idle=True)
    before = _sms_states(factory)
    assert set(before.values()) == {("sent", "sent")}
    sent = aliyun.sent  # what the gateway took: number, OutId (our key); BizIds from its listing
    biz = {d["PhoneNum"]: d["_biz_id"] for d in aliyun.details}
    victim, other = sent[0], sent[1]

    _push(client, [_report(victim["PhoneNumbers"], "123456^0", False, out_id=victim["OutId"]),
                   _report(other["PhoneNumbers"], biz[victim["PhoneNumbers"]], False)])
    assert _sms_states(factory) == before

    _push(client, [_report(victim["PhoneNumbers"], biz[victim["PhoneNumbers"]], False)])
    after = _sms_states(factory)
    assert after[victim["OutId"]] == ("failed", "failed")
    assert {k: v for k, v in after.items() if k != victim["OutId"]} == {k: v for k, v in before.items() if k != victim["OutId"]}


def test_a_delivery_settled_after_a_crash_keeps_sent_when_a_report_names_only_its_key(settings, factory, fakes,
                                                                                      client) -> None:
    """QuerySendDetails lists no BizId, so such a delivery never learns the provider's id: a report that matches
    it only by OutId (our key — anyone can make one) is not trusted, and the delivery stays "sent"."""
    _wechat, aliyun = fakes
    _sms_people(factory, settings, 5)
    _launch(factory)
    _crash_then_restart(settings, factory, _kill_sms(3, "after_accept"))
    with session_scope(factory) as s:
        settled = {m.idempotency_key for m in s.scalars(select(OutboundMessage)) if m.provider_message_id is None}
    assert settled  # the accepted-then-killed send was settled without a provider id
    _push(client, [_report(p["PhoneNumbers"], f"biz-late-{i}", False, out_id=p["OutId"])
                   for i, p in enumerate(aliyun.sent) if p["OutId"] in settled])
    states = _sms_states(factory)
    assert {states[k] for k in settled} == {("sent", "sent")}


# ---- temporary WeChat failures: the retry reuses the delivery's outbox row ---------------------------


def _advance_through_retries(factory, senders, clock, config: DispatchConfig) -> Dispatcher:
    """One worker, run until idle again and again while the clock jumps past each retry wait."""
    dispatcher = Dispatcher(factory, senders, config, clock=lambda: clock[0])
    for _ in range(len(config.retry_delays) + 2):
        dispatcher.run(until_idle=True)
        clock[0] += max(config.retry_delays) + timedelta(seconds=1)
    return dispatcher


def test_a_wechat_quota_error_is_retried_and_arrives_once(settings, factory, fakes) -> None:
    wechat, aliyun = fakes
    ids = _people(factory, settings)
    _launch(factory)
    wechat.fail_for("o-in", 45009)  # the first try: the account's daily quota
    clock = [utcnow()]
    config = DispatchConfig(rates={}, windows={})
    _advance_through_retries(factory, dispatch_parts(settings, factory)[0], clock, config)

    row = _rows(factory)[ids["甲"]]
    assert (row.status, row.channel, row.attempts) == ("sent", "wechat", 2)
    assert Counter(m["touser"] for m in wechat.sent)["o-in"] == 1
    assert "13980000001" not in _numbers(aliyun)
    with session_scope(factory) as s:  # one outbox row for the delivery's key, reused by the retry
        outbox = s.scalars(select(OutboundMessage).where(OutboundMessage.idempotency_key == row.idempotency_key)).all()
    assert [(m.status, m.kind, m.segments) for m in outbox] == [("sent", "customer_service", 1)]


def test_wechat_failing_every_try_falls_back_to_sms(settings, factory, fakes) -> None:
    """45009 on every try: the WeChat tries run out, and a labourer with a number gets the SMS instead."""
    wechat, aliyun = fakes
    ids = _people(factory, settings)
    _launch(factory)
    wechat.fail_for("o-in", 45009, 45009, 45009)
    clock = [utcnow()]
    _advance_through_retries(factory, dispatch_parts(settings, factory)[0], clock, DispatchConfig(rates={}, windows={}))

    row = _rows(factory)[ids["甲"]]
    assert (row.status, row.channel, row.failure_reason) == ("sent", "sms", "fallback_from_wechat")
    assert "o-in" not in [m["touser"] for m in wechat.sent]
    assert Counter(_numbers(aliyun))["13980000001"] == 1


# ---- a provider that accepts and answers after the client's timeout ----------------------------------

# Retries at once, so that a timeout recorded as a failure would show up as a second message here.
IMPATIENT = DispatchConfig(rates={}, windows={}, retry_delays=(timedelta(0), timedelta(0)),
                           unknown_recheck=timedelta(seconds=0.3))


def test_aliyun_timeout_after_accepting_is_settled_by_query_send_details(make_settings, fakes) -> None:
    wechat, aliyun = fakes
    settings = make_settings(sms_provider="aliyun", sms_api_base=aliyun.base, sms_access_key_id="LTAI-test",
                             sms_access_key_secret="aliyun-secret", sms_template_id="SMS_1", sms_timeout_seconds=0.3)
    factory = make_sessionmaker(make_engine(settings.database_url))
    numbers = _sms_people(factory, settings, 3)
    _launch(factory)
    aliyun.stall_next("SendSms", 1.0, times=2)  # the first two are accepted, answered too late
    dispatcher = Dispatcher(factory, dispatch_parts(settings, factory)[0], IMPATIENT)
    dispatcher.run(until_idle=True)

    assert Counter(_numbers(aliyun)) == dict.fromkeys(numbers, 1)  # none twice, none lost
    assert Counter(d.status for d in _rows(factory).values()) == {"sent": 3}
    assert dispatcher.totals.unknown == 2 and dispatcher.totals.reconciled == 2
    assert [_params(r)["Action"] for r in aliyun.requests].count("QuerySendDetails") >= 2
    with session_scope(factory) as s:
        assert {m.status for m in s.scalars(select(OutboundMessage))} == {"sent"}


def test_tencent_timeout_after_accepting_is_settled_by_the_status_pull(tencent_settings) -> None:
    tencent, settings = tencent_settings
    settings = settings.model_copy(update={"sms_timeout_seconds": 0.3})
    factory = make_sessionmaker(make_engine(settings.database_url))
    numbers = _sms_people(factory, settings, 3)
    _launch(factory)
    tencent.stall_next("SendSms", 1.0)
    dispatcher = Dispatcher(factory, dispatch_parts(settings, factory)[0], IMPATIENT)
    dispatcher.run(until_idle=True)

    sent_to = Counter(n.removeprefix("+86") for body in tencent.sent for n in body["PhoneNumberSet"])
    assert sent_to == dict.fromkeys(numbers, 1)
    assert Counter(d.status for d in _rows(factory).values()) == {"sent": 3}
    pulls = [r for r in tencent.requests if r.headers.get("x-tc-action") == "PullSmsSendStatusByPhoneNumber"]
    assert len(pulls) >= 1


def test_wechat_timeout_after_accepting_is_neither_resent_nor_sent_by_sms(make_settings, fakes) -> None:
    """WeChat cannot be asked about a customer-service message: the README's policy — it is not sent again,
    not as a template and not by SMS, and the delivery says outcome_unknown."""
    wechat, aliyun = fakes
    settings = make_settings(wechat_appid=APPID, wechat_secret=SECRET, wechat_api_base=wechat.base,
                             wechat_api_timeout_seconds=0.3, wechat_template_id="TPL-1",
                             sms_provider="aliyun", sms_api_base=aliyun.base, sms_access_key_id="LTAI-test",
                             sms_access_key_secret="aliyun-secret", sms_template_id="SMS_1")
    factory = make_sessionmaker(make_engine(settings.database_url))
    ids = _people(factory, settings)
    _launch(factory)
    wechat.stall_next("message/custom/send", 1.0)  # the first WeChat message (甲's) is accepted, answered late
    Dispatcher(factory, dispatch_parts(settings, factory)[0], IMPATIENT).run(until_idle=True)

    row = _rows(factory)[ids["甲"]]
    assert (row.status, row.channel, row.failure_reason) == ("failed", "wechat", "outcome_unknown")
    assert Counter(m["touser"] for m in wechat.sent)["o-in"] == 1
    assert [t["touser"] for t in wechat.templates].count("o-in") == 0
    assert "13980000001" not in _numbers(aliyun)
