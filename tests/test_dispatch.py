"""The dispatcher with an injected clock and recording senders: allowed hours, the weekly cap, retries,
WeChat → SMS fallback, pacing, crash reconciliation, receipts."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from sqlalchemy import select, update

from bot.channels.base import SendResult
from bot.channels.outbound import record_receipt
from bot.db import make_engine, make_sessionmaker, session_scope
from bot.models import Campaign, CampaignStep, Delivery, Labourer, OutboundMessage
from scheduler.campaigns import settle_campaigns, transition
from scheduler.dispatch import (
    DispatchConfig,
    Dispatcher,
    RateLimiter,
    parse_hours,
)
from scheduler.report import report, report_csv
from scheduler.planning import fire_step
from tests.doubles import RecordingSender
from tests.synthetic import insert_labourers, make_campaign

# 2026-03-02 10:00 in Bazhong (UTC+8)
MORNING = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def factory(db_url: str):
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def senders() -> dict[str, RecordingSender]:
    return {"wechat": RecordingSender("wechat"), "sms": RecordingSender("sms")}


def config(**overrides) -> DispatchConfig:
    values = {
        "rates": {"wechat": 0, "sms": 0},
        "windows": {"sms": parse_hours("08:00-20:00"), "wechat": parse_hours("08:00-21:00")},
        "retry_delays": (timedelta(minutes=5), timedelta(minutes=10)),
        "weekly_cap": 3,
    }
    values.update(overrides)
    return DispatchConfig(**values)


def launch(factory, clock: Clock, **kwargs) -> int:
    """A scheduled campaign whose initial step has fired; returns its id."""
    with session_scope(factory) as s:
        campaign = make_campaign(s, **kwargs)
        transition(s, campaign, "scheduled", now=clock())
        step_id = s.scalars(select(CampaignStep.id).where(CampaignStep.campaign_id == campaign.id)).one()
        fire_step(s, step_id, now=clock())
        return campaign.id


def statuses(factory, campaign_id: int) -> Counter:
    with session_scope(factory) as s:
        return Counter(s.scalars(select(Delivery.status).where(Delivery.campaign_id == campaign_id)))


def drain(dispatcher: Dispatcher) -> None:
    while dispatcher.run_once().claimed:
        pass


def test_sends_each_delivery_once_with_its_text(factory, senders) -> None:
    clock = Clock(MORNING)
    with session_scope(factory) as s:
        insert_labourers(s, 5)
        insert_labourers(s, 2, start=100, openid=None)  # SMS only
    campaign_id = launch(factory, clock, template="{姓名}您好，{活动}", sms_template="短信：{活动}")
    dispatcher = Dispatcher(factory, senders, config(batch_size=3), clock=clock)
    drain(dispatcher)
    assert statuses(factory, campaign_id) == {"sent": 7}
    assert len(senders["wechat"].sent) == 5 and len(senders["sms"].sent) == 2
    delivery, text = senders["wechat"].sent[0]
    assert text.startswith(delivery.name + "您好") and delivery.address.startswith("o-")
    sms_delivery, sms_text = senders["sms"].sent[0]
    assert sms_text.startswith("短信：") and sms_delivery.address == "13900000100"
    with session_scope(factory) as s:
        rows = s.scalars(select(Delivery)).all()
        assert all(r.sent_at == clock.now and r.provider_message_id and r.attempts == 1 for r in rows)
        settle_campaigns(s, now=clock())
        assert s.get(Campaign, campaign_id).state == "done"


def test_sms_outside_allowed_hours_waits_for_the_window(factory, senders) -> None:
    clock = Clock(datetime(2026, 3, 2, 13, 0, tzinfo=UTC))  # 21:00 local: SMS closed, WeChat closed at 21:00
    with session_scope(factory) as s:
        insert_labourers(s, 3, openid=None)
    campaign_id = launch(factory, clock)
    dispatcher = Dispatcher(factory, senders, config(), clock=clock)
    assert dispatcher.run_once().claimed == 0
    clock.advance(hours=10, minutes=59)  # 07:59 next morning
    assert dispatcher.run_once().claimed == 0
    assert statuses(factory, campaign_id) == {"queued": 3}
    clock.advance(minutes=1)  # 08:00
    drain(dispatcher)
    assert statuses(factory, campaign_id) == {"sent": 3}
    with session_scope(factory) as s:
        assert {r.sent_at for r in s.scalars(select(Delivery))} == {clock.now}


def test_wechat_window_differs_from_sms(factory, senders) -> None:
    clock = Clock(datetime(2026, 3, 2, 12, 30, tzinfo=UTC))  # 20:30 local: WeChat open, SMS closed
    with session_scope(factory) as s:
        insert_labourers(s, 2)
        insert_labourers(s, 2, start=50, openid=None)
    campaign_id = launch(factory, clock)
    drain(Dispatcher(factory, senders, config(), clock=clock))
    assert statuses(factory, campaign_id) == {"sent": 2, "queued": 2}
    assert len(senders["wechat"].sent) == 2 and not senders["sms"].sent


def test_weekly_cap(factory, senders) -> None:
    clock = Clock(MORNING)
    with session_scope(factory) as s:
        insert_labourers(s, 2)
    dispatcher = Dispatcher(factory, senders, config(weekly_cap=3), clock=clock)
    campaigns = []
    for _ in range(4):
        campaigns.append(launch(factory, clock))
        drain(dispatcher)
        clock.advance(days=1)
    assert [statuses(factory, c) for c in campaigns] == [{"sent": 2}] * 3 + [{"skipped": 2}]
    with session_scope(factory) as s:
        reasons = set(s.scalars(select(Delivery.failure_reason).where(Delivery.campaign_id == campaigns[3])))
    assert reasons == {"frequency_cap"}
    clock.advance(days=3, hours=1)  # the first broadcast is now more than 7 days old
    fifth = launch(factory, clock)
    drain(dispatcher)
    assert statuses(factory, fifth) == {"sent": 2}


def test_two_campaigns_in_one_batch_respect_the_cap(factory, senders) -> None:
    clock = Clock(MORNING)
    with session_scope(factory) as s:
        insert_labourers(s, 1)
    first, second = launch(factory, clock), launch(factory, clock)
    drain(Dispatcher(factory, senders, config(weekly_cap=1), clock=clock))
    assert statuses(factory, first) == {"sent": 1} and statuses(factory, second) == {"skipped": 1}


def test_retry_then_fail(factory, senders) -> None:
    clock = Clock(MORNING)
    with session_scope(factory) as s:
        insert_labourers(s, 2, openid=None)
        first = s.scalars(select(Labourer.id).order_by(Labourer.id)).first()
    busy = SendResult(ok=False, error_code="isv.BUSINESS_LIMIT_CONTROL", error="busy", retryable=True)
    senders["sms"].fail[first] = [busy, busy, busy]
    campaign_id = launch(factory, clock)
    dispatcher = Dispatcher(factory, senders, config(), clock=clock)
    drain(dispatcher)
    assert statuses(factory, campaign_id) == {"sent": 1, "queued": 1}
    with session_scope(factory) as s:
        row = s.scalars(select(Delivery).where(Delivery.labourer_id == first)).one()
        assert (row.attempts, row.next_attempt_at) == (1, clock.now + timedelta(minutes=5))
    clock.advance(minutes=4)
    assert dispatcher.run_once().claimed == 0
    clock.advance(minutes=1)
    assert dispatcher.run_once().retried == 1
    clock.advance(minutes=10)
    stats = dispatcher.run_once()
    assert stats.failed == 1
    with session_scope(factory) as s:
        row = s.scalars(select(Delivery).where(Delivery.labourer_id == first)).one()
        assert (row.status, row.attempts, row.failure_reason, row.error_code) == (
            "failed", 3, "retries_exhausted", "isv.BUSINESS_LIMIT_CONTROL")
        assert row.failed_at == clock.now
    assert senders["sms"].calls == 4  # 1 success + 3 tries


def test_retry_then_succeed(factory, senders) -> None:
    clock = Clock(MORNING)
    with session_scope(factory) as s:
        insert_labourers(s, 1, openid=None)
    senders["sms"].fail[1] = [SendResult(ok=False, error_code="-1", retryable=True)]
    campaign_id = launch(factory, clock)
    dispatcher = Dispatcher(factory, senders, config(), clock=clock)
    dispatcher.run_once()
    clock.advance(minutes=5)
    dispatcher.run_once()
    assert statuses(factory, campaign_id) == {"sent": 1}


def test_wechat_refusal_falls_back_to_sms(factory, senders) -> None:
    clock = Clock(MORNING)
    with session_scope(factory) as s:
        insert_labourers(s, 3)
        insert_labourers(s, 1, start=10, phone=None)  # WeChat only: nothing to fall back to
        ids = list(s.scalars(select(Labourer.id).order_by(Labourer.id)))
    window_closed = SendResult(ok=False, error_code="45015", error="response out of time limit")
    senders["wechat"].fail[ids[0]] = [window_closed]
    senders["wechat"].fail[ids[3]] = [window_closed]
    campaign_id = launch(factory, clock)
    dispatcher = Dispatcher(factory, senders, config(), clock=clock)
    drain(dispatcher)
    with session_scope(factory) as s:
        rows = {r.labourer_id: r for r in s.scalars(select(Delivery).where(Delivery.campaign_id == campaign_id))}
    assert (rows[ids[0]].status, rows[ids[0]].channel, rows[ids[0]].error_code) == ("sent", "sms", "45015")
    assert (rows[ids[1]].status, rows[ids[1]].channel) == ("sent", "wechat")
    assert (rows[ids[3]].status, rows[ids[3]].failure_reason) == ("failed", "refused")
    assert [d.labourer_id for d, _ in senders["sms"].sent] == [ids[0]]
    assert dispatcher.totals.fallback == 1


def test_fallback_at_night_waits_for_sms_hours(factory, senders) -> None:
    clock = Clock(datetime(2026, 3, 2, 12, 30, tzinfo=UTC))  # 20:30: WeChat open, SMS closed
    with session_scope(factory) as s:
        insert_labourers(s, 1)
    senders["wechat"].fail[1] = [SendResult(ok=False, error_code="43004", error="require subscribe")]
    campaign_id = launch(factory, clock)
    dispatcher = Dispatcher(factory, senders, config(), clock=clock)
    drain(dispatcher)
    assert statuses(factory, campaign_id) == {"queued": 1}
    clock.advance(hours=12)  # 08:30
    drain(dispatcher)
    assert statuses(factory, campaign_id) == {"sent": 1} and len(senders["sms"].sent) == 1


def test_paused_campaign_is_not_sent_until_resumed(factory, senders) -> None:
    clock = Clock(MORNING)
    with session_scope(factory) as s:
        insert_labourers(s, 4)
    campaign_id = launch(factory, clock)
    with session_scope(factory) as s:
        transition(s, s.get(Campaign, campaign_id), "paused", now=clock())
    dispatcher = Dispatcher(factory, senders, config(), clock=clock)
    assert dispatcher.run_once().claimed == 0
    with session_scope(factory) as s:
        campaign = transition(s, s.get(Campaign, campaign_id), "resume", now=clock())
        assert campaign.state == "sending"
    drain(dispatcher)
    assert statuses(factory, campaign_id) == {"sent": 4}


def test_cancel_skips_what_is_still_queued(factory, senders) -> None:
    clock = Clock(MORNING)
    with session_scope(factory) as s:
        insert_labourers(s, 5)
    campaign_id = launch(factory, clock)
    dispatcher = Dispatcher(factory, senders, config(batch_size=2), clock=clock)
    dispatcher.run_once()
    with session_scope(factory) as s:
        transition(s, s.get(Campaign, campaign_id), "cancelled", now=clock())
    drain(dispatcher)
    assert statuses(factory, campaign_id) == {"sent": 2, "skipped": 3}


def test_unsubscribed_after_planning_is_not_sent(factory, senders) -> None:
    clock = Clock(MORNING)
    with session_scope(factory) as s:
        insert_labourers(s, 2, openid=None)
    campaign_id = launch(factory, clock)
    with session_scope(factory) as s:
        s.execute(update(Labourer).where(Labourer.id == 1).values(subscribed_sms=False))
    drain(Dispatcher(factory, senders, config(), clock=clock))
    with session_scope(factory) as s:
        row = s.scalars(select(Delivery).where(Delivery.labourer_id == 1)).one()
    assert (row.status, row.failure_reason) == ("failed", "unsubscribed")
    assert statuses(factory, campaign_id) == {"sent": 1, "failed": 1}


def test_crash_between_claim_and_record_is_reconciled(factory, senders) -> None:
    """A worker dies after the provider accepted some messages of its batch: the provider's record of the
    idempotency key settles each row; nothing is sent twice and nothing is lost."""
    clock = Clock(MORNING)
    with session_scope(factory) as s:
        insert_labourers(s, 6)
    campaign_id = launch(factory, clock)
    dying = Dispatcher(factory, senders, config(batch_size=6, lease=timedelta(minutes=2)), clock=clock,
                       worker_id="dying")
    rows, _ = dying._claim(["wechat", "sms"], clock())  # claimed and committed as "sending" …
    from scheduler.senders import OutboundDelivery

    for row in rows[:4]:  # … four reached the provider, then the process was killed
        senders["wechat"].send(OutboundDelivery(row.id, row.campaign_id, row.labourer_id, "wechat", row.wechat_openid,
                                                row.key), "x")
    assert statuses(factory, campaign_id) == {"sending": 6}
    survivor = Dispatcher(factory, senders, config(), clock=clock, worker_id="survivor")
    assert survivor.run_once().reconciled == 0  # lease not yet expired: the row may still be in flight
    clock.advance(minutes=3)
    drain(survivor)
    assert statuses(factory, campaign_id) == {"sent": 6}
    assert len(senders["wechat"].sent) == 6
    assert len({d.idempotency_key for d, _ in senders["wechat"].sent}) == 6


def test_unknown_outcome_is_never_sent_twice(factory) -> None:
    class Blind:  # no lookup, no deduplication: we cannot know whether it went out
        channel = "wechat"

        def send(self, delivery, text):
            return SendResult(ok=True, provider_message_id="x")

    clock = Clock(MORNING)
    with session_scope(factory) as s:
        insert_labourers(s, 1)
    campaign_id = launch(factory, clock)
    dying = Dispatcher(factory, {"wechat": Blind()}, config(lease=timedelta(minutes=1)), clock=clock)
    dying._claim(["wechat"], clock())
    clock.advance(minutes=2)
    Dispatcher(factory, {"wechat": Blind()}, config(), clock=clock).run_once()
    with session_scope(factory) as s:
        row = s.scalars(select(Delivery).where(Delivery.campaign_id == campaign_id)).one()
    assert (row.status, row.failure_reason) == ("failed", "outcome_unknown")


def carried_by_outbox(session, deliveries: list[Delivery]) -> list[int]:  # noqa: ANN001
    """What a channel's outbox would hold for these (loopback-sent) deliveries: an Aliyun row each, BizId
    "biz-<delivery id>", the delivery pointing at it. Returns the deliveries' ids."""
    for delivery in deliveries:
        row = OutboundMessage(channel="sms", kind="sms", user_id=f"h{delivery.id}", provider="aliyun",
                              provider_message_id=f"biz-{delivery.id}", status="sent",
                              idempotency_key=delivery.idempotency_key)
        session.add(row)
        session.flush()
        delivery.outbound_message_id = row.id
    session.flush()
    return [d.id for d in deliveries]


