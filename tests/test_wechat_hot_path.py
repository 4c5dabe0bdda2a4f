"""The WeChat callback is the path every message takes: it skips FastAPI's layers and answers a plain
question in one transaction (after the nonce's single INSERT), without the ORM's savepoint — and still fails cleanly."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import event

from tests.fakes.wechat_platform import AES_KEY, APPID, TOKEN, WeChatPlatform


@pytest.fixture
def settings(make_settings):  # noqa: ANN001, ANN201
    return make_settings(wechat_token=TOKEN, wechat_aes_key=AES_KEY, wechat_appid=APPID)


@pytest.fixture
def statements(app):  # noqa: ANN001, ANN201
    seen: list[str] = []

    def record(_conn, _cursor, statement, _params, _context, _many) -> None:  # noqa: ANN001
        seen.append(statement.split(None, 1)[0].upper())

    engine = app.state.engine
    event.listen(engine, "before_cursor_execute", record)
    commits: list[int] = []

    def committed(_conn) -> None:  # noqa: ANN001
        commits.append(1)

    event.listen(engine, "commit", committed)
    yield seen, commits
    event.remove(engine, "before_cursor_execute", record)
    event.remove(engine, "commit", committed)


def test_a_plain_question_is_one_transaction_without_savepoint(client, statements):
    wx = WeChatPlatform(client)
    wx.post(wx.text("o-lean", "你好"))  # first contact creates the state and the follower
    seen, commits = statements
    seen.clear()
    commits.clear()
    node = wx.reply(wx.post(wx.text("o-lean", "公益性岗位咋个申请嘛")))
    assert "岗位" in node["Content"]
    # The message's one transaction, and before it the nonce's one INSERT (bot.security; Redis when configured)
    assert "SAVEPOINT" not in seen and len(commits) == 2 and seen[0] == "INSERT", (seen, commits)


def test_a_handler_that_writes_still_runs_under_a_savepoint(client, statements):
    wx = WeChatPlatform(client)
    node = wx.reply(wx.post(wx.text("o-handoff", "我要找人工")))
    assert node["Content"]
    seen, commits = statements
    assert "SAVEPOINT" in seen and len(commits) == 2, (seen, commits)  # the nonce's, then the message's


def test_an_unexpected_failure_in_the_callback_is_logged_and_answered_500(client, monkeypatch, caplog):
    import bot.channels.wechat as wechat

    def broken(*_args, **_kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("renderer broke")

    monkeypatch.setattr(wechat, "render_passive", broken)
    wx = WeChatPlatform(client)
    with caplog.at_level(logging.ERROR, logger="bot.app"):
        response = wx.post(wx.text("o-500", "你好"))
    assert response.status_code == 500 and "renderer broke" not in response.text
    assert any("wechat callback failed" in r.getMessage() for r in caplog.records)
