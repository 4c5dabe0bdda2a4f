"""SMS both ways: gateway adapters behind one interface, the rules every message follows, POST /sms/inbound.

Gateways: `log` (the embedded default: writes the outbox, sends nothing), `aliyun` (Dysms SendSms /
SendBatchSms, RPC signature HMAC-SHA1) and `tencent` (SMS 2021-01-11 SendSms, TC3-HMAC-SHA256). The
request signing is done here over httpx, so the providers' SDKs (declared as the optional extras
`sms-aliyun` / `sms-tencent`) are not needed at run time.

Rules (运营商/工信部 rules for commercial SMS): the signature 【…】 leads every message; length is counted
in segments (70 characters fit one, longer ones go in parts of 67); marketing-type notices end with
"拒收请回复R"; an opt-out keyword (R, T, TD, N, 退订, 拒收, STOP) stops all non-essential SMS to that number at
once, registered or not, until the person sends 订阅; notices are capped per number (default one per 30 s,
ten per day). A reply to the person's own message is essential: no cap, no opt-out block.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import time
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import httpx
from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse
from sqlalchemy import case, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import pii
from bot.channels.base import Address, InboundMessage, Reply, SendResult
from bot.conversation import Services, handle_message
from bot.db import session_scope
from bot.models import Labourer, OutboundMessage, SmsNumber, utcnow
from bot.security import guards, same_secret
from bot.settings import Settings

log = logging.getLogger(__name__)
router = APIRouter()

OPT_OUT_KEYWORDS = {"R", "T", "TD", "N", "退订", "拒收", "STOP"}
OPT_IN_KEYWORDS = {"订阅"}
SINGLE_SEGMENT = 70
MULTI_SEGMENT = 67
ESSENTIAL = "reply"
PURPOSES = ("reply", "notice", "marketing")
INBOUND_MAX_BYTES = 256 * 1024
ALIYUN_ACK = {"code": 0, "msg": "成功"}
TENCENT_ACK = {"result": 0, "errmsg": ""}


# ---- text rules ---------------------------------------------------------------------------------


def keyword(text: str) -> str | None:
    """"out" for an opt-out keyword, "in" for 订阅, else None (case and surrounding punctuation ignored)."""
    core = "".join(ch for ch in unicodedata.normalize("NFKC", text) if unicodedata.category(ch)[0] not in "PZSC")
    core = core.upper()
    if core in OPT_OUT_KEYWORDS:
        return "out"
    if core in OPT_IN_KEYWORDS:
        return "in"
    return None


def segments(text: str) -> int:
    n = len(text)
    return 1 if n <= SINGLE_SEGMENT else math.ceil(n / MULTI_SEGMENT)


def render(settings: Settings, body: str, *, purpose: str, opt_out_suffix: str) -> str:
    text = f"【{settings.sms_signature}】{body.strip()}"
    if purpose == "marketing" and not text.endswith(opt_out_suffix):
        text += opt_out_suffix
    return text


def number_hash(number: str, settings: Settings) -> str:
    return pii.lookup_hash(number, settings.data_key)


# ---- gateways -----------------------------------------------------------------------------------


class SmsGateway(Protocol):
    name: str

    def send(self, numbers: list[str], text: str, body: str, *, marketing: bool, key: str | None = None) -> list[SendResult]:
        """One result per number. `text` is the full message as the phone shows it; `body` is the text
        without signature (providers add the signature themselves from their SignName). `key` (one
        number only) travels with the message so that `lookup` can find it again."""
        ...

    def lookup(self, number: str, key: str, since: datetime) -> SendResult | None:
        """The provider's record of the message sent to `number` under `key` since `since`: ok (it took
        it), None (no such message: sending it now is no duplicate), a failure (it took it and it
        failed), or outcome_unknown / lookup_failed (see bot.channels.outbound)."""
        ...


def _unknown(error: str) -> SendResult:
    from bot.channels.outbound import OUTCOME_UNKNOWN

    return SendResult(ok=False, error_code=OUTCOME_UNKNOWN, error=error)


def _sent_unknown(numbers: list[str], exc: Exception) -> list[SendResult]:
    """A timeout or a broken connection: the provider may have taken the message. `lookup` settles it."""
    error = f"{type(exc).__name__}: {exc}"[:500]
    return [SendResult(ok=False, error_code="timeout", error=error, unknown=True) for _ in numbers]


def _lookup_failed(error: str) -> SendResult:
    from bot.channels.outbound import LOOKUP_FAILED

    return SendResult(ok=False, error_code=LOOKUP_FAILED, error=error[:500], retryable=True)


class LogGateway:
    """The embedded default: nothing leaves the machine; the outbox row is the message."""

    name = "log"

    def send(self, numbers: list[str], text: str, body: str, *, marketing: bool, key: str | None = None) -> list[SendResult]:
        for number in numbers:
            log.info("sms (log provider)", extra={"to": pii.mask_phone(number), "sms_text": text, "segments": segments(text)})
        return [SendResult(ok=True, provider_message_id=f"log-{uuid.uuid4().hex[:16]}") for _ in numbers]

    def lookup(self, number: str, key: str, since: datetime) -> SendResult | None:
        return None  # nothing left the machine: "sending" it again only writes the log line again


def _rfc3986(value: str) -> str:
    return quote(value, safe="~")


def aliyun_signature(params: dict[str, str], secret: str, method: str = "POST") -> str:
    """Aliyun RPC signature (SignatureVersion 1.0, HMAC-SHA1) over the sorted, percent-encoded parameters."""
    canonical = "&".join(f"{_rfc3986(k)}={_rfc3986(v)}" for k, v in sorted(params.items()))
    to_sign = f"{method}&{_rfc3986('/')}&{_rfc3986(canonical)}"
    digest = hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


ALIYUN_RETRYABLE = ("isv.BUSINESS_LIMIT_CONTROL", "Throttling", "isp.SYSTEM_ERROR", "ServiceUnavailable", "InternalError")


class AliyunGateway:
    name = "aliyun"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.endpoint = settings.sms_api_base or "https://dysmsapi.aliyuncs.com/"
        self.http = httpx.Client(timeout=settings.sms_timeout_seconds)

    def _template(self, marketing: bool) -> str:
        return (self.settings.sms_marketing_template_id if marketing else "") or self.settings.sms_template_id

    def _call(self, action: str, params: dict[str, str]) -> dict[str, Any]:
        base = {
            "AccessKeyId": self.settings.sms_access_key_id,
            "Action": action,
            "Format": "JSON",
            "RegionId": self.settings.sms_region or "cn-hangzhou",
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": "2017-05-25",
            **params,
        }
        base["Signature"] = aliyun_signature(base, self.settings.sms_access_key_secret)
        response = self.http.post(self.endpoint, data=base)
        try:
            return response.json()
        except ValueError:
            return {"Code": f"HTTP{response.status_code}", "Message": response.text[:200]}

    def send(self, numbers: list[str], text: str, body: str, *, marketing: bool, key: str | None = None) -> list[SendResult]:
        template = self._template(marketing)
        try:
            if len(numbers) == 1:
                params = {
                    "PhoneNumbers": numbers[0],
                    "SignName": self.settings.sms_signature,
                    "TemplateCode": template,
                    "TemplateParam": json.dumps({"content": body}, ensure_ascii=False),
                }
                if key:
                    params["OutId"] = key  # 外部流水扩展字段 (< 256 characters): QuerySendDetails returns it
                data = self._call("SendSms", params)
            else:
                data = self._call("SendBatchSms", {
                    "PhoneNumberJson": json.dumps(numbers),
                    "SignNameJson": json.dumps([self.settings.sms_signature] * len(numbers), ensure_ascii=False),
                    "TemplateCode": template,
                    "TemplateParamJson": json.dumps([{"content": body}] * len(numbers), ensure_ascii=False),
                })
        except httpx.HTTPError as exc:
            return _sent_unknown(numbers, exc)
        code = str(data.get("Code", ""))
        if code == "OK":
            return [SendResult(ok=True, provider_message_id=str(data.get("BizId", ""))) for _ in numbers]
        retryable = code.startswith(ALIYUN_RETRYABLE)
        return [SendResult(ok=False, error_code=code, error=str(data.get("Message", "")), retryable=retryable) for _ in numbers]

    def lookup(self, number: str, key: str, since: datetime) -> SendResult | None:
        """QuerySendDetails for the number on each China day since `since`, matched on OutId. Aliyun
        lists a message it accepted at once (SendStatus 1 = awaiting the carrier's report), and SendSms
        is not idempotent (its documentation asks callers to check before resending), so "not listed"
        means "never accepted". The listing carries no BizId: a receipt then finds the row by OutId."""
        china = ZoneInfo("Asia/Shanghai")
        day, last = since.astimezone(china).date(), utcnow().astimezone(china).date()
        while day <= last:
            page = 1
            while True:
                try:
                    data = self._call("QuerySendDetails", {"PhoneNumber": number, "SendDate": day.strftime("%Y%m%d"),
                                                           "PageSize": "50", "CurrentPage": str(page)})
                except httpx.HTTPError as exc:
                    return _lookup_failed(str(exc))
                if str(data.get("Code", "")) != "OK":
                    return _lookup_failed(f"QuerySendDetails: {data.get('Code')} {data.get('Message', '')}")
                details = (data.get("SmsSendDetailDTOs") or {}).get("SmsSendDetailDTO") or []
                for detail in details:
                    if detail.get("OutId") == key:
                        if str(detail.get("SendStatus")) == "2":  # 发送失败: taken, and it failed
                            return SendResult(ok=False, error_code=str(detail.get("ErrCode") or "send_failed")[:64],
                                              error="Aliyun reports the message failed")
                        return SendResult(ok=True)
                if page * 50 >= int(data.get("TotalCount") or 0):
                    break
                page += 1
            day += timedelta(days=1)
        return None


def tc3_authorization(
    *, secret_id: str, secret_key: str, host: str, payload: bytes, timestamp: int, service: str = "sms"
) -> str:
    """Tencent Cloud API 3.0 signature (TC3-HMAC-SHA256) for a JSON POST to '/'."""
    day = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    canonical = "\n".join([
        "POST", "/", "",
        f"content-type:application/json; charset=utf-8\nhost:{host}\n",
        "content-type;host",
        hashlib.sha256(payload).hexdigest(),
    ])
    scope = f"{day}/{service}/tc3_request"
    to_sign = "\n".join(["TC3-HMAC-SHA256", str(timestamp), scope, hashlib.sha256(canonical.encode()).hexdigest()])

    def _mac(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    key = _mac(_mac(_mac(("TC3" + secret_key).encode(), day), service), "tc3_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"TC3-HMAC-SHA256 Credential={secret_id}/{scope}, SignedHeaders=content-type;host, Signature={signature}"


TENCENT_RETRYABLE = ("LimitExceeded", "InternalError", "RequestLimitExceeded", "FailedOperation.InsufficientBalance")


class TencentGateway:
    name = "tencent"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.endpoint = settings.sms_api_base or "https://sms.tencentcloudapi.com/"
        self.host = urlsplit(self.endpoint).netloc
        self.http = httpx.Client(timeout=settings.sms_timeout_seconds)

    def _post(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """One signed API 3.0 call; the "Response" object. Raises httpx.HTTPError or ValueError."""
        payload = json.dumps(body, ensure_ascii=False).encode()
        timestamp = int(datetime.now(UTC).timestamp())
        headers = {
            "Authorization": tc3_authorization(
                secret_id=self.settings.sms_access_key_id, secret_key=self.settings.sms_access_key_secret,
                host=self.host, payload=payload, timestamp=timestamp,
            ),
            "Content-Type": "application/json; charset=utf-8",
            "Host": self.host,
            "X-TC-Action": action,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Version": "2021-01-11",
            "X-TC-Region": self.settings.sms_region or "ap-guangzhou",
        }
        return self.http.post(self.endpoint, content=payload, headers=headers).json().get("Response", {})

    def send(self, numbers: list[str], text: str, body: str, *, marketing: bool, key: str | None = None) -> list[SendResult]:
        template = (self.settings.sms_marketing_template_id if marketing else "") or self.settings.sms_template_id
        request: dict[str, Any] = {
            "PhoneNumberSet": [f"+86{n}" for n in numbers],
            "SmsSdkAppId": self.settings.sms_app_id,
            "SignName": self.settings.sms_signature,
            "TemplateId": template,
            "TemplateParamSet": [body],
        }
        if key:
            request["SessionContext"] = key  # returned as is in status reports (< 512 bytes)
        try:
            data = self._post("SendSms", request)
        except (httpx.HTTPError, ValueError) as exc:
            return _sent_unknown(numbers, exc)
        if "Error" in data:
            code = str(data["Error"].get("Code", ""))
            error = str(data["Error"].get("Message", ""))
            return [SendResult(ok=False, error_code=code, error=error, retryable=code.startswith(TENCENT_RETRYABLE)) for _ in numbers]
        by_number = {s.get("PhoneNumber", ""): s for s in data.get("SendStatusSet", [])}
        results = []
        for number in numbers:
            status = by_number.get(f"+86{number}", {})
            code = str(status.get("Code", "missing"))
            if code == "Ok":
                results.append(SendResult(ok=True, provider_message_id=str(status.get("SerialNo", ""))))
            else:
                results.append(SendResult(ok=False, error_code=code, error=str(status.get("Message", "")),
                                          retryable=code.startswith(TENCENT_RETRYABLE)))
        return results

    def lookup(self, number: str, key: str, since: datetime) -> SendResult | None:
        """PullSmsSendStatusByPhoneNumber, matched on SessionContext. Tencent lists delivery reports, which
        arrive only when the carrier reports: a message it accepted may not be listed yet, so "not
        listed" proves nothing: within `sms_report_wait_seconds` of the send it is asked again later (a
        retryable lookup_failed), after that the outcome stays unknown (never a blind resend)."""
        request = {"BeginTime": int(since.timestamp()) - 60, "EndTime": int(time.time()) + 60, "Offset": 0,
                   "Limit": 100, "PhoneNumber": f"+86{number}", "SmsSdkAppId": self.settings.sms_app_id}
        try:
            data = self._post("PullSmsSendStatusByPhoneNumber", request)
        except (httpx.HTTPError, ValueError) as exc:
            return _lookup_failed(str(exc))
        if "Error" in data:
            return _lookup_failed(f"PullSmsSendStatusByPhoneNumber: {data['Error'].get('Code')}")
        for status in data.get("PullSmsSendStatusSet") or []:
            if status.get("SessionContext") == key:
                if str(status.get("ReportStatus", "")).upper() == "SUCCESS":
                    return SendResult(ok=True, provider_message_id=str(status.get("SerialNo", "")) or None)
                return SendResult(ok=False, error_code=str(status.get("Description") or "undelivered")[:64],
                                  error="Tencent reports the message failed")
        if (utcnow() - since).total_seconds() < self.settings.sms_report_wait_seconds:
            return _lookup_failed("Tencent has no status report for this message yet")
        return _unknown("Tencent has no status report for this message")


def make_gateway(settings: Settings) -> SmsGateway:
    provider = settings.sms_provider.lower()
    if provider == "log":
        return LogGateway()
    if provider == "aliyun":
        return AliyunGateway(settings)
    if provider == "tencent":
        return TencentGateway(settings)
    raise ValueError(f"GONGYOU_SMS_PROVIDER must be log, aliyun or tencent, not {settings.sms_provider!r}")


# ---- per-number state -----------------------------------------------------------------------------


def number_row(session: Session, settings: Settings, number: str, *, lock: bool = False) -> SmsNumber:
    """The number's state row, created on first use (registered or not)."""
    digest = number_hash(number, settings)
    query = select(SmsNumber).where(SmsNumber.number_hash == digest)
    row = session.scalars(query.with_for_update() if lock else query).one_or_none()
    if row is not None:
        return row
    row = SmsNumber(number_hash=digest, number_enc=pii.encrypt(number, settings.data_key),
                    number_masked=pii.mask_phone(number), opted_out=False, notices_today=0)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # created by a concurrent request
        row = session.scalars(query.with_for_update() if lock else query).one()
    return row


