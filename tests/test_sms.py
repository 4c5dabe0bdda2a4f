"""SMS both ways: the rules (signature, segments, opt-out text, opt-out keywords, caps), the `log` outbox,
the Aliyun and Tencent adapters against loopback fakes that check signatures, and POST /sms/inbound."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot import pii
from bot.app import create_app
from bot.channels.base import Reply
from bot.channels.outbound import deliver
from bot.channels.sms import keyword, segments, send_sms
from bot.db import session_scope
from bot.models import OutboundMessage, SmsNumber
from tests.fakes.sms_gateways import (
    FakeAliyunSms,
    FakeTencentSms,
    aliyun_report,
    aliyun_up,
    tencent_report,
    tencent_up,
)

NUMBER = "13881234567"
CALLBACK = "cb-0123456789abcdef0123456789abcdef"  # a real provider is configured with its callback secret
INBOUND = f"/sms/inbound?token={CALLBACK}"


def test_segments_and_keywords():
    assert segments("字" * 70) == 1 and segments("字" * 71) == 2
    assert segments("字" * 134) == 2 and segments("字" * 135) == 3
    for word in ("R", "r", " TD。", "退订!", "Stop", "拒收", "【N】", "t"):
        assert keyword(word) == "out", word
    assert keyword("订阅") == "in"
    assert keyword("R u there") is None and keyword("我不想退订") is None


@pytest.fixture
def sms_app(make_settings):  # noqa: ANN001, ANN201
    def build(**overrides: object):  # noqa: ANN202
        application = create_app(make_settings(**overrides), configure_logs=False)
        built.append(application)
        return application

    built: list = []
    yield build
    for application in built:
        application.state.engine.dispose()


def outbox(app) -> list[OutboundMessage]:  # noqa: ANN001
    with app.state.sessionmaker() as session:
        return list(session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))


def notice(app, text: str = "巴州区招聘会周三上午9点人民广场", purpose: str = "marketing"):  # noqa: ANN001, ANN201
    services = app.state.services
    with session_scope(services.sessionmaker) as session:
        return send_sms(session, services, number=NUMBER, reply=Reply(text), purpose=purpose)


def test_log_provider_writes_the_outbox_with_signature_and_opt_out_text(sms_app):
    app = sms_app()
    assert notice(app).ok
    (row,) = outbox(app)
    assert row.provider == "log" and row.status == "logged" and row.number_masked == "138****4567"
    assert row.text == "【巴中就业扶贫】巴州区招聘会周三上午9点人民广场拒收请回复R" and row.segments == 1
    assert NUMBER not in row.user_id  # the number itself is never stored in clear
    long = "培训" * 40
    assert notice(app, long, purpose="reply").ok  # a reply right after a notice: no cap applies
    assert outbox(app)[-1].segments == 2 and not outbox(app)[-1].text.endswith("拒收请回复R")


def test_frequency_caps_stop_notices_but_not_replies(sms_app):
    app = sms_app(sms_max_per_day=2)
    assert notice(app).ok
    blocked = notice(app)
    assert not blocked.ok and blocked.error_code == "rate_limited" and blocked.retryable
    assert notice(app, "您的投诉已受理", purpose="reply").ok
    with app.state.sessionmaker() as session:  # 30 s later
        row = session.scalars(select(SmsNumber)).one()
        row.last_notice_at = row.last_notice_at.replace(year=2020)
        session.commit()
    assert notice(app).ok
    with app.state.sessionmaker() as session:
        row = session.scalars(select(SmsNumber)).one()
        row.last_notice_at = row.last_notice_at.replace(year=2020)
        session.commit()
    capped = notice(app)
    assert not capped.ok and capped.error_code == "daily_cap"
    assert [r.status for r in outbox(app)] == ["logged", "blocked", "logged", "logged", "blocked"]


def test_opt_out_by_sms_stops_notices_at_once_and_subscribe_restores_them(sms_app):
    app = sms_app()
    with TestClient(app) as client:
        ack = client.post("/sms/inbound", json=aliyun_up(NUMBER, " r。", 1001))
        assert ack.status_code == 200 and ack.json() == {"code": 0, "msg": "成功"}
        confirmation = outbox(app)[-1]
        assert confirmation.purpose == "reply" and "退订" in confirmation.text  # the person is told
        refused = notice(app)
        assert not refused.ok and refused.error_code == "opted_out"
        client.post("/sms/inbound", json=aliyun_up(NUMBER, "R", 1001))  # the provider pushes it again
        assert len([r for r in outbox(app) if r.purpose == "reply"]) == 1  # processed once
        client.post("/sms/inbound", json=aliyun_up(NUMBER, "订阅", 1002))
        assert notice(app).ok


def test_tencent_upstream_question_is_answered_by_sms(sms_app):
    app = sms_app()
    with TestClient(app) as client:
        ack = client.post("/sms/inbound", json=tencent_up(NUMBER, "公益性岗位咋个申请", 1764100000))
        assert ack.status_code == 200 and ack.json() == {"result": 0, "errmsg": ""}
    reply = outbox(app)[-1]
    assert reply.channel == "sms" and reply.text.startswith("【巴中就业扶贫】") and "岗位" in reply.text
    # The help desk answers the same person over the channel they came from.
    services = app.state.services
    with session_scope(services.sessionmaker) as session:
        user_id = pii.lookup_hash(NUMBER, services.settings.data_key)
        assert deliver(session, services, channel="sms", user_id=user_id, reply=Reply("工作人员已联系老板")).ok
    assert outbox(app)[-1].text == "【巴中就业扶贫】工作人员已联系老板"


def test_malformed_or_unauthorised_inbound_is_a_clean_4xx(sms_app):
    app = sms_app(sms_callback_token="cb-secret")
    with TestClient(app) as client:
        assert client.post("/sms/inbound", json=aliyun_up(NUMBER, "R", 1)).status_code == 403
        assert client.post("/sms/inbound?token=cb-secret", content=b"{not json").status_code == 400
        assert client.post("/sms/inbound?token=cb-secret", json={"what": 1}).status_code == 400
        assert client.post("/sms/inbound?token=cb-secret", json=[]).status_code == 400
        assert client.post("/sms/inbound?token=cb-secret", json=aliyun_up(NUMBER, "R", 1)).status_code == 200


# ---- real adapters against the loopback fakes -------------------------------------------------------


@pytest.fixture
def aliyun() -> Iterator[FakeAliyunSms]:
    with FakeAliyunSms() as server:
        yield server


@pytest.fixture
def tencent() -> Iterator[FakeTencentSms]:
    with FakeTencentSms() as server:
        yield server


def test_aliyun_send_is_signed_and_its_report_marks_delivery(sms_app, aliyun):
    app = sms_app(sms_provider="aliyun", sms_api_base=aliyun.base, sms_access_key_id="LTAI-test",
                  sms_access_key_secret="aliyun-secret", sms_template_id="SMS_100", sms_marketing_template_id="SMS_200",
                  sms_callback_token=CALLBACK)
    assert notice(app).ok
    sent = aliyun.sent[0]
    assert sent["Action"] == "SendSms" and sent["PhoneNumbers"] == NUMBER and sent["SignName"] == "巴中就业扶贫"
    assert sent["TemplateCode"] == "SMS_200" and "拒收请回复R" in sent["TemplateParam"]
    row = outbox(app)[0]
    assert row.status == "sent" and row.provider_message_id
    with TestClient(app) as client:
        ack = client.post(INBOUND, json=aliyun_report(NUMBER, row.provider_message_id, True))
        assert ack.json() == {"code": 0, "msg": "成功"}
    assert outbox(app)[0].status == "delivered"


def test_a_report_or_message_with_odd_ids_loses_nothing_else_of_its_batch(sms_app, aliyun):
    # A JSON push can carry NUL (PostgreSQL text cannot) or an id far past any real one.
    app = sms_app(sms_provider="aliyun", sms_api_base=aliyun.base, sms_access_key_id="LTAI-test",
                  sms_access_key_secret="aliyun-secret", sms_template_id="SMS_100", sms_marketing_template_id="SMS_200",
                  sms_callback_token=CALLBACK)
    assert notice(app).ok
    row = outbox(app)[0]
    odd = aliyun_report(NUMBER, "biz\x00" + "9" * 300, True) + aliyun_report(NUMBER, row.provider_message_id, True)
    with TestClient(app) as client:
        assert client.post(INBOUND, json=odd).json() == {"code": 0, "msg": "成功"}
        assert outbox(app)[0].status == "delivered"
        up = aliyun_up(NUMBER, "公益性岗位咋个申请", 7)
        up[0]["sequence_id"] = "seq\x00" + "7" * 300
        assert client.post(INBOUND, json=up).status_code == 200
    assert "岗位" in outbox(app)[-1].text  # answered


def test_aliyun_batch_and_errors(sms_app, aliyun):
    from bot.channels.sms import AliyunGateway

    app = sms_app(sms_provider="aliyun", sms_api_base=aliyun.base, sms_access_key_id="LTAI-test",
                  sms_access_key_secret="aliyun-secret", sms_template_id="SMS_100")
    gateway = AliyunGateway(app.state.settings)
    results = gateway.send([NUMBER, "13990001111"], "【巴中就业扶贫】开会", "开会", marketing=False)
    assert all(r.ok for r in results) and aliyun.sent[0]["Action"] == "SendBatchSms"
    assert aliyun.sent[0]["PhoneNumberJson"] == f'["{NUMBER}", "13990001111"]'
    aliyun.fail_codes.append("isv.BUSINESS_LIMIT_CONTROL")
    limited = gateway.send([NUMBER], "x", "x", marketing=False)[0]
    assert not limited.ok and limited.retryable and limited.error_code == "isv.BUSINESS_LIMIT_CONTROL"
    wrong = AliyunGateway(app.state.settings.model_copy(update={"sms_access_key_secret": "wrong"}))
    refused = wrong.send([NUMBER], "x", "x", marketing=False)[0]
    assert not refused.ok and refused.error_code == "SignatureDoesNotMatch" and not refused.retryable


def test_tencent_send_is_tc3_signed_and_its_report_marks_delivery(sms_app, tencent):
    app = sms_app(sms_provider="tencent", sms_api_base=tencent.base, sms_access_key_id="AKID-test",
                  sms_access_key_secret="tencent-secret", sms_app_id="1400000001", sms_template_id="100",
                  sms_callback_token=CALLBACK)
    assert notice(app, purpose="notice").ok
    body = tencent.sent[0]
    assert body["PhoneNumberSet"] == [f"+86{NUMBER}"] and body["SmsSdkAppId"] == "1400000001"
    assert body["TemplateParamSet"] == ["巴州区招聘会周三上午9点人民广场"]
    row = outbox(app)[0]
    with TestClient(app) as client:
        ack = client.post(INBOUND, json=tencent_report(NUMBER, row.provider_message_id, False))
        assert ack.json() == {"result": 0, "errmsg": ""}
    assert outbox(app)[0].status == "failed" and outbox(app)[0].error_code == "UNDELIV"
    from bot.channels.sms import TencentGateway

    wrong = TencentGateway(app.state.settings.model_copy(update={"sms_access_key_secret": "wrong"}))
    refused = wrong.send([NUMBER], "x", "x", marketing=False)[0]
    assert not refused.ok and refused.error_code == "AuthFailure.SignatureFailure"


class _SlowLog:
    """The `log` gateway, but each send takes a while (a provider answering slowly) or fails."""

    name = "log"

    def __init__(self, *, delay: float = 0.0, fail: bool = False) -> None:
        from bot.channels.sms import LogGateway

        self.inner, self.delay, self.fail = LogGateway(), delay, fail

    def send(self, numbers, text, body, *, marketing, key=None):  # noqa: ANN001, ANN201
        import time

        from bot.channels.base import SendResult

        time.sleep(self.delay)
        if self.fail:
            return [SendResult(ok=False, error_code="isv.BUSINESS_LIMIT_CONTROL", error="provider refused", retryable=True)]
        return self.inner.send(numbers, text, body, marketing=marketing, key=key)


def test_two_workers_sending_notices_to_one_number_at_once_pass_the_cap_once(sms_app):
    import threading

    app = sms_app()
    services = app.state.services
    gateway = _SlowLog(delay=0.4)
    results = []

    def worker() -> None:
        with session_scope(services.sessionmaker) as session:
            results.append(send_sms(session, services, number=NUMBER, reply=Reply("招聘会周三"), purpose="marketing",
                                    gateway=gateway))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(r.ok for r in results) == [False, True]
    assert [r.error_code for r in results if not r.ok] == ["rate_limited"]
    with app.state.sessionmaker() as session:
        assert session.scalars(select(SmsNumber)).one().notices_today == 1
    assert sorted(r.status for r in outbox(app)) == ["blocked", "logged"]


def test_a_notice_the_provider_refused_does_not_use_up_the_cap(sms_app):
    app = sms_app()
    services = app.state.services
    with session_scope(services.sessionmaker) as session:
        refused = send_sms(session, services, number=NUMBER, reply=Reply("招聘会周三"), purpose="marketing",
                           gateway=_SlowLog(fail=True))
    assert not refused.ok and refused.error_code == "isv.BUSINESS_LIMIT_CONTROL"
    assert notice(app).ok  # at once: the refused one did not count
    with app.state.sessionmaker() as session:
        assert session.scalars(select(SmsNumber)).one().notices_today == 1
