"""Engine, sessions and migrations. SQLite (WAL) by default, PostgreSQL by GONGYOU_DATABASE_URL."""

from __future__ import annotations

import fcntl
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_SECONDS = 30  # how long a SQLite writer waits for another one before giving up


def normalize_url(url: str) -> str:
    # Accept the plain libpq form too; we only ship the psycopg 3 driver.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str) -> Engine:
    """SQLite keeps pysqlite's own transaction handling: a transaction begins at its first write, so reads
    never pin a stale snapshot. A SAVEPOINT is therefore only used after a write in the same transaction
    (the message pipeline inserts the inbound row first), where SQLite nests it correctly."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_SECONDS})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_SECONDS * 1000}")
            cur.close()

        _serialize_sqlite_writers(engine)
        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


class WriterLock:
    """One SQLite writer at a time, taken at a transaction's first write and given back at its end.

    SQLite allows one writer; a connection that finds the database locked waits in SQLite's busy handler,
    which sleeps in steps of up to 100 ms — under concurrent messages that becomes seconds of latency.
    Here the threads of a process queue on a lock, and the processes sharing the file (web workers, the
    dispatcher) on an flock of a file beside it: a waiting writer wakes the moment the other one commits.

    The holder is the connection's transaction, not a thread: FastAPI runs a request's endpoint and the
    commit of its session (the dependency's exit) on whichever worker threads are free, so the lock is
    often given back by another thread than the one that took it. A writer that waits longer than SQLite's
    own busy timeout gets SQLite's error ("database is locked"), as it would without this lock — never a
    wait without end (a thread writing on a second connection while its first one holds the lock).
    """

    def __init__(self, path: Path | None, timeout: float = BUSY_TIMEOUT_SECONDS) -> None:
        self.path = path
        self.timeout = timeout
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def acquire(self) -> None:
        if not self._lock.acquire(timeout=self.timeout):
            raise TimeoutError(f"no SQLite write lock within {self.timeout:g} s")
        if self.path is not None:
            try:
                fcntl.flock(self._file(), fcntl.LOCK_EX)
            except BaseException:
                self._lock.release()
                raise

    def release(self) -> None:
        try:
            if self.path is not None and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._lock.release()

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked child opens its own description
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd


_writer_locks: dict[Path | None, WriterLock] = {}
_writer_locks_guard = threading.Lock()


def writer_lock(database: str | None) -> WriterLock:
    """The process's lock for one SQLite file, shared by every engine on it (None: an in-memory database,
    which only this process sees)."""
    path = Path(database).resolve().with_name(Path(database).name + "-writer.lock") if database else None
    with _writer_locks_guard:
        lock = _writer_locks.get(path)
        if lock is None:
            lock = _writer_locks[path] = WriterLock(path)
        return lock


def _serialize_sqlite_writers(engine: Engine) -> None:
    database = engine.url.database
    lock = writer_lock(database if database and database != ":memory:" and not database.startswith("file:") else None)

    @event.listens_for(engine, "before_cursor_execute")
    def _take(conn, _cursor, statement, params, _context, _many) -> None:  # noqa: ANN001
        if not conn.info.get("writer") and _WRITE.match(statement):
            try:
                lock.acquire()
            except TimeoutError as exc:  # as SQLite's busy timeout would say it
                raise OperationalError(statement, params, sqlite3.OperationalError("database is locked")) from exc
            conn.info["writer"] = True

    def _give(info: dict) -> None:
        if info.pop("writer", False):
            lock.release()

    event.listen(engine, "commit", lambda conn: _give(conn.info))
    event.listen(engine, "rollback", lambda conn: _give(conn.info))
    # A connection returned to the pool mid-transaction is rolled back there: release with it.
    @event.listens_for(engine.pool, "reset")
    def _reset(_dbapi, record, _reset_state) -> None:  # noqa: ANN001
        _give(record.info)


def dialect_insert(bind: Session | Connection | Engine, table):  # noqa: ANN001, ANN201
    """INSERT with ON CONFLICT support (`.on_conflict_do_nothing/do_update`) for the backend of a session,
    connection or engine."""
    dialect = bind.get_bind().dialect if isinstance(bind, Session) else bind.dialect
    module = postgresql if dialect.name == "postgresql" else sqlite
    return module.insert(table)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    command.upgrade(alembic_config(engine), "head")


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work: committed when the block ends, rolled back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
