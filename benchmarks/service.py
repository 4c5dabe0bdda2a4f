"""`gongyou serve` in a subprocess on a loopback port, for benchmarks that load it from another process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the benchmarks run as scripts; `bot` is imported from this checkout


def scratch_schema(url: str) -> tuple[str, str]:
    """A schema of its own on the PostgreSQL server at `url`, so a benchmark never writes into shared tables:
    (its name, the URL that writes there). `drop_schema` removes it."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from bot.db import normalize_url

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(normalize_url(url))
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    scoped = make_url(normalize_url(url)).update_query_dict({"options": f"-csearch_path={schema}"})
    return schema, scoped.render_as_string(hide_password=False)


def drop_schema(url: str, schema: str) -> None:
    from sqlalchemy import create_engine, text

    from bot.db import normalize_url

    engine = create_engine(normalize_url(url))
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Service:
    base: str
    ready_seconds: float
    pid: int  # `gongyou serve` (with --workers N, uvicorn's supervisor; the workers are its children)


def _process_tree(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents.setdefault(int(stat.rpartition(")")[2].split()[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, []))
    return tree


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its descendants that are alive (Linux /proc)."""
    total = 0
    for member in _process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


@contextmanager
def running_service(env: dict[str, str], *, workers: int = 1, cwd: Path | None = None,
                    timeout: float = 60) -> Iterator[Service]:
    """Start the service with `env` (GONGYOU_* settings), wait for /health, stop it afterwards."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"GONGYOU_DEMO_DATA": "false", "GONGYOU_LOG_LEVEL": "WARNING", **env}
    # a checkout without `pip install -e .` still runs: the package is found from the repository root
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH"))))
    command = [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers)]
    proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        started = time.perf_counter()
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gongyou serve exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - started > timeout:
                raise RuntimeError("gongyou serve did not become healthy")
            time.sleep(0.1)
        yield Service(base, time.perf_counter() - started, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
