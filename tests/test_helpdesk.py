"""The help desk's API: complaints and hand-offs filed through the bot become tickets in the queue of
their area, with the conversation as their first messages; the workflow, assignment, replies and notes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.models import AuditLog, Complaint, Handoff, OutboundMessage, Ticket

from test_dialog_support import add_roster_labourer, db, rows, text_by_sms

PINGCHANG = [{"county": "平昌县"}]
BAZHOU = [{"county": "巴州区"}]


def file_by_sms(client: Any, phone: str = "13812345678") -> list[str]:
    """A roster labourer of 平昌县江口镇 files a wage complaint by SMS; returns the last replies."""
    for text in ("老板欠我三个月工资", "巴中某某建筑公司", "跳过", "8000", "3个", "就是不给"):
        text_by_sms(client, phone, text)
    return text_by_sms(client, phone, "1")


def desk(make_staff, name: str = "desk-pc", areas: list[dict[str, str]] | None = None) -> dict[str, str]:
    return make_staff(name, "helpdesk", PINGCHANG if areas is None else areas)


def only_ticket(client, auth) -> dict[str, Any]:  # noqa: ANN001
    body = client.get("/api/helpdesk/tickets", headers=auth).json()
    assert body["total"] == 1, body
    return body["items"][0]


def test_a_complaint_filed_by_sms_is_in_its_countys_queue_with_the_phone_masked(client, app, make_staff):
    add_roster_labourer(app, name="李秀英", phone="13812345678")
    file_by_sms(client)
    [complaint] = rows(app, Complaint)
    mine, other, admin = desk(make_staff), desk(make_staff, "desk-bz", BAZHOU), make_staff("boss", "admin")

    item = only_ticket(client, mine)
    assert item["ticket_no"] == complaint.ticket_no and item["kind"] == "complaint"
    assert (item["status"], item["category"], item["county"], item["township"]) == ("new", "欠薪", "平昌县", "江口镇")
    assert item["contact_phone"] == "138****5678" and item["assignee"] is None and item["urgent"] is False
    assert only_ticket(client, admin)["ticket_no"] == complaint.ticket_no

    assert client.get("/api/helpdesk/tickets", headers=other).json() == {"items": [], "total": 0}
    assert client.get(f"/api/helpdesk/tickets/{complaint.ticket_no}", headers=other).status_code == 404
    assert client.get("/api/helpdesk/tickets/WQ-20000101-0001", headers=other).status_code == 404
    for filters, expected in (({"status": "new"}, 1), ({"status": "closed"}, 0), ({"category": "工伤"}, 0),
                              ({"kind": "handoff"}, 0), ({"county": "平昌县", "township": "江口镇"}, 1),
                              ({"urgent": "true"}, 0), ({"overdue": "false"}, 1), ({"assignee": "nobody"}, 0)):
        body = client.get("/api/helpdesk/tickets", params=filters, headers=mine).json()
        assert body["total"] == expected, (filters, body)


def test_the_case_shows_the_conversation_and_its_events(client, app, make_staff):
    add_roster_labourer(app, name="李秀英", phone="13812345678")
    file_by_sms(client)
    [complaint] = rows(app, Complaint)
    case = client.get(f"/api/helpdesk/tickets/{complaint.ticket_no}", headers=desk(make_staff)).json()
    said = [m["body"] for m in case["messages"] if m["source"] == "labourer"]
    assert said[0] == "老板欠我三个月工资" and "巴中某某建筑公司" in said
    assert any(m["source"] == "bot" for m in case["messages"])
    assert {m["visibility"] for m in case["messages"]} == {"public"}
    assert [(e["from_status"], e["to_status"]) for e in case["events"]] == [(None, "new")]
    assert case["complaint_id"] == complaint.id


def test_the_workflow_assign_reply_note_wait_resolve_close_reopen(client, app, make_staff):
    add_roster_labourer(app, name="李秀英", phone="13812345678")
    file_by_sms(client)
    mine = desk(make_staff)
    desk(make_staff, "desk-pc-2")
    desk(make_staff, "desk-bz", BAZHOU)
    no = only_ticket(client, mine)["ticket_no"]
    url = f"/api/helpdesk/tickets/{no}"

    assert client.post(f"{url}/assign", json={"assignee": "desk-bz"}, headers=mine).status_code == 422  # not her area
    assert client.post(f"{url}/assign", json={"assignee": "nobody"}, headers=mine).status_code == 422
    case = client.post(f"{url}/assign", json={"assignee": "desk-pc-2"}, headers=mine).json()
    assert (case["status"], case["assignee"]) == ("assigned", "desk-pc-2")

    sent_before = len(rows(app, OutboundMessage))
    note = client.post(f"{url}/messages", json={"body": "老板电话打不通", "visibility": "internal"}, headers=mine)
    assert note.status_code == 201 and note.json()["delivery"] is None
    assert len(rows(app, OutboundMessage)) == sent_before  # a note never leaves

    reply = client.post(f"{url}/messages", json={"body": "您好，请问您有工资条或考勤记录吗？", "visibility": "public"},
                        headers=mine)
    assert reply.status_code == 201 and reply.json()["delivery"] == "sent"
    [out] = rows(app, OutboundMessage)[sent_before:]
    assert out.channel == "sms" and "考勤记录" in out.text and out.number_masked == "138****5678"

    steps = [("in_progress", 200), ("waiting_on_labourer", 200), ("assigned", 409), ("resolved", 200),
             ("closed", 200), ("resolved", 409), ("in_progress", 200)]
    for to, status in steps:
        response = client.post(f"{url}/transition", json={"to": to}, headers=mine)
        assert response.status_code == status, (to, response.text)
    case = client.get(url, headers=mine).json()
    assert case["status"] == "in_progress"
    moves = [(e["from_status"], e["to_status"]) for e in case["events"] if e["kind"] == "status"]
    assert moves == [(None, "new"), ("new", "assigned"), ("assigned", "in_progress"),
                     ("in_progress", "waiting_on_labourer"), ("waiting_on_labourer", "resolved"),
                     ("resolved", "closed"), ("closed", "in_progress")]
    visible = [(m["visibility"], m["body"]) for m in case["messages"] if m["source"] == "staff"]
    assert ("internal", "老板电话打不通") in visible and ("public", "您好，请问您有工资条或考勤记录吗？") in visible
    assert client.post(f"{url}/transition", json={"to": "nonsense"}, headers=mine).status_code == 422

    with db(app) as session:
        complaint = session.scalars(select(Complaint)).one()
        assert complaint.status == "in_progress"  # what "我的登记" shows the labourer
        actions = session.scalars(select(AuditLog.action).where(AuditLog.object_id == no)).all()
    assert actions.count("ticket_transition") == 5 and {"ticket_assign", "ticket_note", "ticket_reply"} <= set(actions)


def test_a_resolved_notice_goes_to_the_labourer(client, app, make_staff):
    add_roster_labourer(app, name="李秀英", phone="13812345678")
    file_by_sms(client)
    mine = desk(make_staff)
    no = only_ticket(client, mine)["ticket_no"]
    before = len(rows(app, OutboundMessage))
    assert client.post(f"/api/helpdesk/tickets/{no}/transition", json={"to": "resolved"}, headers=mine).status_code == 200
    [notice] = rows(app, OutboundMessage)[before:]
    assert no in notice.text and "处理完毕" in notice.text


def test_a_handoff_becomes_a_ticket_with_the_transcript(client, app, say, make_staff):
    say("公益性岗位咋个申请", user="wang")
    replies = say("我要找人工客服", user="wang")
    [handoff] = rows(app, Handoff)
    assert f"RG-{handoff.id}" in replies[0]
    admin = make_staff("boss", "admin")
    item = only_ticket(client, admin)
    assert (item["ticket_no"], item["kind"], item["county"]) == (f"RG-{handoff.id}", "handoff", None)
    case = client.get(f"/api/helpdesk/tickets/{item['ticket_no']}", headers=admin).json()
    said = [(m["source"], m["body"]) for m in case["messages"]]
    assert ("labourer", "公益性岗位咋个申请") in said and any(source == "bot" for source, _ in said)
    # Nobody could place it: only those who see every county see it (the unassigned-area queue).
    assert client.get("/api/helpdesk/tickets", headers=desk(make_staff)).json()["total"] == 0
    everywhere = make_staff("desk-all", "helpdesk", [])
    assert client.get("/api/helpdesk/tickets", params={"county": "none"}, headers=everywhere).json()["total"] == 1

    assert client.post(f"/api/helpdesk/tickets/{item['ticket_no']}/transition", json={"to": "closed"},
                       headers=admin).status_code == 200
    with db(app) as session:
        assert session.get(Handoff, handoff.id).status == "closed"
        assert session.scalars(select(Ticket)).one().closed_at is not None


def test_bad_requests_are_clear(client, app, make_staff):
    mine = desk(make_staff)
    for path in ("/api/helpdesk/tickets/x", "/api/helpdesk/tickets/WQ-%00"):
        assert client.get(path, headers=mine).status_code in (404, 422)
    assert client.get("/api/helpdesk/tickets", params={"kind": "other"}, headers=mine).status_code == 422
    assert client.post("/api/helpdesk/tickets/WQ-20260101-0001/messages", json={"body": "", "visibility": "public"},
                       headers=mine).status_code == 422
    assert client.post("/api/helpdesk/tickets/WQ-20260101-0001/messages", json={"body": "x", "visibility": "secret"},
                       headers=mine).status_code == 422
    assert client.post("/api/helpdesk/tickets/WQ-20260101-0001/messages", json={"body": "x", "visibility": "public"},
                       headers=mine).status_code == 404


def test_complaints_notes_and_handoffs_filed_before_the_desk_become_tickets(tmp_path):
    from alembic import command
    from sqlalchemy import text

    from bot.db import alembic_config, make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    command.upgrade(alembic_config(engine), "0012")
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO complaint (id, ticket_no, channel, user_id, category, employer, workers_affected, urgent, "
            "status, county, township, created_at, updated_at) VALUES (3, 'WQ-20260101-0001', 'sms', 'h', '欠薪', "
            "'某公司', 1, 0, 'in_progress', '平昌县', '江口镇', '2026-01-01 02:00:00', '2026-01-01 02:00:00')"))
        conn.execute(text("INSERT INTO complaint_note (complaint_id, author, visibility, body, created_at) VALUES "
                          "(3, 'desk', 'internal', '已电话联系', '2026-01-02 02:00:00')"))
        conn.execute(text("INSERT INTO complaint_evidence (complaint_id, channel, kind, media_id, created_at) "
                          "VALUES (3, 'wechat', 'image', 'media-1', '2026-01-01 02:00:00')"))
        conn.execute(text("INSERT INTO handoff (id, channel, user_id, reason, transcript, status, created_at) VALUES "
                          "(9, 'wechat', 'o1', '人工', '[]', 'open', '2026-01-03 02:00:00')"))
    command.upgrade(alembic_config(engine), "head")
    with engine.connect() as conn:
        tickets = conn.execute(text("SELECT ticket_no, kind, status, county FROM ticket ORDER BY id")).all()
        notes = conn.execute(text("SELECT source, author, visibility, body FROM ticket_message")).all()
        evidence = conn.execute(text("SELECT media_id FROM complaint_evidence")).scalars().all()
    engine.dispose()
    assert [tuple(t) for t in tickets] == [("WQ-20260101-0001", "complaint", "in_progress", "平昌县"),
                                           ("RG-9", "handoff", "new", None)]
    assert [tuple(n) for n in notes] == [("staff", "desk", "internal", "已电话联系")]
    assert evidence == ["media-1"]  # nothing of the complaint is lost on the way


def test_someone_the_registry_does_not_know_is_asked_their_township_and_lands_in_that_queue(client, say,
                                                                                              make_staff):
    from test_dialog_complaint import file_wage_complaint

    def skipping(text: str) -> list[str]:
        replies = say(text, user="nowhere")
        return say("跳过", user="nowhere") if "哪个乡镇" in replies[0] else replies

    file_wage_complaint(skipping)  # registered now, but still nobody knows where
    everywhere = make_staff("desk-all", "helpdesk", [])
    unplaced = client.get("/api/helpdesk/tickets", params={"county": "none"}, headers=everywhere).json()
    assert unplaced["total"] == 1 and unplaced["items"][0]["county"] is None
    mine = desk(make_staff)
    assert client.get("/api/helpdesk/tickets", headers=mine).json()["total"] == 0

    asked: list[str] = []

    def talk(text: str) -> list[str]:
        replies = say(text, user="stranger")
        asked.extend(replies)
        return replies

    file_wage_complaint(talk)
    assert any("哪个乡镇" in reply for reply in asked)
    item = only_ticket(client, mine)
    assert (item["county"], item["township"]) == ("平昌县", "江口镇")


def test_a_roster_labourer_is_not_asked_where_they_live(say, app):
    from test_dialog_complaint import file_wage_complaint

    add_roster_labourer(app, name="王小明", phone="13812345678", township="白衣镇")
    said: list[str] = []
    file_wage_complaint(lambda text: said.extend(say(text, user="known")) or said[-1:])
    assert not any("哪个乡镇" in reply for reply in said)
    [complaint] = rows(app, Complaint)
    assert (complaint.county, complaint.township) == ("平昌县", "白衣镇")