def set_opt_out(session: Session, settings: Settings, number: str, *, out: bool, word: str | None = None) -> None:
    row = number_row(session, settings, number, lock=True)
    row.opted_out = out
    row.opted_out_at = utcnow() if out else None
    row.opt_out_keyword = word[:16] if (out and word) else None
    digest = row.number_hash
    session.execute(
        update(Labourer)
        .where((Labourer.sms_number_hash == digest) | (Labourer.phone_hash == digest))
        .values(subscribed_sms=not out)
    )


def number_for_hash(session: Session, settings: Settings, digest: str) -> str | None:
    row = session.scalars(select(SmsNumber).where(SmsNumber.number_hash == digest)).one_or_none()
    if row is not None:
        return pii.decrypt(row.number_enc, settings.data_key)
    labourer = session.scalars(
        select(Labourer).where((Labourer.sms_number_hash == digest) | (Labourer.phone_hash == digest)).limit(1)
    ).first()
    if labourer is not None and labourer.phone_enc:
        return pii.decrypt(labourer.phone_enc, settings.data_key)
    return None


def _local_day(settings: Settings, now: datetime) -> date:
    return now.astimezone(ZoneInfo(settings.timezone)).date()


def _cap_refusal(settings: Settings, row: SmsNumber, now: datetime) -> SendResult:
    """Why the number's notice slot could not be taken (`row` as it is now)."""
    today = _local_day(settings, now)
    if row.notice_day == today and row.notices_today >= settings.sms_max_per_day:
        return SendResult(ok=False, error_code="daily_cap", error=f"{settings.sms_max_per_day} notices a day reached",
                          retryable=True)
    return SendResult(ok=False, error_code="rate_limited", error="at most one notice per "
                      f"{settings.sms_min_interval_seconds} s to a number", retryable=True)


