"""`gongyou` (also `python -m bot`): serve, chat, nlu-eval, migrate, dispatch, scheduler, staff, roster."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from bot.settings import Settings
    from bot.snapshot import KnowledgeStore
    from scheduler.jobs import CampaignScheduler
    from scheduler.senders import Sender


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bot.db import make_engine, migrate
    from bot.settings import get_settings

    settings = get_settings()
    if args.workers > 1:
        # Before any worker starts (and imports prometheus_client): the workers count into files there and
        # any worker's /metrics adds them up (bot.metrics).
        from bot.metrics import multiprocess_dir, prepare_multiprocess_dir

        prepare_multiprocess_dir(multiprocess_dir() or settings.resolved_cache_dir / "metrics")
    # Migrate once here, before any worker starts, so N workers never race on the schema.
    engine = make_engine(settings.database_url)
    migrate(engine)
    from bot.staff_cli import announce_first_admin

    announce_first_admin(settings, engine)  # a fresh development database gets an admin to sign in with
    uvicorn.run(
        "bot.app:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level.lower(),
        access_log=args.access_log,
    )
    return 0


def _chat(args: argparse.Namespace) -> int:
    from bot.channels.base import Address, InboundMessage
    from bot.app import compose
    from bot.conversation import handle_message
    from bot.db import make_engine, make_sessionmaker, migrate
    from bot.logs import configure_logging
    from bot.settings import get_settings

    settings = get_settings()
    configure_logging("WARNING", json_lines=False)
    engine = make_engine(settings.database_url)
    migrate(engine)
    services = compose(settings, make_sessionmaker(engine))
    print("工友对话（输入 exit 或按 Ctrl-D 退出）", flush=True)
    for line in sys.stdin:
        text = line.rstrip("\n")
        if text.strip().lower() in {"exit", "quit"}:
            break
        outcome = handle_message(services, InboundMessage(Address("simulator", args.user), text=text))
        for reply in outcome.replies:
            print(f"工友：{reply.plain_text()}", flush=True)
    return 0


def _nlu_eval(args: argparse.Namespace) -> int:
    from bot.nlu.evaluate import run_eval
    from bot.settings import get_settings

    return run_eval(
        Path(args.file),
        get_settings().knowledge_dir,
        min_accuracy=args.min_accuracy,
        min_topic_accuracy=args.min_topic_accuracy,
        half=args.half,
        baseline=not args.no_baseline,
    )


def _migrate(_args: argparse.Namespace) -> int:
    from bot.db import make_engine, migrate
    from bot.settings import get_settings

    migrate(make_engine(get_settings().database_url))
    print("database is at the newest revision")
    return 0


def _wechat_menu(args: argparse.Namespace) -> int:
    from bot.channels.wechat_api import WeChatApiError
    from bot.channels.wechat_menu import create_menu
    from bot.settings import get_settings

    try:
        create_menu(get_settings(), Path(args.file) if args.file else None)
    except (ValueError, WeChatApiError) as exc:
        print(f"menu not created: {exc}", file=sys.stderr)
        return 1
    print("menu created")
    return 0


def _rotate_data_key(args: argparse.Namespace) -> int:
    import os

    from bot.db import make_engine, migrate
    from bot.rotation import RotationError, rotate
    from bot.settings import get_settings

    settings = get_settings()
    engine = make_engine(settings.database_url)
    migrate(engine)
    try:
        changed = rotate(engine, settings.data_key, os.environ.get("GONGYOU_NEW_DATA_KEY", ""), dry_run=args.dry_run)
    except RotationError as exc:
        print(f"data key not rotated: {exc}", file=sys.stderr)
        return 1
    for column, count in sorted(changed.items()):
        print(f"{column}: {count}")
    print("dry run: nothing changed" if args.dry_run else
          "re-encrypted with the new key: now set GONGYOU_DATA_KEY to it and start the services")
    return 0


def _dispatch_parts(settings: Settings, factory: sessionmaker[Session], *,
                    spec: str = "") -> tuple[dict[str, Sender], KnowledgeStore]:
    """A dispatch worker's senders and knowledge, from the composition point (imported only when run)."""
    from bot.app import dispatch_parts

    return dispatch_parts(settings, factory, spec=spec)


def _campaign_scheduler(settings: Settings) -> CampaignScheduler:
    """`gongyou scheduler`: its own engine, migrated, and the composed scheduler on it."""
    from bot.app import campaign_scheduler
    from bot.db import make_engine, make_sessionmaker, migrate

    engine = make_engine(settings.database_url)
    migrate(engine)
    return campaign_scheduler(settings, engine, make_sessionmaker(engine))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gongyou", description="工友: WeChat/SMS assistant for rural labourers")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the web service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--access-log", action="store_true")
    serve.set_defaults(func=_serve)

    chat = sub.add_parser("chat", help="talk to the bot in the terminal")
    chat.add_argument("--user", default="terminal")
    chat.set_defaults(func=_chat)

    nlu_eval = sub.add_parser("nlu-eval", help="evaluate the intent router on a labelled JSONL file")
    nlu_eval.add_argument("file")
    nlu_eval.add_argument("--min-accuracy", type=float, default=None)
    nlu_eval.add_argument("--min-topic-accuracy", type=float, default=None)
    nlu_eval.add_argument("--half", choices=("A", "B"), default=None, help="only the rows of one fixed half")
    nlu_eval.add_argument("--no-baseline", action="store_true", help="skip the side-by-side baseline")
    nlu_eval.set_defaults(func=_nlu_eval)

    menu = sub.add_parser("wechat-menu", help="create the Official Account menu from knowledge/wechat_menu.yaml")
    menu.add_argument("--file", default=None, help="another menu file")
    menu.set_defaults(func=_wechat_menu)

    migrate = sub.add_parser("migrate", help="bring the database schema up to date")
    migrate.set_defaults(func=_migrate)

    rotate = sub.add_parser("rotate-data-key", help="re-encrypt personal data: GONGYOU_DATA_KEY (current) -> "
                            "GONGYOU_NEW_DATA_KEY; stop the services first")
    rotate.add_argument("--dry-run", action="store_true", help="count what would change, change nothing")
    rotate.set_defaults(func=_rotate_data_key)

    from scheduler.cli import add_commands as add_scheduler_commands

    add_scheduler_commands(sub, parts=_dispatch_parts, make_scheduler=_campaign_scheduler)  # dispatch, scheduler
    from bot.staff_cli import add_commands as add_staff_commands

    add_staff_commands(sub)  # staff add, staff list
    from bot.roster_cli import add_commands as add_roster_commands

    add_roster_commands(sub)  # roster import
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
