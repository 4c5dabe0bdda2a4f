"""rights_complaint → a help-desk ticket: prefill from the first message, evidence photos, urgency, ticket
numbers (sequential per day, unique under concurrency), replies and notes, the status workflow."""

from __future__ import annotations

import re
import threading
from datetime import date

import pytest
from sqlalchemy import select

from bot.db import make_engine, make_sessionmaker, session_scope
from bot.models import Complaint, ComplaintEvidence, ConversationState, Labourer
from bot.models.complaints import ComplaintTransitionError, add_note, next_ticket_no, transition_complaint

from test_dialog_support import add_roster_labourer, db, rows, send, text_by_sms

TICKET = re.compile(r"WQ-\d{8}-\d{4}")


def file_wage_complaint(talk, workers: str = "就我") -> str:
    first = talk("老板欠我三个月工资两万块")
    assert "欠薪" in first[0] and "20000元" in first[0] and "3个月" in first[0]  # prefilled, not asked again
    talk("丽水某某建筑公司")
    talk("丽水莲都区某某小区工地")
    talk(workers)
    talk("干完活一直拖着不结账")
    talk("王小明")
    talk("13812345678")
    confirmation = talk("没有")[0]
    if "哪个乡镇" in confirmation:  # someone the registry does not know is asked where they are
        confirmation = talk("平昌县江口镇")[0]
    assert "丽水某某建筑公司" in confirmation
    return talk("确认")[0]


def test_wage_complaint_happy_path(say, app):
    done = file_wage_complaint(say)
    ticket = TICKET.search(done).group(0)
    [complaint] = rows(app, Complaint)
    assert complaint.ticket_no == ticket and ticket.endswith("-0001")
    assert (complaint.category, complaint.employer, complaint.amount_owed, complaint.period) == ("欠薪", "丽水某某建筑公司", 20000, "3个月")
    assert complaint.workers_affected == 1 and complaint.urgent is False and complaint.status == "new"
    assert complaint.contact_phone_masked == "138****5678" and b"13812345678" not in complaint.contact_phone_enc
    [labourer] = rows(app, Labourer)
    assert complaint.labourer_id == labourer.id and labourer.name == "王小明"


def test_ten_or_more_workers_is_urgent_and_numbers_follow_each_other(say, app):
    first = TICKET.search(file_wage_complaint(say, workers="十几个人")).group(0)
    second = TICKET.search(file_wage_complaint(lambda text: say(text, user="labourer-2"))).group(0)
    assert first[:-4] == second[:-4] and int(second[-4:]) == int(first[-4:]) + 1
    urgent = {c.ticket_no: c.urgent for c in rows(app, Complaint)}
    assert urgent == {first: True, second: False}


def test_injury_is_urgent_and_asks_no_amount(say, app):
    assert "问题类型：工伤" in say("在工地上摔断了腿，老板不管")[0]
    say("某某劳务公司")
    say("跳过")  # no site given
    assert "咋回事" in say("就我")[0]  # no amount or period for an injury
    say("从架子上摔下来")
    say("王小明")
    say("13812345678")
    say("没有")
    say("平昌县江口镇")
    done = say("1")[0]
    assert "紧急" in done and "病历" in done
    [complaint] = rows(app, Complaint)
    assert complaint.urgent and complaint.amount_owed is None and complaint.site is None


def test_photos_sent_during_and_after_the_dialog_join_the_ticket(say, app):
    say("老板欠我工资")
    say("某某建筑公司")
    assert "收到第1张照片" in send(app, "labourer-1", kind="image", media_id="media-1")[0]  # at any step
    say("跳过")
    say("两万")
    say("三个月")
    say("就我")
    say("跳过")
    say("王小明")
    say("13812345678")
    assert "收到第2张照片" in send(app, "labourer-1", kind="image", media_id="media-2")[0]
    say("好了")
    confirmation = say("平昌县江口镇")[0]
    assert "已收到2张" in confirmation
    done = say("1")[0]
    ticket = TICKET.search(done).group(0)
    assert ticket in send(app, "labourer-1", kind="image", media_id="media-3")[0]
    [complaint] = rows(app, Complaint)
    media = [e.media_id for e in rows(app, ComplaintEvidence, ComplaintEvidence.complaint_id == complaint.id)]
    assert media == ["media-1", "media-2", "media-3"]


