"""Structured logging: one JSON object a line (or plain text for a terminal), with any `extra=` fields, and
the request id of the message being handled.

The request id is taken from the request's `X-Request-ID` header when it is a sane token (a reverse proxy's
`$request_id`), else made here, set for the request by `GongyouApp` and returned in the response's
`X-Request-ID`. It lives in a context variable: every log line of the request carries it, and so do the
lines of the threads the work continues in when they are started through `ContextThreadPool` (the pipeline,
late replies, sends after the commit)."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_SANE = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")
HEADER = "x-request-id"


def new_request_id(offered: str | None = None) -> str:
    """The proxy's id when it looks like one (never a log-injection vector), else a fresh one."""
    if offered and _SANE.match(offered):
        return offered
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


class ContextThreadPool(ThreadPoolExecutor):
    """A thread pool whose tasks run in the context of the code that submitted them (the request id goes
    with the work); `loop.run_in_executor` submits from the request's context, so it is carried too."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        payload.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if payload.get("request_id") is None:
            payload.pop("request_id", None)
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False, default=str)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", None)
        return f"{line} [{rid}]" if rid else line


def configure_logging(level: str = "INFO", json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else _TextFormatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("jieba").setLevel(logging.WARNING)
