"""The WeChat callback under load: AES-mode messages (distinct MsgIds) against `gongyou serve` on loopback.

    python benchmarks/webhook.py [--workers 2] [--concurrency 32] [--requests 3000] [--duration 30]

Starts the service in a subprocess (temporary SQLite database, demo data off), signs and encrypts every
message with wechatpy's WeChatCrypto as the WeChat server would, sends them from this process with
`--concurrency` connections, checks every answer decrypts to a reply, and prints requests/second and
p50/p99 latency. Bounded by both `--requests` and `--duration`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import xmltodict
from service import (
    running_service,  # benchmarks/service.py (run as a script, this folder is on sys.path)
)
from wechatpy.crypto import WeChatCrypto

TOKEN = "bench-token"
AES_KEY = base64.b64encode(hashlib.sha256(b"bench-aes").digest()).decode().rstrip("=")
APPID = "wx-bench"
QUESTIONS = ["公益性岗位咋个申请嘛", "培训补贴有好多钱", "老板欠我工资不给", "你好", "社保补贴咋个领", "我想去浙江打工"]


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def build_requests(count: int) -> list[tuple[dict[str, str], bytes]]:
    """Prepared up front so the client's own crypto does not limit the measurement."""
    crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)
    base_id = time.time_ns() // 1000
    prepared = []
    for i in range(count):
        ts, nonce = str(int(time.time())), f"n{i}"
        xml = (f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[o-bench-{i % 500}]]></FromUserName>"
               f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
               f"<Content><![CDATA[{QUESTIONS[i % len(QUESTIONS)]}]]></Content><MsgId>{base_id + i}</MsgId></xml>")
        encrypt = xmltodict.parse(crypto.encrypt_message(xml, nonce, ts))["xml"]["Encrypt"]
        query = {"timestamp": ts, "nonce": nonce, "signature": sign(TOKEN, ts, nonce), "encrypt_type": "aes",
                 "msg_signature": sign(TOKEN, ts, nonce, encrypt), "openid": f"o-bench-{i % 500}"}
        body = f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()
        prepared.append((query, body))
    return prepared


async def drive(url: str, prepared: list, concurrency: int, duration: float) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    queue = iter(prepared)
    deadline = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        async def worker() -> None:
            nonlocal errors
            for query, body in queue:
                if time.perf_counter() > deadline:
                    return
                started = time.perf_counter()
                try:
                    response = await client.post(url, params=query, content=body)
                    ok = response.status_code == 200 and "<Encrypt>" in response.text
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - started)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, errors, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--duration", type=float, default=30.0)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="gongyou-bench-"))
    env = {**os.environ, "GONGYOU_DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
           "GONGYOU_WECHAT_TOKEN": TOKEN, "GONGYOU_WECHAT_AES_KEY": AES_KEY, "GONGYOU_WECHAT_APPID": APPID}
    with running_service(env, workers=args.workers, cwd=workdir) as service:
        url = f"{service.base}/wechat"
        prepared = build_requests(args.warmup + args.requests)
        asyncio.run(drive(url, prepared[: args.warmup], min(args.concurrency, 8), args.duration))
        latencies, errors, elapsed = asyncio.run(drive(url, prepared[args.warmup :], args.concurrency, args.duration))
    done = len(latencies)
    cuts = statistics.quantiles(latencies, n=100) if done >= 2 else [0.0] * 99
    print(f"workers={args.workers} concurrency={args.concurrency} cpus={os.cpu_count()} requests={done} errors={errors}")
    print(f"throughput: {done / elapsed:.0f} requests/s over {elapsed:.1f} s")
    print(f"latency: p50 {cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
