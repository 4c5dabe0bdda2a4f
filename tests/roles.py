"""The process roles (`gongyou serve`, `scheduler`, `dispatch`) as real processes on loopback, for the
deployment, failover and multi-worker metrics tests. Each process gets its own log file; a test reads it
when something goes wrong, and stops (or kills) only the processes it started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Role:
    name: str
    proc: subprocess.Popen
    log: Path
    port: int | None = None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """kill -9 of the role's process group: uvicorn's workers and all, as a crashed machine would."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20) -> int:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode


@dataclass
class Fleet:
    """Processes started for one test, all stopped at its end."""

    folder: Path
    env: dict[str, str]
    roles: list[Role] = field(default_factory=list)

    def start(self, name: str, *args: str, port: int | None = None, env: dict[str, str] | None = None) -> Role:
        full_env = {**os.environ, "GONGYOU_DEMO_DATA": "false", "GONGYOU_LOG_JSON": "true", **self.env, **(env or {})}
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), full_env.get("PYTHONPATH"))))
        log = self.folder / f"{name}.log"
        handle = log.open("ab")
        proc = subprocess.Popen([sys.executable, "-m", "bot", *args], env=full_env, cwd=self.folder,
                                stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        handle.close()
        role = Role(name, proc, log, port)
        self.roles.append(role)
        return role

    def serve(self, name: str = "web", *, workers: int = 1, env: dict[str, str] | None = None) -> Role:
        port = free_port()
        return self.start(name, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                          port=port, env=env)

    def stop_all(self) -> None:
        for role in reversed(self.roles):
            role.stop()


def wait_for(check: Callable[[], object], *, timeout: float, what: str, roles: list[Role] = ()) -> object:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except (httpx.HTTPError, OSError):
            found = None
        if found:
            return found
        for role in roles:
            if not role.alive():
                raise AssertionError(f"{role.name} exited ({role.proc.returncode}) while waiting for {what}:\n"
                                     f"{role.output()[-3000:]}")
        if time.monotonic() > deadline:
            details = "\n".join(f"--- {r.name}\n{r.output()[-2000:]}" for r in roles)
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{details}")
        time.sleep(0.1)


def healthy(role: Role, timeout: float = 90) -> None:
    wait_for(lambda: httpx.get(f"http://127.0.0.1:{role.port}/health", timeout=2).status_code == 200,
             timeout=timeout, what=f"{role.name} /health", roles=[role])