def test_receipts_settle_the_outbox_row_and_the_report_reads_them_through_the_pointer(factory, senders) -> None:
    clock = Clock(MORNING)
    with session_scope(factory) as s:
        insert_labourers(s, 3, openid=None)
    campaign_id = launch(factory, clock)
    drain(Dispatcher(factory, senders, config(), clock=clock))
    with session_scope(factory) as s:
        rows = carried_by_outbox(s, list(s.scalars(select(Delivery).order_by(Delivery.id).limit(2))))
    with session_scope(factory) as s:
        receipt = partial(record_receipt, s, provider="aliyun")
        assert receipt(provider_message_id=f"biz-{rows[0]}", delivered=True) == 1
        assert receipt(provider_message_id=f"biz-{rows[1]}", delivered=False, error_code="MOBILE_NOT_ON_SERVICE") == 1
        assert receipt(provider_message_id=f"biz-{rows[0]}", delivered=False) == 0  # a late duplicate changes nothing
        assert receipt(provider_message_id="biz-nobody", delivered=False) == 0
    assert statuses(factory, campaign_id) == {"sent": 3}  # the deliveries' own state: the provider took each
    with session_scope(factory) as s:
        figures = report(s, s.get(Campaign, campaign_id))
        lines = list(csv.DictReader("".join(report_csv(s, s.get(Campaign, campaign_id), tz="UTC")).lstrip("\ufeff")
                                    .splitlines()))
    assert figures["by_status"] == {"sent": 1, "delivered": 1, "failed": 1}
    assert figures["failures_by_reason"] == {"undelivered": 1}
    by_id = {int(line["delivery_id"]): line for line in lines}
    assert by_id[rows[0]]["status"] == "delivered" and by_id[rows[0]]["delivered_at"]
    assert (by_id[rows[1]]["status"], by_id[rows[1]]["error_code"]) == ("failed", "MOBILE_NOT_ON_SERVICE")
    assert by_id[rows[1]]["failed_at"] and not by_id[rows[1]]["delivered_at"]
    [third] = set(by_id) - set(rows)  # a sender with no outbox: sent, and nothing a receipt could reach
    assert (by_id[third]["status"], by_id[third]["delivered_at"]) == ("sent", "")


