"""A real HTTP server on 127.0.0.1 (random port) in a thread, for the loopback fakes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class Request:
    def __init__(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> None:
        self.method, self.path, self.query, self.headers, self.body = method, path, query, headers, body

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


Route = Callable[[Request], tuple[int, Any]]


class Raw:
    """A payload sent as it is (a file), not as JSON."""

    def __init__(self, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.body, self.content_type, self.headers = body, content_type, dict(headers or {})


class LoopbackServer:
    """Subclasses answer `handle(request) -> (status, json-able body or Raw)`."""

    def __init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                headers = {k.lower(): v for k, v in self.headers.items()}
                request = Request(self.command, parts.path, query, headers, body)
                with owner.lock:
                    owner.requests.append(request)
                status, payload = owner.handle(request)
                delay = owner._stall_for(request)
                if delay:  # accepted and done, but the answer comes after the client gave up
                    time.sleep(delay)
                raw = payload if isinstance(payload, Raw) else None
                data = raw.body if raw else json.dumps(payload, ensure_ascii=False).encode("utf-8")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", raw.content_type if raw else "application/json; charset=utf-8")
                    for name, value in (raw.headers if raw else {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and closed the connection

            do_GET = do_POST = _serve

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

        self.lock = threading.RLock()
        self.requests: list[Request] = []
        self._stalls: dict[str, list[float]] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def handle(self, request: Request) -> tuple[int, Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def action_of(self, request: Request) -> str:
        """The name `stall_next` arms by: the path here; the API's action in the fakes."""
        return request.path

    def stall_next(self, action: str, seconds: float, times: int = 1) -> None:
        """The next `times` requests for `action` are handled as usual (a send is accepted and logged), then
        answered only after `seconds`: a provider that accepts and then times out for the client."""
        with self.lock:
            self._stalls.setdefault(action, []).extend([seconds] * times)

    def _stall_for(self, request: Request) -> float:
        with self.lock:
            queued = self._stalls.get(self.action_of(request))
            return queued.pop(0) if queued else 0.0

    def __enter__(self) -> "LoopbackServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
