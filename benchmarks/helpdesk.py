"""Help-desk queue benchmark: list and count the queue over many cases, as a county desk and an admin.

    python benchmarks/helpdesk.py [--labourers 250000] [--complaints 20000] [--handoffs 3000]
                                  [--database-url URL] [--repeat 30] [--json]

Fills a fresh database (a SQLite file in a temporary folder by default; for a PostgreSQL URL, a scratch
schema there, dropped afterwards) with --labourers registry rows and
--complaints complaints (each with its ticket) plus --handoffs hand-off tickets, spread over the counties
and townships of knowledge/regions.yaml, a year of creation times, every status (most closed), some
urgent, some overdue, some with money recovered (on PostgreSQL then ANALYZE, as autovacuum would).
Then times, p50 and p95 in milliseconds over --repeat runs: the first page and total of the queue for
several filters (bot.helpdesk.list_tickets), the counters (queue_counts), and over HTTP the API's
GET /api/helpdesk/tickets, the console's queue page (page, counts, money recovered by county, the
member's reminders), a filtered queue page, and a case page. Target: p95 <= 300 ms per page.
(`--tickets N`, as benchmarks/run_all.py passes it: N cases, 85 % complaints, and 12 N labourers.)
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient
from sqlalchemy import insert, text

from bot.app import create_app
from bot.auth import Actor, open_session
from bot.console.deps import SESSION_COOKIE, signer
from bot.db import session_scope
from bot.helpdesk import QueueFilter, list_tickets, queue_counts
from bot.knowledge import load_knowledge
from bot import pii
from bot.models import Complaint, Labourer, Staff, Ticket
from bot.settings import Settings
from tests.synthetic import labourer_row, phone_for

STATUSES = (("closed", 60), ("resolved", 10), ("new", 8), ("assigned", 7), ("in_progress", 10),
            ("waiting_on_labourer", 5))
CATEGORIES = ("欠薪", "欠薪", "欠薪", "工伤", "未签合同", "社保", "中介收费", "其他")
DESK_MEMBERS = [f"desk-{i:02d}" for i in range(12)]


def _places(settings: Settings) -> list[tuple[str, str]]:
    regions = load_knowledge(settings.knowledge_dir).regions or {}
    return [(c["name"], t["name"]) for c in regions.get("counties") or () for t in c.get("townships") or ()]


def fill(factory: Any, settings: Settings, labourers: int, complaints: int, handoffs: int,
         seed: int = 12) -> float:
    rng = random.Random(seed)
    places = _places(settings)
    statuses = [s for s, weight in STATUSES for _ in range(weight)]
    now = datetime.now(UTC)
    started = time.perf_counter()
    shared_phone = pii.encrypt(phone_for(0), settings.data_key)  # encrypting 250,000 phones would cost minutes
    with session_scope(factory) as session:
        batch: list[dict[str, Any]] = []
        for n in range(1, labourers + 1):
            county, township = rng.choice(places)
            row = labourer_row(n, now=now, phone=None, county=county, township=township)
            row.update(phone_enc=shared_phone, phone_hash=f"h{n}", phone_masked="139****0000")
            batch.append(row)
            if len(batch) == 5000:
                session.execute(insert(Labourer), batch)
                batch = []
        if batch:
            session.execute(insert(Labourer), batch)
        complaint_rows: list[dict[str, Any]] = []
        ticket_rows: list[dict[str, Any]] = []
        for i in range(complaints + handoffs):
            created = now - timedelta(minutes=rng.randrange(365 * 24 * 60))
            status = rng.choice(statuses)
            county, township = rng.choice(places) if rng.random() > 0.02 else (None, None)
            is_open = status not in ("closed", "resolved")
            is_complaint = i < complaints
            category = rng.choice(CATEGORIES) if is_complaint else None
            urgent = rng.random() < 0.05
            phone = f"13{rng.randrange(10)}****{rng.randrange(10000):04d}"
            labourer_id = rng.randrange(1, labourers + 1) if labourers and rng.random() < 0.8 else None
            assignee = None if status == "new" else rng.choice(DESK_MEMBERS)
            if is_complaint:
                complaint_rows.append({
                    "id": i + 1, "ticket_no": f"WQ-{created:%Y%m%d}-{i:06d}", "labourer_id": labourer_id,
                    "channel": "sms", "user_id": f"u{i}", "category": category, "employer": f"某某公司{i % 5000}",
                    "workers_affected": rng.choice((1, 1, 1, 3, 12)), "urgent": urgent, "county": county,
                    "township": township, "status": status, "assignee": assignee, "contact_phone_masked": phone,
                    "recovered_amount": rng.randrange(1000, 50000) if status in ("resolved", "closed")
                    and rng.random() < 0.3 else None, "created_at": created, "updated_at": created})
            ticket_rows.append({
                "ticket_no": f"WQ-{created:%Y%m%d}-{i:06d}" if is_complaint else f"RG-{i}",
                "kind": "complaint" if is_complaint else "handoff", "complaint_id": i + 1 if is_complaint else None,
                "labourer_id": labourer_id,
                "channel": rng.choice(("wechat", "wechat", "sms", "simulator")), "user_id": f"u{i}",
                "category": category, "urgent": urgent, "employer": f"某某公司{i % 5000}" if is_complaint else None,
                "contact_phone_masked": phone if is_complaint else None,
                "county": county, "township": township, "status": status, "assignee": assignee,
                "created_at": created, "updated_at": created, "paused_seconds": 0.0,
                "first_response_due_at": created + timedelta(days=1) if is_open else None,
                "resolve_due_at": created + timedelta(days=rng.choice((3, 7, 400))) if is_open else None,
                "first_response_at": created + timedelta(hours=2) if status != "new" else None,
                "closed_at": created + timedelta(days=5) if status == "closed" else None,
            })
            if len(ticket_rows) == 5000:
                session.execute(insert(Complaint), complaint_rows) if complaint_rows else None
                session.execute(insert(Ticket), ticket_rows)
                complaint_rows, ticket_rows = [], []
        if complaint_rows:
            session.execute(insert(Complaint), complaint_rows)
        if ticket_rows:
            session.execute(insert(Ticket), ticket_rows)
    return time.perf_counter() - started


def timed(call: Any, repeat: int) -> dict[str, float]:
    call()  # warm: statement caches, the database's pages
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 1),
            "p95_ms": round(samples[min(len(samples) - 1, int(round(0.95 * (len(samples) - 1))))], 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labourers", type=int, default=250_000)
    parser.add_argument("--complaints", type=int, default=20_000)
    parser.add_argument("--handoffs", type=int, default=3_000)
    parser.add_argument("--tickets", type=int, default=0, help="N cases (85%% complaints) and 12 N labourers")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line too")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="gongyou-bench-"))
    url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    if url.startswith("postgres"):  # a scratch schema of its own, dropped afterwards (benchmarks/service.py)
        from service import drop_schema, scratch_schema

        schema, scoped = scratch_schema(url)
        try:
            return run(args, scoped)
        finally:
            drop_schema(url, schema)
    return run(args, url)


def run(args: argparse.Namespace, url: str) -> int:
    settings = Settings(database_url=url, demo_data=False, log_json=False, knowledge_poll_seconds=0)
    app = create_app(settings, configure_logs=False)
    factory = app.state.sessionmaker
    if args.tickets:
        args.complaints = int(args.tickets * 0.85)
        args.handoffs, args.labourers = args.tickets - args.complaints, args.tickets * 12
    seconds = fill(factory, settings, args.labourers, args.complaints, args.handoffs)
    if app.state.engine.dialect.name == "postgresql":  # what autovacuum does soon after a bulk load
        with app.state.engine.begin() as conn:
            for table in ("labourer", "complaint", "ticket"):
                conn.execute(text(f"ANALYZE {table}"))
    county = _places(settings)[0][0]
    township = _places(settings)[0][1]
    figures: dict[str, Any] = {"database": app.state.engine.dialect.name, "labourers": args.labourers,
                               "complaints": args.complaints, "tickets": args.complaints + args.handoffs,
                               "fill_seconds": round(seconds, 1)}
    with session_scope(factory) as session:  # an open complaint of the desk's county, for the case page
        case_no = session.scalar(text("SELECT ticket_no FROM ticket WHERE county = :c AND kind = 'complaint' "
                                      "AND status = 'in_progress' ORDER BY created_at DESC LIMIT 1"), {"c": county})

    with session_scope(factory) as session:
        staff = Staff(username="desk-00", password_hash="x", role="helpdesk", areas=[{"county": county}])
        admin = Staff(username="bench-admin", password_hash="x", role="admin", areas=[])
        session.add_all([staff, admin])
        session.flush()
        token, _ = open_session(session, staff, kind="token", ip=None, user_agent="bench", settings=settings)
        cookie, _ = open_session(session, staff, kind="console", ip=None, user_agent="bench", settings=settings)
    desk, boss = Actor.of(staff), Actor.of(admin)

    cases = {
        "admin open queue": (boss, QueueFilter(open_only=True)),
        "county desk open queue": (desk, QueueFilter(open_only=True)),
        "county desk status=new": (desk, QueueFilter(status="new")),
        "county desk overdue": (desk, QueueFilter(overdue=True, open_only=True)),
        "county desk township": (desk, QueueFilter(township=township, open_only=True)),
        "county desk mine": (desk, QueueFilter(assignee="desk-00", open_only=True)),
        "county desk all statuses": (desk, QueueFilter()),
    }
    for name, (actor, filters) in cases.items():
        def page(actor: Actor = actor, filters: QueueFilter = filters) -> None:
            with factory() as session:
                list_tickets(session, actor, filters)
        figures[name] = timed(page, args.repeat)
    for name, actor in (("counts, county desk", desk), ("counts, admin", boss)):
        def counts(actor: Actor = actor) -> None:
            with factory() as session:
                queue_counts(session, actor)
        figures[name] = timed(counts, args.repeat)

    with TestClient(app) as client:
        api = {"Authorization": f"Bearer {token}"}
        client.cookies.set(SESSION_COOKIE, signer(settings, "session").sign(cookie).decode(), path="/console")

        def get(path: str, headers: dict[str, str] | None = None) -> None:
            response = client.get(path, headers=headers)
            assert response.status_code == 200, response.text[:200]

        figures["HTTP GET /api/helpdesk/tickets"] = timed(lambda: get("/api/helpdesk/tickets", api), args.repeat)
        figures["HTTP GET /api/helpdesk/tickets?overdue=true"] = timed(
            lambda: get("/api/helpdesk/tickets?overdue=true", api), args.repeat)
        figures["HTTP GET /console/helpdesk (page + counts)"] = timed(lambda: get("/console/helpdesk"), args.repeat)
        figures["HTTP GET /console/helpdesk?view=overdue&category=欠薪"] = timed(
            lambda: get("/console/helpdesk?view=overdue&category=欠薪"), args.repeat)
        figures["HTTP GET /console/helpdesk?view=mine"] = timed(lambda: get("/console/helpdesk?view=mine"), args.repeat)
        if case_no:
            figures["HTTP GET /console/helpdesk/{case} (a case)"] = timed(
                lambda: get(f"/console/helpdesk/{case_no}"), args.repeat)
    app.state.engine.dispose()

    print(f"{figures['labourers']} labourers, {figures['complaints']} complaints, {figures['tickets']} tickets on "
          f"{figures['database']}, filled in {figures['fill_seconds']} s")
    for name, value in figures.items():
        if isinstance(value, dict):
            print(f"  {name:48s} p50 {value['p50_ms']:7.1f} ms   p95 {value['p95_ms']:7.1f} ms")
    if args.json:
        print(json.dumps(figures, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
