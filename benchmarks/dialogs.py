"""Complete training registrations per second through the HTTP pipeline.

Starts `gongyou serve` on a loopback port with a temporary SQLite database (or, with
GONGYOU_DATABASE_URL=postgresql+psycopg://…, a throwaway schema on that server, dropped afterwards),
then drives N people through the whole training dialog over POST /api/simulator/message — first
message, name, ID number, format, time, township, confirmation: seven requests each — from
`--concurrency` threads, and prints registrations/second, per-message latency and the server's CPU time
per message (the figure least changed by a busy machine, to compare two versions by).

    python benchmarks/dialogs.py [--registrations 200] [--concurrency 4] [--workers 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from service import (  # benchmarks/service.py (run as a script, this folder is on sys.path)
    drop_schema,
    process_cpu_seconds,
    running_service,
    scratch_schema,
)
from stdnum.cn import ric



def id_number(i: int) -> str:
    body = f"511923{2001 + i % 7}{1 + i % 12:02d}{1 + i % 28:02d}{i % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


def conversation(i: int) -> list[str]:
    return ["我想学电焊", f"王{'一二三四五六七八九十'[i % 10]}明", id_number(i), "1", "下个月", "江口镇", "1"]


def register(client: httpx.Client, base: str, i: int) -> list[float]:
    latencies = []
    for message in conversation(i):
        started = time.perf_counter()
        response = client.post(f"{base}/api/simulator/message", json={"user": f"bench-{i}", "text": message})
        latencies.append(time.perf_counter() - started)
        response.raise_for_status()
    if "登记好了" not in response.json()["replies"][0]["text"]:
        raise RuntimeError(f"registration {i} did not complete: {response.json()}")
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        server_url = env.get("GONGYOU_DATABASE_URL", "")
        schema = None
        if server_url.startswith("postgres"):
            schema, env["GONGYOU_DATABASE_URL"] = scratch_schema(server_url)
        else:
            env["GONGYOU_DATABASE_URL"] = f"sqlite:///{tmp}/bench.db"
        try:
            with running_service(env, workers=args.workers, cwd=Path(tmp)) as service:
                base, ready = service.base, service.ready_seconds
                with httpx.Client(timeout=30, limits=httpx.Limits(max_connections=args.concurrency * 2)) as client:
                    register(client, base, 10_000_000)  # warm-up: first parse, first queries
                    started, cpu_before = time.perf_counter(), process_cpu_seconds(service.pid)
                    with ThreadPoolExecutor(args.concurrency) as pool:
                        results = list(pool.map(lambda i: register(client, base, i), range(args.registrations)))
                    elapsed = time.perf_counter() - started
                    server_cpu = process_cpu_seconds(service.pid) - cpu_before
        finally:
            if schema is not None:
                drop_schema(server_url, schema)
    latencies = sorted(latency for result in results for latency in result)
    database = env["GONGYOU_DATABASE_URL"].split(":", 1)[0]
    print(f"database: {database}, server workers: {args.workers}, client threads: {args.concurrency}")
    print(f"server ready in {ready:.1f} s")
    print(f"{args.registrations} complete training registrations ({len(latencies)} messages) in {elapsed:.2f} s")
    print(f"registrations/second: {args.registrations / elapsed:.1f}")
    print(f"messages/second: {len(latencies) / elapsed:.1f}")
    print(f"message latency p50 {statistics.median(latencies) * 1000:.1f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms")
    # CPU time is what a loaded machine changes least: the figure to compare two versions by
    print(f"server CPU: {server_cpu / len(latencies) * 1000:.2f} ms per message")
    return 0


if __name__ == "__main__":
    sys.exit(main())
