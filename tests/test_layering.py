"""The layers: business code (bot/ outside the HTTP layer, scheduler/) never imports the HTTP layer, and only
the composition point, the CLI and the HTTP layer import scheduler/."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HTTP_LAYER = ("bot/api/", "bot/console/", "bot/channels/", "bot/app.py")
MAY_IMPORT_SCHEDULER = ("bot/app.py", "bot/cli.py", "bot/api/", "bot/console/")


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py") if "migrations" not in p.parts)


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_business_code_never_imports_the_http_layer() -> None:
    http = ("fastapi", "starlette", "bot.api", "bot.console")
    offenders = {
        relative(p): sorted(n for n in imports(p) if n.split(".")[0] in http or n.startswith(http))
        for p in modules("bot", "scheduler") if not relative(p).startswith(HTTP_LAYER)
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_the_composition_point_cli_and_http_layer_import_scheduler() -> None:
    offenders = {
        relative(p) for p in modules("bot")
        if not relative(p).startswith(MAY_IMPORT_SCHEDULER) and any(n.split(".")[0] == "scheduler" for n in imports(p))
    }
    assert offenders == set()


def test_scheduler_never_imports_the_composition_point() -> None:
    """scheduler/ is handed what it runs on (senders, knowledge, the dispatcher beside the schedules) by
    bot.app / bot.cli; it never composes the pipeline itself, not even lazily inside a function."""
    composition = ("bot.app", "bot.cli")

    def named(path: Path) -> set[str]:  # also `from bot import app`
        names = imports(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        return names

    offenders = {
        relative(p): sorted(n for n in named(p) if n in composition or n.startswith(tuple(f"{c}." for c in composition)))
        for p in modules("scheduler")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_production_code_holds_no_test_doubles() -> None:
    """Recording senders, JSON-lines gateways and synthetic rosters live in tests/ (benchmarks import them from
    there); nothing in bot/ or scheduler/ imports tests/ or defines them."""
    doubles = ("RecordingSender", "JsonlGateway", "jsonl_senders", "insert_labourers")
    offenders = {}
    for path in modules("bot", "scheduler"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef))} & set(doubles)
        from_tests = {n for n in imports(path) if n.split(".")[0] == "tests"}
        if defined or from_tests:
            offenders[relative(path)] = sorted(defined | from_tests)
    assert offenders == {}
