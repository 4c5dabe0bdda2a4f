"""Overload curve of the WeChat callback: offered load against replies in time, late, shed and lost.

    python benchmarks/overload.py [--rates 100,250,500] [--seconds 4] [--workers 2] [--database-url URL] [--admission-off]

Starts `gongyou serve` (a new SQLite database unless --database-url) with a loopback fake of the WeChat API
in this process, then for each rate sends signed, encrypted text messages open-loop — due at that rate
whatever the answers do, each on a new connection with WeChat's 5-second timeout, each from a new person —
and classifies every one:
- in time: an encrypted passive reply within 5 s;
- late: acknowledged ("success") within 5 s, and the answer arrived through the customer-service API;
- late without an ack: no answer within 5 s, yet taken and answered through the API (WeChat's retries of it
  are duplicates: acknowledged, nothing sent twice);
- shed: a 503 within 5 s (nothing stored: WeChat sends it again, up to three times);
- lost: anything else (no answer within 5 s, or "success" and no message ever).
Prints one line per rate and a JSON line of the curve.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from service import running_service  # benchmarks/service.py (run as a script, this folder is on sys.path)
from webhook import AES_KEY, APPID, TOKEN, build_requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.wechat_api import FakeWeChatApi  # noqa: E402

SECRET = "bench-secret"
WINDOW = 5.0  # WeChat drops the connection after 5 s


def build(url: str, tag: str, count: int) -> list[tuple[str, bytes]]:
    """Each message from a new person, on its own connection (as WeChat calls)."""
    return [(p.openid, p.request) for p in build_requests(url, count, people=count, tag=tag, close=True)]


async def one(host: str, port: int, request: bytes) -> tuple[int, bytes] | None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.partition(b":")[2]) for line in head.split(b"\r\n")[1:]
                       if line.lower().startswith(b"content-length")), 0)
        body = await reader.readexactly(length)
        writer.close()
        return int(head[9:12]), body
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        return None


async def offer(url: str, prepared: list[tuple[str, bytes]], rate: float) -> dict[str, tuple[int, bytes] | None]:
    parts = urlsplit(url)
    answers: dict[str, tuple[int, bytes] | None] = {}
    started = time.perf_counter()

    async def due(openid: str, request: bytes) -> None:
        try:
            answers[openid] = await asyncio.wait_for(one(parts.hostname, parts.port, request), WINDOW)
        except TimeoutError:
            answers[openid] = None

    tasks = []
    for i, (openid, request) in enumerate(prepared):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(due(openid, request)))
    await asyncio.gather(*tasks)
    return answers


def classify(answers: dict[str, tuple[int, bytes] | None], api: FakeWeChatApi, settle: float) -> Counter[str]:
    """Waits until the late answers stop coming (5 s without a new one, at most `settle` seconds);
    `drain_ms`: when the last one came, after the last message's answer (or its 5 s)."""
    offered_end = time.monotonic()
    deadline, last_count, last_change = time.monotonic() + settle, -1, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - last_change < 5.0:
        with api.lock:
            count = len(api.sent)
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        time.sleep(0.25)
    with api.lock:
        reached = Counter(m["touser"] for m in api.sent)
    counts: Counter[str] = Counter()
    for openid, answer in answers.items():
        if answer is not None and answer[0] == 200 and answer[1].startswith(b"<xml>"):
            counts["in_time"] += 1
        elif answer is not None and answer[0] == 200 and reached.get(openid):
            counts["late"] += 1
        elif answer is not None and answer[0] == 503:
            counts["shed"] += 1
        elif answer is None and reached.get(openid):
            # no answer within 5 s, but the message was taken and answered through the API: WeChat's retries
            # of it are duplicates (acknowledged, nothing sent twice)
            counts["late_unacknowledged"] += 1
        else:
            counts["lost"] += 1
    counts["duplicates"] = sum(1 for n in reached.values() if n > 1)
    counts["drain_ms"] = int(max(0.0, last_change - offered_end) * 1000) if reached else 0
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100,250,500")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--settle", type=float, default=60.0, help="how long to wait for late answers")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--admission-off", action="store_true", help="for comparison: never defer nor shed")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="gongyou-overload-"))
    curve = []
    with FakeWeChatApi(appid=APPID, secret=SECRET, cs_limit=10**6) as api:
        env = {**os.environ, "GONGYOU_DATABASE_URL": args.database_url or f"sqlite:///{workdir / 'bench.db'}",
               "GONGYOU_WECHAT_TOKEN": TOKEN, "GONGYOU_WECHAT_AES_KEY": AES_KEY, "GONGYOU_WECHAT_APPID": APPID,
               "GONGYOU_WECHAT_SECRET": SECRET, "GONGYOU_WECHAT_API_BASE": api.base}
        if args.admission_off:
            env.update(GONGYOU_WECHAT_QUEUE_DEFER="1000000000", GONGYOU_WECHAT_QUEUE_MAX="1000000000",
                       GONGYOU_WECHAT_LOOP_LAG_DEFER_SECONDS="1000000")
        with running_service(env, workers=args.workers, cwd=workdir, timeout=240) as service:
            url = f"{service.base}/wechat"
            asyncio.run(offer(url, build(url, "warm", 50), 25))  # warm both workers
            for rate in (float(r) for r in args.rates.split(",")):
                with api.lock:
                    api.sent.clear()
                prepared = build(url, f"r{rate:g}", int(rate * args.seconds))
                answers = asyncio.run(offer(url, prepared, rate))
                counts = classify(answers, api, args.settle)
                row = {"offered_per_second": rate, "requests": len(prepared), **{k: counts.get(k, 0) for k in
                       ("in_time", "late", "late_unacknowledged", "shed", "lost", "duplicates")},
                       "late_drained_seconds": round(counts["drain_ms"] / 1000, 1)}
                curve.append(row)
                print(f"offered {rate:g}/s ({row['requests']} messages): in time {row['in_time']}, late {row['late']}, "
                      f"late without an ack {row['late_unacknowledged']}, shed {row['shed']}, lost {row['lost']}, "
                      f"answered twice {row['duplicates']}; the last late answer {row['late_drained_seconds']:g} s "
                      f"after the last callback's", flush=True)
                time.sleep(3)  # let the service drain before the next step
    print(json.dumps({"workers": args.workers, "cpus": os.cpu_count(), "admission": not args.admission_off,
                      "curve": curve}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
