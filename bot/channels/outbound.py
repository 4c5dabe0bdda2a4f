"""How Gongyou reaches a person outside a passive reply: the one send boundary for the help desk and
the scheduler.

    deliver(session, services, channel=..., user_id=..., reply=..., purpose=...) -> SendResult

picks what the platform allows: on WeChat a customer-service message while the 48-hour window is
open and its quota lasts (45015 / 45047 close it), otherwise a template message when one is
configured, otherwise an SMS when the person has a number; on SMS the SMS rules of bot.channels.sms.
`purpose` is "reply" (an answer to the person: essential), "notice" or "marketing" (non-essential:
opt-outs and frequency caps apply, marketing SMS carry the opt-out text).

Lower-level senders for callers that choose the channel themselves: send_customer_service,
send_template, send_mass_by_tag, bot.channels.sms.send_sms. Every one of them goes through
`send_recorded`: the `outbound_message` row is committed as "sending" before the provider call and
updated with the provider's answer, so a process killed in between leaves a row that says "ask the
provider". A broadcast delivery passes its idempotency key: one row per key, and a second send under
the same key returns the first one's outcome instead of a second message (`earlier_outcome` asks the
provider about a row left "sending" where the provider can be asked). Receipts (SMS reports,
TEMPLATESENDJOBFINISH) settle the rows through record_receipt, and only the rows: a broadcast delivery or a
desk message reads its receipt through its pointer to the row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import pii
from bot.channels import policy, sms
from bot.channels.base import Reply, SendResult
from bot.channels.wechat_api import OUT_OF_CS_QUOTA, OUT_OF_WINDOW, WeChatApi, WeChatApiError
from bot.conversation import Services
from bot.models import Labourer, MessageLog, OutboundMessage, WeChatFollower, utcnow

log = logging.getLogger(__name__)

TEMPLATE_FIELD_CHARS = 20  # WeChat template fields (thing*) take at most 20 characters
WINDOW_CLOSED_CODES = policy.WINDOW_CLOSED_CODES
assert WINDOW_CLOSED_CODES == {str(OUT_OF_WINDOW), str(OUT_OF_CS_QUOTA)}

send_sms = sms.send_sms

SETTLED = ("sent", "logged", "delivered")  # outbox statuses that mean the provider took the message
# The provider may or may not have the message and cannot be asked (WeChat), or its answer proves
# nothing yet: sending again could duplicate it, so the delivery fails with this reason instead.
OUTCOME_UNKNOWN = "outcome_unknown"
LOOKUP_FAILED = "lookup_failed"  # asking the provider failed (network, throttling): ask again later
NOT_RECEIVED = "not_received"  # a row left "sending" by a crash that the provider never got


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
    if channel == "simulator":  # nothing to push to: the simulator's inbox shows the log (bot.channels.simulator)
        session.add(MessageLog(channel="simulator", user_id=user_id, direction="out", text=pii.redact(reply.plain_text()),
                               status="sent", purpose=purpose))
        return SendResult(ok=True)
    return SendResult(ok=False, error_code="unknown_channel", error=f"no sender for channel {channel!r}")


def deliver_to_labourer(session: Session, services: Services, labourer: Labourer, reply: Reply, *,
                        purpose: str = "notice") -> SendResult:
    """A message to a registered labourer, on the first channel `bot.channels.policy.reachable` gives
    (WeChat when bound, else SMS), then on along the one fallback policy (see `deliver`)."""
    reach = policy.reachable(labourer, services.settings.data_key, essential=purpose == sms.ESSENTIAL)
    if not reach:
        return SendResult(ok=False, error_code="unreachable", error="no channel to reach this labourer on")
    if reach[0].channel == "wechat":
        return _deliver_wechat(session, services, reach[0].address, reply, purpose)
    return sms.send_sms(session, services, number=reach[0].address, reply=reply, purpose=purpose)


def _deliver_wechat(session: Session, services: Services, openid: str, reply: Reply, purpose: str) -> SendResult:
    """Customer service → template → SMS, moving on only after a definite "no" (policy.moves_on): never after
    a send that may have arrived, nor after "busy" (the same way again later is the caller's choice)."""
    follower = session.get(WeChatFollower, openid)
    following = follower is None or follower.subscribed
    result = SendResult(ok=False, error_code="unsubscribed", error="the person no longer follows the account")
    if following:
        result = send_customer_service(session, services, openid, reply, purpose=purpose)
        if not policy.moves_on(result):
            return result
        if services.settings.wechat_template_id:
            result = send_template(session, services, openid, reply, purpose=purpose)
            if not policy.moves_on(result):
                return result
    labourer = session.scalars(select(Labourer).where(Labourer.wechat_openid == openid)).one_or_none()
    later = policy.reachable(labourer, services.settings.data_key, order=("sms",),
                             essential=purpose == sms.ESSENTIAL) if labourer is not None else []
    if later:
        return sms.send_sms(session, services, number=later[0].address, reply=reply, purpose=purpose)
    return result


def _window_open(services: Services, follower: WeChatFollower | None) -> bool:
    if follower is None:
        return True  # followed before we kept records: let WeChat decide (45015 if not)
    if follower.window_closed or follower.last_interaction_at is None:
        return False
    return utcnow() - follower.last_interaction_at < timedelta(hours=services.settings.wechat_cs_window_hours)


def _wechat_error(exc: WeChatApiError) -> SendResult:
    code = str(exc.errcode) if exc.errcode is not None else ("timeout" if exc.unknown else "network")
    return SendResult(ok=False, error_code=code, error=exc.errmsg, retryable=exc.retryable, unknown=exc.unknown)


def send_recorded(
    session: Session, services: Services, record: OutboundMessage, call: Callable[[], SendResult], *,
    refusal: SendResult | None = None, on_record: Callable[[], None] | None = None,
) -> SendResult:
    """Record, call, record the answer: the one way a message goes to a provider.

    1. The outbox row (`record`, or the earlier row of its idempotency key) is committed as "sending",
       together with what the caller changed before (the SMS per-number counters), BEFORE the call: a
       process killed during the call leaves the row, and reconciliation asks the provider about it.
       `on_record` is told when that happens, i.e. when the provider is going to be called.
    2. `call()` talks to the provider.
    3. The provider's answer is written to the row and committed.

    A key whose earlier row settled returns that outcome without calling (no second message); an
    earlier row still "sending" is first resolved with the provider (`earlier_outcome`). `refusal`
    (opt-out, frequency cap, closed window) records the row as blocked and calls nothing.

    The caller's session is committed at steps 1 and 3, so it must be its own: a conversation turn's
    session (under the pipeline's savepoint) cannot commit, and a provider call inside the message's
    transaction would hold it (on SQLite, every process's writes) open for the call. A handler that
    must tell someone else leaves the send for after the commit (`Turn.after_commit`).
    """
    if session.in_nested_transaction():
        raise RuntimeError("a send needs a session it can commit; from a conversation turn use Turn.after_commit")

    row = record
    if record.idempotency_key is not None:
        earlier = session.scalars(
            select(OutboundMessage).where(OutboundMessage.idempotency_key == record.idempotency_key).with_for_update()
        ).one_or_none()
        if earlier is not None:
            outcome = earlier_outcome(session, services, earlier)
            if outcome is not None and (outcome.ok or outcome.error_code in (OUTCOME_UNKNOWN, LOOKUP_FAILED)):
                session.commit()
                return replace(outcome, outbound_id=earlier.id)
            _reuse(earlier, record)
            earlier.provider_message_id = earlier.error_code = earlier.error = earlier.receipt_at = None
            row = earlier
    if row is record:
        session.add(record)
    if refusal is not None:
        row.status, row.error_code, row.error = "blocked", refusal.error_code, refusal.error
        services.observer.sent(row, refusal)
        return refusal
    row.status = "sending"
    if on_record is not None:
        on_record()
    session.commit()
    result = call()  # a crash here leaves the row "sending": see earlier_outcome
    if result.unknown:
        # A timeout: the row stays "sending", untouched (its updated_at is when the call began, where a
        # lookup starts), exactly as a crash would leave it; earlier_outcome asks the provider later.
        session.commit()
        return replace(result, outbound_id=row.id)
    _record_answer(row, result)
    session.commit()
    services.observer.sent(row, result)
    return replace(result, outbound_id=row.id)


_REUSED_COLUMNS = ("channel", "kind", "user_id", "number_masked", "provider", "purpose", "text", "segments")


def _reuse(earlier: OutboundMessage, record: OutboundMessage) -> None:
    """Make the key's earlier row describe this attempt. `record` is not flushed yet, so a column it
    leaves unset (a WeChat message has no `segments`) is None here: take the column's default, never
    None onto a NOT NULL column."""
    columns = OutboundMessage.__table__.c
    for name in _REUSED_COLUMNS:
        value = getattr(record, name)
        default = columns[name].default
        if value is None and default is not None and default.is_scalar:
            value = default.arg
        setattr(earlier, name, value)


def _record_answer(row: OutboundMessage, result: SendResult) -> None:
    row.provider_message_id = result.provider_message_id
    if result.ok:
        row.status = "logged" if row.provider == "log" else "sent"
        row.error_code = row.error = None
    else:
        row.status, row.error_code, row.error = "failed", result.error_code, result.error


def earlier_outcome(session: Session, services: Services, row: OutboundMessage) -> SendResult | None:
    """What became of an attempt recorded in `row`. ok: the provider took it. None: it never left (or
    the provider refused it), so sending now is no duplicate. OUTCOME_UNKNOWN: nobody can tell.
    LOOKUP_FAILED: the provider could not be asked just now. A "sending" row the provider answers
    for is updated with that answer."""
    if row.status in SETTLED:
        return SendResult(ok=True, provider_message_id=row.provider_message_id)
    if row.status != "sending":
        return None  # failed or blocked: that attempt sent nothing
    since = row.updated_at or row.created_at
    found: SendResult | None
    if row.channel == "sms":
        number = sms.number_for_hash(session, services.settings, row.user_id)
        gateway = channels(services).sms
        if number is None or gateway.name != row.provider:
            found = SendResult(ok=False, error_code=OUTCOME_UNKNOWN, error=f"cannot ask {row.provider} about this message")
        else:
            found = gateway.lookup(number, row.idempotency_key or "", since)
    else:
        # WeChat has no way to ask whether a customer-service or template message went out (a template's
        # client_msg_id only makes WeChat drop a repeat within 10 minutes).
        found = SendResult(ok=False, error_code=OUTCOME_UNKNOWN, error="WeChat cannot be asked whether it was sent")
    if found is None or not (found.ok or found.error_code in (OUTCOME_UNKNOWN, LOOKUP_FAILED)):
        row.status = "failed"
        row.error_code, row.error = (found.error_code, found.error) if found else (NOT_RECEIVED, "the provider has no record")
        return None
    if found.ok:
        _record_answer(row, found)
    return found


def send_customer_service(session: Session, services: Services, openid: str, reply: Reply, *, purpose: str = "reply",
                          key: str | None = None) -> SendResult:
    follower = session.get(WeChatFollower, openid)
    record = OutboundMessage(channel="wechat", kind="customer_service", user_id=openid, provider="wechat",
                             purpose=purpose, text=reply.plain_text(), idempotency_key=key)
    refusal = None
    if not _window_open(services, follower):
        refusal = SendResult(ok=False, error_code=str(OUT_OF_WINDOW), error="outside the 48-hour window")
    api = channels(services).wechat

    def call() -> SendResult:
        try:
            if reply.article_url:
                title, _, description = reply.plain_text().partition("\n")
                api.send_article(openid, title, description, reply.article_url)
            else:
                api.send_text(openid, reply.plain_text())
        except WeChatApiError as exc:
            result = _wechat_error(exc)
            if result.error_code in WINDOW_CLOSED_CODES and follower is not None:
                follower.window_closed = True
            return result
        if follower is not None:
            follower.cs_sent = (follower.cs_sent or 0) + 1
        return SendResult(ok=True)

    return send_recorded(session, services, record, call, refusal=refusal)


def template_data(services: Services, reply: Reply) -> dict[str, dict[str, str]]:
    """The reply cut into the template's fields, each <= 20 characters; no colours (WeChat ignores them
    in new templates and they read as noise). Text that does not fit ends with "see the account"."""
    fields = [f.strip() for f in services.settings.wechat_template_fields.split(",") if f.strip()]
    text = " ".join(reply.plain_text().split())
    chunks = [text[i : i + TEMPLATE_FIELD_CHARS] for i in range(0, len(text), TEMPLATE_FIELD_CHARS)] or [""]
    if len(chunks) > len(fields):
        chunks = chunks[: len(fields) - 1] + [services.kb.text("channels.template_more")[:TEMPLATE_FIELD_CHARS]]
    return {field: {"value": chunk} for field, chunk in zip(fields, chunks)}


def send_template(session: Session, services: Services, openid: str, reply: Reply, *, purpose: str = "notice",
                  key: str | None = None) -> SendResult:
    record = OutboundMessage(channel="wechat", kind="template", user_id=openid, provider="wechat",
                             purpose=purpose, text=reply.plain_text(), idempotency_key=key)

    def call() -> SendResult:
        try:
            data = channels(services).wechat.send_template(
                openid, services.settings.wechat_template_id, template_data(services, reply), url=reply.article_url,
                client_msg_id=key,
            )
        except WeChatApiError as exc:
            return _wechat_error(exc)
        return SendResult(ok=True, provider_message_id=str(data.get("msgid", "")) or None)

    return send_recorded(session, services, record, call)


def send_mass_by_tag(session: Session, services: Services, tag_id: int, reply: Reply) -> SendResult:
    """A broadcast to everyone with a WeChat tag (counts against the account's monthly mass quota)."""
    record = OutboundMessage(channel="wechat", kind="mass", user_id=f"tag:{tag_id}", provider="wechat",
                             purpose="marketing", text=reply.plain_text())

    def call() -> SendResult:
        try:
            data = channels(services).wechat.send_mass_text_by_tag(tag_id, reply.plain_text())
        except WeChatApiError as exc:
            return _wechat_error(exc)
        return SendResult(ok=True, provider_message_id=str(data.get("msg_id", "")) or None)

    return send_recorded(session, services, record, call)


def record_receipt(
    session: Session, *, provider: str, provider_message_id: str, delivered: bool,
    error_code: str | None = None, error: str | None = None, user_id: str | None = None,
) -> int:
    """A provider's delivery report: mark the message(s) delivered or failed, with the provider's error and
    the time. The report is the row's alone: the broadcast delivery or desk message it carried reads it
    through its pointer (bot.models.campaigns.DeliveryOutcome, bot.helpdesk.case_messages), nothing is
    copied. Returns rows updated.

    Found only by the provider's own message id (BizId, SerialNo, MsgID) of a message it accepted from
    us and has not reported on yet: an id nobody outside learns. Never by a field the report merely
    echoes (Aliyun's OutId is our key, which a stranger can guess), so an unknown id changes nothing.
    A message settled after a crash by QuerySendDetails (which lists no BizId) stays "sent"."""
    if not provider_message_id:
        return 0
    query = select(OutboundMessage).where(
        OutboundMessage.provider == provider, OutboundMessage.provider_message_id == provider_message_id,
        OutboundMessage.status == "sent",
    )
    if user_id is not None:  # a batch shares one id (Aliyun BizId): the number picks the row
        query = query.where(OutboundMessage.user_id == user_id)
    rows = list(session.scalars(query))
    now = utcnow()
    for row in rows:
        row.status, row.receipt_at = ("delivered" if delivered else "failed"), now
        if not delivered:
            row.error_code, row.error = error_code, error or error_code
    return len(rows)


__all__ = [
    "LOOKUP_FAILED",
    "OUTCOME_UNKNOWN",
    "Channels",
    "channels",
    "deliver",
    "deliver_to_labourer",
    "earlier_outcome",
    "record_receipt",
    "send_customer_service",
    "send_mass_by_tag",
    "send_recorded",
    "send_template",
    "send_sms",
    "template_data",
]
