"""POST /sms/inbound as a forger would try it: pushes without the callback secret (Aliyun and Tencent
shapes), a wrong or non-ASCII secret, and a flood of messages that would each make us send an SMS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot import pii
from bot.app import create_app
from bot.models import Labourer, OutboundMessage
from bot.settings import Settings
from tests.fakes.sms_gateways import FakeAliyunSms, FakeTencentSms, aliyun_up, tencent_up
from tests.test_dialog_support import add_roster_labourer, valid_id_number

ROSTER_PHONE = "13981234567"
STRANGER = "15928765432"  # a number of the forger's choosing
SECRET = "Zq8v1c0m3XbT5nUe7Lr2Wd9Hs4Kp6Ya8Fg1Jt3Vx5Qw7"


@pytest.fixture
def aliyun() -> Iterator[FakeAliyunSms]:
    with FakeAliyunSms() as server:
        yield server


@pytest.fixture
def tencent() -> Iterator[FakeTencentSms]:
    with FakeTencentSms() as server:
        yield server


@pytest.fixture
def build(make_settings):  # noqa: ANN001, ANN201
    built: list = []

    def make(**overrides: object):  # noqa: ANN202
        application = create_app(make_settings(**overrides), configure_logs=False)
        built.append(application)
        return application

    yield make
    for application in built:
        application.state.engine.dispose()


def aliyun_settings(aliyun: FakeAliyunSms, **extra: object) -> dict[str, object]:
    return dict(sms_provider="aliyun", sms_api_base=aliyun.base, sms_access_key_id="LTAI-test",
                sms_access_key_secret="aliyun-secret", sms_template_id="SMS_100", **extra)


def tencent_settings(tencent: FakeTencentSms, **extra: object) -> dict[str, object]:
    return dict(sms_provider="tencent", sms_api_base=tencent.base, sms_access_key_id="AKID-test",
                sms_access_key_secret="tencent-secret", sms_app_id="1400000001", sms_template_id="100", **extra)


def subscribed(app, labourer_id: int) -> bool:  # noqa: ANN001
    with app.state.sessionmaker() as session:
        return session.get(Labourer, labourer_id).subscribed_sms


def texts_to(app, number: str) -> list[OutboundMessage]:  # noqa: ANN001
    digest = pii.lookup_hash(number, app.state.settings.data_key)
    with app.state.sessionmaker() as session:
        return list(session.scalars(select(OutboundMessage).where(OutboundMessage.user_id == digest)))


@pytest.mark.parametrize("provider", ["aliyun", "tencent"])
def test_forged_opt_outs_without_the_secret_are_refused_and_change_nothing(build, aliyun, tencent, provider):
    settings = aliyun_settings(aliyun, sms_callback_token=SECRET) if provider == "aliyun" \
        else tencent_settings(tencent, sms_callback_token=SECRET)
    if True:
        app = build(**settings)
        labourer = add_roster_labourer(app, name="王秀英", id_number=valid_id_number(), phone=ROSTER_PHONE)
        with TestClient(app) as client:
            # no secret, empty, one character short or long, non-ASCII, bytes that are not UTF-8 at all
            for query in ("", "?token=", f"?token={SECRET[:-1]}", f"?token={SECRET}x", "?token=" + "%E4%BB%A4%E7%89%8C" * 20,
                          "?token=%FF%FE%00", "?token=%ED%B3%BF"):
                for push in (aliyun_up(ROSTER_PHONE, "退订", 1), tencent_up(ROSTER_PHONE, "TD", 1764100000)):
                    response = client.post("/sms/inbound" + query, json=push)
                    assert response.status_code == 403, (query, response.text)
            assert subscribed(app, labourer) and texts_to(app, ROSTER_PHONE) == []
            # The provider itself, with the secret in its callback URL, is heard.
            assert client.post("/sms/inbound", params={"token": SECRET}, json=aliyun_up(ROSTER_PHONE, "退订", 2)).status_code == 200
        assert not subscribed(app, labourer)


def test_a_configured_provider_without_a_callback_secret_hears_nobody(build, aliyun):
    """Development too: a real gateway with no secret configured is a door open to anyone, so it stays shut."""
    app = build(**aliyun_settings(aliyun))
    labourer = add_roster_labourer(app, name="李国强", phone=ROSTER_PHONE)
    with TestClient(app) as client:
        response = client.post("/sms/inbound", json=aliyun_up(ROSTER_PHONE, "退订", 1))
        assert response.status_code == 403 and "GONGYOU_SMS_CALLBACK_TOKEN" in response.json()["msg"]
    assert subscribed(app, labourer) and aliyun.sent == []


def test_production_refuses_a_provider_without_a_long_callback_secret(db_url):
    base = dict(env="production", database_url=db_url, demo_data=False, wechat_token="Wx7Tk2Qm9Lp4Zr8Vb3Nc",
                data_key="k" + SECRET, sms_provider="aliyun")
    with pytest.raises(ValueError, match="GONGYOU_SMS_CALLBACK_TOKEN"):
        Settings(**base)
    with pytest.raises(ValueError, match="GONGYOU_SMS_CALLBACK_TOKEN"):
        Settings(**base, sms_callback_token="secret")
    assert Settings(**base, sms_callback_token=SECRET).sms_callback_token == SECRET


def test_a_flood_of_messages_cannot_make_us_text_a_number_without_end(build, aliyun):
    """30 pushes (a stolen secret, or a person pasting the same question) answered at most by the hourly caps:
    10 SMS to a number nobody in the registry has, 20 to a registered labourer's (a whole dialog fits in either)."""
    app = build(**aliyun_settings(aliyun, sms_callback_token=SECRET))
    add_roster_labourer(app, name="张建华", phone=ROSTER_PHONE)
    with TestClient(app) as client:
        for i in range(30):
            for number in (STRANGER, ROSTER_PHONE):
                response = client.post("/sms/inbound", params={"token": SECRET},
                                       json=aliyun_up(number, "公益性岗位咋个申请", 1000 + i * 2 + (number == STRANGER)))
                assert response.status_code == 200
    sent_to = [p["PhoneNumbers"] for p in aliyun.sent]
    assert sent_to.count(STRANGER) == 10 and sent_to.count(ROSTER_PHONE) == 20
    assert len(texts_to(app, STRANGER)) == 10
    # Every message was still heard and kept: the caps hold back answers, never what people said.
    from bot.models import MessageLog

    with app.state.sessionmaker() as session:
        heard = session.scalars(select(MessageLog).where(MessageLog.channel == "sms", MessageLog.direction == "in")).all()
    assert len(heard) == 60


def test_the_embedded_log_provider_still_answers_without_a_secret(build):
    app = build()  # development, `log` provider: nothing leaves the machine
    with TestClient(app) as client:
        assert client.post("/sms/inbound", json=aliyun_up(STRANGER, "公益性岗位咋个申请", 1)).status_code == 200
    (reply,) = texts_to(app, STRANGER)
    assert reply.status == "logged" and "岗位" in reply.text