def _take_notice_slot(session: Session, settings: Settings, row: SmsNumber, now: datetime) -> SendResult | None:
    """Count a notice against the number's caps before it is sent, or say why not (None: taken).

    One conditional UPDATE checks and counts at once, so two workers sending to the same number at the
    same instant cannot both pass the caps (a read-then-count would let both through)."""
    numbers = SmsNumber.__table__
    c = numbers.c
    today = _local_day(settings, now)
    taken = session.execute(
        update(numbers)
        .where(
            c.id == row.id,
            or_(c.last_notice_at.is_(None),
                c.last_notice_at <= now - timedelta(seconds=settings.sms_min_interval_seconds)),
            or_(c.notice_day.is_(None), c.notice_day != today, c.notices_today < settings.sms_max_per_day),
        )
        .values(notices_today=case((c.notice_day == today, c.notices_today + 1), else_=1),
                notice_day=today, last_notice_at=now)
    ).rowcount
    if taken:
        return None
    session.refresh(row)
    return _cap_refusal(settings, row, now)


def _counted_before_crash(session: Session, key: str | None) -> bool:
    """Whether an attempt under this key took the notice slot and then the process died (its outbox row
    is still "sending", or was found never to have reached the provider): this send is that same notice,
    already counted."""
    from bot.channels.outbound import NOT_RECEIVED

    if key is None:
        return False
    M = OutboundMessage
    earlier = select(M.id).where(
        M.idempotency_key == key, or_(M.status == "sending", (M.status == "failed") & (M.error_code == NOT_RECEIVED))
    )
    return session.scalar(earlier) is not None


