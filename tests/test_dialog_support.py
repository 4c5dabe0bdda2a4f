"""Shared helpers of the dialog tests (no tests here): valid test ID numbers, rows in the database, non-text messages."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from stdnum.cn import ric

import itertools

from bot import pii
from bot.channels.base import Address, InboundMessage
from bot.conversation import handle_message
from bot.models import ConversationState, Labourer, OutboundMessage, utcnow
from tests.fakes.sms_gateways import aliyun_up

_SEQUENCE = itertools.count(1)


def valid_id_number(region: str = "511923", birth: str = "20010315", serial: str = "123") -> str:
    """A checksummed ID number (region codes 5119xx exist from 2000, so births from 2000 on)."""
    body = region + birth + serial
    return body + ric.calc_check_digit(body + "0")  # stdnum expects a placeholder check digit


@contextmanager
def db(app: Any) -> Iterator[Session]:
    with app.state.sessionmaker() as session:
        yield session


def rows(app: Any, model: Any, *where: Any) -> list[Any]:
    with db(app) as session:
        return list(session.scalars(select(model).where(*where).order_by(model.id)))


def state_of(app: Any, user: str, channel: str = "simulator") -> ConversationState:
    with db(app) as session:
        return session.scalars(
            select(ConversationState).where(ConversationState.channel == channel, ConversationState.user_id == user)
        ).one()


def age_dialog(app: Any, user: str, minutes: int, channel: str = "simulator") -> None:
    """Pretend the user went quiet `minutes` ago."""
    with db(app) as session:
        state = session.scalars(
            select(ConversationState).where(ConversationState.channel == channel, ConversationState.user_id == user)
        ).one()
        context = dict(state.context)
        context["dialog"] = dict(context["dialog"], at=(utcnow() - timedelta(minutes=minutes)).isoformat())
        state.context = context
        session.commit()


def send(app: Any, user: str, text: str = "", *, channel: str = "simulator", **fields: Any) -> list[str]:
    """A message through the real pipeline on any channel (the simulator endpoint only carries text)."""
    outcome = handle_message(app.state.services, InboundMessage(Address(channel, user), text=text, **fields))
    return [r.plain_text() for r in outcome.replies]


def add_roster_labourer(app: Any, *, name: str, id_number: str | None = None, phone: str | None = None,
                        township: str | None = "江口镇", county: str | None = "平昌县") -> int:
    key = app.state.settings.data_key
    with db(app) as session:
        labourer = Labourer(name=name, county=county, township=township, source="roster", verified=True)
        if id_number:
            p = pii.protect_id_number(id_number, key)
            labourer.id_number_enc, labourer.id_number_hash, labourer.id_number_masked = p.encrypted, p.lookup_hash, p.masked
        if phone:
            p = pii.protect_phone(phone, key)
            labourer.phone_enc, labourer.phone_hash, labourer.phone_masked = p.encrypted, p.lookup_hash, p.masked
        session.add(labourer)
        session.commit()
        return labourer.id


def text_by_sms(client: Any, phone: str, text: str) -> list[str]:
    """Send `text` from `phone` the way Aliyun pushes an upstream SMS (POST /sms/inbound), and return the
    SMS replies it caused (the `log` provider's outbox), without the signature."""
    app = client.app
    digest = pii.lookup_hash(pii.normalize_phone(phone), app.state.settings.data_key)
    before = {row.id for row in rows(app, OutboundMessage, OutboundMessage.user_id == digest)}
    token = app.state.settings.sms_callback_token
    response = client.post("/sms/inbound", params={"token": token} if token else None,
                           json=aliyun_up(phone, text, next(_SEQUENCE)))
    assert response.status_code == 200, response.text
    signature = f"【{app.state.settings.sms_signature}】"
    return [row.text.removeprefix(signature) for row in rows(app, OutboundMessage, OutboundMessage.user_id == digest)
            if row.id not in before]


def sms_state(app: Any, phone: str) -> ConversationState:
    return state_of(app, pii.lookup_hash(pii.normalize_phone(phone), app.state.settings.data_key), channel="sms")
