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
