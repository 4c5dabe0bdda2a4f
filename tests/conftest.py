"""Test harness: the real app on a real database.

By default every test gets its own SQLite file (a copy of one migrated template). With
GONGYOU_TEST_DATABASE_URL=postgresql+psycopg://… the whole suite runs on PostgreSQL instead, in a schema
of its own that is emptied after each test. Tests that need PostgreSQL whatever the default is use the
`pg_url` fixture: it skips, saying why, when the server is unreachable — unless GONGYOU_REQUIRE_POSTGRES=1
(set by .ci/run), where it fails.
"""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.app import create_app
from bot.db import make_engine, migrate, normalize_url
from bot.models import Base
from bot.settings import Settings, default_knowledge_dir

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TEST_DB_URL = os.environ.get("GONGYOU_TEST_DATABASE_URL", "")
REQUIRE_PG = os.environ.get("GONGYOU_REQUIRE_POSTGRES") == "1"


def _pg_reachable(url: str) -> str | None:
    try:
        engine = create_engine(normalize_url(url), connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable" here
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _schema_url(base: str, schema: str) -> str:
    url = make_url(normalize_url(base))
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


class PgSchema:
    """A throwaway schema on the PostgreSQL server, migrated once, emptied between tests."""

    def __init__(self, base_url: str) -> None:
        self.base_url = normalize_url(base_url)
        self.schema = f"t_{uuid.uuid4().hex[:10]}"
        self.url = _schema_url(self.base_url, self.schema)
        admin = create_engine(self.base_url)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))
        admin.dispose()
        self.engine = make_engine(self.url)
        migrate(self.engine)

    def truncate(self) -> None:
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        with self.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))

    def drop(self) -> None:
        self.engine.dispose()
        admin = create_engine(self.base_url)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{self.schema}" CASCADE'))
        admin.dispose()


def _require_pg(url: str) -> None:
    problem = _pg_reachable(url)
    if problem is None:
        return
    message = f"PostgreSQL not reachable at {url} ({problem})"
    if REQUIRE_PG:
        pytest.fail(message + " and GONGYOU_REQUIRE_POSTGRES=1")
    pytest.skip(message)


@pytest.fixture(scope="session")
def _suite_pg() -> Iterator[PgSchema | None]:
    if not TEST_DB_URL.startswith("postgres"):
        yield None
        return
    _require_pg(TEST_DB_URL)
    schema = PgSchema(TEST_DB_URL)
    yield schema
    schema.drop()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()  # closing the last connection folds the WAL into the file, so a plain copy is complete
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture
def db_url(_suite_pg: PgSchema | None, _sqlite_template: Path, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database for this test."""
    if _suite_pg is not None:
        yield _suite_pg.url
        _suite_pg.truncate()
        return
    path = tmp_path / "gongyou.db"
    shutil.copyfile(_sqlite_template, path)
    yield f"sqlite:///{path}"


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    url = TEST_DB_URL if TEST_DB_URL.startswith("postgres") else os.environ.get("GONGYOU_PG_URL", DEFAULT_PG_URL)
    _require_pg(url)
    return url


@pytest.fixture
def pg_url(pg_base_url: str) -> Iterator[str]:
    """A migrated PostgreSQL schema of this test's own, whatever the suite's default database."""
    schema = PgSchema(pg_base_url)
    yield schema.url
    schema.drop()


@pytest.fixture
def make_settings(db_url: str) -> Callable[..., Settings]:
    def build(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "database_url": db_url,
            "demo_data": False,
            "log_json": False,
        }
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def app(settings: Settings):  # noqa: ANN201
    application = create_app(settings, configure_logs=False)
    yield application
    application.state.engine.dispose()


STAFF_PASSWORD = "correct-horse-battery"


@functools.cache
def _staff_password_hash() -> str:
    from bot.auth import hash_password

    return hash_password(STAFF_PASSWORD)  # argon2 is slow on purpose: hash once per test run


@pytest.fixture
def make_staff(app) -> Callable[..., dict[str, str]]:  # noqa: ANN001
    """Create a staff account (password STAFF_PASSWORD) and return the Authorization header of a fresh token:
    make_staff("pc-official", "official", [{"county": "平昌县"}])."""
    from bot.auth import open_session
    from bot.db import session_scope
    from bot.models import Staff

    def make(username: str, role: str = "admin", areas: list[dict[str, str]] | None = None) -> dict[str, str]:
        with session_scope(app.state.sessionmaker) as session:
            staff = Staff(username=username, password_hash=_staff_password_hash(), role=role, areas=areas or [])
            session.add(staff)
            session.flush()
            token, _actor = open_session(session, staff, kind="token", ip="127.0.0.1", user_agent="pytest",
                                         settings=app.state.settings)
        return {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture
def admin_auth(make_staff) -> dict[str, str]:  # noqa: ANN001
    """The Authorization header of an admin's bearer token."""
    return make_staff("test-admin", "admin")


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # noqa: ANN001
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def say(client: TestClient) -> Callable[..., list[str]]:
    """Talk to the bot as a labourer would: send text as `user`, get back the reply texts."""

    def send(text: str, user: str = "labourer-1", **extra: object) -> list[str]:
        response = client.post("/api/simulator/message", json={"user": user, "text": text, **extra})
        assert response.status_code == 200, response.text
        return [r["text"] for r in response.json()["replies"]]

    return send


class LiveServer:
    """The app served by uvicorn on a loopback port in a background thread: real HTTP."""

    def __init__(self, application) -> None:  # noqa: ANN001
        import socket
        import threading

        import uvicorn

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(application, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        import time

        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("live server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(app) -> Iterator[LiveServer]:  # noqa: ANN001
    with LiveServer(app) as server:
        yield server


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """Where a test saves screenshots: $GONGYOU_ARTIFACTS_DIR or tests/artifacts/ (ignored by git), per test."""
    base = Path(os.environ.get("GONGYOU_ARTIFACTS_DIR") or Path(__file__).resolve().parent / "artifacts")
    folder = base / request.node.name.replace("/", "_")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ANN201
    """Keeps each phase's report on the test, so a fixture can tell in its teardown that the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def browser_page(request: pytest.FixtureRequest, artifacts: Path):  # noqa: ANN201
    """A page in Debian's headless chromium, driven by Playwright (never a downloaded browser). When the test
    fails, the page as it was is saved beside its screenshots (failure.png, failure.html) and its text printed."""
    reason = None
    if not CHROMIUM.exists():
        reason = "Debian's chromium is not installed (apt-get install -y chromium)"
    else:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            reason = "playwright for Python is not installed"
    if reason:
        if os.environ.get("GONGYOU_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " and GONGYOU_REQUIRE_BROWSER=1")
        pytest.skip(reason)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        page = browser.new_page()
        yield page
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            try:
                page.screenshot(path=str(artifacts / "failure.png"), full_page=True)
                (artifacts / "failure.html").write_text(page.content(), encoding="utf-8")
                print(f"the page at the failure, {page.url}:\n{page.inner_text('body')[:3000]}")  # in the CI log
            except Exception as error:  # noqa: BLE001 - a page that cannot be saved must not hide the failure
                print(f"could not save the failed page: {error}")
        browser.close()


@pytest.fixture(scope="session")
def router():
    """The router on the project's knowledge, built once for every NLU test file."""
    from bot.nlu.router import get_router

    return get_router(default_knowledge_dir())
