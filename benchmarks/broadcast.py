"""Broadcast benchmark: plan a campaign for 250,000 labourers, dispatch it to loopback gateways.

    python benchmarks/broadcast.py [--labourers 250000] [--database-url URL] [--rate 200] [--rate-seconds 10]

Prints: bulk insert seconds, planning seconds (one INSERT … SELECT), dispatch messages/second with rate
limits off (in-process JSON-lines loopback gateways, one worker), peak memory (tracemalloc of the
planning phase; the process's max RSS after dispatch), then a run paced at --rate messages/second for
--rate-seconds seconds with the measured rate and its deviation. Targets: planning <= 10 s on SQLite,
dispatch >= 1,000 msg/s, paced rate within 5 % of N.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select

from bot.db import make_engine, make_sessionmaker, migrate, session_scope
from bot.models import CampaignStep, Delivery
from scheduler.campaigns import transition
from scheduler.dispatch import DispatchConfig, Dispatcher
from scheduler.planning import fire_step
from tests.doubles import jsonl_senders
from tests.synthetic import insert_labourers, make_campaign


def _plan(factory, filter_: dict | None = None) -> tuple[int, float]:
    with session_scope(factory) as s:
        campaign = make_campaign(s, filter=filter_ or {}, channels=["wechat", "sms"])
        transition(s, campaign, "scheduled")
        step_id = s.scalars(select(CampaignStep.id).where(CampaignStep.campaign_id == campaign.id)).one()
    started = time.perf_counter()
    with session_scope(factory) as s:
        planned = fire_step(s, step_id).planned
    return planned, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labourers", type=int, default=250_000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line too")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="gongyou-bench-"))
    url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    engine = make_engine(url)
    migrate(engine)
    factory = make_sessionmaker(engine)
    figures: dict[str, float | int | str] = {"database": engine.dialect.name, "labourers": args.labourers}

    started = time.perf_counter()
    with session_scope(factory) as s:
        # Every fourth person has no WeChat (SMS only); phones share one ciphertext to keep set-up quick.
        insert_labourers(s, args.labourers - args.labourers // 4, encrypt_phones=False)
        insert_labourers(s, args.labourers // 4, start=args.labourers, openid=None, encrypt_phones=False)
    figures["insert_seconds"] = round(time.perf_counter() - started, 2)
    print(f"inserted {args.labourers:,} labourers in {figures['insert_seconds']} s", flush=True)

    tracemalloc.start()
    planned, seconds = _plan(factory)
    _, plan_peak = tracemalloc.get_traced_memory()
    figures["planning_seconds"] = round(seconds, 2)
    figures["planned"] = planned
    print(f"planning: {planned:,} deliveries in {seconds:.2f} s (one INSERT … SELECT)", flush=True)

    tracemalloc.stop()  # tracing every allocation would halve the dispatch rate: RSS tells its memory
    gateways = jsonl_senders(workdir / "gateway", fsync=False)
    unlimited = DispatchConfig(rates={}, windows={}, batch_size=args.batch_size, weekly_cap=0)
    dispatcher = Dispatcher(factory, gateways, unlimited, worker_id="bench")
    started = time.perf_counter()
    totals = dispatcher.run(until_idle=True, settle=False)
    elapsed = time.perf_counter() - started
    dispatch_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with session_scope(factory) as s:
        sent_rows = s.scalar(select(func.count()).where(Delivery.status == "sent"))
    logged = sum(len(path.read_text(encoding="utf-8").splitlines()) for path in (workdir / "gateway").glob("*.jsonl"))
    figures["dispatch_messages"] = totals.sent
    figures["dispatch_seconds"] = round(elapsed, 2)
    figures["dispatch_msgs_per_second"] = round(totals.sent / elapsed, 1)
    figures["peak_traced_mb_planning"] = round(plan_peak / 2**20, 1)
    figures["max_rss_mb_after_dispatch"] = round(dispatch_rss, 1)
    print(f"dispatch: {totals.sent:,} messages in {elapsed:.2f} s = {totals.sent / elapsed:,.0f} msg/s "
          f"(gateway logs {logged:,} lines, {sent_rows:,} rows sent)", flush=True)
    assert totals.sent == planned == sent_rows == logged, "every planned delivery is sent exactly once"

    # Paced run: a fresh campaign to the first N*T people, at N/s.
    target = int(args.rate * args.rate_seconds)
    _plan(factory, {"channel": "wechat"})  # plans everyone with WeChat; we time the first `target`
    paced = Dispatcher(factory, jsonl_senders(workdir / "paced", fsync=False),
                       DispatchConfig(rates={"wechat": args.rate, "sms": args.rate}, windows={},
                                      batch_size=max(1, int(args.rate)), weekly_cap=0), worker_id="paced")
    started = time.perf_counter()
    while paced.totals.sent < target:
        paced.run_once()
    elapsed = time.perf_counter() - started
    # Measured at the gateway: N*T messages span (N*T - 1) intervals from the first to the last arrival.
    arrivals = sorted(json.loads(line)["at"] for path in (workdir / "paced").glob("*.jsonl")
                      for line in path.read_text(encoding="utf-8").splitlines())
    measured = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    figures["paced_target_per_second"] = args.rate
    figures["paced_measured_per_second"] = round(measured, 1)
    figures["paced_deviation_percent"] = round(100 * abs(measured - args.rate) / args.rate, 2)
    print(f"paced: {paced.totals.sent:,} messages in {elapsed:.2f} s = {measured:.1f} msg/s "
          f"(target {args.rate:g}/s, deviation {figures['paced_deviation_percent']} %)", flush=True)

    figures["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(f"peak memory: planning {figures['peak_traced_mb_planning']} MB traced; process max RSS "
          f"{figures['max_rss_mb_after_dispatch']} MB after dispatch, {figures['max_rss_mb']} MB at the end", flush=True)
    if args.json:
        print(json.dumps(figures, ensure_ascii=False))
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
