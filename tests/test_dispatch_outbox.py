"""A broadcast delivery and the outbox row that carried it (issue 11, "one way to send"): the delivery points
at the row (delivery.outbound_message_id), the provider's id and receipts are the row's, and a receipt reaches
the delivery only through the listener the composition point lists — never through something an import or an
earlier composition left behind. The senders are one table per composition, built once."""

from __future__ import annotations

from alembic import command
from sqlalchemy import insert, select, text

from bot.app import compose
from bot.channels import outbound
from bot.conversation import Services
from bot.db import alembic_config, make_engine, session_scope
from bot.dialogs.definitions import DIALOGS
from bot.intents import events, handoff, menu, policy, records, registration, subscription
from bot.models import CampaignStep, Delivery, Labourer, OutboundMessage, utcnow
from scheduler.dispatch import DispatchConfig, Dispatcher
from scheduler.senders import SmsSender, WeChatSender, dispatch_parts
from tests.synthetic import insert_labourers, make_campaign
from tests.test_dispatch_channels import _launch, _sms_people, factory, fakes, settings  # noqa: F401

HANDLERS = [m.HANDLERS for m in (menu, policy, registration, events, records, subscription, handoff)]


def test_one_composition_builds_one_table_of_senders(settings, factory) -> None:  # noqa: F811
    services = compose(settings, factory)
    assert isinstance(services.senders["wechat"], WeChatSender) and isinstance(services.senders["sms"], SmsSender)
    assert all(sender.services is services for sender in services.senders.values())
    senders, knowledge = dispatch_parts(settings, factory, services=services)
    assert senders == dict(services.senders) and knowledge is services.knowledge  # a dispatcher's: the same ones
    bare = Services.build(settings, factory, handlers=HANDLERS, dialogs=DIALOGS)
    assert dict(bare.senders) == {} and bare.receipt_listeners == ()


def test_a_receipt_reaches_the_delivery_through_its_outbox_row_and_the_composed_listener(settings, factory,  # noqa: F811
                                                                                           fakes) -> None:  # noqa: F811
    _wechat, aliyun = fakes
    _sms_people(factory, settings, 2)
    campaign_id = _launch(factory)
    services = compose(settings, factory)
    Dispatcher(factory, dict(services.senders), DispatchConfig(rates={}, windows={})).run(until_idle=True)
    with session_scope(factory) as s:
        deliveries = list(s.scalars(select(Delivery).where(Delivery.campaign_id == campaign_id).order_by(Delivery.id)))
        carried = {d.id: s.get(OutboundMessage, d.outbound_message_id) for d in deliveries}
        assert all(carried[d.id].idempotency_key == d.idempotency_key for d in deliveries)
        assert all(d.status == "sent" and d.provider_message_id is None for d in deliveries)  # the row holds it
        ids = [carried[d.id].provider_message_id for d in deliveries]
        assert all(ids) and len(aliyun.sent) == 2

    # Services composed without the listener (as a part of the product that sends no broadcast would be):
    # the outbox row takes the report, the delivery does not follow — nothing global carries it there.
    bare = Services.build(settings, factory, handlers=HANDLERS, dialogs=DIALOGS)
    with session_scope(factory) as s:
        assert outbound.record_receipt(s, bare, provider="aliyun", provider_message_id=ids[0], delivered=True) == 1
        assert outbound.record_receipt(s, services, provider="aliyun", provider_message_id=ids[1], delivered=False,
                                       error_code="MOBILE_NOT_ON_SERVICE") == 1
    with session_scope(factory) as s:
        after = {d.id: (d.status, d.failure_reason, d.error_code)
                 for d in s.scalars(select(Delivery).where(Delivery.campaign_id == campaign_id))}
    assert after == {deliveries[0].id: ("sent", None, None),
                     deliveries[1].id: ("failed", "undelivered", "MOBILE_NOT_ON_SERVICE")}


def test_the_migration_links_deliveries_sent_before_it_by_their_key(db_url) -> None:
    """Deliveries sent before 0018 find their outbox row by the key they share; downgrading drops the link."""
    engine = make_engine(db_url)
    config = alembic_config(engine)
    command.downgrade(config, "0017")
    try:
        with engine.begin() as conn:
            assert "outbound_message_id" not in {c["name"] for c in _columns(conn, "delivery")}
            with session_scope_on(conn) as s:
                insert_labourers(s, 2, openid=None)
                campaign = make_campaign(s)
                step = CampaignStep(campaign_id=campaign.id, kind="initial", due_at=utcnow(), status="fired")
                s.add(step)
                s.flush()
                people = list(s.scalars(select(Labourer.id).order_by(Labourer.id)))
            for labourer_id, key in zip(people, ("c1s1l1", "c1s1l2")):
                conn.execute(insert(Delivery.__table__).values(
                    campaign_id=campaign.id, step_id=step.id, labourer_id=labourer_id, channel="sms", status="sent",
                    idempotency_key=key))
            conn.execute(insert(OutboundMessage.__table__).values(
                channel="sms", kind="sms", user_id="h1", provider="aliyun", provider_message_id="biz-1",
                status="sent", idempotency_key="c1s1l1"))
    finally:
        command.upgrade(config, "head")
    with engine.connect() as conn:
        linked = dict(conn.execute(text(
            "SELECT d.idempotency_key, o.provider_message_id FROM delivery d"
            " LEFT JOIN outbound_message o ON o.id = d.outbound_message_id")).all())
    engine.dispose()
    assert linked == {"c1s1l1": "biz-1", "c1s1l2": None}


