"""A desk worker in Debian's chromium against the real HTTP server: a complaint filed in the simulator is in
her queue; she opens it, takes it, reveals the phone (audited), replies (it reaches the simulator user, a
note does not) and resolves it. Screenshots go to the `artifacts` folder."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from bot.db import session_scope
from bot.models import AuditLog, MessageLog, Ticket

from conftest import STAFF_PASSWORD
from test_dialog_complaint import file_wage_complaint
from test_dialog_support import add_roster_labourer

pytestmark = pytest.mark.browser


def test_a_desk_worker_takes_a_case_from_the_queue_to_a_reply_and_resolves_it(live_server, browser_page, app,
                                                                              make_staff, artifacts):
    add_roster_labourer(app, name="王小明", phone="13812345678")  # 平昌县江口镇, found by name and phone

    def talk(text: str) -> list[str]:
        response = httpx.post(f"{live_server.url}/api/simulator/message", json={"user": "wang", "text": text})
        assert response.status_code == 200, response.text
        return [r["text"] for r in response.json()["replies"]]

    file_wage_complaint(talk)
    make_staff("desk-li", "helpdesk", [{"county": "平昌县"}])
    make_staff("desk-bz", "helpdesk", [{"county": "巴州区"}])
    with session_scope(app.state.sessionmaker) as session:
        ticket_no = session.scalars(select(Ticket.ticket_no)).one()

    page = browser_page
    page.goto(f"{live_server.url}/console/helpdesk")
    page.fill("input[name=username]", "desk-li")
    page.fill("input[name=password]", STAFF_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/helpdesk")
    row = page.locator("tr.ticket", has_text=ticket_no)
    assert "138****5678" in row.inner_text() and "新工单" in row.inner_text()
    page.check("input[name=overdue]")  # filters apply in place (htmx): nothing is overdue yet
    page.wait_for_selector("text=没有符合条件的工单")
    page.uncheck("input[name=overdue]")
    page.wait_for_selector(f"tr.ticket >> text={ticket_no}")
    page.screenshot(path=str(artifacts / "1-queue.png"), full_page=True)

    page.click(f"text={ticket_no}")
    page.wait_for_url(f"**/console/helpdesk/{ticket_no}")
    assert "丽水某某建筑公司" in page.inner_text("main") and "老板欠我三个月工资两万块" in page.inner_text("#messages")
    page.click("#assign button[type=submit]")
    page.wait_for_selector("#assignee >> text=desk-li")
    page.click("text=显示")
    page.wait_for_selector(".revealed >> text=13812345678")
    page.screenshot(path=str(artifacts / "2-case.png"), full_page=True)

    page.select_option("#composer select", index=2)  # a canned reply, the name filled in
    assert "王小明您好" in page.input_value("#composer textarea")
    page.fill("#composer textarea", "王小明您好，请把工地的考勤照片发给我们，我们马上联系老板。")
    page.click("#composer button[value=public]")
    reply = page.locator("li.msg.staff.public", has_text="我们马上联系老板")
    reply.wait_for()
    assert "已发出" in reply.inner_text()  # its delivery, on the reply itself
    page.fill("#composer textarea", "老板电话 0827 开头，明天上午再打")
    page.click("#composer button[value=internal]")
    note = page.locator("li.msg.staff.internal", has_text="明天上午再打")
    note.wait_for()
    assert "内部备注" in note.inner_text() and "已发出" not in note.inner_text()
    page.screenshot(path=str(artifacts / "3-replied.png"), full_page=True)

    page.click("#moves button[data-to=resolved]")
    page.wait_for_selector("#status >> text=已解决")
    page.screenshot(path=str(artifacts / "4-resolved.png"), full_page=True)

    with session_scope(app.state.sessionmaker) as session:
        pushed = session.scalars(select(MessageLog.text).where(MessageLog.user_id == "wang",
                                                               MessageLog.direction == "out")).all()
        actions = session.scalars(select(AuditLog.action).where(AuditLog.actor == "desk-li")).all()
    assert "王小明您好，请把工地的考勤照片发给我们，我们马上联系老板。" in pushed
    inbox = httpx.get(f"{live_server.url}/api/simulator/inbox", params={"user": "wang"}).json()["messages"]
    in_inbox = [m["text"] for m in inbox]
    assert "王小明您好，请把工地的考勤照片发给我们，我们马上联系老板。" in in_inbox  # what the simulator user sees
    assert not [text for text in in_inbox if "明天上午再打" in text]
    assert not [text for text in pushed if "明天上午再打" in text]
    assert any(ticket_no in text and "处理完毕" in text for text in pushed)  # told on their channel
    assert {"reveal", "ticket_assign", "ticket_reply", "ticket_note", "ticket_transition"} <= set(actions)

    # Another county's desk cannot open the case by its address.
    page.click("text=退出登录")
    page.fill("input[name=username]", "desk-bz")
    page.fill("input[name=password]", STAFF_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/")
    response = page.goto(f"{live_server.url}/console/helpdesk/{ticket_no}")
    assert response is not None and response.status == 404
    page.screenshot(path=str(artifacts / "5-other-county.png"), full_page=True)

    # Nor can a township official of another county (the desk is not an official's page, whatever the URL).
    make_staff("cz-official", "official", [{"county": "巴州区", "township": "曾口镇"}])
    page.goto(f"{live_server.url}/console/")
    page.click("text=退出登录")
    page.fill("input[name=username]", "cz-official")
    page.fill("input[name=password]", STAFF_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/")
    response = page.goto(f"{live_server.url}/console/helpdesk/{ticket_no}")
    assert response is not None and response.status in (403, 404)
    assert "丽水某某建筑公司" not in page.content() and "138****5678" not in page.content()
    page.screenshot(path=str(artifacts / "6-township-official.png"), full_page=True)


def test_the_queue_turns_overdue_across_a_weekend_and_a_statutory_holiday(live_server, browser_page, app,
                                                                          make_staff, artifacts):
    from test_helpdesk_sla import _ticket, at

    with session_scope(app.state.sessionmaker) as session:
        # Friday 6 March 2026 16:00: 8 working hours → Monday 9 March 17:00 (the weekend does not count).
        weekend = _ticket(session, at("2026-03-06 16:00"), workers=1).ticket_no
        # Wednesday 30 September 16:00: → Thursday 8 October 17:00 (National Day, 1–7 October, does not count).
        holiday = _ticket(session, at("2026-09-30 16:00"), workers=2).ticket_no
    make_staff("desk-li", "helpdesk", [{"county": "平昌县"}])
    page = browser_page
    page.goto(f"{live_server.url}/console/helpdesk")
    page.fill("input[name=username]", "desk-li")
    page.fill("input[name=password]", STAFF_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/helpdesk")

    def queue_at(moment: str) -> dict[str, bool]:
        app.state.desk_clock = lambda: at(moment)  # the desk's clock, injected
        page.goto(f"{live_server.url}/console/helpdesk")
        return {no: "已超时" in page.locator("tr.ticket", has_text=no).inner_text() for no in (weekend, holiday)}

    assert queue_at("2026-03-08 20:00") == {weekend: False, holiday: False}  # Sunday evening: two days, no working time
    page.screenshot(path=str(artifacts / "1-sunday.png"), full_page=True)
    assert queue_at("2026-03-09 17:01") == {weekend: True, holiday: False}  # Monday after its target
    assert page.locator("tr.ticket.overdue", has_text=weekend).count() == 1  # highlighted
    assert page.inner_text("a[data-view=overdue] .big") == "1"
    page.screenshot(path=str(artifacts / "2-monday-overdue.png"), full_page=True)

    assert queue_at("2026-10-07 20:00")[holiday] is False  # a week later, but the holiday has no working time
    page.click("a[data-view=overdue]")
    page.wait_for_url("**view=overdue")
    assert holiday not in page.inner_text("#queue") and weekend in page.inner_text("#queue")
    assert queue_at("2026-10-08 17:01")[holiday] is True
    with session_scope(app.state.sessionmaker) as session:  # a photo the labourer sent, fetched and stored
        from bot import pii
        from bot.models import ComplaintEvidence, utcnow

        from test_helpdesk_evidence import png

        ticket = session.scalars(select(Ticket).where(Ticket.ticket_no == holiday)).one()
        picture = png(160, 120, seed=3)
        session.add(ComplaintEvidence(complaint_id=ticket.complaint_id, ticket_id=ticket.id, channel="wechat",
                                      media_id="m-1", content=pii.encrypt_bytes(picture, app.state.settings.data_key),
                                      content_type="image/png", size=len(picture), fetched_at=utcnow()))
    page.goto(f"{live_server.url}/console/helpdesk/{holiday}")
    assert "已超时" in page.inner_text("h1")
    # the photo loads after the page (its own request, decrypted on the way): wait for it, then check its size
    page.wait_for_function("() => { const img = document.querySelector('#evidence img'); return img && img.complete; }")
    assert page.eval_on_selector("#evidence img", "img => img.naturalWidth") == 160
    page.screenshot(path=str(artifacts / "3-after-the-holiday.png"), full_page=True)
