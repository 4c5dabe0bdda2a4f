"""The conversational core, driven the way a labourer talks to it (simulator endpoint, real database)."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.app import create_app
from bot.channels.base import Reply
from bot.db import session_scope
from bot.models import Handoff, MessageLog


def rows(app, model, *where):  # noqa: ANN001, ANN201
    with session_scope(app.state.sessionmaker) as session:
        return session.scalars(select(model).where(*where).order_by(model.id)).all()


def test_greeting_shows_the_numbered_menu(say):
    reply = say("你好")[0]
    for label in ("1. 政策咨询", "2. 报名培训", "3. 登记求职", "4. 维权投诉", "5. 招聘会和培训班"):
        assert label in reply


def test_bare_digit_picks_from_the_last_menu(say):
    say("你好")
    topics = say("1")[0]  # 政策咨询 → the list of policy topics
    assert "公益性岗位" in topics and "回复数字" in topics
    number = next(line.split(".")[0] for line in topics.splitlines() if line.endswith("公益性岗位"))
    entries = say(number)[0]
    assert "公益性岗位" in entries
    answer = say("1")[0]  # the first entry of that topic
    assert "回复 1 看详细" in answer


def test_policy_question_in_dialect_gets_short_answer_then_detail(app, say):
    answer = say("公益性岗位咋个申请嘛")[0]
    first_part = answer.split("\n")[0]
    assert len(first_part) <= 140
    assert "公益性岗位" in first_part or "岗位" in first_part
    assert answer.endswith("回复 1 看详细")
    detail = say("1")[0]
    assert len(detail) > len(first_part)
    assert "来源" in detail
    logged = rows(app, MessageLog, MessageLog.direction == "in")
    assert logged[0].intent == "policy_question" and logged[0].topic == "public_welfare_post"


def test_unknown_question_is_honest_and_offers_the_menu(say):
    reply = say("帮我点个外卖")[0]
    assert "答不了" in reply
    assert "1. 政策咨询" in reply


def test_digit_without_a_menu_entry_is_explained(say):
    say("你好")
    reply = say("9")[0]
    assert "没有这个选项" in reply
    assert "1. 政策咨询" in reply


def test_handoff_is_recorded_with_the_conversation(app, say):
    say("护林员咋个报")
    reply = say("我要找人工")[0]
    assert "RG-" in reply
    [request] = rows(app, Handoff)
    assert request.status == "open"
    texts = [m["text"] for m in request.transcript]
    assert "护林员咋个报" in texts
    again = say("人工人工")[0]
    assert f"RG-{request.id}" in again and len(rows(app, Handoff)) == 1


def test_every_message_in_and_out_is_logged(app, say):
    say("嗨", user="a")
    say("社保有补贴没得", user="a")
    logged = rows(app, MessageLog, MessageLog.user_id == "a")
    assert [m.direction for m in logged] == ["in", "out", "in", "out"]
    assert logged[2].text == "社保有补贴没得"


def test_platform_retry_is_processed_once(app, client):
    body = {"user": "w1", "text": "丽水那边招工是真的吗", "msg_id": "6112345678901234567"}
    first = client.post("/api/simulator/message", json=body).json()
    second = client.post("/api/simulator/message", json=body).json()
    assert first["replies"] and not first["duplicate"]
    assert second == {"replies": [], "duplicate": True}
    assert len(rows(app, MessageLog, MessageLog.direction == "in")) == 1


def test_state_survives_a_restart(settings, say, client):
    say("你好", user="r1")
    restarted = create_app(settings, configure_logs=False)
    from fastapi.testclient import TestClient

    with TestClient(restarted) as other:
        reply = other.post("/api/simulator/message", json={"user": "r1", "text": "1"}).json()["replies"][0]["text"]
    restarted.state.engine.dispose()
    assert "公益性岗位" in reply  # the menu shown before the restart still answers "1"


def test_failing_handler_apologises_and_keeps_the_message(app, say, monkeypatch):
    def broken(turn):  # noqa: ANN001, ANN202
        raise RuntimeError("database hiccup")

    monkeypatch.setitem(app.state.services.handlers, "policy_question", broken)
    reply = say("公益性岗位咋个申请")[0]
    assert "消息已经记下" in reply
    [inbound] = rows(app, MessageLog, MessageLog.direction == "in")
    assert inbound.text == "公益性岗位咋个申请" and inbound.status == "failed"
    assert "database hiccup" in inbound.error
    assert say("你好")  # and the next message works again


def test_users_do_not_share_menus(say):
    say("你好", user="x")
    reply = say("1", user="y")[0]
    assert "公益性岗位" not in reply.split("\n")[0]


def test_simulator_page_is_served(client):
    page = client.get("/simulator")
    assert page.status_code == 200
    assert "/api/simulator/message" in page.text and "工友" in page.text


def test_count_of_logged_messages_matches_after_many_turns(app, say):
    for text in ("你好", "1", "2", "1", "人工"):
        say(text, user="m")
    with session_scope(app.state.sessionmaker) as session:
        count = session.scalar(select(func.count()).select_from(MessageLog).where(MessageLog.direction == "in"))
    assert count == 5


def test_a_failing_handler_leaves_no_half_written_rows(app, say, monkeypatch):
    def half_done(turn):  # noqa: ANN001, ANN202
        turn.session.add(Handoff(channel="simulator", user_id="h", reason="half"))
        turn.session.flush()
        raise RuntimeError("failed after writing")

    monkeypatch.setitem(app.state.services.handlers, "human_handoff", half_done)
    assert "消息已经记下" in say("我要人工", user="h")[0]
    assert rows(app, Handoff) == []  # the handler's own writes were rolled back…
    statuses = [(m.direction, m.status) for m in rows(app, MessageLog, MessageLog.user_id == "h")]
    assert statuses == [("in", "failed"), ("out", "sent")]  # …the message and the apology were kept


def test_id_numbers_and_phones_are_masked_in_the_log_and_handoff(app, say):
    from stdnum.cn import ric

    body = "51190219600101001"
    number = body + ric.calc_check_digit(body + "0")
    say(f"我身份证是{number} 电话13812345678 老板欠我工资", user="p")
    say("我要人工", user="p")
    logged = " ".join(m.text for m in rows(app, MessageLog, MessageLog.user_id == "p"))
    transcript = " ".join(m["text"] for m in rows(app, Handoff)[0].transcript)
    for text in (logged, transcript):
        assert number not in text and "13812345678" not in text
        assert "5119**********" + number[-4:] in text and "138****5678" in text


def test_after_commit_actions_run_once_the_turn_is_committed(app, say, monkeypatch):
    seen = []

    def handoff_then_notice(turn):  # noqa: ANN001, ANN202
        turn.session.add(Handoff(channel="simulator", user_id="c", reason="committed first"))

        def notice():  # what a provider call would see: the turn's rows, from another connection
            seen.append([h.reason for h in rows(app, Handoff)])

        turn.after_commit(notice)
        assert seen == []  # not while the handler runs
        return [Reply("好的")]

    monkeypatch.setitem(app.state.services.handlers, "human_handoff", handoff_then_notice)
    assert say("我要人工", user="c") == ["好的"]
    assert seen == [["committed first"]]


def test_a_failing_turn_runs_none_of_its_after_commit_actions(app, say, monkeypatch):
    ran = []

    def notice_then_fail(turn):  # noqa: ANN001, ANN202
        turn.after_commit(lambda: ran.append("notice"))
        raise RuntimeError("failed after asking for a notice")

    monkeypatch.setitem(app.state.services.handlers, "human_handoff", notice_then_fail)
    assert "消息已经记下" in say("我要人工", user="f")[0]
    assert ran == []


def test_a_failing_after_commit_action_leaves_the_answer_and_the_rows(app, say, monkeypatch):
    def answer_then_broken_notice(turn):  # noqa: ANN001, ANN202
        turn.session.add(Handoff(channel="simulator", user_id="b", reason="kept"))
        turn.after_commit(lambda: 1 / 0)
        return [Reply("好的")]

    monkeypatch.setitem(app.state.services.handlers, "human_handoff", answer_then_broken_notice)
    assert say("我要人工", user="b") == ["好的"]
    assert [h.reason for h in rows(app, Handoff)] == ["kept"]
    statuses = [(m.direction, m.status) for m in rows(app, MessageLog, MessageLog.user_id == "b")]
    assert statuses == [("in", "ok"), ("out", "sent")]


def test_a_handler_cannot_call_a_provider_inside_the_turn(app, say, monkeypatch):
    from bot.channels.base import SendResult
    from bot.channels.outbound import send_recorded
    from bot.models import OutboundMessage

    called = []

    def sends_now(turn):  # noqa: ANN001, ANN202
        record = OutboundMessage(channel="sms", kind="sms", user_id="other", provider="log", text="有空位了")
        send_recorded(turn.session, turn.services, record, lambda: called.append(1) or SendResult(ok=True))
        return [Reply("好的")]

    monkeypatch.setitem(app.state.services.handlers, "human_handoff", sends_now)
    assert "消息已经记下" in say("我要人工", user="s")[0]  # refused before the call: an apology
    assert called == [] and rows(app, OutboundMessage) == []
