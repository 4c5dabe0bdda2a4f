"""The desk talks to the labourer over the channel they came from, through the real endpoints: a public
reply reaches them (WeChat customer-service API, the SMS gateway, the simulator's log), a note never
does, and what they answer while the desk waits for them lands on the ticket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from bot.models import MessageLog, Ticket, TicketMessage

from tests.fakes.sms_gateways import FakeAliyunSms
from tests.fakes.wechat_api import FakeWeChatApi
from tests.fakes.wechat_platform import AES_KEY, APPID, SECRET, TOKEN, WeChatPlatform

from test_dialog_support import add_roster_labourer, db, text_by_sms
from test_console import login
from test_helpdesk import PINGCHANG, file_by_sms, only_ticket


@pytest.fixture
def fakes() -> Iterator[tuple[FakeWeChatApi, FakeAliyunSms]]:
    with FakeWeChatApi(appid=APPID, secret=SECRET) as wechat, FakeAliyunSms() as aliyun:
        yield wechat, aliyun


@pytest.fixture
def settings(make_settings, fakes):  # noqa: ANN001, ANN201
    """conftest's `app` and `client`, with the Official Account and the Aliyun gateway (loopback fakes)."""
    wechat, aliyun = fakes
    return make_settings(wechat_token=TOKEN, wechat_aes_key=AES_KEY, wechat_appid=APPID, wechat_secret=SECRET,
                         wechat_api_base=wechat.base, sms_provider="aliyun", sms_api_base=aliyun.base,
                         sms_access_key_id="LTAI-test", sms_access_key_secret="aliyun-secret",
                         sms_template_id="SMS_1", sms_callback_token="callback-secret-for-tests",
                         wechat_template_id="TPL-1")


