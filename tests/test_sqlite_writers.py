"""Several processes writing one SQLite file (web workers, the dispatcher): each writer waits its turn on a
lock beside the database and wakes the moment the one before commits — no lost message, and none of
SQLite's own busy-wait sleeps (up to 100 ms each, seconds in all under load)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from bot.db import BUSY_TIMEOUT_SECONDS, make_engine, migrate, writer_lock
from bot.models import MessageLog

ROOT = Path(__file__).resolve().parent.parent

# One worker process: answers `count` messages (distinct people and MsgIds) from `threads` threads through
# the real pipeline, and prints the slowest answer.
PIPELINE = textwrap.dedent("""
    import json, sys, time
    from concurrent.futures import ThreadPoolExecutor
    from bot.channels.base import Address, InboundMessage
    from bot.app import compose
    from bot.conversation import handle_message
    from bot.db import make_engine, make_sessionmaker
    from bot.settings import Settings

    url, name, count, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    settings = Settings(database_url=url, demo_data=False)
    services = compose(settings, make_sessionmaker(make_engine(url)))
    texts = ["公益性岗位咋个申请嘛", "培训补贴有好多钱", "你好", "社保补贴咋个领"]

    def answer(i):
        started = time.perf_counter()
        outcome = handle_message(services, InboundMessage(Address("wechat", f"{name}-{i % 20}"),
                                                          text=texts[i % 4], external_id=f"{name}-{i}"))
        assert outcome.replies and not outcome.duplicate
        return time.perf_counter() - started

    print("ready", flush=True)
    sys.stdin.readline()  # start together
    with ThreadPoolExecutor(threads) as pool:
        latencies = list(pool.map(answer, range(count)))
    print(json.dumps({"slowest": max(latencies)}), flush=True)
""")

# Holds a write transaction open for each of the given times; prints when each commit began.
HOLDER = textwrap.dedent("""
    import json, sys, time
    from sqlalchemy import text
    from bot.db import make_engine

    engine = make_engine(sys.argv[1])
    commits = []
    print("ready", flush=True)
    for hold in map(float, sys.argv[2:]):
        sys.stdin.readline()
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO kv_probe (owner) VALUES ('holder')"))
            print("holding", flush=True)
            time.sleep(hold)
            commits.append(time.time())  # committing now
    print(json.dumps(commits), flush=True)
""")


def _spawn(code: str, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", line + proc.stderr.read() if proc.stderr else ""
    return proc


def _migrated(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    return url


def test_two_processes_answering_at_once_lose_no_message_and_never_stall(tmp_path):
    url = _migrated(tmp_path)
    count = 120
    workers = [_spawn(PIPELINE, url, name, str(count), "4") for name in ("a", "b")]
    for proc in workers:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in workers:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))

    engine = make_engine(url)
    with engine.connect() as conn:
        logged = conn.scalar(select(func.count()).select_from(MessageLog).where(MessageLog.direction == "in"))
        answered = conn.scalar(select(func.count()).select_from(MessageLog).where(MessageLog.direction == "out"))
    engine.dispose()
    assert logged == 2 * count and answered >= 2 * count
    # Each answer is a few milliseconds of work; waiting in SQLite's busy handler instead made some take seconds.
    assert max(r["slowest"] for r in results) < 2.0, results


def test_a_waiting_writer_goes_the_moment_the_other_process_commits(tmp_path):
    url = _migrated(tmp_path)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE kv_probe (id INTEGER PRIMARY KEY, owner TEXT)"))
    # SQLite's busy handler retries after 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, then every 100 ms: a
    # commit at x.x5 s lands midway between two retries (~75 ms late).
    holds = ["0.35", "0.45", "0.55", "0.65", "0.75"]
    holder = _spawn(HOLDER, url, *holds)
    delays = []
    for _ in holds:
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "holding"
        with engine.begin() as conn:  # blocks until the holder commits
            conn.execute(text("INSERT INTO kv_probe (owner) VALUES ('waiter')"))
            delays.append(time.time())
    out, err = holder.communicate(timeout=30)
    assert holder.returncode == 0, err[-2000:]
    commits = json.loads(out.strip().splitlines()[-1])
    engine.dispose()
    waits = [after - committed for after, committed in zip(delays, commits, strict=True)]
    assert all(w >= 0 for w in waits), waits  # it did wait for the holder…
    assert sorted(waits)[len(waits) // 2] < 0.025, waits  # …and went right after


def test_a_transaction_begun_on_one_thread_may_commit_on_another(tmp_path):
    # FastAPI runs an endpoint and its session's commit (the dependency's exit) on whichever threads are
    # free: the writer lock belongs to the transaction, and the next writer goes once it commits.
    url = _migrated(tmp_path)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE kv_probe (id INTEGER PRIMARY KEY, owner TEXT)"))
    conn = engine.connect()
    conn.execute(text("INSERT INTO kv_probe (owner) VALUES ('first')"))
    with ThreadPoolExecutor(1) as other:
        other.submit(conn.commit).result(timeout=5)
    conn.close()

    def write() -> None:
        with engine.begin() as c:
            c.execute(text("INSERT INTO kv_probe (owner) VALUES ('next')"))

    with ThreadPoolExecutor(1) as third:
        third.submit(write).result(timeout=5)
    with engine.connect() as c:
        assert c.scalars(text("SELECT owner FROM kv_probe ORDER BY id")).all() == ["first", "next"]
    engine.dispose()


def test_a_writer_that_waits_too_long_gets_an_error_not_a_hang(tmp_path):
    url = _migrated(tmp_path)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE kv_probe (id INTEGER PRIMARY KEY, owner TEXT)"))
    lock = writer_lock(str(tmp_path / "shared.db"))
    lock.timeout = 0.3
    try:
        with engine.begin() as holder:
            holder.execute(text("INSERT INTO kv_probe (owner) VALUES ('holder')"))
            started = time.perf_counter()
            # the same thread writing on a second connection would otherwise wait for itself for ever
            with pytest.raises(OperationalError, match="database is locked"), engine.begin() as second:
                second.execute(text("INSERT INTO kv_probe (owner) VALUES ('second')"))
            assert time.perf_counter() - started < 5
    finally:
        lock.timeout = BUSY_TIMEOUT_SECONDS
    with engine.connect() as c:  # the holder's row committed; the lock is free again
        assert c.scalars(text("SELECT owner FROM kv_probe")).all() == ["holder"]
    engine.dispose()