def test_an_undelivered_broadcast_takes_no_weekly_slot(factory, senders) -> None:
    """The weekly cap counts what reached the person: a broadcast the provider reported undelivered (on its
    outbox row) leaves the slot free, one it reported delivered takes it."""
    clock = Clock(MORNING)
    with session_scope(factory) as s:
        insert_labourers(s, 2, openid=None)
    for n in range(3):
        launch(factory, clock, name=f"通知{n}")
        drain(Dispatcher(factory, senders, config(), clock=clock))
        clock.advance(hours=1)
    with session_scope(factory) as s:  # the first person's first broadcast was undelivered, the second's delivered
        first = list(s.scalars(select(Delivery).order_by(Delivery.id).limit(2)))
        carried_by_outbox(s, first)
        for delivery, ok in zip(first, (False, True)):
            record_receipt(s, provider="aliyun", provider_message_id=f"biz-{delivery.id}", delivered=ok)
        people = {d.id: d.labourer_id for d in first}
    fourth = launch(factory, clock, name="通知3")
    drain(Dispatcher(factory, senders, config(), clock=clock))
    with session_scope(factory) as s:
        outcome = {d.labourer_id: (d.status, d.failure_reason)
                   for d in s.scalars(select(Delivery).where(Delivery.campaign_id == fourth))}
    undelivered, delivered = (people[d.id] for d in first)
    assert outcome == {undelivered: ("sent", None), delivered: ("skipped", "frequency_cap")}


