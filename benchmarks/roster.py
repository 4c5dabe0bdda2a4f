"""Roster import benchmark: a 100,000-row Excel roster validated and committed, on SQLite and PostgreSQL.

    python benchmarks/roster.py [--rows 100000] [--database-url URL ...] [--keep FILE]

Writes the roster once (openpyxl, write-only: 区县/乡镇/村 from knowledge/regions.yaml, checksummed ID
numbers, mobile numbers, 1 % bad rows), then for each database (default: a fresh SQLite file, and the
PostgreSQL at GONGYOU_PG_URL or 127.0.0.1:5432/test in a schema of its own) runs, in a child process so
each has its own peak memory: the upload's validation (read with python-calamine, every row checked, the
import recorded), the commit (every valid row written), and a second import of the same file (every row
an update; people imported again as they are are not rewritten). Prints wall and CPU seconds per phase,
the seconds spent waiting for a core (the machine's load), the load average before and after, the child's
CPU seconds and its peak RSS. Targets: validate + commit <= 15 s and peak memory <= 400 MB per database.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def make_roster(rows: int) -> bytes:
    import yaml
    from openpyxl import Workbook
    from stdnum.cn import ric

    regions = yaml.safe_load((ROOT / "knowledge" / "regions.yaml").read_text(encoding="utf-8"))
    places = [(c["name"], t["name"], v) for c in regions["counties"] for t in c.get("townships") or ()
              for v in t.get("villages") or ()]
    book = Workbook(write_only=True)
    sheet = book.create_sheet("花名册")
    sheet.append(["序号", "姓名", "身份证号码", "联系电话", "区县", "乡镇", "村", "是否贫困户", "就业渠道"])
    channels = ["本地企业", "公益性岗位", "扶贫车间", "灵活就业", "劳务输出", ""]
    for n in range(rows):
        county, township, village = places[n % len(places)]
        body = f"511923{1960 + n % 40}{1 + n % 12:02d}{1 + n % 28:02d}{n // 480 % 1000:03d}"
        id_number = body + ric.calc_check_digit(body + "0")
        if n % 100 == 99:
            id_number = id_number[:-1] + ("0" if id_number[-1] != "0" else "1")  # 1 % bad checksums
        sheet.append([n + 1, f"工友{n}", id_number, f"139{n:08d}", county, township, village,
                      "是" if n % 3 else "否", channels[n % len(channels)]])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def queued() -> float:
    """Seconds this process's thread has been runnable but not running (Linux schedstat; 0 elsewhere)."""
    try:
        return int(Path("/proc/thread-self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def child(path: str, url: str) -> int:
    from bot.auth import cli_actor
    from bot.db import make_engine, make_sessionmaker, migrate, session_scope
    from bot.knowledge import load_knowledge
    from bot.roster import commit_import, validate_upload
    from bot.settings import Settings

    settings = Settings(database_url=url, demo_data=False)
    engine = make_engine(url)
    migrate(engine)
    factory = make_sessionmaker(engine)
    regions = load_knowledge(settings.knowledge_dir).regions
    data = Path(path).read_bytes()
    actor = cli_actor()
    figures: dict[str, object] = {"load_before": round(os.getloadavg()[0], 1)}
    for phase in ("first", "again"):
        started, cpu_started, queued_started = time.perf_counter(), time.process_time(), queued()
        with session_scope(factory) as session:
            upload = validate_upload(session, actor, filename="roster.xlsx", data=data, regions=regions,
                                     data_key=settings.data_key)
            import_id, counts = upload.id, {"rows": upload.rows, "valid": upload.valid, "to_update": upload.to_update}
        validated, cpu_validated, queued_validated = time.perf_counter(), time.process_time(), queued()
        written = commit_import(factory, import_id, actor, data_key=settings.data_key)
        done, cpu_done, queued_done = time.perf_counter(), time.process_time(), queued()
        # wall seconds depend on the machine's load (and, on PostgreSQL, on the server's own work); the CPU
        # seconds are this process's; *_queued_s: runnable but waiting for a core (the load). What is left of
        # the wall time is waiting on the disk or the database server.
        figures[phase] = {"validate_s": round(validated - started, 2), "commit_s": round(done - validated, 2),
                          "total_s": round(done - started, 2), "validate_cpu_s": round(cpu_validated - cpu_started, 2),
                          "commit_cpu_s": round(cpu_done - cpu_validated, 2),
                          "validate_queued_s": round(queued_validated - queued_started, 2),
                          "commit_queued_s": round(queued_done - queued_validated, 2), **counts, **written}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    figures["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 1)  # wall seconds depend on the machine's load
    figures["peak_rss_mb"] = round(usage.ru_maxrss / 1024)
    figures["load_after"] = round(os.getloadavg()[0], 1)
    print(json.dumps(figures))
    engine.dispose()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database-url", action="append", default=[])
    parser.add_argument("--keep", help="write the roster here (and reuse it when it exists)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)

    from service import drop_schema, scratch_schema  # benchmarks/service.py (this folder is on sys.path)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "roster.xlsx"
        if not path.exists():
            started = time.perf_counter()
            path.write_bytes(make_roster(args.rows))
            print(f"roster of {args.rows} rows written in {time.perf_counter() - started:.1f} s "
                  f"({path.stat().st_size / 1e6:.1f} MB)")
        targets = args.database_url or [f"sqlite:///{tmp}/bench.db", os.environ.get("GONGYOU_PG_URL", DEFAULT_PG)]
        for url in targets:
            schema, run_url = scratch_schema(url) if url.startswith("postgres") else (None, url)
            try:
                result = subprocess.run([sys.executable, __file__, "--child", str(path), run_url],
                                        capture_output=True, text=True, check=False)
                if result.returncode:
                    print(result.stderr[-2000:], file=sys.stderr)
                    return 1
                name = "postgresql" if url.startswith("postgres") else "sqlite"
                print(name, result.stdout.strip().splitlines()[-1])
            finally:
                if schema:
                    drop_schema(url, schema)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
