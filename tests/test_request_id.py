"""One request id through the logs of one message, end to end: the callback, the pipeline's thread, the late
reply's thread and the send to the provider — and another id for the next message."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from bot.app import create_app
from bot.logs import JsonFormatter, RequestIdFilter, new_request_id
from tests.fakes.sms_gateways import aliyun_up
from tests.fakes.wechat_api import FakeWeChatApi
from tests.fakes.wechat_platform import AES_KEY, APPID, SECRET, TOKEN, WeChatPlatform


class Lines(logging.Handler):
    """What the service's log handler writes (same filter, same JSON formatter), kept for the test."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.addFilter(RequestIdFilter())
        self.setFormatter(JsonFormatter())
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))

    def of(self, rid: str) -> list[str]:
        return [line["msg"] for line in self.lines if line.get("request_id") == rid]


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def fake_api() -> Iterator[FakeWeChatApi]:
    with FakeWeChatApi(appid=APPID, secret=SECRET) as server:
        yield server


# Generous: it returns as soon as the line is there, and a shared 2-core machine can take seconds per message.
PATIENCE = 60.0


def wait_for(check, what: str, timeout: float = PATIENCE) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(0.02)


def test_a_late_wechat_reply_carries_the_callbacks_request_id_to_the_send(make_settings, fake_api, lines):
    settings = make_settings(wechat_token=TOKEN, wechat_aes_key=AES_KEY, wechat_appid=APPID, wechat_secret=SECRET,
                             wechat_api_base=fake_api.base, wechat_reply_deadline_seconds=0.0)
    app = create_app(settings, configure_logs=False)
    with TestClient(app) as client:
        wx = WeChatPlatform(client)
        client.headers["X-Request-ID"] = "proxy-req-0001"  # the reverse proxy's $request_id
        response = wx.post(wx.text("o-trace", "参加技能培训有补贴吗"))
        assert response.headers["x-request-id"] == "proxy-req-0001"
        assert fake_api.wait_for_sent(1, timeout=PATIENCE), "the late reply never reached the API"
        wait_for(lambda: "message sent" in lines.of("proxy-req-0001"), "the first message's send")
        del client.headers["X-Request-ID"]
        other = wx.post(wx.text("o-trace-2", "你好"))
        second = other.headers["x-request-id"]
        wait_for(lambda: "message sent" in lines.of(second), "the second message's send")
    app.state.engine.dispose()
    trail = lines.of("proxy-req-0001")
    # callback → pipeline thread → late path → send thread, all under the one id
    assert "reply late: answered through the API" in trail
    assert "message sent" in trail
    # each message answered once under its own id: the first id does not leak into the next request
    # (counted per id: threads of other tests' apps may still be logging in this process)
    assert second != "proxy-req-0001"
    assert trail.count("message answered") == 1
    assert lines.of(second).count("message answered") == 1


def test_an_sms_push_and_its_reply_share_one_generated_id(make_settings, lines):
    app = create_app(make_settings(), configure_logs=False)
    with TestClient(app) as client:
        response = client.post("/sms/inbound", json=aliyun_up("13881234567", "培训补贴有好多钱", 4242))
        assert response.status_code == 200
    app.state.engine.dispose()
    rid = response.headers["x-request-id"]
    trail = lines.of(rid)
    assert "message answered" in trail
    assert "sms (log provider)" in trail  # the reply handed to the gateway
    assert "message sent" in trail


def test_an_offered_id_that_is_not_a_plain_token_is_replaced(client):
    response = client.get("/health", headers={"X-Request-ID": "bad id\" injected"})
    rid = response.headers["x-request-id"]
    assert rid != "bad id\" injected" and len(rid) == 32
    assert new_request_id("a" * 65) != "a" * 65 and new_request_id("short") != "short"
    assert new_request_id("trace-0123456789") == "trace-0123456789"
