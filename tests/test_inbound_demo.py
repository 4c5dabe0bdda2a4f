"""A fresh first start of `gongyou serve --workers 2` with demo data: both workers find the database empty
at the same moment; both must come up, and the demo registry must be loaded once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from sqlalchemy import func, select

from bot.db import make_engine
from bot.demo import DEMO_SIZE
from bot.models import Event, Labourer


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_two_workers(db_url: str, tmp_path) -> str:  # noqa: ANN001
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--workers", "2", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        env={**os.environ, "GONGYOU_DATABASE_URL": db_url, "GONGYOU_DEMO_DATA": "true", "GONGYOU_LOG_JSON": "false",
             "GONGYOU_KNOWLEDGE_POLL_SECONDS": "0", "GONGYOU_CACHE_DIR": str(tmp_path / "cache")},
    )
    seen = ""
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and seen.count("Application startup complete") < 2:
            line = process.stdout.readline()
            if not line:
                break
            seen += line
            if "Traceback" in seen and "Error" in line:
                break
        time.sleep(1)  # a worker that dies right after its start-up line would say so now
    finally:
        process.terminate()
        try:
            seen += process.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            process.kill()
            seen += process.communicate()[0]
    return seen


def test_two_workers_start_on_a_fresh_database_and_load_the_demo_once(db_url, tmp_path):
    output = _start_two_workers(db_url, tmp_path)
    assert "Traceback" not in output and "IntegrityError" not in output, output[-3000:]
    assert output.count("Application startup complete") >= 2, output[-3000:]
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Labourer)) == DEMO_SIZE
            assert conn.scalar(select(func.count()).select_from(Event)) == 3
    finally:
        engine.dispose()
