"""The one versioned knowledge snapshot the service answers from, and the store that swaps it.

A snapshot is everything the bot knows, loaded and checked together: policies, catalogues, regions,
reply texts, dialog texts, campaign texts (one KnowledgeBase) and the router built from them. Its
version is the hash of its sources. The store holds the current snapshot; `refresh()` loads the
sources again when they changed and swaps the whole snapshot in one assignment, so a message is
always answered from one consistent version. A version that fails a check is refused with the reason
(`last_error`) and the current one keeps serving; at start-up a bad version refuses to start.

Each process holds its own store and notices a change within `knowledge_poll_seconds` (a watcher
thread the web app starts), or at once on `refresh()`.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bot.knowledge import KnowledgeBase, KnowledgeError, load_knowledge
from bot.models.base import utcnow
from bot.nlu.router import Router

log = logging.getLogger(__name__)

Check = Callable[[KnowledgeBase], None]  # raises KnowledgeError (or ValueError) to refuse a version


@dataclass(frozen=True)
class Snapshot:
    version: str
    kb: KnowledgeBase
    router: Router
    loaded_at: datetime = field(default_factory=utcnow)


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


def build_snapshot(directory: Path, version: str, checks: Iterable[Check] = ()) -> Snapshot:
    kb = load_knowledge(directory)
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
    return Snapshot(version=version, kb=router.kb, router=router)


class KnowledgeStore:
    def __init__(self, directory: Path, *, checks: Iterable[Check] = ()) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise KnowledgeError(f"knowledge directory not found: {self.directory} (set GONGYOU_KNOWLEDGE_DIR)")
        self.checks = tuple(checks)
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._stamp = _stamp(self.directory)
        self._current = build_snapshot(self.directory, content_version(self.directory), self.checks)

    @property
    def current(self) -> Snapshot:
        return self._current

    def refresh(self) -> Snapshot:
        """The current snapshot, after loading the sources again if they changed since the last look."""
        with self._lock:
            stamp = _stamp(self.directory)
            if stamp == self._stamp:
                return self._current
            self._stamp = stamp
            version = content_version(self.directory)
            if version == self._current.version:
                return self._current
            try:
                fresh = build_snapshot(self.directory, version, self.checks)
            except (KnowledgeError, ValueError, KeyError, TypeError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("knowledge change refused; the current version keeps serving",
                          extra={"version": version, "serving": self._current.version, "error": self.last_error})
                return self._current
            self.last_error = None
            self._current = fresh  # one assignment: a turn in flight keeps the snapshot it started with
            log.info("knowledge version live", extra={"version": version, "entries": len(fresh.kb.entries)})
            return fresh

    def watch(self, every: float) -> Callable[[], None]:
        """Refresh every `every` seconds in a daemon thread; returns the function that stops it."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(every):
                try:
                    self.refresh()
                except Exception:  # noqa: BLE001 - a watcher that dies would freeze the knowledge silently
                    log.exception("knowledge refresh failed")

        threading.Thread(target=loop, name="knowledge-watch", daemon=True).start()
        return stop.set
