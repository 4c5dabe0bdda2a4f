"""The WeChat callback under load: AES-mode messages (distinct MsgIds) against `gongyou serve` on loopback.

    python benchmarks/webhook.py [--workers 2] [--concurrency 32] [--requests 3000] [--duration 30]

Starts the service in a subprocess (a new SQLite database unless `--database-url` is given, demo data off), signs and encrypts every
message with wechatpy's WeChatCrypto as the WeChat server would (500 distinct people, real questions),
and sends them from this process over `--concurrency` keep-alive HTTP/1.1 connections. Prints
requests/second, p50/p99 latency and the server's CPU time per request (the uvicorn processes' user +
system time, read from /proc). Bounded by both `--requests` and `--duration`.

Two ways to load it:
- closed loop (the default): `--concurrency` connections each send the next request as soon as the last
  is answered. The service runs flat out: the throughput is its capacity, and the latency is mostly the
  time a request queues behind the 31 others.
- open loop (`--rate R`): requests are due at R per second whatever the answers do, as people's messages
  arrive, over a pool of `--concurrency` connections. Each latency counts from when the request was due,
  so time spent waiting for a free connection counts too (no coordinated omission). This answers "at R
  requests/s, what does a person wait?".

The client is deliberately lean — requests serialised up front, asyncio streams, no HTTP library — because
it shares the machine with the server and must not eat the CPU it measures. It still checks every answer:
each must be a 200 whose body, decrypted and signature-checked after the run, is a text reply to the
person who asked.
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
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import xmltodict
from service import (
    process_cpu_seconds,  # benchmarks/service.py (run as a script, this folder is on sys.path)
    running_service,
)
from wechatpy.crypto import WeChatCrypto

TOKEN = "bench-token"
AES_KEY = base64.b64encode(hashlib.sha256(b"bench-aes").digest()).decode().rstrip("=")
APPID = "wx-bench"
ACCOUNT = "gh_bench"
PEOPLE = 500
QUESTIONS = ["公益性岗位咋个申请嘛", "培训补贴有好多钱", "老板欠我工资不给", "你好", "社保补贴咋个领", "我想去浙江打工"]


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


@dataclass(frozen=True)
class Prepared:
    openid: str
    request: bytes  # the whole HTTP/1.1 request


def build_requests(url: str, count: int, *, people: int = PEOPLE, tag: str = "bench", close: bool = False) -> list[Prepared]:
    """Signed, encrypted and serialised up front so the client's own work does not limit the measurement.
    `people`: how many distinct senders take turns; `close`: one connection per request, as WeChat does."""
    crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)
    parts = urlsplit(url)
    base_id = time.time_ns() // 1000
    prepared = []
    for i in range(count):
        openid = f"o-{tag}-{i % people}"
        ts, nonce = str(int(time.time())), f"n{tag}{i}"
        xml = (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
               f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
               f"<Content><![CDATA[{QUESTIONS[i % len(QUESTIONS)]}]]></Content><MsgId>{base_id + i}</MsgId></xml>")
        encrypt = xmltodict.parse(crypto.encrypt_message(xml, nonce, ts))["xml"]["Encrypt"]
        query = {"timestamp": ts, "nonce": nonce, "signature": sign(TOKEN, ts, nonce), "encrypt_type": "aes",
                 "msg_signature": sign(TOKEN, ts, nonce, encrypt), "openid": openid}
        body = f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()
        head = (f"POST {parts.path}?{urlencode(query)} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                + ("Connection: close\r\n" if close else "")
                + f"Content-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        prepared.append(Prepared(openid, head + body))
    return prepared


@dataclass
class Run:
    latencies: list[float]
    answers: list[tuple[Prepared, int, bytes]]  # (request, status, body)
    failures: int  # connection errors
    elapsed: float


class Connection:
    """One keep-alive HTTP/1.1 connection to the service; reopened after a failure."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes) -> tuple[int, bytes] | None:
        """(status, body), or None when the connection failed (it is reopened for the next request)."""
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.writer.write(request)
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            return status, await self.reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            self.close()
            return None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def drive(url: str, prepared: list[Prepared], concurrency: int, duration: float,
                rate: float | None = None) -> Run:
    """Closed loop (each connection sends as soon as it is answered) or, with `rate`, open loop."""
    parts = urlsplit(url)
    run = Run([], [], 0, 0.0)
    pool = [Connection(parts.hostname, parts.port) for _ in range(concurrency)]
    started = time.perf_counter()
    deadline = started + duration

    async def send(conn: Connection, item: Prepared, due: float) -> None:
        answer = await conn.exchange(item.request)
        if answer is None:
            run.failures += 1
        else:
            run.latencies.append(time.perf_counter() - due)
            run.answers.append((item, *answer))

    if rate is None:
        queue = iter(prepared)

        async def closed(conn: Connection) -> None:
            for item in queue:
                if time.perf_counter() > deadline:
                    return
                await send(conn, item, time.perf_counter())

        await asyncio.gather(*(closed(conn) for conn in pool))
    else:
        free: asyncio.Queue[Connection] = asyncio.Queue()
        for conn in pool:
            free.put_nowait(conn)

        async def due_at(item: Prepared, due: float) -> None:
            conn = await free.get()
            try:
                await send(conn, item, due)
            finally:
                free.put_nowait(conn)

        tasks = []
        for i, item in enumerate(prepared):
            due = started + i / rate
            if due > deadline:
                break
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(due_at(item, due)))
        await asyncio.gather(*tasks)
    run.elapsed = time.perf_counter() - started
    for conn in pool:
        conn.close()
    return run


