"""Console benchmark: the list, count and dashboard pages with 250,000 labourers (SQLite or PostgreSQL).

    python benchmarks/console.py [--labourers 250000] [--database-url URL] [--requests 30]

Fills a fresh database (a SQLite file, or a schema of its own on PostgreSQL) through Core inserts: labourers
over every village of knowledge/regions.yaml with the five lists (a quarter with training needs, a fifth
with job wishes, a tenth working away, flags for startup and public-welfare posts) and some complaints.
Then asks each page --requests times through the app (in-process ASGI, the real routes, templates and
queries) as an admin (the whole city) and as a township official, and prints p50 / p95 milliseconds per
page, and the first view apart (the list pages keep their counts by township and filter values a while).
Target: p95 <= 300 ms. The dashboard reads the stored snapshot of the figures; the time to count
the snapshot (done in the background once it is a minute old) is printed apart.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAGES = ("/console/labourers", "/console/labourers?q=张", "/console/labourers?q=4567", "/console/labourers?after=200000",
         "/console/lists", "/console/lists/training_need", "/console/lists/training_need?after=200000",
         "/console/lists/job_wish", "/console/lists/public_welfare_post", "/console/dashboard")


def fill(factory, count: int, data_key: str) -> None:  # noqa: ANN001
    import yaml
    from sqlalchemy import insert

    from bot import pii
    from bot.db import session_scope
    from bot.models import Complaint, JobWish, Labourer, TrainingNeed, WorkingAway, utcnow

    regions = yaml.safe_load((ROOT / "knowledge" / "regions.yaml").read_text(encoding="utf-8"))
    places = [(c["name"], t["name"], v) for c in regions["counties"] for t in c.get("townships") or ()
              for v in t.get("villages") or ()]
    token = pii.encrypt("not read by these pages", data_key)
    channels = ["local_enterprise", "public_welfare", "workshop", "flexible", "labour_export", None, None]
    formats = ["农闲班", "流动班", "小灶班", "网络班", "补习班"]
    now = utcnow()
    for start in range(0, count, 10_000):
        rows = []
        for n in range(start, min(start + 10_000, count)):
            county, township, village = places[n % len(places)]
            rows.append({
                "id": n + 1, "name": "王李张刘陈杨赵黄周吴"[n % 10] + f"工{n}", "county": county, "township": township,
                "village": village, "id_number_enc": token, "id_number_hash": f"h{n}", "id_number_masked": f"5119**********{n % 10000:04d}",
                "phone_enc": token, "phone_hash": f"p{n}", "phone_masked": f"139****{n % 10000:04d}",
                "gender": "M" if n % 2 else "F", "birth_date": date(1960 + n % 40, 1 + n % 12, 1 + n % 28),
                "household_status": "registered_poor" if n % 3 else "general",
                "employment_status": "working_away" if n % 10 == 0 else "local",
                "employment_channel": channels[n % len(channels)], "subscribed_wechat": True, "subscribed_sms": True,
                "wants_startup": n % 50 == 0, "public_welfare_post": n % 40 == 0, "source": "roster", "verified": True,
                "created_at": now, "updated_at": now,
            })
        with session_scope(factory) as session:
            session.execute(insert(Labourer.__table__), rows)
            session.execute(insert(TrainingNeed.__table__), [
                {"labourer_id": r["id"], "training_type": "电焊", "preferred_format": formats[r["id"] % 5],
                 "status": "trained" if r["id"] % 8 == 0 else "open", "township": r["township"],
                 "created_at": now, "updated_at": now} for r in rows if r["id"] % 4 == 0])
            session.execute(insert(JobWish.__table__), [
                {"labourer_id": r["id"], "job_type": "保洁", "status": "open", "created_at": now, "updated_at": now}
                for r in rows if r["id"] % 5 == 0])
            session.execute(insert(WorkingAway.__table__), [
                {"labourer_id": r["id"], "place": "浙江丽水", "created_at": now} for r in rows if r["id"] % 10 == 0])
            session.execute(insert(Complaint.__table__), [
                {"ticket_no": f"WQ-B-{r['id']}", "labourer_id": r["id"], "channel": "sms", "user_id": f"u{r['id']}",
                 "category": "欠薪", "employer": "某公司", "workers_affected": 1, "urgent": False, "county": r["county"],
                 "township": r["township"], "status": "resolved" if r["id"] % 2 else "new",
                 "recovered_amount": 1000 if r["id"] % 2 else None, "created_at": now, "updated_at": now}
                for r in rows if r["id"] % 100 == 0])


def measure(app, cookie: str, requests: int) -> dict[str, tuple[float, float]]:  # noqa: ANN001
    from fastapi.testclient import TestClient

    from bot.db import session_scope
    from bot.roster_figures import refresh_figures

    results = {}
    with TestClient(app) as client:
        client.cookies.set("gongyou_session", cookie, path="/console")
        for page in PAGES:
            if page == "/console/dashboard":
                # TestClient waits for a page's background work too: the snapshot is made fresh first, so the
                # timed requests are the page (its background count is timed apart, see main)
                with session_scope(app.state.sessionmaker) as session:
                    refresh_figures(session)
            started = time.perf_counter()
            client.get(page)  # the first view: the list pages' counts by township and filter values not kept yet
            first = (time.perf_counter() - started) * 1000
            times = []
            for _ in range(requests):
                started = time.perf_counter()
                response = client.get(page)
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, (page, response.status_code)
            times.sort()
            results[page] = (statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)], first)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labourers", type=int, default=250_000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()

    from service import drop_schema, scratch_schema  # benchmarks/service.py (this folder is on sys.path)
    from sqlalchemy import text

    from bot.app import create_app
    from bot.auth import hash_password, open_session
    from bot.console.deps import signer
    from bot.db import make_engine, migrate, session_scope
    from bot.models import Staff
    from bot.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        server_url = args.database_url or f"sqlite:///{tmp}/console.db"
        url, schema = server_url, None
        if url.startswith("postgres"):
            schema, url = scratch_schema(server_url)
        try:
            settings = Settings(database_url=url, demo_data=False, log_json=False)
            engine = make_engine(url)
            migrate(engine)
            from bot.db import make_sessionmaker

            started = time.perf_counter()
            fill(make_sessionmaker(engine), args.labourers, settings.data_key)
            if schema:
                with engine.begin() as conn:
                    conn.execute(text("ANALYZE"))
            print(f"{args.labourers} labourers in {time.perf_counter() - started:.1f} s ({engine.dialect.name})")
            from bot.roster_figures import refresh_figures

            factory = make_sessionmaker(engine)
            for _ in range(2):  # the second on a warm cache, as a running service counts every minute
                started = time.perf_counter()
                with session_scope(factory) as session:
                    refresh_figures(session)
                counted = time.perf_counter() - started
            print(f"dashboard snapshot counted in {counted:.2f} s (city-wide, by village; a worker does it in the "
                  "background once the page's figures are a minute old, the first view ever waits for it)")
            engine.dispose()
            app = create_app(settings, configure_logs=False)
            for who, role, areas in (("bench-admin", "admin", []),
                                     ("bench-official", "official", [{"county": "平昌县", "township": "白衣镇"}])):
                with session_scope(app.state.sessionmaker) as session:
                    staff = Staff(username=who, password_hash=hash_password("bench-password"), role=role, areas=areas)
                    session.add(staff)
                    session.flush()
                    secret, _actor = open_session(session, staff, kind="console", ip="127.0.0.1", user_agent="bench",
                                                  settings=settings)
                cookie = signer(settings, "session").sign(secret).decode()
                for page, (p50, p95, first) in measure(app, cookie, args.requests).items():
                    print(f"{who:15} {page:40} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  (first view {first:7.1f} ms)")
            app.state.engine.dispose()
        finally:
            if schema:
                drop_schema(server_url, schema)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
