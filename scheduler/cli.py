"""`gongyou dispatch` (a dispatch worker) and `gongyou scheduler` (the schedule runner), added to bot.cli.

What they run on is handed in by bot.cli from the composition point (bot.app.dispatch_parts, bot.app.
campaign_scheduler): the senders, the knowledge snapshot, the scheduler with its dispatcher. Nothing here
composes the pipeline or imports the web app."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

# (settings, sessionmaker, *, spec) → (senders, knowledge): what a dispatch worker sends through.
DispatchParts = Callable[..., tuple[dict[str, Any], Any]]
# settings → a CampaignScheduler (its engine migrated) that can run a dispatcher beside it.
MakeScheduler = Callable[[Any], Any]


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _metrics_port(args: argparse.Namespace, settings, engine, role: str, read) -> None:  # noqa: ANN001
    """This role's figures on a port of its own (bot.metrics), when one is given."""
    from bot.metrics import ProcessFigures, process_metrics, serve_on_port

    process_metrics().watch_pool(engine, role)
    port = args.metrics_port if args.metrics_port is not None else settings.metrics_port
    if port:
        serve_on_port(port, settings.metrics_host, [ProcessFigures(read)])


def dispatch(args: argparse.Namespace, *, parts: DispatchParts) -> int:
    from bot.db import make_engine, make_sessionmaker, migrate
    from bot.logs import configure_logging
    from bot.settings import get_settings
    from scheduler.dispatch import DispatchConfig, Dispatcher

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    engine = make_engine(settings.database_url)
    migrate(engine)
    factory = make_sessionmaker(engine)
    overrides: dict[str, object] = {}
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    if args.lease_seconds:
        overrides["lease"] = timedelta(seconds=args.lease_seconds)
        overrides["unknown_recheck"] = min(timedelta(seconds=args.lease_seconds), DispatchConfig.unknown_recheck)
    config = DispatchConfig.from_settings(settings, **overrides)
    if args.rate is not None:
        config = DispatchConfig(**{**config.__dict__, "rates": {c: args.rate for c in config.rates}})
    if args.always_open:
        config = DispatchConfig(**{**config.__dict__, "windows": {}})
    senders, knowledge = parts(settings, factory, spec=args.senders or settings.dispatch_senders)
    dispatcher = Dispatcher(factory, senders, config, worker_id=args.worker_id, knowledge=knowledge)
    _metrics_port(args, settings, engine, "dispatch", lambda: {
        (f"gongyou_dispatch_{name}", f"Deliveries this worker {name} since it started"): getattr(dispatcher.totals, name)
        for name in ("claimed", "sent", "retried", "failed", "skipped", "fallback", "reconciled")})
    logging.getLogger(__name__).info("dispatch worker started", extra={"worker": dispatcher.worker_id})
    totals = dispatcher.run(stop=_stop_on_signals(), idle_sleep=args.idle_sleep, until_idle=args.until_idle)
    print(f"sent={totals.sent} retried={totals.retried} failed={totals.failed} skipped={totals.skipped} "
          f"fallback={totals.fallback} reconciled={totals.reconciled} unknown={totals.unknown}", flush=True)
    engine.dispose()
    return 0


def run_scheduler(args: argparse.Namespace, *, make_scheduler: MakeScheduler) -> int:
    from bot.logs import configure_logging
    from bot.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    scheduler = make_scheduler(settings)
    _metrics_port(args, settings, scheduler.engine, "scheduler", lambda: {
        ("gongyou_scheduler_is_leader", "1 while this process runs the schedules"): float(scheduler.is_leader)})
    stop = _stop_on_signals()
    scheduler.start(with_dispatcher=args.with_dispatcher)
    try:
        stop.wait()
    finally:
        scheduler.shutdown()
    return 0


def add_commands(sub: argparse._SubParsersAction, *, parts: DispatchParts, make_scheduler: MakeScheduler) -> None:
    worker = sub.add_parser("dispatch", help="run a broadcast dispatch worker")
    worker.add_argument("--worker-id", default=None)
    worker.add_argument("--batch-size", type=int, default=0)
    worker.add_argument("--lease-seconds", type=int, default=0)
    worker.add_argument("--rate", type=float, default=None, help="messages/second per channel (0 = unlimited)")
    worker.add_argument("--always-open", action="store_true", help="ignore allowed hours (tests, benchmarks)")
    worker.add_argument("--until-idle", action="store_true", help="exit when nothing is left to send")
    worker.add_argument("--idle-sleep", type=float, default=1.0)
    worker.add_argument("--senders", default="", help="module:factory(settings, sessionmaker) -> senders")
    worker.add_argument("--metrics-port", type=int, default=None, help="serve metrics here (GONGYOU_METRICS_PORT)")
    worker.set_defaults(func=partial(dispatch, parts=parts))

    runner = sub.add_parser("scheduler", help="run campaign schedules (one leader; others stand by)")
    runner.add_argument("--with-dispatcher", action="store_true", help="also run a dispatcher in this process")
    runner.add_argument("--metrics-port", type=int, default=None, help="serve metrics here (GONGYOU_METRICS_PORT)")
    runner.set_defaults(func=partial(run_scheduler, make_scheduler=make_scheduler))
