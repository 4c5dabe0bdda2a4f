"""A database restart in the middle of a broadcast: the dispatcher and the scheduler wait, reconnect and
carry on; rows left "sending" are settled when the database is back. On a PostgreSQL server of the test's
own (tests/private_pg.py), restarted with `pg_ctl -m immediate` (every connection dies, as in a crash)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.db import make_engine, make_sessionmaker, migrate, session_scope
from bot.models import CampaignStep, Delivery
from bot.settings import Settings
from scheduler.campaigns import transition
from scheduler.dispatch import DispatchConfig, Dispatcher
from scheduler.jobs import CampaignScheduler
from scheduler.planning import fire_step
from tests.doubles import jsonl_senders
from tests.synthetic import insert_labourers, make_campaign
from tests import private_pg


@pytest.fixture
def server() -> Iterator[private_pg.PrivatePostgres]:
    reason = private_pg.available()
    if reason:
        pytest.skip(f"needs a private PostgreSQL server: {reason}")
    pg = private_pg.PrivatePostgres().start()
    try:
        yield pg
    finally:
        pg.close()


@pytest.fixture
def factory(server):
    engine = make_engine(server.url)
    migrate(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


def _log(gateway: Path) -> list[dict]:
    rows = []
    for path in gateway.glob("*.jsonl"):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _campaign(factory, count: int, start: int = 0, *, fire: bool = True) -> int:
    with session_scope(factory) as s:
        insert_labourers(s, count, start=start)
        campaign = make_campaign(s)  # to everyone registered
        transition(s, campaign, "scheduled")
        if fire:
            step_id = s.scalars(select(CampaignStep.id).where(CampaignStep.campaign_id == campaign.id)).one()
            fire_step(s, step_id)
        return campaign.id


def _statuses(factory, campaign_id: int | None = None) -> Counter:
    query = select(Delivery.status)
    if campaign_id is not None:
        query = query.where(Delivery.campaign_id == campaign_id)
    with session_scope(factory) as s:
        return Counter(s.scalars(query))


CONFIG = DispatchConfig(rates={"wechat": 120.0, "sms": 120.0}, windows={}, batch_size=20)


def test_dispatcher_carries_on_after_a_database_restart(server, factory, tmp_path) -> None:
    total = 360
    _campaign(factory, total)
    gateway = tmp_path / "gateway"
    dispatcher = Dispatcher(factory, jsonl_senders(gateway, fsync=False), CONFIG, worker_id="survivor")
    stop = threading.Event()
    worker = threading.Thread(target=dispatcher.run, kwargs={"stop": stop, "idle_sleep": 0.1, "max_backoff": 1.0})
    worker.start()
    try:
        _wait(lambda: len(_log(gateway)) >= total // 4, 30, "the first sends")
        server.restart(down_seconds=0.3)
        _wait(lambda: len(_log(gateway)) >= total and _statuses(factory) == {"sent": total}, 60, "the rest")
        assert worker.is_alive()
    finally:
        stop.set()
        worker.join(30)
    per_delivery = Counter(row["delivery_id"] for row in _log(gateway))
    assert len(per_delivery) == total and set(per_delivery.values()) == {1}  # none lost, none twice


def test_scheduler_with_its_dispatcher_carries_on_after_a_database_restart(server, factory, tmp_path) -> None:
    engine = factory.kw["bind"]
    settings = Settings(database_url=server.url, demo_data=False, log_json=False)
    gateway = tmp_path / "gateway"
    scheduler = CampaignScheduler(
        settings, engine, factory, sync_seconds=0.3, standby_seconds=0.3,
        dispatcher_factory=lambda: Dispatcher(factory, jsonl_senders(gateway, fsync=False), CONFIG))
    first = 240
    _campaign(factory, first, fire=False)  # the scheduler fires it
    scheduler.start(with_dispatcher=True)
    try:
        _wait(lambda: len(_log(gateway)) >= first // 4, 30, "the first sends")
        server.restart(down_seconds=0.3)
        _wait(lambda: _statuses(factory) == {"sent": first}, 60, "the first campaign")
        # A campaign scheduled after the restart: the leader took its lock back and fires it.
        second = _campaign(factory, 40, start=50_000, fire=False)  # to the 240 and 40 more
        _wait(lambda: _statuses(factory, second) == {"sent": first + 40}, 60, "the campaign scheduled after the restart")
        assert scheduler.is_leader and scheduler._dispatch_thread.is_alive()
    finally:
        scheduler.shutdown()
    per_delivery = Counter(row["delivery_id"] for row in _log(gateway))
    assert len(per_delivery) == 2 * first + 40 and set(per_delivery.values()) == {1}
    with session_scope(factory) as s:
        assert s.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "sending")) == 0
