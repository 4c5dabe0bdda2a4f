"""`gongyou staff add` (DESIGN.md contract) and the way in that `gongyou serve` leaves on a fresh database."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bot.db import make_engine, make_sessionmaker, session_scope
from bot.models import AuditLog, Staff


def gongyou(db_url: str, *args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], input=stdin, capture_output=True, text=True, timeout=120,
        env={**os.environ, "GONGYOU_DATABASE_URL": db_url, "GONGYOU_DEMO_DATA": "false", "GONGYOU_LOG_JSON": "false",
             **(env or {})},
    )


def accounts(db_url: str) -> dict[str, Staff]:
    engine = make_engine(db_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            return {s.username: s for s in session.scalars(select(Staff))}
    finally:
        engine.dispose()


def test_staff_add_reads_the_password_from_stdin_and_refuses_a_taken_name(db_url) -> None:
    assert accounts(db_url) == {}  # no account exists until the command makes one
    made = gongyou(db_url, "staff", "add", "chen", "--role", "admin", stdin="first-password-1\n")
    assert made.returncode == 0, made.stderr
    again = gongyou(db_url, "staff", "add", "chen", "--role", "admin", stdin="other-password-2\n")
    assert again.returncode != 0 and "already exists" in again.stderr and "--update" in again.stderr
    changed = gongyou(db_url, "staff", "add", "chen", "--role", "official", "--county", "平昌县", "--township", "白衣镇",
                      "--update", stdin="second-password-3\n")
    assert changed.returncode == 0, changed.stderr
    chen = accounts(db_url)["chen"]
    assert (chen.role, chen.areas) == ("official", [{"county": "平昌县", "township": "白衣镇"}])
    assert "second-password-3" not in chen.password_hash and chen.password_hash.startswith("$argon2")
    from bot.auth import hasher

    assert hasher().verify("second-password-3", chen.password_hash)


def test_roles_and_areas_are_checked_against_the_regions(db_url) -> None:
    desk = gongyou(db_url, "staff", "add", "desk", "--role", "helpdesk", "--county", "平昌县", "--county", "巴州区",
                   stdin="desk-password\n")
    assert desk.returncode == 0, desk.stderr
    everywhere = gongyou(db_url, "staff", "add", "desk-all", "--role", "helpdesk", stdin="desk-password\n")
    village = gongyou(db_url, "staff", "add", "xie", "--role", "assistant", "--township", "白衣镇", "--village", "长沙村",
                      stdin="xie-password\n")
    assert everywhere.returncode == village.returncode == 0
    made = accounts(db_url)
    assert made["desk"].areas == [{"county": "平昌县"}, {"county": "巴州区"}] and made["desk-all"].areas == []
    assert made["xie"].areas == [{"county": "平昌县", "township": "白衣镇", "village": "长沙村"}]
    for args, problem in [
        (["--role", "official", "--county", "火星县"], "unknown county"),
        (["--role", "official", "--township", "不存在镇"], "no township"),
        (["--role", "official"], "needs --county"),
        (["--role", "assistant", "--village", "平安村"], "give --township"),  # 平安村 is in two townships
        (["--role", "admin", "--county", "平昌县"], "no area"),
        (["--role", "helpdesk", "--township", "白衣镇"], "counties only"),
    ]:
        refused = gongyou(db_url, "staff", "add", "bad", *args, stdin="a-password\n")
        assert refused.returncode != 0 and problem in refused.stderr, (args, refused.stderr)
    short = gongyou(db_url, "staff", "add", "bad", "--role", "admin", stdin="short\n")
    assert short.returncode != 0 and "at least 8" in short.stderr
    assert "bad" not in accounts(db_url)
    engine = make_engine(db_url)
    with session_scope(make_sessionmaker(engine)) as session:
        created = session.scalars(select(AuditLog.object_id).where(AuditLog.action == "staff_created")).all()
    engine.dispose()
    assert sorted(created) == ["desk", "desk-all", "xie"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(db_url: str, env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env={**os.environ, "GONGYOU_DATABASE_URL": db_url, "GONGYOU_DEMO_DATA": "false",
                        "GONGYOU_LOG_JSON": "false", **env},
    )
    return process, port


def _read_until(process: subprocess.Popen, pattern: str, seconds: float = 60) -> str:
    seen = ""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen += line
        if re.search(pattern, seen):
            return seen
    raise AssertionError(f"never printed {pattern!r}:\n{seen}")


def test_serve_in_development_prints_a_first_admin_once(db_url) -> None:
    process, port = _serve(db_url, {})
    try:
        output = _read_until(process, r"password\s+(\S+)")
        password = re.search(r"password\s+(\S+)", output).group(1)
        _read_until(process, r"Uvicorn running|Application startup complete")
        token = httpx.post(f"http://127.0.0.1:{port}/api/auth/token", data={"username": "admin", "password": password})
        assert token.status_code == 200 and token.json()["token_type"] == "bearer"
    finally:
        process.terminate()
        process.wait(timeout=20)
    again, _port = _serve(db_url, {})  # an account exists now: nothing is made or printed again
    try:
        output = _read_until(again, r"Uvicorn running|Application startup complete")
        assert "password" not in output
    finally:
        again.terminate()
        again.wait(timeout=20)
    assert list(accounts(db_url)) == ["admin"]


def test_serve_in_production_makes_no_account(db_url) -> None:
    process, _port = _serve(db_url, {"GONGYOU_ENV": "production", "GONGYOU_WECHAT_TOKEN": "Wx7Tk2Qm9Lp4Zr8Vb3Nc",
                                     "GONGYOU_DATA_KEY": "Zq8v1c0m3XbT5nUe7Lr2Wd9Hs4Kp6Ya8Fg1Jt3Vx5Qw7"})
    try:
        output = _read_until(process, r"gongyou staff add")
        assert "password " not in output.lower().replace("a-long-password", "")
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert accounts(db_url) == {}
