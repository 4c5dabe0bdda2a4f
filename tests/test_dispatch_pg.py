"""Two dispatch workers on PostgreSQL claim with FOR UPDATE SKIP LOCKED: every delivery is sent once."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import func, select

from bot.channels.base import SendResult
from bot.db import make_engine, make_sessionmaker, session_scope
from bot.models import CampaignStep, Delivery
from scheduler.campaigns import transition
from scheduler.dispatch import DispatchConfig, Dispatcher
from scheduler.planning import fire_step
from scheduler.senders import OutboundDelivery
from tests.synthetic import insert_labourers, make_campaign

TOTAL = 3000


class CountingSender:
    """Counts every call by idempotency key and deduplicates nothing, so a double claim would show."""

    def __init__(self, channel: str, calls: Counter, lock: threading.Lock) -> None:
        self.channel, self.calls, self.lock = channel, calls, lock

    def send(self, delivery: OutboundDelivery, text: str) -> SendResult:
        with self.lock:
            self.calls[delivery.idempotency_key] += 1
        return SendResult(ok=True, provider_message_id=f"{self.channel}-{delivery.delivery_id}")


@pytest.mark.postgres
def test_two_workers_never_send_the_same_delivery(pg_url: str) -> None:
    engine = make_engine(pg_url)
    factory = make_sessionmaker(engine)
    with session_scope(factory) as s:
        insert_labourers(s, TOTAL // 2)
        insert_labourers(s, TOTAL // 2, start=100_000, openid=None)
        campaign = make_campaign(s)
        transition(s, campaign, "scheduled")
        step_id = s.scalars(select(CampaignStep.id).where(CampaignStep.campaign_id == campaign.id)).one()
        fire_step(s, step_id)

    calls: Counter = Counter()
    lock = threading.Lock()
    config = DispatchConfig(rates={}, windows={}, batch_size=40)
    workers = [
        Dispatcher(factory, {c: CountingSender(c, calls, lock) for c in ("wechat", "sms")}, config, worker_id=f"w{i}")
        for i in range(2)
    ]
    start = threading.Barrier(2)

    def work(dispatcher: Dispatcher) -> None:
        start.wait()
        dispatcher.run(until_idle=True, settle=False)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)

    assert sum(calls.values()) == TOTAL and set(calls.values()) == {1}
    assert all(w.totals.sent > 0 for w in workers), [w.totals for w in workers]
    assert sum(w.totals.sent for w in workers) == TOTAL
    with session_scope(factory) as s:
        assert s.scalar(select(func.count()).where(Delivery.status == "sent")) == TOTAL
        by_worker = dict(s.execute(select(Delivery.claimed_by, func.count()).group_by(Delivery.claimed_by)).all())
    assert set(by_worker) == {"w0", "w1"}
    engine.dispose()