def _columns(conn, table: str) -> list[dict]:  # noqa: ANN001
    from sqlalchemy import inspect

    return inspect(conn).get_columns(table)


class session_scope_on:  # noqa: N801 - a session on the migration test's own connection (its transaction)
    def __init__(self, conn) -> None:  # noqa: ANN001
        from sqlalchemy.orm import Session

        self.session = Session(bind=conn)

    def __enter__(self):  # noqa: ANN204
        return self.session

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.session.flush()
        self.session.close()


def test_the_web_process_dispatcher_sends_with_the_web_services(make_settings, fakes) -> None:  # noqa: F811
    """GONGYOU_SCHEDULER_ENABLED: the in-process dispatcher uses the app's own senders and knowledge snapshot,
    not a second composition (a second snapshot would answer officials' text changes on its own schedule)."""
    from fastapi.testclient import TestClient

    from bot.app import create_app

    wechat, aliyun = fakes
    app = create_app(make_settings(scheduler_enabled=True, wechat_appid="wx-test-app", wechat_secret="test-secret",
                                   wechat_api_base=wechat.base, sms_provider="aliyun", sms_api_base=aliyun.base,
                                   sms_access_key_id="LTAI-test", sms_access_key_secret="aliyun-secret",
                                   sms_template_id="SMS_1", sms_callback_token="k7Qm2Zt9Xc4Vb8Nw1Ls6Hp3Jd5Rf0Gy"),
                     configure_logs=False)
    try:
        with TestClient(app):
            dispatcher = app.state.campaign_scheduler._dispatcher
            services = app.state.services
            assert dispatcher.senders == dict(services.senders)
            assert dispatcher.knowledge is services.knowledge
    finally:
        app.state.engine.dispose()


def test_gongyou_dispatch_composes_once_and_sends_through_the_channels(settings, factory, fakes) -> None:  # noqa: F811
    """`gongyou dispatch` in a process of its own, with the channels' real senders against the loopback WeChat
    and Aliyun APIs: WeChat inside the window, SMS after WeChat's 45015, SMS only, an opt-out skipped; every
    message once, every sent delivery pointing at the outbox row that carried it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.test_dispatch_channels import _people

    wechat, aliyun = fakes
    ids = _people(factory, settings)
    wechat.out_of_window.add("o-gone")
    campaign_id = _launch(factory)
    env = {**os.environ, "GONGYOU_DEMO_DATA": "false", "GONGYOU_LOG_LEVEL": "WARNING",
           "GONGYOU_DATABASE_URL": settings.database_url, "GONGYOU_DATA_KEY": settings.data_key,
           "GONGYOU_WECHAT_APPID": settings.wechat_appid, "GONGYOU_WECHAT_SECRET": settings.wechat_secret,
           "GONGYOU_WECHAT_API_BASE": wechat.base, "GONGYOU_SMS_PROVIDER": "aliyun", "GONGYOU_SMS_API_BASE": aliyun.base,
           "GONGYOU_SMS_ACCESS_KEY_ID": "LTAI-test", "GONGYOU_SMS_ACCESS_KEY_SECRET": "aliyun-secret",
           "GONGYOU_SMS_TEMPLATE_ID": "SMS_1", "GONGYOU_SMS_CALLBACK_TOKEN": settings.sms_callback_token}
    done = subprocess.run([sys.executable, "-m", "bot", "dispatch", "--until-idle", "--always-open", "--rate", "0",
                           "--idle-sleep", "0.1"], cwd=Path(__file__).resolve().parent.parent, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [m["touser"] for m in wechat.sent] == ["o-in"]
    assert sorted(p["PhoneNumbers"] for p in aliyun.sent) == ["13980000002", "13980000003"]
    with session_scope(factory) as s:
        rows = {d.labourer_id: d for d in s.scalars(select(Delivery).where(Delivery.campaign_id == campaign_id))}
        carried = {m.id: m for m in s.scalars(select(OutboundMessage))}
    for name, channel in (("甲", "wechat"), ("乙", "sms"), ("丙", "sms")):
        row = rows[ids[name]]
        assert (row.status, row.channel) == ("sent", channel)
        assert carried[row.outbound_message_id].idempotency_key == row.idempotency_key
        assert carried[row.outbound_message_id].channel == channel
    assert rows[ids["丁"]].status == "skipped" and rows[ids["丁"]].outbound_message_id is None
