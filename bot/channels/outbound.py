"""How Gongyou reaches a person outside a passive reply: the one send boundary for the help desk and
the scheduler.

    deliver(session, services, channel=..., user_id=..., reply=..., purpose=...) -> SendResult

picks what the platform allows: on WeChat a customer-service message while the 48-hour window is
open and its quota lasts (45015 / 45047 close it), otherwise a template message when one is
configured, otherwise an SMS when the person has a number; on SMS the SMS rules of bot.channels.sms.
`purpose` is "reply" (an answer to the person: essential), "notice" or "marketing" (non-essential:
opt-outs and frequency caps apply, marketing SMS carry the opt-out text).

Lower-level senders for callers that choose the channel themselves: send_customer_service,
send_template, send_mass_by_tag, bot.channels.sms.send_sms. Every send is recorded in
`outbound_message`; receipts (SMS reports, TEMPLATESENDJOBFINISH) update it through record_receipt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import pii
from bot.channels import sms
from bot.channels.base import Reply, SendResult
from bot.channels.wechat_api import OUT_OF_CS_QUOTA, OUT_OF_WINDOW, WeChatApi, WeChatApiError
from bot.conversation import Services
from bot.models import Labourer, MessageLog, OutboundMessage, WeChatFollower, utcnow

log = logging.getLogger(__name__)

TEMPLATE_FIELD_CHARS = 20  # WeChat template fields (thing*) take at most 20 characters
WINDOW_CLOSED_CODES = {str(OUT_OF_WINDOW), str(OUT_OF_CS_QUOTA)}

# Functions called with (session, OutboundMessage) when a receipt arrives; the scheduler registers here.
receipt_listeners: list[Callable[[Session, OutboundMessage], None]] = []
send_sms = sms.send_sms


@dataclass
class Channels:
    wechat: WeChatApi
    sms: sms.SmsGateway


def channels(services: Services) -> Channels:
    """The per-app API clients, built once (the WeChat token cache and HTTP pools live in them)."""
    found = getattr(services, "_channels", None)
    if found is None:
        found = Channels(
            wechat=WeChatApi(services.settings, services.sessionmaker),
            sms=sms.make_gateway(services.settings),
        )
        services._channels = found  # type: ignore[attr-defined]
    return found


def deliver(
    session: Session, services: Services, *, channel: str, user_id: str, reply: Reply, purpose: str | None = None
) -> SendResult:
    purpose = purpose or ("marketing" if reply.marketing else "reply")
    if channel == "sms":
        number = sms.number_for_hash(session, services.settings, user_id)
        if number is None:
            return SendResult(ok=False, error_code="no_number", error="no phone number known for this SMS user")
        return sms.send_sms(session, services, number=number, reply=reply, purpose=purpose)
    if channel == "wechat":
        return _deliver_wechat(session, services, user_id, reply, purpose)
    if channel == "simulator":  # nothing to push to: the simulator shows the log
        session.add(MessageLog(channel="simulator", user_id=user_id, direction="out", text=reply.plain_text(), status="sent"))
        return SendResult(ok=True)
    return SendResult(ok=False, error_code="unknown_channel", error=f"no sender for channel {channel!r}")


def _deliver_wechat(session: Session, services: Services, openid: str, reply: Reply, purpose: str) -> SendResult:
    follower = session.get(WeChatFollower, openid)
    following = follower is None or follower.subscribed
    result = SendResult(ok=False, error_code="unsubscribed", error="the person no longer follows the account")
    if following:
        result = send_customer_service(session, services, openid, reply, purpose=purpose)
        if result.ok or (result.retryable and result.error_code not in WINDOW_CLOSED_CODES):
            return result  # sent, or busy: try the same way again later rather than another channel
        if services.settings.wechat_template_id:
            result = send_template(session, services, openid, reply, purpose=purpose)
            if result.ok:
                return result
    number = _labourer_number(session, services, openid)
    if number is not None:
        return sms.send_sms(session, services, number=number, reply=reply, purpose=purpose)
    return result


def _labourer_number(session: Session, services: Services, openid: str) -> str | None:
    labourer = session.scalars(select(Labourer).where(Labourer.wechat_openid == openid)).one_or_none()
    if labourer is None or not labourer.phone_enc:
        return None
    return pii.decrypt(labourer.phone_enc, services.settings.data_key)


def _window_open(services: Services, follower: WeChatFollower | None) -> bool:
    if follower is None:
        return True  # followed before we kept records: let WeChat decide (45015 if not)
    if follower.window_closed or follower.last_interaction_at is None:
        return False
    return utcnow() - follower.last_interaction_at < timedelta(hours=services.settings.wechat_cs_window_hours)


def _wechat_error(exc: WeChatApiError) -> SendResult:
    code = str(exc.errcode) if exc.errcode is not None else "network"
    return SendResult(ok=False, error_code=code, error=exc.errmsg, retryable=exc.retryable)


def send_customer_service(session: Session, services: Services, openid: str, reply: Reply, *, purpose: str = "reply") -> SendResult:
    follower = session.get(WeChatFollower, openid)
    record = OutboundMessage(channel="wechat", kind="customer_service", user_id=openid, provider="wechat",
                             purpose=purpose, text=reply.plain_text())
    session.add(record)
    if not _window_open(services, follower):
        record.status, record.error_code = "blocked", str(OUT_OF_WINDOW)
        return SendResult(ok=False, error_code=str(OUT_OF_WINDOW), error="outside the 48-hour window")
    api = channels(services).wechat
    try:
        if reply.article_url:
            title, _, description = reply.plain_text().partition("\n")
            api.send_article(openid, title, description, reply.article_url)
        else:
            api.send_text(openid, reply.plain_text())
    except WeChatApiError as exc:
        result = _wechat_error(exc)
        record.status, record.error_code, record.error = "failed", result.error_code, result.error
        if result.error_code in WINDOW_CLOSED_CODES and follower is not None:
            follower.window_closed = True
        return result
    record.status = "sent"
    if follower is not None:
        follower.cs_sent = (follower.cs_sent or 0) + 1
    return SendResult(ok=True)


def template_data(services: Services, reply: Reply) -> dict[str, dict[str, str]]:
    """The reply cut into the template's fields, each <= 20 characters; no colours (WeChat ignores them
    in new templates and they read as noise). Text that does not fit ends with "see the account"."""
    fields = [f.strip() for f in services.settings.wechat_template_fields.split(",") if f.strip()]
    text = " ".join(reply.plain_text().split())
    chunks = [text[i : i + TEMPLATE_FIELD_CHARS] for i in range(0, len(text), TEMPLATE_FIELD_CHARS)] or [""]
    if len(chunks) > len(fields):
        chunks = chunks[: len(fields) - 1] + [services.kb.text("channels.template_more")[:TEMPLATE_FIELD_CHARS]]
    return {field: {"value": chunk} for field, chunk in zip(fields, chunks)}


def send_template(session: Session, services: Services, openid: str, reply: Reply, *, purpose: str = "notice") -> SendResult:
    record = OutboundMessage(channel="wechat", kind="template", user_id=openid, provider="wechat",
                             purpose=purpose, text=reply.plain_text())
    session.add(record)
    try:
        data = channels(services).wechat.send_template(
            openid, services.settings.wechat_template_id, template_data(services, reply), url=reply.article_url
        )
    except WeChatApiError as exc:
        result = _wechat_error(exc)
        record.status, record.error_code, record.error = "failed", result.error_code, result.error
        return result
    msg_id = str(data.get("msgid", "")) or None
    record.status, record.provider_message_id = "sent", msg_id
    return SendResult(ok=True, provider_message_id=msg_id)


def send_mass_by_tag(session: Session, services: Services, tag_id: int, reply: Reply) -> SendResult:
    """A broadcast to everyone with a WeChat tag (counts against the account's monthly mass quota)."""
    record = OutboundMessage(channel="wechat", kind="mass", user_id=f"tag:{tag_id}", provider="wechat",
                             purpose="marketing", text=reply.plain_text())
    session.add(record)
    try:
        data = channels(services).wechat.send_mass_text_by_tag(tag_id, reply.plain_text())
    except WeChatApiError as exc:
        result = _wechat_error(exc)
        record.status, record.error_code, record.error = "failed", result.error_code, result.error
        return result
    msg_id = str(data.get("msg_id", "")) or None
    record.status, record.provider_message_id = "sent", msg_id
    return SendResult(ok=True, provider_message_id=msg_id)


def record_receipt(
    session: Session, *, provider: str, provider_message_id: str, delivered: bool,
    error_code: str | None = None, error: str | None = None, user_id: str | None = None,
) -> int:
    """A provider's delivery report: mark the message(s) delivered or failed. Returns rows updated."""
    query = select(OutboundMessage).where(
        OutboundMessage.provider == provider, OutboundMessage.provider_message_id == provider_message_id
    )
    if user_id is not None:  # a batch shares one id (Aliyun BizId): the number picks the row
        query = query.where(OutboundMessage.user_id == user_id)
    rows = list(session.scalars(query))
    for row in rows:
        row.status = "delivered" if delivered else "failed"
        if not delivered:
            row.error_code, row.error = error_code, error or error_code
        for listener in receipt_listeners:
            listener(session, row)
    return len(rows)


__all__ = [
    "Channels",
    "channels",
    "deliver",
    "receipt_listeners",
    "record_receipt",
    "send_customer_service",
    "send_mass_by_tag",
    "send_template",
    "send_sms",
    "template_data",
]
