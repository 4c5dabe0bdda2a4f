"""A loopback fake of a WeCom (企业微信) group robot webhook: POST /cgi-bin/webhook/send?key=KEY with
{"msgtype": "text", "text": {"content": ...}} answers {"errcode": 0, "errmsg": "ok"}; a wrong key 93000."""

from __future__ import annotations

from typing import Any

from tests.fakes.http import LoopbackServer, Request


class FakeWeComRobot(LoopbackServer):
    def __init__(self, key: str = "robot-key") -> None:
        super().__init__()
        self.key = key
        self.posted: list[dict[str, Any]] = []
        self.down = False  # answer 502 to everything (the office network is away)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cgi-bin/webhook/send?key={self.key}"

    def handle(self, request: Request) -> tuple[int, Any]:
        if self.down:
            return 502, {"error": "bad gateway"}
        if request.path != "/cgi-bin/webhook/send" or request.query.get("key") != self.key:
            return 200, {"errcode": 93000, "errmsg": "invalid webhook url"}
        body = request.json()
        if body.get("msgtype") != "text" or not (body.get("text") or {}).get("content"):
            return 200, {"errcode": 40008, "errmsg": "invalid message type"}
        with self.lock:
            self.posted.append(body)
        return 200, {"errcode": 0, "errmsg": "ok"}
