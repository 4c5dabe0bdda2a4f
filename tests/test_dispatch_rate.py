"""The per-channel rate is the fleet's: two dispatch worker processes with a limit of N/s send at most
N/s together, measured at the loopback gateways (each worker writes its own JSON-lines log)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.db import make_engine, make_sessionmaker, session_scope
from bot.models import CampaignStep
from scheduler.campaigns import transition
from scheduler.planning import fire_step
from tests.synthetic import insert_labourers, make_campaign

ROOT = Path(__file__).resolve().parent.parent
RATE = 60.0
SECONDS = 4


def _two_workers_at(db_url: str, tmp_path: Path) -> list[tuple[str, float]]:
    total = int(RATE * SECONDS)
    engine = make_engine(db_url)
    with session_scope(make_sessionmaker(engine)) as s:
        insert_labourers(s, total // 2)
        insert_labourers(s, total - total // 2, start=10_000, openid=None)  # both channels, one limit each
        campaign = make_campaign(s)
        transition(s, campaign, "scheduled")
        step_id = s.scalars(select(CampaignStep.id).where(CampaignStep.campaign_id == campaign.id)).one()
        assert fire_step(s, step_id).planned == total
    engine.dispose()
    env = {**os.environ, "GONGYOU_DATABASE_URL": db_url, "GONGYOU_DEMO_DATA": "false", "GONGYOU_LOG_LEVEL": "WARNING"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "bot", "dispatch", "--senders", "tests.doubles:loopback_senders", "--rate", str(RATE),
             "--always-open", "--until-idle", "--idle-sleep", "0.2", "--batch-size", "20", "--worker-id", name],
            cwd=ROOT, env={**env, "GONGYOU_LOOPBACK_DIR": str(tmp_path / name), "GONGYOU_LOOPBACK_FSYNC": "0"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name in ("w1", "w2")
    ]
    for worker in workers:
        _out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
    arrivals = []
    for name in ("w1", "w2"):
        for path in (tmp_path / name).glob("*.jsonl"):
            arrivals += [(json.loads(line)["channel"], json.loads(line)["at"], name)
                         for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(arrivals) == total
    assert {w for _, _, w in arrivals} == {"w1", "w2"}  # both workers sent
    return [(channel, at) for channel, at, _ in arrivals]


def _rate(times: list[float]) -> float:
    times = sorted(times)
    return (len(times) - 1) / (times[-1] - times[0])


def _check(arrivals: list[tuple[str, float]]) -> None:
    for channel in ("wechat", "sms"):
        measured = _rate([at for c, at in arrivals if c == channel])
        # Each channel at N/s for the two workers together: a per-worker limit would give 2N.
        assert measured <= RATE * 1.05, (channel, measured)
        assert measured >= RATE * 0.9, (channel, measured)


@pytest.mark.postgres
def test_two_workers_share_the_channel_rate_on_postgres(pg_url: str, tmp_path: Path) -> None:
    _check(_two_workers_at(pg_url, tmp_path))


def test_two_workers_share_the_channel_rate_on_sqlite(tmp_path: Path, _sqlite_template: Path) -> None:
    import shutil

    path = tmp_path / "rate.db"
    shutil.copyfile(_sqlite_template, path)
    _check(_two_workers_at(f"sqlite:///{path}", tmp_path))
