"""A broadcast delivery and the outbox row that carried it (issue 11, "one way to send"): the delivery points
at the row (delivery.outbound_message_id), the provider's id and receipts are the row's alone, and everything
that shows a delivery's outcome reads the receipt through the pointer (no listener copies it). The senders are
one table per composition, built once, and handed to dispatchers by the composition point."""

from __future__ import annotations

import csv

from alembic import command
from sqlalchemy import insert, select, text

from bot.app import compose, dispatch_parts
from bot.channels import outbound
from bot.conversation import Services
from bot import helpdesk
from bot.db import alembic_config, make_engine, make_sessionmaker, session_scope
from bot.dialogs.definitions import DIALOGS
from bot.intents import events, handoff, menu, policy, records, registration, subscription
from bot.models import Campaign, CampaignStep, Delivery, Labourer, OutboundMessage, utcnow
from scheduler.dispatch import DispatchConfig, Dispatcher
from scheduler.senders import SmsSender, WeChatSender
from tests.fakes.sms_gateways import aliyun_report
from tests.synthetic import insert_labourers, make_campaign
from tests.test_dispatch_channels import CALLBACK_TOKEN, _launch, _sms_people, factory, fakes, settings  # noqa: F401

HANDLERS = [m.HANDLERS for m in (menu, policy, registration, events, records, subscription, handoff)]


def test_one_composition_builds_one_table_of_senders(settings, factory) -> None:  # noqa: F811
    services = compose(settings, factory)
    assert isinstance(services.senders["wechat"], WeChatSender) and isinstance(services.senders["sms"], SmsSender)
    assert all(sender.services is services for sender in services.senders.values())
    senders, knowledge = dispatch_parts(settings, factory, services=services)
    assert senders == dict(services.senders) and knowledge is services.knowledge  # a dispatcher's: the same ones
    bare = Services.build(settings, factory, handlers=HANDLERS, dialogs=DIALOGS)
    assert dict(bare.senders) == {}


def test_a_receipt_settles_the_outbox_row_and_the_report_reads_it_through_the_delivery(  # noqa: F811
        settings, factory, fakes, client, admin_auth) -> None:  # noqa: F811
    """The provider's reports come in through POST /sms/inbound: the officials' report and export show one
    broadcast delivered and one undelivered with the provider's code, read through each delivery's outbox row;
    the deliveries themselves keep their own state ("sent": the provider took both), nothing copied."""
    _wechat, aliyun = fakes
    numbers = _sms_people(factory, settings, 2)
    campaign_id = _launch(factory)
    services = compose(settings, factory)
    Dispatcher(factory, dict(services.senders), DispatchConfig(rates={}, windows={})).run(until_idle=True)
    with session_scope(factory) as s:
        sent = s.execute(select(Labourer.name, OutboundMessage.provider_message_id)
                         .join(Delivery, Delivery.labourer_id == Labourer.id)
                         .join(OutboundMessage, OutboundMessage.id == Delivery.outbound_message_id)
                         .where(Delivery.campaign_id == campaign_id)).all()
    biz = {numbers[int(name.removeprefix("工友"))]: provider_id for name, provider_id in sent}
    assert len(biz) == 2 and all(biz.values()) and len(aliyun.sent) == 2

    callback = f"/sms/inbound?token={CALLBACK_TOKEN}"
    for number, ok in zip(numbers, (True, False)):
        assert client.post(callback, json=aliyun_report(number, biz[number], ok)).status_code == 200
    figures = client.get(f"/api/admin/campaigns/{campaign_id}/report", headers=admin_auth).json()
    assert figures["by_status"] == {"delivered": 1, "failed": 1}
    assert figures["failures_by_reason"] == {"undelivered": 1}
    export = client.get(f"/api/admin/campaigns/{campaign_id}/report.csv", headers=admin_auth)
    lines = {line["name"]: line for line in csv.DictReader(export.text.lstrip("\ufeff").splitlines())}
    assert (lines["工友0"]["status"], lines["工友0"]["error_code"]) == ("delivered", "")
    assert lines["工友0"]["delivered_at"] and not lines["工友0"]["failed_at"]
    assert (lines["工友1"]["status"], lines["工友1"]["failure_reason"], lines["工友1"]["error_code"]) == \
        ("failed", "undelivered", "MK:0001")
    assert lines["工友1"]["failed_at"] and not lines["工友1"]["delivered_at"]

    with session_scope(factory) as s:
        own = {d.id: (d.status, d.failure_reason, d.error_code, d.error, d.failed_at)
               for d in s.scalars(select(Delivery).where(Delivery.campaign_id == campaign_id))}
        rows = {o.provider_message_id: (o.status, o.error_code, o.receipt_at is not None)
                for o in s.scalars(select(OutboundMessage))}
    assert set(own.values()) == {("sent", None, None, None, None)}
    assert rows == {biz[numbers[0]]: ("delivered", None, True), biz[numbers[1]]: ("failed", "MK:0001", True)}


def test_the_migration_links_deliveries_sent_before_it_by_their_key(db_url) -> None:
    """Deliveries sent before 0018 find their outbox row by the key they share; downgrading drops the link."""
    engine = make_engine(db_url)
    config = alembic_config(engine)
    command.downgrade(config, "0017")
    try:
        with engine.begin() as conn:
            assert "outbound_message_id" not in {c["name"] for c in _columns(conn, "delivery")}
            campaign, step, people = _fired_campaign(conn, 2)
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


