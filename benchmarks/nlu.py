"""NLU router speed: messages/s, p50/p99 latency over the dev set, cold start in a fresh process.

    .venv/bin/python benchmarks/nlu.py [--file tests/data/nlu_dev.jsonl] [--rounds 5]

Both clocks are reported: CPU time (this thread's, per message) says what the router costs and does
not move when other work shares the machine; wall-clock is what a labourer waits on an idle one.
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

# timed from before the first import: numpy, jieba's dictionary, the knowledge and the model all count
COLD_START = (
    "import time; t = time.perf_counter(); c = time.process_time(); from pathlib import Path; "
    "from bot.nlu.router import get_router; "
    "r = get_router(Path({kdir!r})); r.parse('老板欠我三个月工资'); "
    "print(time.perf_counter() - t, time.process_time() - c)"
)


def cold_start(knowledge_dir: Path) -> tuple[float, float]:
    """(wall, cpu) seconds; the first run fills the start-up cache, as any deployed instance has it."""
    runs = []
    for _ in range(4):
        out = subprocess.run(
            [sys.executable, "-c", COLD_START.format(kdir=str(knowledge_dir))],
            cwd=ROOT, capture_output=True, text=True, check=True, env=dict(os.environ),
        )
        wall, cpu = map(float, out.stdout.strip().splitlines()[-1].split())
        runs.append((wall, cpu))
    warm = runs[1:]
    return statistics.median(w for w, _ in warm), statistics.median(c for _, c in warm)


def _percentiles(samples: list[float]) -> tuple[float, float, float]:
    samples = sorted(samples)
    return (statistics.median(samples) * 1000, samples[int(len(samples) * 0.99) - 1] * 1000,
            samples[-1] * 1000)


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
    wall: list[float] = []
    cpu: list[float] = []
    perf, thread = time.perf_counter, time.thread_time
    start_wall, start_cpu = perf(), time.process_time()
    for _ in range(args.rounds):
        for t in texts:
            w0, c0 = perf(), thread()
            router.parse(t)
            c1, w1 = thread(), perf()
            wall.append(w1 - w0)
            cpu.append(c1 - c0)
    total_wall, total_cpu = perf() - start_wall, time.process_time() - start_cpu
    print(f"messages: {len(wall)} ({len(texts)} x {args.rounds})")
    print(f"throughput: {len(cpu) / total_cpu:,.0f} messages/s (CPU time), "
          f"{len(wall) / total_wall:,.0f} messages/s (wall-clock)")
    print("latency (CPU time)   p50: {:.3f} ms  p99: {:.3f} ms  max: {:.3f} ms".format(*_percentiles(cpu)))
    print("latency (wall-clock) p50: {:.3f} ms  p99: {:.3f} ms  max: {:.3f} ms".format(*_percentiles(wall)))
    cold_wall, cold_cpu = cold_start(args.knowledge_dir)
    print(f"cold start: {cold_wall:.3f} s wall-clock, {cold_cpu:.3f} s CPU time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
