"""`gongyou scheduler --with-dispatcher` as its own process: it leads, fires a due campaign, sends it
through the configured channels (the `log` SMS provider's outbox here) and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from bot.db import make_engine, make_sessionmaker, session_scope
from bot.models import Delivery, OutboundMessage
from scheduler.campaigns import transition
from tests.synthetic import insert_labourers, make_campaign

ROOT = Path(__file__).resolve().parent.parent


def test_scheduler_process_fires_and_sends(db_url: str) -> None:
    engine = make_engine(db_url)
    factory = make_sessionmaker(engine)
    with session_scope(factory) as s:
        insert_labourers(s, 3, openid=None)
        campaign = make_campaign(s, channels=["sms"], sms_template="测试通知")
        transition(s, campaign, "scheduled")
    env = {**os.environ, "GONGYOU_DATABASE_URL": db_url, "GONGYOU_DEMO_DATA": "false", "GONGYOU_LOG_LEVEL": "WARNING",
           "GONGYOU_SMS_SEND_HOURS": "00:00-24:00", "GONGYOU_SMS_PROVIDER": "log"}
    process = subprocess.Popen([sys.executable, "-m", "bot", "scheduler", "--with-dispatcher"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            with session_scope(factory) as s:
                sent = s.scalar(select(func.count()).where(Delivery.status == "sent"))
            if sent == 3:
                break
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "nothing sent"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    with session_scope(factory) as s:
        outbox = s.scalars(select(OutboundMessage.text).where(OutboundMessage.channel == "sms")).all()
    assert len(outbox) == 3 and all("测试通知" in text for text in outbox)
    engine.dispose()