def _give_back_notice_slot(session: Session, row_id: int, previous: datetime | None, now: datetime) -> None:
    """Undo `_take_notice_slot` for a notice that did not go out (the provider refused it, or an earlier
    attempt under the same key had already sent it)."""
    c = SmsNumber.__table__.c
    session.execute(
        update(SmsNumber.__table__)
        .where(c.id == row_id, c.last_notice_at == now)  # our own claim, nobody's later one
        .values(notices_today=case((c.notices_today > 0, c.notices_today - 1), else_=0), last_notice_at=previous)
    )
    session.commit()


# ---- sending -----------------------------------------------------------------------------------


def send_sms(
    session: Session, services: Services, *, number: str, reply: Reply | str, purpose: str = ESSENTIAL,
    gateway: SmsGateway | None = None, key: str | None = None,
) -> SendResult:
    """Send one SMS under the rules (opt-out, caps, signature, opt-out text) through the outbox
    (bot.channels.outbound.send_recorded). `key`: the broadcast delivery's idempotency key."""
    from bot.channels.outbound import channels, send_recorded

    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}")
    settings = services.settings
    number = pii.normalize_phone(number)
    gateway = gateway or channels(services).sms
    body = reply.plain_text() if isinstance(reply, Reply) else reply
    text = render(settings, body, purpose=purpose, opt_out_suffix=services.kb.text("channels.sms_opt_out_suffix"))
    row = number_row(session, settings, number, lock=True)
    now = utcnow()
    refusal = None
    claimed, row_id, previous = False, row.id, row.last_notice_at
    if purpose != ESSENTIAL:
        if row.opted_out:
            refusal = SendResult(ok=False, error_code="opted_out", error="the number opted out of notices")
        elif not _counted_before_crash(session, key):
            refusal = _take_notice_slot(session, settings, row, now)
            claimed = refusal is None
    record = OutboundMessage(channel="sms", kind="sms", user_id=row.number_hash, number_masked=row.number_masked,
                             provider=gateway.name, purpose=purpose, text=text, segments=segments(text),
                             idempotency_key=key)
    provider_body = text.removeprefix(f"【{settings.sms_signature}】")  # providers add it from SignName
    called: list[bool] = []
    result = send_recorded(
        session, services, record,
        lambda: gateway.send([number], text, provider_body, marketing=purpose == "marketing", key=key)[0],
        refusal=refusal, on_record=lambda: called.append(True),
    )
    if claimed and not (called and (result.ok or result.unknown)):  # an unknown one may have gone out
        _give_back_notice_slot(session, row_id, previous, now)
    return result