def test_rate_limiter_paces_without_bursts(factory) -> None:
    now = [1_000_000.0]
    limiter = RateLimiter(factory, "sms", 50, clock=lambda: now[0],
                          sleep=lambda s: now.__setitem__(0, now[0] + s * 1.01))
    for _ in range(500):
        limiter.acquire(500)
    # 500 sends at 50/s take ~10 s (the first goes at once); oversleeping 1 % does not accumulate.
    assert 9.9 <= now[0] - 1_000_000 <= 10.1


def test_rate_limiter_is_shared_by_every_worker(factory) -> None:
    """Two workers (two limiters, nothing shared in memory) each asking for slots as fast as they can:
    their sends together keep to the channel's rate, because the slots come from one database row."""
    now = [1_000_000.0]
    sends: list[tuple[str, float]] = []
    limiters = {w: RateLimiter(factory, "sms", 50, clock=lambda: now[0], sleep=lambda s: None) for w in "ab"}
    for _ in range(250):
        for worker, limiter in limiters.items():
            limiter.acquire(250)
            sends.append((worker, now[0]))
        now[0] += 0.001
    # Distinct slots on one 20 ms grid: the 500 sends of both workers span 10 s.
    with session_scope(factory) as s:
        from bot.models.campaigns import SendRate

        assert 9.9 <= s.get(SendRate, "sms").next_slot - 1_000_000 <= 10.1
    assert Counter(w for w, _ in sends) == {"a": 250, "b": 250}
    assert RateLimiter(factory, "wechat", 0).chunk == 0  # unlimited: no database round trip at all


