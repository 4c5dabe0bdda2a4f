"""The one versioned knowledge snapshot the service answers from, and the store that swaps it.

A snapshot is everything the bot knows, loaded and checked together: policies, catalogues, regions,
reply texts, dialog texts, campaign texts (one KnowledgeBase) and the router built from them. Its
sources are the files of knowledge/ and the officials' changes stored in the database over them
(bot.knowledge_edits); its version is the hash of both. The store holds the current snapshot;
`refresh()` loads the sources again when they changed and swaps the whole snapshot in one assignment,
so a message is always answered from one consistent version. A version that fails a check is refused
with the reason (`last_error`) and the current one keeps serving; at start-up a bad version of the
files refuses to start.

Each process holds its own store and notices a change within `knowledge_poll_seconds`: the web app by a
watcher thread, other processes (dispatch, scheduler, chat) on their first use after that long. A look
costs a stat of the files and one read of the newest revision id (the primary key's index).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

from bot.knowledge import KnowledgeBase, KnowledgeError, load_knowledge
from bot.knowledge_edits import Item, Overrides, apply_overrides
from bot.models.base import utcnow
from bot.nlu.router import Router

log = logging.getLogger(__name__)

Check = Callable[[KnowledgeBase], None]  # raises KnowledgeError (or ValueError) to refuse a version
REFUSED = (KnowledgeError, ValueError, KeyError, TypeError)


class Revisions(Protocol):
    """The officials' changes (bot.knowledge_edits.DatabaseRevisions)."""

    def latest(self) -> int | None:
        """The newest revision id: when it moves, the overrides changed."""
        ...

    def overrides(self) -> Overrides:
        """The live value of every item changed over the files."""
        ...


@dataclass(frozen=True)
class Snapshot:
    version: str
    kb: KnowledgeBase
    router: Router
    loaded_at: datetime = field(default_factory=utcnow)
    files_version: str = ""
    overrides: Overrides = field(default_factory=dict)  # what the officials' changes laid over the files


# Routers already built in this process, by knowledge version: building one costs a fraction of a second
# even from the disk cache, and several apps in one process (tests, CLI commands) share a version.
_ROUTERS: OrderedDict[str, Router] = OrderedDict()
_ROUTERS_MAX = 4
_ROUTERS_LOCK = threading.Lock()


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and not any(part.startswith(".") for part in
                                                                              p.relative_to(directory).parts))