# ---- inbound: upstream messages and delivery receipts -------------------------------------------


@dataclass(frozen=True)
class Upstream:
    number: str
    text: str
    external_id: str


@dataclass(frozen=True)
class Receipt:
    number: str | None
    provider_message_id: str
    delivered: bool
    error_code: str | None


def parse_callback(payload: Any) -> tuple[str, list[Upstream], list[Receipt]]:
    """Recognise the provider by the shape of its push. Raises ValueError for anything else."""
    items = payload if isinstance(payload, list) else [payload]
    if not items or not all(isinstance(i, dict) for i in items):
        raise ValueError("expected a JSON object or a list of objects")
    first = items[0]
    ups: list[Upstream] = []
    receipts: list[Receipt] = []
    if "phone_number" in first:  # Aliyun: SmsUp (content) or SmsReport (biz_id, success)
        for item in items:
            number = _field(item.get("phone_number", ""))
            if "content" in item:
                ident = _field(item.get("sequence_id") or f"{item.get('send_time', '')}:{_digest(number, str(item['content']))}")
                ups.append(Upstream(number, str(item["content"]), f"aliyun:{ident}"))
            elif "biz_id" in item:
                ok = item.get("success") in (True, "true", "True")
                # out_id is ignored: it echoes our key, which a stranger can guess (see record_receipt).
                receipts.append(Receipt(number, _field(item["biz_id"]), ok, None if ok else _field(item.get("err_code", ""), 64)))
            else:
                raise ValueError("Aliyun push item without content or biz_id")
        return "aliyun", ups, receipts
    if "mobile" in first or "sid" in first:  # Tencent: upstream object, or a list of status reports
        for item in items:
            number = _field(item.get("mobile", ""))
            if "text" in item:
                ident = _field(f"{item.get('time', '')}:{_digest(number, str(item['text']))}")
                ups.append(Upstream(number, str(item["text"]), f"tencent:{ident}"))
            elif "sid" in item:
                ok = str(item.get("report_status", "")).upper() == "SUCCESS"
                receipts.append(Receipt(number or None, _field(item["sid"]), ok, None if ok else _field(item.get("errmsg", ""), 64)))
            else:
                raise ValueError("Tencent push item without text or sid")
        return "tencent", ups, receipts
    raise ValueError("neither an Aliyun nor a Tencent SMS push")