def test_complaint_by_sms_uses_the_number_it_came_from(client, app):
    phone = "13912345678"

    def talk(text: str) -> list[str]:
        return text_by_sms(client, phone, text)

    talk("我要投诉中介乱收费")
    talk("巴中某某劳务中介")
    talk("跳过")
    talk("5个")
    talk("收了800块介绍费不给安排")
    assert "哪个乡镇" in talk("刘德华")[0]  # no ID/phone question; not in the registry: where is she?
    confirmation = talk("平昌县江口镇")[0]  # no photos on SMS
    assert "中介收费" in confirmation
    talk("1")
    [complaint] = rows(app, Complaint)
    assert complaint.channel == "sms" and complaint.contact_phone_masked == "139****5678"
    assert (complaint.county, complaint.township) == ("平昌县", "江口镇")  # lands in that county's queue
    [labourer] = rows(app, Labourer)
    assert labourer.phone_masked == "139****5678" and labourer.sms_number_hash


def test_a_roster_labourer_complaining_by_sms_is_recognised(client, app):
    known = add_roster_labourer(app, name="李秀英", phone="13812345678")
    for text in ("老板欠我三个月工资", "巴中某某建筑公司", "跳过", "8000", "3个", "就是不给"):
        replies = text_by_sms(client, "13812345678", text)
    assert "姓名" not in "".join(replies) and "欠薪" in replies[-1]  # read back, nothing asked about who she is
    text_by_sms(client, "13812345678", "1")
    [complaint] = rows(app, Complaint)
    assert complaint.labourer_id == known and complaint.contact_phone_masked == "138****5678"
    assert [lab.id for lab in rows(app, Labourer)] == [known]


def test_my_records_shows_the_latest_public_reply_only(say, app):
    file_wage_complaint(say)
    with db(app) as session:
        complaint = session.query(Complaint).one()
        add_note(session, complaint, author="desk", body="已联系用人单位，约定下周一结清。", public=True)
        add_note(session, complaint, author="desk", body="老板态度差，准备移交劳动监察。", public=False)
        transition_complaint(complaint, "in_progress", actor="desk")
        session.commit()
    records = say("查一下我登记的")[0]
    assert "欠薪（处理中）" in records and "约定下周一结清" in records
    assert "劳动监察" not in records


def test_status_changes_only_along_the_workflow(app):
    with db(app) as session:
        complaint = Complaint(ticket_no="WQ-20260101-0001", channel="simulator", user_id="u", category="欠薪",
                              employer="x", workers_affected=1)
        session.add(complaint)
        session.flush()
        transition_complaint(complaint, "assigned", actor="lead", assignee="desk-1")
        assert complaint.assignee == "desk-1"
        transition_complaint(complaint, "resolved", actor="desk-1")
        transition_complaint(complaint, "closed", actor="desk-1")
        assert complaint.closed_at is not None
        with pytest.raises(ComplaintTransitionError):
            transition_complaint(complaint, "assigned", actor="desk-1")


def test_ticket_numbers_are_unique_under_concurrency(db_url):
    engine = make_engine(db_url)
    factory = make_sessionmaker(engine)
    numbers: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            for _ in range(10):
                with session_scope(factory) as session:
                    number = next_ticket_no(session, date(2026, 11, 26))
                with lock:
                    numbers.append(number)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.dispose()
    assert not errors
    assert sorted(numbers) == [f"WQ-20261126-{n:04d}" for n in range(1, 81)]


def test_change_the_phone_at_the_confirmation_and_a_question_at_a_free_text_step(say, app):
    say("老板欠我三个月工资两万块")
    say("丽水某某建筑公司")
    say("跳过")
    say("就我")
    replies = say("欠薪了找哪个部门管？")  # a question, not what happened
    assert replies[-1].startswith("好的，我们接着登记：") and "咋回事" in replies[-1]
    say("干完活一直拖着不结账")
    say("王小明")
    say("13812345678")
    say("没有")
    say("跳过")  # where they are: not said (the case goes to the unassigned-area queue)
    assert "请重新告诉我身份证号或手机号" in say("改一下电话")[0]  # given as the phone: it is the contact
    assert "139****0000" in say("13900000000")[0]
    assert "150****1111" in say("电话改成15000001111")[0]
    say("1")
    [complaint] = rows(app, Complaint)
    assert complaint.contact_phone_masked == "150****1111" and complaint.site is None
    assert complaint.description == "干完活一直拖着不结账"


@pytest.mark.parametrize("ask", ["我要人工", "转人工", "能不能找个真人跟我说"])
def test_asking_for_a_person_mid_dialog_hands_off_and_keeps_the_dialog(app, say, ask):
    say("老板欠我工资", user="ho")
    reply = say(ask, user="ho")
    assert "RG-" in reply[0]  # the hand-off is recorded…
    with session_scope(app.state.sessionmaker) as session:
        state = session.scalars(select(ConversationState).where(ConversationState.user_id == "ho")).one()
        assert state.dialog and "employer" not in (state.slots or {})  # …not taken as the employer's name
    assert "老板" in reply[-1] or "公司" in reply[-1]  # and the question is asked again