def test_the_planner_and_the_senders_agree_on_who_is_reachable(factory) -> None:
    """Planning chooses a delivery's channel in SQL (scheduler.audience.reachable), the senders in Python
    (bot.channels.policy.reachable): for every mix of addresses and opt-outs they name the same channel."""
    from itertools import product

    from bot import pii
    from bot.channels.policy import reachable

    clock = Clock(MORNING)
    key = "k" * 32
    with session_scope(factory) as s:
        for n, (openid, phone, on_wechat, on_sms) in enumerate(product((None, "o"), (None, "1398765"), (True, False),
                                                                      (True, False))):
            protected = pii.protect_phone(f"{phone}{n:04d}", key) if phone else None
            s.add(Labourer(name=f"工友{n}", wechat_openid=f"{openid}-{n}" if openid else None,
                           phone_enc=protected.encrypted if protected else None,
                           phone_hash=protected.lookup_hash if protected else None,
                           subscribed_wechat=on_wechat, subscribed_sms=on_sms))
    for order in (["wechat", "sms"], ["sms", "wechat"], ["sms"]):
        campaign_id = launch(factory, clock, channels=order)
        with session_scope(factory) as s:
            planned = {d.labourer_id: d.channel for d in s.scalars(
                select(Delivery).where(Delivery.campaign_id == campaign_id, Delivery.status == "queued"))}
            expected = {}
            for labourer in s.scalars(select(Labourer)):
                found = reachable(labourer, key, order=order)
                if found:
                    expected[labourer.id] = found[0].channel
        assert planned == expected, order
        assert len(set(expected.values())) == len(order)  # the mix reaches every channel of the order