def _field(value: Any, limit: int = 128) -> str:
    """An id or code from a push as we store it: text, no NUL (PostgreSQL refuses it), at most `limit` long."""
    return str(value).replace("\x00", "")[:limit]


def _digest(number: str, text: str) -> str:
    return hashlib.sha256(f"{number}\x00{text}".encode()).hexdigest()[:24]


def handle_upstream(services: Services, up: Upstream) -> None:
    """One message a person sent by SMS: opt-out/in first, then the conversation; replies go back by SMS."""
    settings = services.settings
    try:
        number = pii.normalize_phone(up.number)
    except pii.InvalidPersonalData:
        log.warning("sms from an invalid number ignored")
        return
    text = up.text.replace("\x00", "")[:2000]  # PostgreSQL text cannot hold NUL; a long SMS is a few hundred chars
    word = keyword(text)
    if word is not None:
        with session_scope(services.sessionmaker) as session:
            set_opt_out(session, settings, number, out=word == "out", word=text.strip())
        text = "退订" if word == "out" else "订阅"  # carrier shorthand (R, TD, …) as the conversation understands it
    digest = number_hash(number, settings)
    with session_scope(services.sessionmaker) as session:
        number_row(session, settings, number)  # so a reply can find the number from the hash
    outcome = handle_message(services, InboundMessage(Address("sms", digest), text=text, external_id=up.external_id[:128]))
    for reply in outcome.replies:
        if not _reply_allowed(services, digest):
            log.warning("sms reply not sent: the number's hourly cap of answers is reached",
                        extra={"to": pii.mask_phone(number)})
            break
        with session_scope(services.sessionmaker) as session:
            result = send_sms(session, services, number=number, reply=reply, purpose=ESSENTIAL)
        if not result.ok:
            log.warning("sms reply not sent", extra={"error_code": result.error_code})


