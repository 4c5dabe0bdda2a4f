"""Every benchmark in this folder at one size, and one JSON of all their figures with the machine's description.

    python benchmarks/run_all.py [--size small|medium|full] [--out benchmarks/results.json] [--only nlu,webhook]
                                 [--database-url URL] [--markdown]

Each script runs in its own process, one after the other (they would measure each other otherwise), with
the arguments of the chosen size from SIZES — `full` is each script's own defaults, the figures the
README quotes; `small` takes a few minutes in all and is what to run on a shared machine. A script
added to this folder without a SIZES entry runs with its defaults. What a script prints is kept whole
(`output`), and read into figures: a JSON line under `data`, a `label: text` line as its text and the numbers
in it (`numbers`). A script that fails is recorded with its exit code and the end of its error output;
the others still run. `--markdown` prints the README's table of the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# This runner, the helper the others import, and import.py (roster.py under the name issue #13 gives it).
NOT_BENCHMARKS = {"run_all.py", "service.py", "import.py"}

SIZES: dict[str, dict[str, list[str]]] = {
    "small": {
        "nlu.py": ["--rounds", "1"],
        "dialogs.py": ["--registrations", "20", "--concurrency", "2"],
        "helpdesk.py": ["--tickets", "5000", "--repeat", "5"],
        "webhook.py": ["--workers", "1", "--concurrency", "8", "--requests", "400", "--warmup", "50", "--duration", "10"],
        "broadcast.py": ["--labourers", "5000", "--rate", "100", "--rate-seconds", "2", "--json"],
        "soak.py": ["--minutes", "2", "--out", "benchmarks/soak-small.json"],
        "overload.py": ["--rates", "50,150", "--seconds", "3", "--settle", "30"],
        "failover.py": ["--rounds", "3"],
        "roster.py": ["--rows", "5000"],
        "console.py": ["--labourers", "20000", "--requests", "5"],
        "nlu_crossval.py": ["--folds", "0"],
    },
    "medium": {
        "nlu.py": ["--rounds", "2"],
        "dialogs.py": ["--registrations", "100", "--concurrency", "4"],
        "webhook.py": ["--workers", "2", "--requests", "1500", "--duration", "20"],
        "broadcast.py": ["--labourers", "50000", "--rate-seconds", "5", "--json"],
        "soak.py": ["--minutes", "10"],
        "overload.py": ["--rates", "100,250,500", "--seconds", "4"],
        "failover.py": ["--rounds", "5"],
        "roster.py": ["--rows", "30000"],
        "console.py": ["--labourers", "100000", "--requests", "10"],
    },
    "full": {"broadcast.py": ["--json"], "soak.py": ["--minutes", "30"], "failover.py": ["--rounds", "10"]},
}
# Scripts that take --database-url (the others read GONGYOU_DATABASE_URL, which is passed to all).
TAKES_DATABASE_URL = {"webhook.py", "broadcast.py", "roster.py", "console.py", "failover.py"}
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
TIMEOUT_SECONDS = {"small": 600, "medium": 1800, "full": 3 * 3600}


def machine() -> dict[str, object]:
    cpu = ""
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
    except OSError:
        pass
    memory_gib = None
    try:
        kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal")))
        memory_gib = round(kib / 1024 / 1024, 1)
    except (OSError, StopIteration, ValueError):
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "cpu": cpu or platform.processor(), "cores": os.cpu_count(), "memory_gib": memory_gib,
        "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "commit": commit,
    }


def read_figures(output: str) -> dict[str, object]:
    figures: dict[str, object] = {}
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                figures.setdefault("data", {}).update(json.loads(line))
                continue
            except ValueError:
                pass
        label, sep, rest = line.partition(":")
        if sep and label and len(label) <= 60 and rest.strip():
            numbers = [float(n.replace(",", "")) for n in NUMBER.findall(rest)]
            figures[label.strip()] = {"text": rest.strip(), "numbers": numbers} if numbers else rest.strip()
    return figures


def scripts(only: set[str]) -> list[Path]:
    found = sorted(p for p in HERE.glob("*.py") if p.name not in NOT_BENCHMARKS)
    return [p for p in found if not only or p.stem in only]


def run(script: Path, size: str, database_url: str | None) -> dict[str, object]:
    args = list(SIZES[size].get(script.name, []))
    if database_url and script.name in TAKES_DATABASE_URL:
        args += ["--database-url", database_url]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
    if database_url:
        env["GONGYOU_DATABASE_URL"] = database_url
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, str(script), *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=TIMEOUT_SECONDS[size])
        code, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        code, out, err = None, exc.stdout or "", f"timed out after {TIMEOUT_SECONDS[size]} s"
        out = out.decode() if isinstance(out, bytes) else out
    result: dict[str, object] = {
        "command": " ".join(["python", f"benchmarks/{script.name}", *args]),
        "exit_code": code, "seconds": round(time.perf_counter() - started, 1),
        "figures": read_figures(out), "output": out,
    }
    if code != 0:
        result["error"] = (err or "")[-3000:]
    return result


def markdown(report: dict[str, object]) -> str:
    m = report["machine"]
    lines = [f"Measured {report['finished_at'][:10]} at size `{report['size']}` on {m['cpu']}, {m['cores']} cores, "
             f"{m['memory_gib']} GiB, Python {m['python']} (commit {m['commit']}; load average at start "
             f"{', '.join(f'{x:.1f}' for x in m['load_average_at_start'] or [])}).", "",
             "| benchmark | figure | value |", "| --- | --- | --- |"]
    for name, result in report["benchmarks"].items():
        if result["exit_code"] != 0:
            lines.append(f"| {name} | failed | exit {result['exit_code']} |")
            continue
        for label, value in result["figures"].items():
            if label == "data":  # the same figures as the script's text lines, for programs
                continue
            text = value["text"] if isinstance(value, dict) else value
            lines.append(f"| {name} | {label} | {str(text).replace('|', '/')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument("--only", default="", help="comma-separated script names without .py")
    parser.add_argument("--database-url", default=None, help="run the database benchmarks on this database")
    parser.add_argument("--markdown", action="store_true", help="print the results as the README's table")
    args = parser.parse_args(argv)
    report: dict[str, object] = {"size": args.size, "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                                 "machine": machine(), "database": args.database_url or "sqlite (each script's own)",
                                 "benchmarks": {}}
    for script in scripts({s.strip() for s in args.only.split(",") if s.strip()}):
        print(f"running {script.name} ({args.size}) …", file=sys.stderr, flush=True)
        report["benchmarks"][script.stem] = result = run(script, args.size, args.database_url)
        print(f"  exit {result['exit_code']} in {result['seconds']} s", file=sys.stderr, flush=True)
    report["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    if args.markdown:
        print(markdown(report))
    failed = [name for name, r in report["benchmarks"].items() if r["exit_code"] != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
