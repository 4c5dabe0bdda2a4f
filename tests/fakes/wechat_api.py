"""A loopback fake of the WeChat Official Account API (api.weixin.qq.com/cgi-bin/).

It speaks the real JSON shapes: {"errcode": 0, "errmsg": "ok", ...} on HTTP 200 for every outcome,
40001/42001 for a bad or expired token, -1 when busy, 45009 when the daily quota is used up,
45015 outside the 48-hour window, 45047 past the customer-service message limit. `media/get` answers a
temporary media file (what a follower sent: `receive_media` puts it there, as WeChat does before pushing
the MediaId) with its bytes and Content-Type, or 40007 for an unknown or expired media id.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections import defaultdict
from typing import Any

from tests.fakes.http import LoopbackServer, Raw, Request

ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40013: "invalid appid",
    40125: "invalid appsecret",
    42001: "access_token expired",
    45009: "reach max api daily quota limit",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    44002: "empty post data",
    40007: "invalid media_id",
}


class FakeWeChatApi(LoopbackServer):
    def __init__(self, appid: str = "wx-test-app", secret: str = "test-secret", cs_limit: int = 5) -> None:
        super().__init__()
        self.appid, self.secret = appid, secret
        self.token = ""
        self.token_calls: list[bool] = []  # force_refresh of each stable_token call
        self.sent: list[dict[str, Any]] = []  # customer-service messages accepted
        self.templates: list[dict[str, Any]] = []
        self.mass: list[dict[str, Any]] = []
        self.menus: list[dict[str, Any]] = []
        self.out_of_window: set[str] = set()  # openids that get 45015
        self.cs_limit = cs_limit
        self.cs_count: dict[str, int] = defaultdict(int)
        self.failures: dict[str, list[int]] = defaultdict(list)  # endpoint -> errcodes to answer next
        self.failures_for: dict[str, list[int]] = defaultdict(list)  # openid -> errcodes of its next sends
        self.token_expired = False
        self.media: dict[str, tuple[bytes, str]] = {}  # media id -> (file, content type)
        self._ids = itertools.count(1000)
        self.sent_event = threading.Condition(self.lock)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/cgi-bin/"

    # ---- test controls ----------------------------------------------------------------------

    def fail_next(self, endpoint: str, *errcodes: int) -> None:
        with self.lock:
            self.failures[endpoint].extend(errcodes)

    def fail_for(self, openid: str, *errcodes: int) -> None:
        """The next customer-service sends to `openid` get these errcodes (nothing is sent)."""
        with self.lock:
            self.failures_for[openid].extend(errcodes)

    def expire_token(self) -> None:
        """WeChat expired the token: calls with it get 42001; stable_token (normal mode) issues a new one."""
        with self.lock:
            self.token_expired = True

    def receive_media(self, data: bytes, content_type: str = "image/jpeg") -> str:
        """A follower sent a photo: WeChat keeps it as temporary media; returns its MediaId."""
        with self.lock:
            media_id = "MEDIA_" + secrets.token_urlsafe(24)
            self.media[media_id] = (data, content_type)
            return media_id

    def expire_media(self, media_id: str) -> None:
        """Three days have passed: WeChat no longer has the file."""
        with self.lock:
            self.media.pop(media_id, None)

    def wait_for_sent(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        with self.sent_event:
            self.sent_event.wait_for(lambda: len(self.sent) >= count, timeout=timeout)
            return list(self.sent)

    def action_of(self, request: Request) -> str:
        return request.path.removeprefix("/cgi-bin/")

    # ---- the API --------------------------------------------------------------------------------

    @staticmethod
    def _error(code: int) -> tuple[int, dict[str, Any]]:
        return 200, {"errcode": code, "errmsg": ERRMSG.get(code, "error")}

    def handle(self, request: Request) -> tuple[int, Any]:
        endpoint = request.path.removeprefix("/cgi-bin/")
        with self.lock:
            if endpoint == "stable_token":
                return self._stable_token(request)
            queued = self.failures.get(endpoint)
            if queued:
                return self._error(queued.pop(0))
            token = request.query.get("access_token", "")
            if not token or token != self.token:
                return self._error(40001)
            if self.token_expired:
                return self._error(42001)
            if endpoint == "media/get" and request.method == "GET":
                return self._media_get(request)
            if not request.body:
                return self._error(44002)
            body = request.json()
            if endpoint == "message/custom/send":
                return self._custom_send(body)
            if endpoint == "message/template/send":
                # client_msg_id: one message per (openid, client_msg_id) — WeChat keeps it 10 minutes.
                again = [t for t in self.templates if body.get("client_msg_id")
                         and (t["touser"], t.get("client_msg_id")) == (body["touser"], body["client_msg_id"])]
                if again:
                    return 200, {"errcode": 0, "errmsg": "ok", "msgid": again[0]["msgid"]}
                msgid = next(self._ids)
                self.templates.append({**body, "msgid": msgid})
                return 200, {"errcode": 0, "errmsg": "ok", "msgid": msgid}
            if endpoint == "message/mass/sendall":
                if "tag_id" not in body.get("filter", {}):
                    return 200, {"errcode": 40050, "errmsg": "invalid tag id"}
                msg_id = next(self._ids)
                self.mass.append(body)
                return 200, {"errcode": 0, "errmsg": "send job submission success", "msg_id": msg_id, "msg_data_id": msg_id}
            if endpoint == "menu/create":
                self.menus.append(body)
                return 200, {"errcode": 0, "errmsg": "ok"}
            return 404, {"errcode": 40066, "errmsg": "invalid url"}

    def _media_get(self, request: Request) -> tuple[int, Any]:
        media_id = request.query.get("media_id", "")
        found = self.media.get(media_id)
        if found is None:
            return self._error(40007)
        data, content_type = found
        extension = {"image/jpeg": "jpg", "image/png": "png", "audio/amr": "amr"}.get(content_type, "bin")
        return 200, Raw(data, content_type, {"Content-disposition": f'attachment; filename="{media_id}.{extension}"',
                                             "Cache-Control": "no-cache, must-revalidate"})

    def _stable_token(self, request: Request) -> tuple[int, Any]:
        body = request.json()
        if body.get("appid") != self.appid:
            return self._error(40013)
        if body.get("secret") != self.secret:
            return self._error(40125)
        force = bool(body.get("force_refresh"))
        self.token_calls.append(force)
        if force or not self.token or self.token_expired:
            self.token = "TOKEN-" + secrets.token_hex(8)
            self.token_expired = False
        return 200, {"access_token": self.token, "expires_in": 7200}

    def _custom_send(self, body: dict[str, Any]) -> tuple[int, Any]:
        openid = body.get("touser", "")
        if self.failures_for.get(openid):
            return self._error(self.failures_for[openid].pop(0))
        if openid in self.out_of_window:
            return self._error(45015)
        if self.cs_count[openid] >= self.cs_limit:
            return self._error(45047)
        self.cs_count[openid] += 1
        self.sent.append(body)
        self.sent_event.notify_all()
        return 200, {"errcode": 0, "errmsg": "ok"}