def test_the_migration_moves_the_receipts_copied_onto_deliveries_and_desk_messages_to_their_rows(db_url) -> None:
    """0021: what a receipt had copied onto a delivery or a desk message (delivered, undelivered with the
    provider's code, the time) is its outbox row's afterwards, read through the pointer as before; the
    delivery is "sent" again, a failure of its own stays. Downgrading copies the receipts back."""
    from datetime import timedelta

    from bot.models import Ticket, TicketMessage
    from bot.models.campaigns import DeliveryOutcome

    engine = make_engine(db_url)
    config = alembic_config(engine)
    command.downgrade(config, "0020")
    at = utcnow().replace(microsecond=0) - timedelta(hours=1)
    try:
        with engine.begin() as conn:
            campaign, step, people = _fired_campaign(conn, 3)
            rows = {}
            for key, status, code in (("c1s1l1", "delivered", None), ("c1s1l2", "failed", "MK:0001"),
                                      (None, "delivered", None)):
                rows[key] = conn.execute(insert(OutboundMessage.__table__).values(
                    channel="sms", kind="sms", user_id=f"h-{key}", provider="aliyun", provider_message_id=f"biz-{key}",
                    status=status, error_code=code, error=code, idempotency_key=key)).inserted_primary_key[0]
            deliveries = (
                (people[0], "c1s1l1", "delivered", "fallback_from_wechat", None, rows["c1s1l1"]),
                (people[1], "c1s1l2", "failed", "undelivered", "MK:0001", rows["c1s1l2"]),
                (people[2], "c1s1l3", "failed", "refused", "isv.MOBILE_NUMBER_ILLEGAL", None),
            )
            for labourer_id, key, status, reason, code, row in deliveries:
                conn.execute(text(
                    "INSERT INTO delivery (campaign_id, step_id, labourer_id, channel, status, capped, attempts,"
                    " idempotency_key, failure_reason, error_code, error, outbound_message_id, sent_at, delivered_at,"
                    " failed_at) VALUES (:c, :s, :l, 'sms', :status, true, 1, :key, :reason, :code, :error, :row, :sent,"
                    " :delivered, :failed)"),
                    {"c": campaign.id, "s": step.id, "l": labourer_id, "status": status, "key": key, "reason": reason,
                     "code": code, "error": code, "row": row, "sent": at if row else None,
                     "delivered": at if status == "delivered" else None,
                     "failed": at + timedelta(minutes=1) if status == "failed" else None})
            ticket = conn.execute(insert(Ticket.__table__).values(
                ticket_no="RG-1", kind="handoff", channel="sms", user_id="h-None")).inserted_primary_key[0]
            conn.execute(insert(TicketMessage.__table__).values(
                ticket_id=ticket, source="staff", body="您好", delivery="delivered", outbound_id=rows[None]))
    except BaseException:
        command.upgrade(config, "head")
        raise
    command.upgrade(config, "head")

    def shown() -> dict[str, tuple]:
        with engine.connect() as conn:
            return {key: tuple(rest) for key, *rest in conn.execute(
                select(Delivery.idempotency_key, Delivery.status, DeliveryOutcome.status, DeliveryOutcome.failure_reason,
                       DeliveryOutcome.error_code, DeliveryOutcome.delivered_at.is_not(None),
                       DeliveryOutcome.failed_at.is_not(None)).select_from(DeliveryOutcome.JOINED))}

    assert shown() == {
        "c1s1l1": ("sent", "delivered", "fallback_from_wechat", None, True, False),
        "c1s1l2": ("sent", "failed", "undelivered", "MK:0001", False, True),
        "c1s1l3": ("failed", "failed", "refused", "isv.MOBILE_NUMBER_ILLEGAL", False, True),
    }
    with session_scope(make_sessionmaker(engine)) as s:
        [(message, delivered)] = helpdesk.case_messages(s, s.get(Ticket, ticket))
        assert (message.delivery, delivered.state) == ("sent", "delivered")
        times = dict(s.execute(select(OutboundMessage.idempotency_key, OutboundMessage.receipt_at)).all())
    assert times["c1s1l1"] == at and times["c1s1l2"] == at + timedelta(minutes=1) and times[None] is not None

    command.downgrade(config, "0020")
    try:
        with engine.connect() as conn:
            before = dict(conn.execute(text("SELECT idempotency_key, status || '/' || COALESCE(failure_reason, '') ||"
                                            " '/' || COALESCE(error_code, '') FROM delivery")).all())
            desk = conn.execute(text("SELECT delivery FROM ticket_message")).scalar_one()
    finally:
        command.upgrade(config, "head")
        engine.dispose()
    assert before == {"c1s1l1": "delivered/fallback_from_wechat/", "c1s1l2": "failed/undelivered/MK:0001",
                      "c1s1l3": "failed/refused/isv.MOBILE_NUMBER_ILLEGAL"}
    assert desk == "delivered"


def _fired_campaign(conn, people: int) -> tuple[Campaign, CampaignStep, list[int]]:  # noqa: ANN001
    """On a migration test's connection: `people` SMS-only labourers and a campaign whose step fired."""
    with session_scope_on(conn) as s:
        insert_labourers(s, people, openid=None)
        campaign = make_campaign(s)
        step = CampaignStep(campaign_id=campaign.id, kind="initial", due_at=utcnow(), status="fired")
        s.add(step)
        s.flush()
        return campaign, step, list(s.scalars(select(Labourer.id).order_by(Labourer.id)))


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
