"""Failover with real processes on PostgreSQL, sending through the real SMS path to a loopback Aliyun:
- kill -9 of the scheduler leader while a broadcast's steps are falling due: the standby leads within the
  stated bound, every step fires exactly once (none twice, none skipped), every message goes out once;
- dispatch workers added and removed (SIGTERM, and kill -9) while a paced broadcast is going out: every
  delivery sent exactly once, the fleet's rate held, the dead worker's claimed rows taken over after its lease.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from bot.db import make_engine, make_sessionmaker, session_scope
from bot.models import CampaignStep, Delivery, utcnow
from scheduler.campaigns import transition
from scheduler.planning import fire_step
from tests.synthetic import insert_labourers, make_campaign
from tests.fakes.sms_gateways import FakeAliyunSms
from tests.roles import Fleet, Role, free_port, wait_for

pytestmark = pytest.mark.postgres

# scheduler/jobs.py: a standby tries the lock every STANDBY_SECONDS; PostgreSQL frees a dead session's lock as
# soon as its connection drops (a killed process's socket is closed by the kernel). The new leader syncs at once.
STANDBY_SECONDS = 5.0
TAKEOVER_BOUND = STANDBY_SECONDS + 3.0  # + process scheduling and the first sync on a shared 2-core machine


@pytest.fixture
def gateway() -> Iterator[FakeAliyunSms]:
    with FakeAliyunSms() as fake:
        yield fake


@pytest.fixture
def fleet(tmp_path: Path, pg_url: str, gateway: FakeAliyunSms) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path, {
        "GONGYOU_DATABASE_URL": pg_url, "GONGYOU_CACHE_DIR": str(tmp_path / "cache"),
        "GONGYOU_SMS_PROVIDER": "aliyun", "GONGYOU_SMS_API_BASE": gateway.base,
        "GONGYOU_SMS_ACCESS_KEY_ID": gateway.key_id, "GONGYOU_SMS_ACCESS_KEY_SECRET": gateway.secret,
        "GONGYOU_SMS_TEMPLATE_ID": "SMS_000001", "GONGYOU_SMS_MIN_INTERVAL_SECONDS": "0",
        "GONGYOU_SMS_MAX_PER_DAY": "100000", "GONGYOU_BROADCAST_WEEKLY_CAP": "0",
        "GONGYOU_SMS_SEND_HOURS": "00:00-24:00", "GONGYOU_KNOWLEDGE_POLL_SECONDS": "0",
    })
    yield fleet
    fleet.stop_all()


def figures(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


def metrics_port(role: Role) -> int:
    return int(role.proc.args[role.proc.args.index("--metrics-port") + 1])


def is_leader(role: Role) -> bool:
    try:
        return role.alive() and figures(metrics_port(role)).get("gongyou_scheduler_is_leader") == 1
    except httpx.HTTPError:
        return False


def fired_lines(roles: list[Role]) -> Counter[int]:
    counts: Counter[int] = Counter()
    for role in roles:
        for line in role.output().splitlines():
            if '"campaign step fired"' in line:
                counts[json.loads(line)["step_id"]] += 1
    return counts


def sent_keys(gateway: FakeAliyunSms) -> Counter[str]:
    with gateway.lock:
        return Counter(p.get("OutId", "") for p in gateway.sent)


def test_kill_9_of_the_scheduler_leader_mid_broadcast(fleet, pg_url, gateway):
    engine = make_engine(pg_url)
    factory = make_sessionmaker(engine)
    people, steps_wanted = 30, 8
    start = utcnow() + timedelta(seconds=12)  # time for both schedulers to start and the leader to sync
    with session_scope(factory) as s:
        insert_labourers(s, people, openid=None)  # reachable by SMS only
        for i in range(steps_wanted):  # one broadcast in eight parts, 2 s apart
            campaign = make_campaign(s, name=f"招聘会通知{i}", channels=["sms"], send_at=start + timedelta(seconds=2 * i))
            transition(s, campaign, "scheduled", now=utcnow())
    schedulers = [fleet.start(f"scheduler-{i}", "scheduler", "--metrics-port", str(free_port())) for i in range(2)]
    for i in range(2):
        fleet.start(f"dispatch-{i}", "dispatch", "--always-open", "--rate", "0", "--idle-sleep", "0.2")
    leader = wait_for(lambda: next((r for r in schedulers if is_leader(r)), None), timeout=60,
                      what="a scheduler leader", roles=schedulers)
    standby = next(r for r in schedulers if r is not leader)
    wait_for(lambda: figures(metrics_port(standby)).get("gongyou_scheduler_is_leader") == 0, timeout=60,
             what="the standby's metrics", roles=[standby])

    def fired() -> int:
        with session_scope(factory) as s:
            return s.scalar(select(func.count()).select_from(CampaignStep).where(CampaignStep.status != "pending"))

    wait_for(lambda: fired() >= 2, timeout=60, what="the first steps to fire", roles=schedulers)
    assert fired() < steps_wanted - 2, "the kill must land while steps are still due"
    leader.kill()  # kill -9, no goodbye
    killed_at = time.monotonic()
    wait_for(lambda: is_leader(standby), timeout=30, what="the standby to lead", roles=[standby])
    takeover = time.monotonic() - killed_at

    wait_for(lambda: fired() == steps_wanted, timeout=60, what="every step", roles=[standby])
    total = people * steps_wanted
    wait_for(lambda: sum(sent_keys(gateway).values()) >= total and _all_sent(factory, total), timeout=90,
             what="every message", roles=[standby])
    time.sleep(1.0)  # anything sent twice would arrive now
    with session_scope(factory) as s:
        statuses = Counter(s.scalars(select(CampaignStep.status)))
        keys = set(s.scalars(select(Delivery.idempotency_key)))
    engine.dispose()
    print(f"\nscheduler failover: standby leading {takeover:.2f} s after kill -9 (bound {TAKEOVER_BOUND:g} s)")
    assert takeover <= TAKEOVER_BOUND
    assert statuses == {"fired": steps_wanted}  # nothing skipped
    assert set(fired_lines(schedulers).values()) == {1} and len(fired_lines(schedulers)) == steps_wanted  # none twice
    sent = sent_keys(gateway)
    assert set(sent) == keys and set(sent.values()) == {1}  # every message once


def _all_sent(factory, total: int) -> bool:  # noqa: ANN001
    with session_scope(factory) as s:
        return s.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "sent")) == total


def test_dispatch_workers_join_and_leave_under_load(fleet, pg_url, gateway):
    engine = make_engine(pg_url)
    factory = make_sessionmaker(engine)
    total, rate = 800, 60.0  # 13 s of sending at the fleet's rate
    with session_scope(factory) as s:
        insert_labourers(s, total, openid=None)
        campaign = make_campaign(s, channels=["sms"])
        transition(s, campaign, "scheduled")
        step_id = s.scalars(select(CampaignStep.id).where(CampaignStep.campaign_id == campaign.id)).one()
        assert fire_step(s, step_id).planned == total

    args = ("dispatch", "--always-open", "--rate", str(rate), "--idle-sleep", "0.2", "--batch-size", "20",
            "--lease-seconds", "3")

    def sent() -> int:
        return sum(sent_keys(gateway).values())

    first = fleet.start("dispatch-1", *args, "--worker-id", "w1")
    wait_for(lambda: sent() >= 100, timeout=60, what="the first worker sending", roles=[first])
    joined = [fleet.start(f"dispatch-{i}", *args, "--worker-id", f"w{i}") for i in (2, 3)]
    wait_for(lambda: _claimed_by(factory) >= {"w1", "w2", "w3"}, timeout=60, what="the new workers claiming",
             roles=[first, *joined])
    began, sent_at_join = time.monotonic(), sent()
    time.sleep(3.0)
    paced = (sent() - sent_at_join) / (time.monotonic() - began)
    assert first.stop() == 0  # SIGTERM: it finishes its batch and leaves
    joined[0].kill()  # kill -9 with a batch claimed: its rows wait out the lease, then others take them
    fleet.start("dispatch-4", *args, "--worker-id", "w4")
    wait_for(lambda: _all_sent(factory, total), timeout=120, what="every delivery", roles=[joined[1]])
    time.sleep(1.0)
    with session_scope(factory) as s:
        keys = set(s.scalars(select(Delivery.idempotency_key)))
        by_worker = Counter(s.scalars(select(Delivery.claimed_by)))
    engine.dispose()
    counts = sent_keys(gateway)
    print(f"\ndispatch scale: {paced:.0f} msg/s with 3 workers (fleet rate {rate:g}/s); by worker {dict(by_worker)}")
    assert set(counts) == keys and set(counts.values()) == {1}  # every delivery once, none twice
    assert paced <= rate * 1.15  # three workers together keep the fleet's rate
    assert by_worker["w4"] > 0  # the late joiner took part


def _claimed_by(factory) -> set[str]:  # noqa: ANN001
    with session_scope(factory) as s:
        return set(s.scalars(select(Delivery.claimed_by).distinct().where(Delivery.claimed_by.is_not(None))))