def case(client, auth, no: str) -> dict[str, Any]:  # noqa: ANN001
    response = client.get(f"/api/helpdesk/tickets/{no}", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


def act(client, auth, no: str, what: str, **body: Any) -> Any:  # noqa: ANN001
    response = client.post(f"/api/helpdesk/tickets/{no}/{what}", json=body, headers=auth)
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_wechat_handoff_reply_reaches_the_labourer_and_the_bot_stays_quiet_while_staff_handle_it(client, fakes,
                                                                                               make_staff):
    wechat, _aliyun = fakes
    wx = WeChatPlatform(client)
    wx.say("o-zhang", "公益性岗位咋个申请")
    assert "RG-" in wx.say("o-zhang", "我要找人工")
    admin = make_staff("boss", "admin")
    no = only_ticket(client, admin)["ticket_no"]

    act(client, admin, no, "messages", body="内部：先查他的登记", visibility="internal")
    reply = act(client, admin, no, "messages", body="张师傅您好，我是服务台小李，请问您在哪个镇？", visibility="public")
    assert reply["delivery"] == "sent"
    sent = wechat.wait_for_sent(1)
    assert [(m["touser"], m["text"]["content"]) for m in sent] == [("o-zhang", "张师傅您好，我是服务台小李，请问您在哪个镇？")]

    act(client, admin, no, "assign", assignee="boss")
    act(client, admin, no, "transition", to="waiting_on_labourer")
    answer = wx.post(wx.text("o-zhang", "我在白衣镇"))
    assert wx.reply(answer) is None  # a person is answering: the bot says nothing
    now = case(client, admin, no)
    assert now["status"] == "in_progress"
    assert [m["body"] for m in now["messages"]][-1] == "我在白衣镇"
    assert "内部：先查他的登记" not in json.dumps(wechat.sent, ensure_ascii=False)

    act(client, admin, no, "transition", to="resolved")  # handed back to the bot
    assert "公益性岗位" in wx.say("o-zhang", "公益性岗位咋个申请")
    assert [m["body"] for m in case(client, admin, no)["messages"]][-1] != "公益性岗位咋个申请"


def test_sms_complaint_reply_goes_by_sms_and_the_answer_continues_the_ticket(client, app, fakes, make_staff):
    _wechat, aliyun = fakes
    add_roster_labourer(app, name="李秀英", phone="13812345678")
    file_by_sms(client)
    mine = make_staff("desk-pc", "helpdesk", PINGCHANG)
    no = only_ticket(client, mine)["ticket_no"]
    before = len(aliyun.sent)

    act(client, mine, no, "messages", body="老板说月底给，我们再催", visibility="internal")
    assert len(aliyun.sent) == before
    act(client, mine, no, "messages", body="李大姐，请问有没有考勤表或者工友作证？", visibility="public")
    [sms] = aliyun.sent[before:]
    assert sms["PhoneNumbers"] == "13812345678" and "考勤表" in sms["TemplateParam"]

    act(client, mine, no, "transition", to="waiting_on_labourer")
    assert only_ticket(client, mine)["status"] == "waiting_on_labourer"
    [ack] = text_by_sms(client, "13812345678", "有考勤表，还有三个工友可以作证")
    assert no in ack
    now = case(client, mine, no)
    assert now["status"] == "in_progress"
    assert (now["messages"][-1]["source"], now["messages"][-1]["body"]) == ("labourer", "有考勤表，还有三个工友可以作证")
    events = [(e["from_status"], e["to_status"], e["actor"]) for e in now["events"] if e["kind"] == "status"]
    assert events[-1] == ("waiting_on_labourer", "in_progress", "labourer")
    # The ticket no longer waits: the next message is the bot's again, not the ticket's.
    assert no not in "".join(text_by_sms(client, "13812345678", "公益性岗位咋个申请"))


def test_a_resolved_complaint_reopens_when_the_labourer_says_it_is_not_solved(client, app, make_staff):
    add_roster_labourer(app, name="李秀英", phone="13812345678")
    file_by_sms(client)
    mine = make_staff("desk-pc", "helpdesk", PINGCHANG)
    no = only_ticket(client, mine)["ticket_no"]
    act(client, mine, no, "transition", to="resolved")
    text_by_sms(client, "13812345678", "钱还是没到账")
    assert case(client, mine, no)["status"] == "in_progress"


def test_simulator_reply_is_pushed_to_the_simulator_user(client, app, say, make_staff):
    say("我要找人工", user="sim-li")
    admin = make_staff("boss", "admin")
    no = only_ticket(client, admin)["ticket_no"]
    act(client, admin, no, "messages", body="您好，我是服务台，请讲。", visibility="public")
    act(client, admin, no, "messages", body="这是内部备注", visibility="internal")
    with db(app) as session:
        pushed = session.scalars(select(MessageLog.text).where(MessageLog.user_id == "sim-li",
                                                               MessageLog.direction == "out")).all()
    assert "您好，我是服务台，请讲。" in pushed and "这是内部备注" not in pushed
    act(client, admin, no, "assign", assignee="boss")
    assert say("我等着呢", user="sim-li") == []
    with db(app) as session:
        ticket = session.scalars(select(Ticket)).one()
        assert ticket.status == "assigned"


def test_each_replys_delivery_follows_the_sms_reports(client, app, fakes, make_staff):
    from tests.fakes.sms_gateways import aliyun_report

    from bot.models import OutboundMessage
    from test_console import login

    _wechat, aliyun = fakes
    add_roster_labourer(app, name="李秀英", phone="13812345678")
    file_by_sms(client)
    mine = make_staff("desk-pc", "helpdesk", PINGCHANG)
    no = only_ticket(client, mine)["ticket_no"]
    first = act(client, mine, no, "messages", body="李大姐，老板答应周五前结清。", visibility="public")
    second = act(client, mine, no, "messages", body="李大姐，周五到账了吗？", visibility="public")
    assert (first["delivery"], second["delivery"]) == ("sent", "sent")
    with db(app) as session:
        biz = {o.text: o.provider_message_id for o in session.scalars(select(OutboundMessage))}
    [first_id] = [v for k, v in biz.items() if "周五前结清" in k]
    [second_id] = [v for k, v in biz.items() if "到账了吗" in k]

    callback = "/sms/inbound?token=callback-secret-for-tests"
    assert client.post(callback, json=aliyun_report("13812345678", first_id, True)).status_code == 200
    assert client.post(callback, json=aliyun_report("13812345678", second_id, False)).status_code == 200
    delivery = {m["body"]: m["delivery"] for m in case(client, mine, no)["messages"] if m["source"] == "staff"}
    assert delivery == {"李大姐，老板答应周五前结清。": "delivered", "李大姐，周五到账了吗？": "failed"}
    login(client, "desk-pc")
    page = client.get(f"/console/helpdesk/{no}").text
    assert "已送达" in page and "发送失败" in page and 'title="MK:0001' in page
    # Read through each reply's outbox row: the receipt is the row's; the message keeps the desk's own "sent".
    with db(app) as session:
        kept = session.execute(select(TicketMessage.delivery, TicketMessage.delivery_error, OutboundMessage.status)
                               .join(OutboundMessage, OutboundMessage.id == TicketMessage.outbound_id)
                               .where(TicketMessage.source == "staff")).all()
    assert sorted(kept) == [("sent", None, "delivered"), ("sent", None, "failed")]


def test_the_labourer_is_told_when_their_case_changes_and_a_handoff_is_handed_back(client, app, say, make_staff):
    say("我要找人工", user="sim-zhao")
    admin = make_staff("boss", "admin")
    no = only_ticket(client, admin)["ticket_no"]

    def told() -> list[str]:
        with db(app) as session:
            return list(session.scalars(select(MessageLog.text).where(
                MessageLog.user_id == "sim-zhao", MessageLog.direction == "out", MessageLog.purpose == "reply")))

    act(client, admin, no, "assign", assignee="boss")
    assert "人工客服已接入" in told()[-1] and no in told()[-1]
    assert say("我的工资卡被中介扣了", user="sim-zhao") == []  # quiet: a person is on it
    act(client, admin, no, "transition", to="in_progress")  # the desk's own step: not news to the labourer
    count = len(told())
    act(client, admin, no, "transition", to="waiting_on_labourer")
    assert len(told()) == count + 1 and "补充情况" in told()[-1]
    assert say("是在白衣镇的中介", user="sim-zhao") == []
    act(client, admin, no, "transition", to="resolved")  # handed back to the bot
    assert "人工服务" in told()[-1] and "继续问我" in told()[-1]
    assert say("公益性岗位咋个申请", user="sim-zhao") != []  # the bot answers again
    act(client, admin, no, "transition", to="in_progress")
    assert "重新处理" in told()[-1]
    notices = [m for m in case(client, admin, no)["messages"] if m["source"] == "bot" and m["delivery"]]
    assert len(notices) == 4 and {m["delivery"] for m in notices} == {"sent"}  # assigned, waiting, resolved, reopened

    login(client, "boss")
    page = client.get(f"/console/helpdesk/{no}").text
    assert "结束人工，交还机器人" in page and 'id="handback"' in page


def test_a_reply_after_the_48_hours_goes_as_a_template_and_wechats_receipt_marks_it_delivered(client, fakes,
                                                                                               make_staff):
    wechat, _aliyun = fakes
    wx = WeChatPlatform(client)
    assert "RG-" in wx.say("o-li", "我要找人工")
    admin = make_staff("boss", "admin")
    no = only_ticket(client, admin)["ticket_no"]
    wechat.out_of_window.add("o-li")  # two days later: the customer-service window has closed
    reply = act(client, admin, no, "messages", body="李师傅，您的问题我们已经转给劳动监察大队。", visibility="public")
    assert reply["delivery"] == "sent" and wechat.sent == []
    [template] = wechat.templates
    assert template["touser"] == "o-li" and template["template_id"] == "TPL-1"
    finished = wx.xml("o-li", "event", {"Event": "TEMPLATESENDJOBFINISH", "MsgID": str(template["msgid"]),
                                        "Status": "success"})
    assert wx.post(finished).text == "success"
    mine = [m for m in case(client, admin, no)["messages"] if m["source"] == "staff"]
    assert [m["delivery"] for m in mine] == ["delivered"]