def _stamp(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """Cheap to take every few seconds: names, sizes and modification times of the sources."""
    found = []
    for path in _files(directory):
        stat = path.stat()
        found.append((str(path.relative_to(directory)), stat.st_size, stat.st_mtime_ns))
    return tuple(found)


def content_version(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in _files(directory):
        digest.update(str(path.relative_to(directory)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def overrides_version(files_version: str, overrides: Overrides) -> str:
    if not overrides:
        return files_version
    digest = hashlib.sha256(files_version.encode() + b"\0")
    digest.update(json.dumps(sorted(([*k], v) for k, v in overrides.items()), ensure_ascii=False).encode())
    return digest.hexdigest()[:16]


def build_snapshot(directory: Path, version: str, checks: Iterable[Check] = (), *, base: KnowledgeBase | None = None,
                   overrides: Overrides | None = None, files_version: str = "") -> Snapshot:
    """The snapshot of `directory` (already read: `base`) with `overrides` laid over it, checked."""
    kb = base if base is not None else load_knowledge(directory)
    if overrides:
        kb = apply_overrides(kb, overrides)
    for check in checks:
        check(kb)
    with _ROUTERS_LOCK:
        router = _ROUTERS.get(version)
    if router is None:
        router = Router(directory, kb)
        with _ROUTERS_LOCK:
            _ROUTERS[version] = router
            while len(_ROUTERS) > _ROUTERS_MAX:
                _ROUTERS.popitem(last=False)
    return Snapshot(version=version, kb=router.kb, router=router, files_version=files_version or version,
                    overrides=dict(overrides or {}))


class KnowledgeStore:
    def __init__(self, directory: Path, *, checks: Iterable[Check] = (), revisions: Revisions | None = None,
                 max_age: float = 0) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise KnowledgeError(f"knowledge directory not found: {self.directory} (set GONGYOU_KNOWLEDGE_DIR)")
        self.checks = tuple(checks)
        self.revisions = revisions
        self.max_age = max_age
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._watching = False
        self._looked = time.monotonic()
        self._stamp = _stamp(self.directory)
        self._base = self._read_files()
        latest, overrides = self._read_revisions()
        self._latest = latest
        try:
            self._current = self._build(overrides)
        except REFUSED as exc:  # the files alone are good (read above); the stored changes are refused
            self._refused(exc, "stored knowledge changes refused at start-up; serving the files alone")
            self._current = self._build({})

    def _read_files(self) -> tuple[str, KnowledgeBase]:
        return content_version(self.directory), load_knowledge(self.directory)

    def _read_revisions(self) -> tuple[int | None, Overrides]:
        """(newest id, overrides); on a database error the last ones known, with the error noted."""
        if self.revisions is None:
            return None, {}
        try:
            return self.revisions.latest(), self.revisions.overrides()
        except SQLAlchemyError as exc:
            self._refused(exc, "knowledge changes could not be read; the current version keeps serving")
            current = getattr(self, "_current", None)
            return getattr(self, "_latest", None), (current.overrides if current else {})

    def _build(self, overrides: Overrides) -> Snapshot:
        files_version, base = self._base
        version = overrides_version(files_version, overrides)
        current = getattr(self, "_current", None)
        if current is not None and current.version == version:
            return current
        return build_snapshot(self.directory, version, self.checks, base=base, overrides=overrides,
                              files_version=files_version)

    def _refused(self, exc: Exception, message: str) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.error(message, extra={"error": self.last_error})

    @property
    def current(self) -> Snapshot:
        if self.max_age and not self._watching and time.monotonic() - self._looked >= self.max_age:
            # No watcher thread in this process: look now, unless another thread is already looking.
            if self._lock.acquire(blocking=False):
                try:
                    self._refresh()
                except Exception:  # noqa: BLE001 - answering from the current version beats failing the turn
                    log.exception("knowledge refresh failed")
                finally:
                    self._lock.release()
        return self._current

    def refresh(self) -> Snapshot:
        """The current snapshot, after loading the sources again if they changed since the last look."""
        with self._lock:
            return self._refresh()

    def _refresh(self) -> Snapshot:
        self._looked = time.monotonic()
        stamp = _stamp(self.directory)
        latest = self._latest
        if self.revisions is not None:
            try:
                latest = self.revisions.latest()
            except SQLAlchemyError as exc:
                self._refused(exc, "knowledge changes could not be read; the current version keeps serving")
                return self._current
        if stamp == self._stamp and latest == self._latest:
            return self._current
        try:
            if stamp != self._stamp:
                self._stamp = stamp
                version = content_version(self.directory)
                if version != self._base[0]:
                    self._base = (version, load_knowledge(self.directory))
            self._latest = latest
            _latest, overrides = self._read_revisions()
            fresh = self._build(overrides)
        except REFUSED as exc:
            self._refused(exc, "knowledge change refused; the current version keeps serving")
            log.error("refused version", extra={"serving": self._current.version})
            return self._current
        self.last_error = None
        if fresh is not self._current:
            self._current = fresh  # one assignment: a turn in flight keeps the snapshot it started with
            log.info("knowledge version live", extra={"version": fresh.version, "entries": len(fresh.kb.entries)})
        return fresh

    def draft(self, changes: Mapping[Item, dict[str, Any] | None]) -> Snapshot:
        """The snapshot the live sources would make with `changes` laid over them, checked like any version
        (raises KnowledgeError with the reason) but not made live: what an official's edit would do."""
        with self._lock:
            base = self._base
            overrides = dict(self._current.overrides)
        for item, value in changes.items():
            if value is None:
                overrides.pop(item, None)
            else:
                overrides[item] = value
        version = overrides_version(base[0], overrides)
        return build_snapshot(self.directory, version, self.checks, base=base[1], overrides=overrides,
                              files_version=base[0])

    def defaults(self) -> KnowledgeBase:
        """The files alone, without the officials' changes."""
        return self._base[1]

    def watch(self, every: float) -> Callable[[], None]:
        """Refresh every `every` seconds in a daemon thread; returns the function that stops it."""
        stop = threading.Event()
        self._watching = True

        def loop() -> None:
            while not stop.wait(every):
                try:
                    self.refresh()
                except Exception:  # noqa: BLE001 - a watcher that dies would freeze the knowledge silently
                    log.exception("knowledge refresh failed")

        def stopped() -> None:
            self._watching = False
            stop.set()

        threading.Thread(target=loop, name="knowledge-watch", daemon=True).start()
        return stopped
