"""Whatever a labourer types: a sensible reply, never a 5xx, and the message is in the log."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot import pii
from bot.db import session_scope
from bot.models import MessageLog

BAD_INPUTS = {
    "empty": "",
    "spaces": "   \n\t ",
    "very_long": "老板欠我工资" * 1700,  # 10,200 characters
    "emoji_only": "😀😀🙏🙏👍",
    "punctuation_only": "？？？。。。！！！",
    "control_chars": "公益\x00性\x07岗位\x1b[31m咋个报",
    "mixed_scripts": "hello 你好 Привет مرحبا 😀 ｆｕｌｌ－ｗｉｄｔｈ",
    "sql_looking": "'; DROP TABLE message_log; --",
    "xml_looking": "<xml><![CDATA[]]></xml>]]>&lt;",
    "digits_only": "13800138000",
    "surrogate_like": "\ufeff\u200b\u200d",
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_gets_a_sensible_reply_and_is_logged(name, app, client):
    text = BAD_INPUTS[name]
    response = client.post("/api/simulator/message", json={"user": f"bad-{name}", "text": text})
    assert response.status_code == 200
    replies = response.json()["replies"]
    assert replies and all(r["text"].strip() for r in replies)
    with session_scope(app.state.sessionmaker) as session:
        logged = session.scalars(select(MessageLog).where(MessageLog.user_id == f"bad-{name}")).all()
    inbound = [m for m in logged if m.direction == "in"]
    # Stored whole, even 10,000 characters; NUL (PostgreSQL text cannot hold it) is dropped, phones masked.
    assert len(inbound) == 1 and inbound[0].text == pii.redact(text.replace("\x00", ""))
    assert inbound[0].status == "ok"


def test_sql_looking_text_leaves_the_log_intact(app, say):
    say("你好", user="before")
    say("'; DROP TABLE message_log; --", user="evil")
    with session_scope(app.state.sessionmaker) as session:
        assert session.scalars(select(MessageLog).where(MessageLog.user_id == "before")).first() is not None


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"user": "", "text": "hi"},
        {"user": "u", "text": 12},
        {"user": "u" * 500, "text": "hi"},
        {"user": "u", "text": "x" * 30_000},
    ],
)
def test_malformed_simulator_requests_are_a_clear_4xx(client, body):
    response = client.post("/api/simulator/message", json=body)
    assert response.status_code == 422
    # the shape the OpenAPI schema documents (FastAPI's HTTPValidationError), without echoing the input back
    for error in response.json()["detail"]:
        assert set(error) == {"loc", "msg", "type"}, error


def test_malformed_json_is_a_clear_4xx(client):
    response = client.post("/api/simulator/message", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
