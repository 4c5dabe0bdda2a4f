"""Soak: the whole service for a long while at a moderate mixed load, memory and latency sampled every minute.

    python benchmarks/soak.py [--minutes 30] [--rate 3] [--database-url URL] [--out soak.json]

Runs `gongyou serve --workers 2`, `gongyou scheduler` and `gongyou dispatch` (loopback JSON-lines gateways)
on a new SQLite database (or a throwaway PostgreSQL schema with --database-url), and drives them with:
signed AES WeChat messages (`--rate` a second, 300 people, questions, greetings, registrations, complaints,
requests for a person — each opens a help-desk case), SMS pushes (one every 2 s), official reads (campaigns,
a campaign's report, unanswered messages) and a help-desk turn (the open queue read, the newest case opened,
answered — publicly when it came by SMS, a note otherwise — and resolved), each every 5 s, and a broadcast to
1,000 labourers every 10 minutes. Every minute it records the resident
memory of each role (its whole process tree), the callbacks' p50/p99/max latency, answers late or failed,
and deliveries sent. The summary compares the memory of the last minute with the third (after warm-up):
a flat line is growth < 5 %.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

from service import _process_tree, free_port  # noqa: E402

from tests.fakes.sms_gateways import aliyun_up  # noqa: E402
from tests.fakes.wechat_platform import AES_KEY, APPID, TOKEN, WeChatPlatform  # noqa: E402

TEXTS = ["公益性岗位咋个申请嘛", "培训补贴有好多钱", "你好", "社保补贴咋个领", "我想去浙江打工", "最近有招聘会没得",
         "老板欠我工资不给", "我想报名电工培训", "取消", "谢谢", "人工"]
PASSWORD = "soak-password-123456"


def rss_mb(pid: int) -> float:
    total = 0
    for member in _process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1)


class Load:
    def __init__(self, base: str) -> None:
        self.base = base
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.late = self.failed = self.sms = self.staff = self.cases = 0
        self.msg_ids = iter(range(10**12, 10**13))

    def take(self) -> dict[str, object]:
        with self.lock:
            lat, self.latencies = sorted(self.latencies), []
            counts = {"late": self.late, "failed": self.failed, "sms": self.sms, "staff": self.staff,
                      "cases_resolved": self.cases}
            self.late = self.failed = self.sms = self.staff = self.cases = 0
        q = (lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 1)) if lat else (lambda p: None)
        return {"callbacks": len(lat), "p50_ms": q(0.5), "p99_ms": q(0.99), "max_ms": round(lat[-1] * 1000, 1) if lat else None,
                **counts}

    def wechat(self, client: httpx.Client, person: int) -> None:
        wx = WeChatPlatform(client)
        with self.lock:
            msg_id = str(next(self.msg_ids))
        started = time.perf_counter()
        try:
            response = wx.post(wx.text(f"o-soak-{person}", random.choice(TEXTS), msg_id=msg_id))
            took = time.perf_counter() - started
            with self.lock:
                self.latencies.append(took)
                if response.status_code != 200:
                    self.failed += 1
                elif response.text == "success":
                    self.late += 1  # answered afterwards through the API, or nothing to say
        except httpx.HTTPError:
            with self.lock:
                self.failed += 1


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=3.0, help="WeChat messages per second")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--out", type=Path, default=HERE / "soak.json")
    args = parser.parse_args()
    # A SIGTERM (or a SIGINT, ignored in a background job) stops the roles too: the `finally` below runs.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(143))

    folder = Path(tempfile.mkdtemp(prefix="gongyou-soak-"))
    db_url = args.database_url or f"sqlite:///{folder / 'soak.db'}"
    env = {**os.environ, "GONGYOU_DATABASE_URL": db_url, "GONGYOU_DEMO_DATA": "false", "GONGYOU_LOG_LEVEL": "WARNING",
           "GONGYOU_WECHAT_TOKEN": TOKEN, "GONGYOU_WECHAT_AES_KEY": AES_KEY, "GONGYOU_WECHAT_APPID": APPID,
           "GONGYOU_CACHE_DIR": str(folder / "cache"), "GONGYOU_BROADCAST_WEEKLY_CAP": "0",
           "PYTHONPATH": str(ROOT)}
    from bot.db import make_engine, make_sessionmaker, migrate, session_scope
    from bot.models import Campaign, Delivery
    from scheduler.campaigns import transition
    from tests.synthetic import insert_labourers, make_campaign
    from sqlalchemy import func, select

    engine = make_engine(db_url)
    migrate(engine)
    factory = make_sessionmaker(engine)
    with session_scope(factory) as s:
        insert_labourers(s, 1000, encrypt_phones=False)
    subprocess.run([sys.executable, "-m", "bot", "staff", "add", "soak-admin", "--role", "admin"], input=PASSWORD + "\n",
                   env=env, text=True, check=True, capture_output=True)
    port = free_port()
    logs = {name: (folder / f"{name}.log").open("wb") for name in ("web", "scheduler", "dispatch")}
    procs = {
        "web": subprocess.Popen([sys.executable, "-m", "bot", "serve", "--port", str(port), "--workers", "2"],
                                env=env, stdout=logs["web"], stderr=subprocess.STDOUT),
        "scheduler": subprocess.Popen([sys.executable, "-m", "bot", "scheduler"], env=env, stdout=logs["scheduler"],
                                      stderr=subprocess.STDOUT),
        "dispatch": subprocess.Popen([sys.executable, "-m", "bot", "dispatch", "--senders", "tests.doubles:loopback_senders",
                                      "--always-open", "--rate", "10"],
                                     env={**env, "GONGYOU_LOOPBACK_DIR": str(folder / "gateway"), "GONGYOU_LOOPBACK_FSYNC": "0"},
                                     stdout=logs["dispatch"],
                                     stderr=subprocess.STDOUT),
    }
    base = f"http://127.0.0.1:{port}"
    samples: list[dict[str, object]] = []
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or procs["web"].poll() is not None:
                raise RuntimeError("the service did not start")
            time.sleep(0.5)
        token = httpx.post(f"{base}/api/auth/token", data={"username": "soak-admin", "password": PASSWORD}).json()["access_token"]
        staff_headers = {"Authorization": f"Bearer {token}"}
        load = Load(base)
        stop = threading.Event()

        def wechat_loop() -> None:
            interval, due = 1.0 / args.rate, time.monotonic()
            with httpx.Client(base_url=base, timeout=10) as client:
                while not stop.is_set():
                    load.wechat(client, random.randrange(300))
                    due += interval
                    stop.wait(max(0.0, due - time.monotonic()))

        def sms_loop() -> None:
            seq = 1
            with httpx.Client(base_url=base, timeout=10) as client:
                while not stop.wait(2.0):
                    number = f"1390000{random.randrange(10000):04d}"
                    try:
                        client.post("/sms/inbound", json=aliyun_up(number, random.choice(TEXTS), seq))
                        with load.lock:
                            load.sms += 1
                    except httpx.HTTPError:
                        with load.lock:
                            load.failed += 1
                    seq += 1

        def staff_loop() -> None:
            paths = ["/api/admin/campaigns", "/api/admin/knowledge/unanswered", "/api/auth/me"]
            with httpx.Client(base_url=base, timeout=10, headers=staff_headers) as client:
                while not stop.wait(5.0):
                    with session_scope(factory) as s:
                        latest = s.scalar(select(func.max(Campaign.id)))
                    path = random.choice(paths + ([f"/api/admin/campaigns/{latest}/report"] if latest else []))
                    try:
                        client.get(path).raise_for_status()
                        done = 1 + desk_turn(client)
                        with load.lock:
                            load.staff += done
                    except httpx.HTTPError:
                        with load.lock:
                            load.failed += 1

        def desk_turn(client: httpx.Client) -> int:
            """The help desk's queue read; its newest open case opened, answered and resolved."""
            queue = client.get("/api/helpdesk/tickets", params={"status": "new", "limit": 20})
            queue.raise_for_status()
            items = queue.json()["items"]
            if not items:
                return 1
            case = items[0]
            client.get(f"/api/helpdesk/tickets/{case['ticket_no']}").raise_for_status()
            public = case.get("channel") == "sms"  # the log provider takes it; WeChat has no API in the soak
            client.post(f"/api/helpdesk/tickets/{case['ticket_no']}/messages",
                        json={"body": "您好，已收到，工作人员正在核实。", "visibility": "public" if public else "internal"}
                        ).raise_for_status()
            client.post(f"/api/helpdesk/tickets/{case['ticket_no']}/transition", json={"to": "resolved"}).raise_for_status()
            with load.lock:
                load.cases += 1
            return 4

        threads = [threading.Thread(target=f, daemon=True) for f in (wechat_loop, sms_loop, staff_loop)]
        for thread in threads:
            thread.start()
        started = time.monotonic()
        minute = 0
        while time.monotonic() - started < args.minutes * 60:
            if minute % 10 == 0:  # a broadcast every 10 minutes
                with session_scope(factory) as s:
                    campaign = make_campaign(s, name=f"浸泡测试通知{minute}", channels=["wechat", "sms"])
                    transition(s, campaign, "scheduled")
            time.sleep(max(0.0, started + (minute + 1) * 60 - time.monotonic()))
            minute += 1
            with session_scope(factory) as s:
                sent = s.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "sent"))
            sample = {"minute": minute, **load.take(), "deliveries_sent_total": sent,
                      **{f"rss_mb_{name}": rss_mb(proc.pid) for name, proc in procs.items()}}
            sample["rss_mb_total"] = round(sum(v for k, v in sample.items() if k.startswith("rss_mb_")), 1)
            samples.append(sample)
            print(json.dumps(sample, ensure_ascii=False), flush=True)
            for name, proc in procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}")
        stop.set()
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        engine.dispose()
    warm = samples[min(2, len(samples) - 1)]
    last = samples[-1]
    summary = {
        "minutes": len(samples), "rate_per_second": args.rate, "database": engine.dialect.name,
        "rss_mb_warm": warm["rss_mb_total"], "rss_mb_last": last["rss_mb_total"],
        "rss_growth_percent": round((last["rss_mb_total"] / warm["rss_mb_total"] - 1) * 100, 2),
        "p99_ms_worst_minute": max((s["p99_ms"] or 0) for s in samples),
        "p50_ms_median": statistics.median([s["p50_ms"] for s in samples if s["p50_ms"] is not None] or [0]),
        "failed": sum(s["failed"] for s in samples), "late": sum(s["late"] for s in samples),
        "cases_resolved": sum(s["cases_resolved"] for s in samples),
        "deliveries_sent": last["deliveries_sent_total"],
    }
    args.out.write_text(json.dumps({"summary": summary, "samples": samples}, ensure_ascii=False, indent=2) + "\n")
    print(json.dumps(summary, ensure_ascii=False))
    print(f"memory: {summary['rss_mb_warm']} MB at minute 3, {summary['rss_mb_last']} MB at the end "
          f"({summary['rss_growth_percent']:+.2f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
