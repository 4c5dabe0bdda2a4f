"""`gongyou roster import FILE [--dry-run]`: a roster file from the command line, as the operator (who sees
every area). The same validation as the console and the API; --dry-run writes nothing but the report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

SHOWN_ERRORS = 50


def add_commands(sub: Any) -> None:
    roster = sub.add_parser("roster", help="the labourer roster (一库)")
    commands = roster.add_subparsers(dest="roster_command", required=True)
    imp = commands.add_parser("import", help="import a roster file (.xlsx or .csv): validate, then write the valid rows")
    imp.add_argument("file")
    imp.add_argument("--dry-run", action="store_true", help="only validate and report; write no labourer")
    imp.set_defaults(func=_import)


def _import(args: argparse.Namespace) -> int:
    from bot.auth import cli_actor
    from bot.db import make_engine, make_sessionmaker, migrate, session_scope
    from bot.errors import Conflict, Invalid
    from bot.knowledge import load_knowledge
    from bot.roster import commit_import, validate_upload
    from bot.settings import get_settings

    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 1
    settings = get_settings()
    engine = make_engine(settings.database_url)
    migrate(engine)
    factory = make_sessionmaker(engine)
    regions = load_knowledge(settings.knowledge_dir).regions
    actor = cli_actor()
    try:
        with session_scope(factory) as session:
            upload = validate_upload(session, actor, filename=path.name, data=data, regions=regions,
                                     data_key=settings.data_key)
            import_id, errors = upload.id, list(upload.errors)
            print(f"rows {upload.rows}  valid {upload.valid}  to create {upload.to_create}  "
                  f"to update {upload.to_update}  problems {len(errors)}")
        for error in errors[:SHOWN_ERRORS]:
            print(f"  row {error['row']}  {error['field']}: {error['problem']}")
        if len(errors) > SHOWN_ERRORS:
            print(f"  … and {len(errors) - SHOWN_ERRORS} more")
        if args.dry_run:
            print("dry run: nothing written")
            return 0
        counts = commit_import(factory, import_id, actor, data_key=settings.data_key)
    except (Invalid, Conflict) as exc:
        print(f"roster not imported: {exc}", file=sys.stderr)
        return 1
    print(f"created {counts['created']}  updated {counts['updated']}  skipped {counts['skipped']}")
    return 0
