"""The WeChat access token through Redis (GONGYOU_REDIS_URL): fetched once for many processes and threads,
refreshed once when WeChat expires it, and through the database when Redis is down."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from sqlalchemy import select

from bot.app import compose
from bot.channels.wechat_api import WeChatApi
from bot.conversation import Services
from bot.db import make_engine, make_sessionmaker, session_scope
from bot.models import WeChatToken
from tests.fakes.wechat_api import FakeWeChatApi
from tests.roles import ROOT, free_port

REDIS_URL = "redis://127.0.0.1:6379/0"
SECRET = "redis-test-secret"


def _redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def appid() -> Iterator[str]:
    appid = f"wx-redis-{uuid.uuid4().hex[:8]}"  # keys of this test only, on the shared Redis
    yield appid
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"gongyou:wechat:{appid}:*"):
        client.delete(key)


@pytest.fixture
def fake_api(appid: str) -> Iterator[FakeWeChatApi]:
    with FakeWeChatApi(appid=appid, secret=SECRET) as server:
        yield server


@pytest.fixture
def make_services(make_settings, fake_api, appid):  # noqa: ANN001, ANN201
    engines = []

    def build(redis_url: str = REDIS_URL) -> Services:
        settings = make_settings(wechat_appid=appid, wechat_secret=SECRET, wechat_api_base=fake_api.base,
                                 redis_url=redis_url)
        engine = make_engine(settings.database_url)
        engines.append(engine)
        return compose(settings, make_sessionmaker(engine))

    yield build
    for engine in engines:
        engine.dispose()


pytestmark = pytest.mark.skipif(not _redis_up(), reason=f"Redis not reachable at {REDIS_URL}")


def test_many_processes_and_threads_fetch_the_token_once(make_services, fake_api):
    services = make_services()
    clients = [WeChatApi(services.settings, services.sessionmaker) for _ in range(4)]  # as four processes
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: clients[i % 4].send_text(f"o-{i}", f"消息{i}"), range(32)))
    assert fake_api.token_calls == [False]
    assert len(fake_api.sent) == 32
    with session_scope(services.sessionmaker) as session:  # Redis holds it, not the database
        assert session.scalars(select(WeChatToken)).all() == []


def test_an_expired_token_is_refreshed_once_for_everyone(make_services, fake_api):
    services = make_services()
    first, second = (WeChatApi(services.settings, services.sessionmaker) for _ in range(2))
    first.send_text("o-1", "一")
    second.send_text("o-1", "二")
    fake_api.expire_token()
    first.send_text("o-1", "三")  # 42001: one refresh …
    second.send_text("o-1", "四")  # … which the other process finds in Redis after its own 42001
    assert fake_api.token_calls == [False, False]
    assert [m["text"]["content"] for m in fake_api.sent] == ["一", "二", "三", "四"]


def test_without_redis_the_token_goes_through_the_database(make_services, fake_api):
    services = make_services(redis_url=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    WeChatApi(services.settings, services.sessionmaker).send_text("o-1", "一")
    WeChatApi(services.settings, services.sessionmaker).send_text("o-1", "二")
    assert fake_api.token_calls == [False]  # the second "process" found it in the database
    with session_scope(services.sessionmaker) as session:
        assert session.scalars(select(WeChatToken.access_token)).one() == fake_api.token


# One role process: four threads sending; then, once told, one more message each (after WeChat expired the token).
_PROCESS = """
import pathlib, sys, time
from concurrent.futures import ThreadPoolExecutor
from bot.channels.wechat_api import WeChatApi
from bot.db import make_engine, make_sessionmaker
from bot.settings import get_settings

folder, n = pathlib.Path(sys.argv[1]), sys.argv[2]
settings = get_settings()
api = WeChatApi(settings, make_sessionmaker(make_engine(settings.database_url)))
def when(name):
    while not (folder / name).exists():
        time.sleep(0.01)
when("go")
with ThreadPoolExecutor(4) as pool:
    list(pool.map(lambda i: api.send_text(f"o-{n}-{i}", "first"), range(8)))
(folder / f"done-{n}").touch()
when("again")
api.send_text(f"o-{n}-again", "after the expiry")
"""


def test_separate_processes_share_one_token_and_one_refresh(make_settings, fake_api, appid, tmp_path):
    settings = make_settings()
    env = {**os.environ, "GONGYOU_DATABASE_URL": settings.database_url, "GONGYOU_WECHAT_APPID": appid,
           "GONGYOU_WECHAT_SECRET": SECRET, "GONGYOU_WECHAT_API_BASE": fake_api.base, "GONGYOU_REDIS_URL": REDIS_URL,
           "GONGYOU_DEMO_DATA": "false", "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", _PROCESS, str(tmp_path), str(n)], env=env, cwd=tmp_path,
                              stderr=subprocess.PIPE, text=True) for n in range(4)]
    try:
        (tmp_path / "go").touch()  # all four ask for a token at about the same moment
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"done-{n}").exists() for n in range(4)):
            assert all(p.poll() is None for p in procs), [p.stderr.read() for p in procs if p.poll() is not None]
            assert time.monotonic() < deadline, "the processes did not send"
            time.sleep(0.05)
        assert fake_api.token_calls == [False]  # one fetch for four processes of four threads
        fake_api.expire_token()
        (tmp_path / "again").touch()  # each gets 42001 with the old token; one of them refreshes it
        for proc in procs:
            assert proc.wait(timeout=120) == 0, proc.stderr.read()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert fake_api.token_calls == [False, False]
    assert len(fake_api.sent) == 4 * 8 + 4
    engine = make_engine(settings.database_url)
    with session_scope(make_sessionmaker(engine)) as session:  # Redis held it, not the database
        assert session.scalars(select(WeChatToken)).all() == []
    engine.dispose()