def bad_answers(answers: list[tuple[Prepared, int, bytes]]) -> list[str]:
    """Each answer must be a 200 carrying an encrypted text reply, correctly signed, to the person who asked."""
    crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)
    problems = []
    for item, status, body in answers:
        try:
            if status != 200:
                raise ValueError(f"HTTP {status}")
            outer = xmltodict.parse(body)["xml"]
            inner = xmltodict.parse(crypto.decrypt_message(body, outer["MsgSignature"], outer["TimeStamp"], outer["Nonce"]))["xml"]
            if inner["ToUserName"] != item.openid or inner["MsgType"] != "text" or not inner.get("Content"):
                raise ValueError("not a text reply to the sender")
        except Exception as exc:  # noqa: BLE001 - every kind of wrong answer is counted and shown
            problems.append(f"{item.openid}: {type(exc).__name__}: {exc} {body[:120]!r}")
    return problems


def _run(coro):  # noqa: ANN001, ANN202
    try:
        import uvloop  # the leanest loop there is, when installed
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--rate", type=float, help="open loop: requests due per second (default: closed loop)")
    parser.add_argument("--database-url", help="default: a new SQLite file; a PostgreSQL URL measures the scale-out setup")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="gongyou-bench-"))
    env = {**os.environ, "GONGYOU_DATABASE_URL": args.database_url or f"sqlite:///{workdir / 'bench.db'}",
           "GONGYOU_WECHAT_TOKEN": TOKEN, "GONGYOU_WECHAT_AES_KEY": AES_KEY, "GONGYOU_WECHAT_APPID": APPID}
    with running_service(env, workers=args.workers, cwd=workdir) as service:
        url = f"{service.base}/wechat"
        prepared = build_requests(url, args.warmup + args.requests)
        _run(drive(url, prepared[: args.warmup], min(args.concurrency, 8), args.duration))
        cpu_before = process_cpu_seconds(service.pid)
        run = _run(drive(url, prepared[args.warmup :], args.concurrency, args.duration, args.rate))
        server_cpu = process_cpu_seconds(service.pid) - cpu_before
    done = len(run.latencies)
    problems = bad_answers(run.answers)
    cuts = statistics.quantiles(run.latencies, n=100) if done >= 2 else [0.0] * 99
    load = f"open loop at {args.rate:g} requests/s" if args.rate else "closed loop"
    print(f"workers={args.workers} concurrency={args.concurrency} {load} cpus={os.cpu_count()} requests={done} "
          f"errors={len(problems) + run.failures}")
    print(f"throughput: {done / run.elapsed:.0f} requests/s over {run.elapsed:.1f} s")
    print(f"latency: p50 {cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms, max {max(run.latencies) * 1000:.1f} ms")
    print(f"server CPU: {server_cpu / max(done, 1) * 1000:.2f} ms per request")
    for problem in problems[:5]:
        print("bad answer:", problem)
    return 1 if problems or run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
