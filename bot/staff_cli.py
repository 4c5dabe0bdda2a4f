"""`gongyou staff add|list`: staff accounts from the command line (the only way to make the first admin in
production), and the development-only first admin `gongyou serve` makes on an empty database."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bot.models.staff import ROLES


def add_commands(sub: Any) -> None:
    staff = sub.add_parser("staff", help="staff accounts of the console and the API")
    commands = staff.add_subparsers(dest="staff_command", required=True)

    add = commands.add_parser("add", help="create an account; the password is read from standard input (one line)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--county", action="append", default=[], help="may repeat for help desk (none = all counties)")
    add.add_argument("--township")
    add.add_argument("--village")
    add.add_argument("--update", action="store_true", help="change an existing account (password, role, area)")
    add.set_defaults(func=_add)

    listing = commands.add_parser("list", help="list the accounts")
    listing.set_defaults(func=_list)


def _open() -> tuple[Any, Any]:
    from bot.db import make_engine, make_sessionmaker, migrate
    from bot.settings import get_settings

    settings = get_settings()
    engine = make_engine(settings.database_url)
    migrate(engine)
    return settings, make_sessionmaker(engine)


def _add(args: argparse.Namespace) -> int:
    from bot.auth import AreaError, cli_actor, create_staff, find_staff, resolve_areas, update_staff
    from bot.db import session_scope
    from bot.errors import Conflict, Invalid
    from bot.knowledge import load_knowledge

    password = sys.stdin.readline().rstrip("\r\n")
    settings, factory = _open()
    try:
        areas = resolve_areas(args.role, counties=args.county, township=args.township, village=args.village,
                              regions=load_knowledge(settings.knowledge_dir).regions)
        with session_scope(factory) as session:
            existing = find_staff(session, args.username.strip())
            if existing is not None and args.update:
                update_staff(session, cli_actor(), existing, password=password or None, role=args.role, areas=areas)
                print(f"staff account {existing.username} updated")
                return 0
            create_staff(session, cli_actor(), username=args.username, password=password, role=args.role, areas=areas)
    except (AreaError, Conflict, Invalid) as exc:
        print(f"staff account not saved: {exc}", file=sys.stderr)
        return 1
    print(f"staff account {args.username.strip()} ({args.role}) created")
    return 0


def _list(_args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from bot.db import session_scope
    from bot.models import Staff

    _settings, factory = _open()
    with session_scope(factory) as session:
        for staff in session.scalars(select(Staff).order_by(Staff.username)):
            areas = "; ".join("".join(a.values()) for a in staff.areas) or "all"
            print(f"{staff.username}\t{staff.role}\t{areas}\t{'active' if staff.active else 'disabled'}")
    return 0


def announce_first_admin(settings: Any, engine: Any) -> None:
    """Called by `gongyou serve` before the workers start: leave a way in on a fresh database."""
    from sqlalchemy import func, select

    from bot.auth import DEV_ADMIN, create_dev_admin
    from bot.db import make_sessionmaker, session_scope
    from bot.models import Staff

    with session_scope(make_sessionmaker(engine)) as session:
        if session.scalar(select(func.count()).select_from(Staff)):
            return
        password = create_dev_admin(session, settings)
    if password is None:  # production: no account is ever made for you
        print("No staff account exists yet. Create the first admin with:\n"
              "  echo 'a-long-password' | gongyou staff add NAME --role admin", file=sys.stderr, flush=True)
        return
    print(f"\nDevelopment only: created staff account '{DEV_ADMIN}' with password  {password}\n"
          f"  (shown once; sign in at /console/login; change it with "
          f"`gongyou staff add {DEV_ADMIN} --role admin --update`)\n", flush=True)
