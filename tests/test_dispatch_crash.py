"""kill -9 of a dispatch worker mid-broadcast, then a restart: zero duplicates and zero lost, counted in
the loopback gateways' own logs (JSON lines written before the gateway answers)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from bot.db import make_engine, make_sessionmaker, session_scope
from bot.models import CampaignStep, Delivery
from scheduler.campaigns import transition
from scheduler.planning import fire_step
from tests.synthetic import insert_labourers, make_campaign

ROOT = Path(__file__).resolve().parent.parent
TOTAL = 600
BATCH = 25


def _worker(db_url: str, gateway: Path, worker_id: str) -> subprocess.Popen:
    env = {**os.environ, "GONGYOU_DATABASE_URL": db_url, "GONGYOU_DEMO_DATA": "false", "GONGYOU_LOG_LEVEL": "WARNING",
           "GONGYOU_LOOPBACK_DIR": str(gateway)}
    command = [sys.executable, "-m", "bot", "dispatch", "--senders", "tests.doubles:loopback_senders", "--rate", "400",
               "--always-open", "--until-idle", "--idle-sleep", "0.2", "--batch-size", str(BATCH),
               "--lease-seconds", "1", "--worker-id", worker_id]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _log(gateway: Path) -> list[dict]:
    rows = []
    for name in ("wechat.jsonl", "sms.jsonl"):
        path = gateway / name
        if path.exists():
            rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows


def test_kill_9_mid_broadcast_then_restart(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    factory = make_sessionmaker(engine)
    with session_scope(factory) as s:
        insert_labourers(s, TOTAL // 2)
        insert_labourers(s, TOTAL // 2, start=10_000, openid=None)  # SMS only
        campaign = make_campaign(s)
        transition(s, campaign, "scheduled")
        step_id = s.scalars(select(CampaignStep.id).where(CampaignStep.campaign_id == campaign.id)).one()
        assert fire_step(s, step_id).planned == TOTAL
    gateway = tmp_path / "gateway"

    first = _worker(db_url, gateway, "first")
    deadline = time.monotonic() + 60
    # Kill mid-batch: a count that is not a multiple of the batch size means a claimed batch is half sent.
    while (sent := len(_log(gateway))) < TOTAL // 4 or sent % BATCH == 0:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the worker sent nothing"
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    sent_before = len(_log(gateway))
    assert sent_before < TOTAL, "killed too late to test anything"
    with session_scope(factory) as s:
        in_flight = len(s.scalars(select(Delivery.id).where(Delivery.status == "sending")).all())
    assert in_flight > 0, "the kill should land while a batch is claimed"

    second = _worker(db_url, gateway, "second")
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert "reconciled=" in out and "reconciled=0" not in out

    log = _log(gateway)
    per_delivery = Counter(row["delivery_id"] for row in log)
    assert len(log) == TOTAL and set(per_delivery.values()) == {1}  # zero duplicates, zero lost
    with session_scope(factory) as s:
        rows = s.execute(select(Delivery.id, Delivery.status, Delivery.provider_message_id, Delivery.channel)).all()
    assert {status for _, status, _, _ in rows} == {"sent"}
    assert {(r.id, r.provider_message_id) for r in rows} == {(row["delivery_id"], row["id"]) for row in log}
    assert Counter(r.channel for r in rows) == {"wechat": TOTAL // 2, "sms": TOTAL // 2}
    engine.dispose()
