"""The crash suite: broadcasts sent by dispatcher processes that are killed (-9) at random moments, through
the loopback WeChat and Aliyun gateways, while the gateways accept messages and then answer after the
client's timeout, WeChat answers "quota" (45009) or "busy" (-1), and — every third run — the PostgreSQL
server restarts. Each run is checked against the gateways' own logs (what they accepted, per person):

- duplicate: a delivery whose message the gateways took twice or more — must never happen;
- lost: a delivery the gateways never took that the system does not report as unconfirmed — must never happen;
- unconfirmed: a WeChat send whose outcome nobody can know (a kill or a timeout during the call; WeChat cannot
  be asked): reported as failed/outcome_unknown, never resent (README "Sending: each message once"). Counted
  apart, split by whether the gateway had it.

Runs: GONGYOU_CRASH_RUNS (default 20) on each database, seeded GONGYOU_CRASH_SEED (default 1). Each run starts
from emptied tables, on a PostgreSQL server of the suite's own (tests/private_pg.py), and on one SQLite file
shared by the dispatcher processes (every fault but the database restart: SQLite has no server). The
dispatchers are forked from the test process after the pipeline is composed once (a fresh `gongyou dispatch`
spends seconds loading the knowledge; tests/test_dispatch_crash.py covers the command itself). Figures are printed and saved to
tests/artifacts/crash_suite.json (PostgreSQL) and crash_suite_sqlite.json.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import random
import signal
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from bot.app import compose
from bot.db import make_engine, make_sessionmaker, migrate, session_scope
from bot.models import Base, CampaignStep, Delivery, Labourer
from bot.settings import Settings
from scheduler.campaigns import transition
from scheduler.dispatch import DispatchConfig, Dispatcher
from scheduler.planning import fire_step
from scheduler.senders import CHANNEL_SENDERS
from tests.synthetic import insert_labourers, make_campaign
from tests import private_pg
from tests.fakes.sms_gateways import FakeAliyunSms
from tests.fakes.wechat_api import FakeWeChatApi

RUNS = int(os.environ.get("GONGYOU_CRASH_RUNS", "20"))
SEED = int(os.environ.get("GONGYOU_CRASH_SEED", "1"))
WECHAT_PEOPLE, SMS_PEOPLE = 16, 16
APPID, SECRET = "wx-test-app", "test-secret"
FORK = multiprocessing.get_context("fork")


class SqliteFile:
    """The embedded database as the suite's "server": one file the dispatcher processes share. It has no
    server to restart, so its runs have every fault but that one."""

    restartable = False

    def __init__(self, folder: Path) -> None:
        self.url = f"sqlite:///{folder / 'crash.db'}"

    def restart(self, down_seconds: float) -> None:
        raise AssertionError("SQLite has no server to restart")


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def server(request, tmp_path_factory):
    if request.param == "sqlite":
        yield SqliteFile(tmp_path_factory.mktemp("crash"))
        return
    reason = private_pg.available()
    if reason:
        pytest.skip(f"the crash suite needs a private PostgreSQL server: {reason}")
    pg = private_pg.PrivatePostgres().start()
    pg.restartable = True
    try:
        yield pg
    finally:
        pg.close()


@pytest.fixture(scope="module")
def composed(server):
    """The pipeline composed once (knowledge loaded), to be forked into each dispatcher process."""
    settings = Settings(database_url=server.url, demo_data=False, log_json=False, knowledge_poll_seconds=0,
                        wechat_appid=APPID, wechat_secret=SECRET, wechat_api_timeout_seconds=0.3,
                        sms_provider="aliyun", sms_access_key_id="LTAI-test", sms_access_key_secret="aliyun-secret",
                        sms_template_id="SMS_1", sms_timeout_seconds=0.3, dispatch_retry_minutes=[0, 0])
    engine = make_engine(server.url)
    migrate(engine)
    services = compose(settings, make_sessionmaker(engine))
    assert services.kb is not None  # loaded now, before any fork
    yield services
    engine.dispose()


def _worker(services, settings: Settings, worker_id: str) -> None:
    """A dispatcher process: its own engine and clients; runs until nothing is left (or it is killed)."""
    services.engine.dispose(close=False)  # the parent's pooled connections are not ours to use
    engine = make_engine(settings.database_url)
    factory = make_sessionmaker(engine)
    mine = dataclasses.replace(services, settings=settings, sessionmaker=factory)
    config = DispatchConfig.from_settings(settings, rates={"wechat": 30.0, "sms": 30.0}, windows={}, batch_size=5,
                                          lease=timedelta(seconds=1), unknown_recheck=timedelta(seconds=0.5))
    dispatcher = Dispatcher(factory, {channel: make(mine) for channel, make in CHANNEL_SENDERS.items()}, config,
                            worker_id=worker_id)
    dispatcher.run(idle_sleep=0.05, until_idle=True, max_backoff=0.5)
    os._exit(0)


def _truncate(engine) -> None:
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
        return
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


def _prepare(factory) -> None:
    with session_scope(factory) as s:
        insert_labourers(s, WECHAT_PEOPLE)
        insert_labourers(s, SMS_PEOPLE, start=10_000, openid=None)
        campaign = make_campaign(s)
        transition(s, campaign, "scheduled")
        step_id = s.scalars(select(CampaignStep.id).where(CampaignStep.campaign_id == campaign.id)).one()
        assert fire_step(s, step_id).planned == WECHAT_PEOPLE + SMS_PEOPLE


def _one_run(run: int, server, services, engine, factory) -> dict:
    rng = random.Random(SEED * 1000 + run)
    _truncate(engine)
    _prepare(factory)
    faults: Counter = Counter()
    with FakeWeChatApi(appid=APPID, secret=SECRET, cs_limit=1000) as wechat, FakeAliyunSms() as aliyun:
        settings = services.settings.model_copy(update={"wechat_api_base": wechat.base, "sms_api_base": aliyun.base})
        for n in rng.sample(range(WECHAT_PEOPLE), 5):  # temporary WeChat errors: quota, busy
            codes = [rng.choice((45009, -1)) for _ in range(rng.randint(1, 2))]
            wechat.fail_for(f"o-{n}", *codes)
            faults["wechat_temporary_errors"] += len(codes)
        stalls = rng.randint(1, 3)  # the gateway accepts, then answers after the client's timeout
        aliyun.stall_next("SendSms", 0.8, times=stalls)
        faults["sms_accept_then_timeout"] += stalls
        if rng.random() < 0.5:
            wechat.stall_next("message/custom/send", 0.8)
            faults["wechat_accept_then_timeout"] += 1

        workers = [FORK.Process(target=_worker, args=(services, settings, f"r{run}w{i}")) for i in range(2)]
        for worker in workers:
            worker.start()
        restart_at = rng.uniform(0.2, 0.8) if run % 3 == 0 and server.restartable else None
        started, spawned = time.monotonic(), 2
        for kill_at in sorted(rng.uniform(0.1, 1.0) for _ in range(rng.randint(2, 3))):
            if restart_at is not None and restart_at < kill_at:
                time.sleep(max(0.0, started + restart_at - time.monotonic()))
                server.restart(down_seconds=0.3)
                faults["database_restarts"] += 1
                restart_at = None
            time.sleep(max(0.0, started + kill_at - time.monotonic()))
            alive = [w for w in workers if w.is_alive()]
            if alive:
                victim = rng.choice(alive)
                os.kill(victim.pid, signal.SIGKILL)
                victim.join()
                faults["kill_9"] += 1
            replacement = FORK.Process(target=_worker, args=(services, settings, f"r{run}w{spawned}"))
            replacement.start()
            workers.append(replacement)
            spawned += 1
        if restart_at is not None:
            server.restart(down_seconds=0.3)
            faults["database_restarts"] += 1
        deadline = time.monotonic() + 90
        for worker in workers:
            worker.join(max(0.1, deadline - time.monotonic()))
            assert not worker.is_alive(), f"run {run}: a dispatcher did not finish"

        with session_scope(factory) as s:
            rows = s.execute(select(Delivery.idempotency_key, Delivery.status, Delivery.failure_reason,
                                    Delivery.channel, Labourer.wechat_openid, Labourer.id)
                             .join(Labourer, Labourer.id == Delivery.labourer_id)).all()
        took_wechat = Counter(m["touser"] for m in wechat.sent)
        took_sms = Counter(p["OutId"] for p in aliyun.sent)
        took_number = Counter(p["PhoneNumbers"] for p in aliyun.sent)
        assert sum(took_sms.values()) == sum(took_number.values())  # every SMS carried its delivery's key

    figures: Counter = Counter()
    problems = []
    for key, status, reason, channel, openid, labourer_id in rows:
        copies = (took_wechat[openid] if openid else 0) + took_sms[key]
        unconfirmed = (status, reason) == ("failed", "outcome_unknown")
        figures["deliveries"] += 1
        if copies >= 2:
            figures["duplicates"] += 1
            problems.append((key, status, reason, copies))
        elif copies == 0 and not unconfirmed:
            figures["lost"] += 1
            problems.append((key, status, reason, copies))
        elif unconfirmed:
            figures["unconfirmed_arrived" if copies else "unconfirmed_not_arrived"] += 1
        elif status not in ("sent", "delivered"):
            figures["wrong_status"] += 1
            problems.append((key, status, reason, copies))
        else:
            figures["once"] += 1
        if status in ("queued", "sending"):
            figures["left_open"] += 1
    return {"run": run, "faults": dict(faults), "figures": dict(figures), "problems": problems}


def test_crash_suite(server, composed, artifacts_root) -> None:
    engine = make_engine(server.url)
    factory = make_sessionmaker(engine)
    results = []
    began = time.monotonic()
    try:
        for run in range(RUNS):
            results.append(_one_run(run, server, composed, engine, factory))
    finally:
        engine.dispose()
    totals: Counter = Counter()
    faults: Counter = Counter()
    for result in results:
        totals.update(result["figures"])
        faults.update(result["faults"])
    summary = {"runs": RUNS, "seed": SEED, "seconds": round(time.monotonic() - began, 1),
               "faults": dict(faults), "totals": dict(totals)}
    summary["database"] = engine.dialect.name
    artifacts_root.mkdir(parents=True, exist_ok=True)
    name = "crash_suite.json" if engine.dialect.name == "postgresql" else f"crash_suite_{engine.dialect.name}.json"
    (artifacts_root / name).write_text(
        json.dumps({**summary, "per_run": results}, ensure_ascii=False, indent=1), encoding="utf-8")
    print("\ncrash suite:", json.dumps(summary, ensure_ascii=False))
    bad = [r for r in results if r["problems"]]
    assert not bad, f"runs with duplicates, losses or wrong statuses: {bad}"
    assert totals["deliveries"] == RUNS * (WECHAT_PEOPLE + SMS_PEOPLE)
    assert totals["duplicates"] == 0 and totals["lost"] == 0 and totals["left_open"] == 0
    assert faults["kill_9"] >= 2 * RUNS


@pytest.fixture
def artifacts_root() -> Path:
    return Path(os.environ.get("GONGYOU_ARTIFACTS_DIR") or Path(__file__).resolve().parent / "artifacts")