def _reply_allowed(services: Services, digest: str) -> bool:
    """Answers by SMS to one number's messages are capped per hour (lower for a number nobody in the
    registry has): a flood of messages, forged or not, cannot make us text a number without end."""
    settings = services.settings
    with session_scope(services.sessionmaker) as session:
        known = session.scalar(select(Labourer.id).where(
            (Labourer.sms_number_hash == digest) | (Labourer.phone_hash == digest)).limit(1)) is not None
    limit = settings.sms_replies_per_hour if known else settings.sms_unknown_replies_per_hour
    return guards(services).rates.hit(f"sms-reply:{digest}", limit=limit, window_seconds=3600)


def _process(services: Services, ups: list[Upstream], receipts: list[Receipt], provider: str) -> None:
    from bot.channels.outbound import record_receipt

    for receipt in receipts:
        user_id = None
        if receipt.number:
            try:
                user_id = number_hash(pii.normalize_phone(receipt.number), services.settings)
            except pii.InvalidPersonalData:
                user_id = None
        try:
            with session_scope(services.sessionmaker) as session:
                record_receipt(session, provider=provider, provider_message_id=receipt.provider_message_id,
                               delivered=receipt.delivered, error_code=receipt.error_code, user_id=user_id)
        except Exception:  # noqa: BLE001 - one bad report must not lose the others of the batch
            log.exception("sms receipt failed")
    for up in ups:
        try:
            handle_upstream(services, up)
        except Exception:  # noqa: BLE001 - one bad message must not lose the others of the batch
            log.exception("sms upstream failed")


def callback_refusal(settings: Settings, given: str | None) -> str | None:
    """Why a push to /sms/inbound is refused, or None. Neither Aliyun's nor Tencent's HTTP push carries a
    signature of its own, so the long random secret in the callback URL is the proof: required wherever
    a real provider is configured; only the embedded `log` provider in development goes without."""
    expected = settings.sms_callback_token
    if not expected:
        if settings.env == "development" and settings.sms_provider.lower() == "log":
            return None
        return "sms callback not configured: set GONGYOU_SMS_CALLBACK_TOKEN"
    if not same_secret(given, expected):
        return "forbidden"
    return None


@router.post("/sms/inbound")
async def sms_inbound(request: Request, background: BackgroundTasks) -> JSONResponse:
    services: Services = request.app.state.services
    refused = callback_refusal(services.settings, request.query_params.get("token"))
    if refused is not None:
        log.warning("sms push refused", extra={"reason": refused})
        return JSONResponse({"code": 1, "msg": refused, "result": 1, "errmsg": refused}, status_code=403)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > INBOUND_MAX_BYTES:
            return JSONResponse({"code": 1, "msg": "too large", "result": 1, "errmsg": "too large"}, status_code=413)
    try:
        provider, ups, receipts = parse_callback(json.loads(body.decode("utf-8")))
    except (ValueError, UnicodeDecodeError) as exc:
        return JSONResponse({"code": 1, "msg": str(exc)[:200], "result": 1, "errmsg": str(exc)[:200]}, status_code=400)
    # Acknowledge at once in the provider's shape; the work runs after the response is sent.
    background.add_task(_process, services, ups, receipts, provider)
    return JSONResponse(ALIYUN_ACK if provider == "aliyun" else TENCENT_ACK)
