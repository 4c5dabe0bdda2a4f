"""The WeChat Official Account callback: GET/POST /wechat (plaintext, compatible and safe/AES modes).

The adapter only translates: platform XML → InboundMessage → the shared pipeline → Reply → passive XML.
Platform rules it enforces:
- signatures (`signature` always, `msg_signature` in AES mode, compared in constant time), timestamps
  within 300 s, each (timestamp, nonce) heard once across workers (bot.security), only AES pushes when
  an AES key is configured, a body cap, and no entity declarations (xmltodict >= 1.0.1 refuses them; we
  answer 400, never 500);
- the 5-second rule: WeChat drops the connection after 5 s and retries up to 3 times. The pipeline runs
  in a worker thread; when it is not done by `wechat_reply_deadline_seconds` we answer "success" and the
  worker sends the replies through the customer-service API when it finishes. Retries are deduplicated by
  the pipeline (MsgId; FromUserName:CreateTime:Event for events) in the database, so across processes too;
- unsubscribe: stop messages, unbind the openid and delete the person's chat history (the roster record,
  which belongs to the programme, stays).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any
from xml.parsers.expat import ExpatError

import xmltodict
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import Connection, Engine, delete, update
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.utils import WeChatSigner

from bot.channels.base import Address, InboundMessage, Reply
from bot.conversation import Services, handle_message
from bot.db import dialect_insert, session_scope
from bot.logs import ContextThreadPool
from bot.overload import INLINE, SHED, Admission
from bot.models import ConversationState, Labourer, MessageLog, OutboundMessage, WeChatFollower, utcnow
from bot.security import guards, same_secret

log = logging.getLogger(__name__)
router = APIRouter()

PASSIVE_MAX_BYTES = 2000  # a passive text reply longer than about 2 KB is not shown; the rest goes by the API
SCENE_PREFIX = "qrscene_"
# Events that are not the person talking: acknowledged, never routed to the conversation.
SILENT_EVENTS = {"LOCATION", "VIEW", "view_miniprogram", "MASSSENDJOBFINISH", "subscribe_msg_popup_event",
                 "subscribe_msg_change_event", "subscribe_msg_sent_event"}
# What opens (or re-opens) the 48-hour customer-service window.
INTERACTIONS = {"text", "voice", "image", "location", "link", "video"}
INTERACTION_EVENTS = {"subscribe", "SCAN", "CLICK"}


class BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# ---- crypto and checks ---------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _crypto(token: str, aes_key: str, appid: str) -> WeChatCrypto:
    return WeChatCrypto(token, aes_key, appid)


def _signature(*parts: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*parts)
    return signer.signature


def _check_query(services: Services, query: dict[str, str]) -> tuple[str, str]:
    settings = services.settings
    if not settings.wechat_token:
        raise BadRequest(403, "wechat callback not configured")
    timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
    signature = query.get("signature", "")
    if not (timestamp.isdigit() and nonce and signature) or len(timestamp) > 12 or len(nonce) > 64:
        raise BadRequest(400, "missing or malformed signature parameters")
    if abs(time.time() - int(timestamp)) > settings.wechat_timestamp_tolerance_seconds:
        raise BadRequest(403, "stale timestamp")  # a replayed request
    if not same_secret(signature, _signature(settings.wechat_token, timestamp, nonce)):
        raise BadRequest(403, "bad signature")
    return timestamp, nonce


def _check_first_use(services: Services, timestamp: str, nonce: str, body: bytes) -> None:
    """The signature covers token, timestamp and nonce, not the body (outside AES mode), so one push's
    query string, kept by a proxy or an access log, would otherwise carry any XML for any openid for as
    long as its timestamp is accepted. A (timestamp, nonce) is heard once; the same body again is
    WeChat's own retry of a push it saw no answer to, which the pipeline deduplicates by MsgId."""
    ttl = 2 * services.settings.wechat_timestamp_tolerance_seconds + 60
    if not guards(services).replay.first_use(f"wechat:{timestamp}:{nonce}", body, ttl):
        raise BadRequest(403, "replayed timestamp and nonce")


def _parse_xml(body: bytes | str) -> dict[str, Any]:
    try:
        doc = xmltodict.parse(body)  # entity declarations are refused (ValueError / ExpatError)
    except (ValueError, ExpatError, TypeError) as exc:
        raise BadRequest(400, f"malformed XML: {type(exc).__name__}") from exc
    node = doc.get("xml") if isinstance(doc, dict) else None
    if not isinstance(node, dict):
        raise BadRequest(400, "no <xml> root")
    return node


def _decrypt(services: Services, outer: dict[str, Any], query: dict[str, str], timestamp: str, nonce: str) -> dict[str, Any]:
    settings = services.settings
    if not settings.wechat_aes_key:
        raise BadRequest(400, "encrypted message but no GONGYOU_WECHAT_AES_KEY")
    encrypt = outer.get("Encrypt")
    msg_signature = query.get("msg_signature", "")
    if not isinstance(encrypt, str) or not msg_signature:
        raise BadRequest(400, "missing Encrypt or msg_signature")
    if not same_secret(msg_signature, _signature(settings.wechat_token, timestamp, nonce, encrypt)):
        raise BadRequest(403, "bad msg_signature")  # checked here in constant time; wechatpy checks it again
    crypto = _crypto(settings.wechat_token, settings.wechat_aes_key, settings.wechat_appid)
    try:
        plain = crypto.decrypt_message({"Encrypt": encrypt}, msg_signature, timestamp, nonce)
    except InvalidSignatureException as exc:
        raise BadRequest(403, "bad msg_signature") from exc
    except Exception as exc:  # noqa: BLE001 - any decryption failure is bad input (base64, padding, app id)
        raise BadRequest(400, f"cannot decrypt: {type(exc).__name__}") from exc
    return _parse_xml(plain)


# ---- XML → InboundMessage ------------------------------------------------------------------------


def _text(node: dict[str, Any], key: str) -> str:
    value = node.get(key)
    return value.strip() if isinstance(value, str) else ""


def to_inbound(node: dict[str, Any]) -> InboundMessage | None:
    """The platform message as an InboundMessage; None for what is not a person talking."""
    openid = _text(node, "FromUserName")
    msg_type = _text(node, "MsgType").lower()
    if not openid or not msg_type or len(openid) > 64:
        raise BadRequest(400, "missing FromUserName or MsgType")
    msg_id = _text(node, "MsgId") or None
    common: dict[str, Any] = {"address": Address("wechat", openid), "external_id": msg_id}
    if msg_type == "text":
        return InboundMessage(text=_text(node, "Content"), kind="text", **common)
    if msg_type == "voice":
        # `Recognition` is WeChat's speech-to-text; it can be missing or empty.
        return InboundMessage(text=_text(node, "Recognition"), kind="voice", media_id=_text(node, "MediaId") or None, **common)
    if msg_type == "image":
        return InboundMessage(kind="image", media_id=_text(node, "MediaId") or None, **common)
    if msg_type == "location":
        try:
            where = (float(_text(node, "Location_X")), float(_text(node, "Location_Y")))
        except ValueError:
            where = None
        return InboundMessage(kind="location", location=where, label=_text(node, "Label") or None, **common)
    if msg_type == "link":
        return InboundMessage(kind="link", label=_text(node, "Title") or None, text="", **common)
    if msg_type in ("video", "shortvideo"):
        return InboundMessage(kind="video", media_id=_text(node, "MediaId") or None, **common)
    if msg_type == "event":
        event = _text(node, "Event")
        if not event or event in SILENT_EVENTS or event == "TEMPLATESENDJOBFINISH":
            return None
        key = node.get("EventKey")
        event_key = key.strip() if isinstance(key, str) else None
        common["external_id"] = f"{openid}:{_text(node, 'CreateTime')}:{event}"
        return InboundMessage(kind="event", event=event, event_key=event_key, **common)
    return None  # unknown types are acknowledged


# ---- Reply → passive XML -------------------------------------------------------------------------


def cdata(value: str) -> str:
    # wechatpy 1.8.18 pastes text into CDATA as is: a "]]>" in user or knowledge text would end the
    # section early and let the rest be read as XML. Split it across two sections instead.
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def render_passive(openid: str, account: str, replies: list[Reply]) -> tuple[str | None, list[Reply]]:
    """One passive message (WeChat takes one per request) and the replies left for the API."""
    if not replies:
        return None, []
    now = str(int(time.time()))
    head = f"<xml><ToUserName>{cdata(openid)}</ToUserName><FromUserName>{cdata(account)}</FromUserName><CreateTime>{now}</CreateTime>"
    first = replies[0]
    if first.article_url and len(replies) == 1:
        title, _, description = first.plain_text().partition("\n")
        article = (
            f"<item><Title>{cdata(title)}</Title><Description>{cdata(description)}</Description>"
            f"<Url>{cdata(first.article_url)}</Url></item>"
        )
        # At most one article: WeChat shows only the first of a multi-article reply anyway.
        return head + f"<MsgType>{cdata('news')}</MsgType><ArticleCount>1</ArticleCount><Articles>{article}</Articles></xml>", []
    parts: list[str] = []
    size = 0
    taken = 0
    for reply in replies:
        text = reply.plain_text()
        extra = len(text.encode("utf-8")) + (2 if parts else 0)
        if parts and size + extra > PASSIVE_MAX_BYTES:
            break
        parts.append(text)
        size += extra
        taken += 1
    content = "\n\n".join(parts)
    xml = head + f"<MsgType>{cdata('text')}</MsgType><Content>{cdata(content)}</Content></xml>"
    return xml, replies[taken:]


# ---- the work done per message (in a worker thread) ----------------------------------------------


# openid -> monotonic time this process last recorded a plain interaction. The 48-hour window does not
# need second precision, so a person's next messages within TOUCH_EVERY skip the write (hot path).
_touched: dict[str, float] = {}
_touched_lock = threading.Lock()
TOUCH_EVERY = 60.0
TOUCHED_MAX = 100_000


def touch_follower(conn: Connection, message: InboundMessage) -> None:
    """Record what the platform rules need: following, QR source, the customer-service window.

    Runs in the message's own transaction, right after its inbound row (Services.on_logged)."""
    event = message.event if message.kind == "event" else None
    interaction = message.kind in INTERACTIONS or event in INTERACTION_EVENTS
    source = None
    if event == "subscribe" and message.event_key and message.event_key.startswith(SCENE_PREFIX):
        source = message.event_key[len(SCENE_PREFIX):][:64]
    elif event == "SCAN" and message.event_key:
        source = message.event_key[:64]
    plain = event is None and interaction
    with _touched_lock:
        if not plain:
            _touched.pop(message.user_id, None)
        else:
            last = _touched.get(message.user_id)
            if last is not None and time.monotonic() - last < TOUCH_EVERY:
                return
            if len(_touched) >= TOUCHED_MAX:
                _touched.clear()
            # Set before the commit; process() forgets it if the transaction fails.
            _touched[message.user_id] = time.monotonic()
    _write_follower(conn, message, utcnow(), event, interaction, source)


def _write_follower(conn: Connection, message: InboundMessage, now, event, interaction, source) -> None:  # noqa: ANN001
    changes: dict[str, object] = {}
    if event == "subscribe":
        changes.update(subscribed=True, subscribed_at=now)
    if interaction:
        changes.update(last_interaction_at=now, window_closed=False, cs_sent=0)
    if source:
        changes["source"] = source
    # One upsert; the statement depends only on which columns change, so it is built once per set of them.
    stmt = _follower_upsert(conn.engine, tuple(changes))
    conn.execute(stmt, {"openid": message.user_id, "subscribed": True, "window_closed": False, "cs_sent": 0, **changes})
    if source:
        conn.execute(update(Labourer).where(Labourer.wechat_openid == message.user_id).values(wechat_source=source))


@lru_cache(maxsize=16)
def _follower_upsert(engine: Engine, changed: tuple[str, ...]):  # noqa: ANN202
    table = WeChatFollower.__table__
    stmt = dialect_insert(engine, table)
    if not changed:
        return stmt.on_conflict_do_nothing(index_elements=[table.c.openid])
    return stmt.on_conflict_do_update(index_elements=[table.c.openid], set_={c: stmt.excluded[c] for c in changed})



def forget_follower(services: Services, openid: str) -> None:
    """Unfollow: stop messages, unbind the openid, delete the chat history (the roster record stays)."""
    with _touched_lock:
        _touched.pop(openid, None)
    with session_scope(services.sessionmaker) as session:
        follower = session.get(WeChatFollower, openid)
        if follower is None:
            follower = WeChatFollower(openid=openid, cs_sent=0)
            session.add(follower)
        follower.subscribed, follower.unsubscribed_at, follower.source = False, utcnow(), None
        follower.last_interaction_at, follower.window_closed = None, True
        session.execute(
            update(Labourer).where(Labourer.wechat_openid == openid).values(wechat_openid=None, subscribed_wechat=False)
        )
        session.execute(delete(MessageLog).where(MessageLog.channel == "wechat", MessageLog.user_id == openid))
        session.execute(delete(ConversationState).where(ConversationState.channel == "wechat", ConversationState.user_id == openid))
        session.execute(delete(OutboundMessage).where(OutboundMessage.channel == "wechat", OutboundMessage.user_id == openid))


def template_job_finished(services: Services, node: dict[str, Any]) -> None:
    """TEMPLATESENDJOBFINISH: WeChat's receipt for a template message."""
    from bot.channels.outbound import record_receipt

    status = _text(node, "Status")
    msg_id = _text(node, "MsgID") or _text(node, "MsgId")
    if not msg_id:
        return
    with session_scope(services.sessionmaker) as session:
        record_receipt(
            session,
            provider="wechat",
            provider_message_id=msg_id,
            delivered=status == "success",
            error_code=None if status == "success" else status[:64],
            error=None if status == "success" else status,
        )


def process(services: Services, message: InboundMessage) -> list[Reply]:
    """The pipeline for one WeChat message, with what only WeChat needs around it."""
    try:
        # records the follower too (touch_follower); what waits for the commit (a provider call) goes to the big pool
        outcome = handle_message(services, message, defer=_pool(services.settings.wechat_reply_workers).submit)
    except BaseException:
        with _touched_lock:  # nothing was recorded
            _touched.pop(message.user_id, None)
        raise
    if message.kind == "event" and message.event == "unsubscribe":
        forget_follower(services, message.user_id)
        return []
    return outcome.replies


def send_later(services: Services, openid: str, replies: list[Reply]) -> None:
    """Replies that missed the passive window go through the customer-service API (or its fallbacks)."""
    from bot.channels.outbound import deliver

    for reply in replies:
        try:
            with session_scope(services.sessionmaker) as session:
                result = deliver(session, services, channel="wechat", user_id=openid, reply=reply)
            if not result.ok:
                log.warning("late reply not delivered", extra={"error_code": result.error_code, "error": result.error})
        except Exception:  # noqa: BLE001 - a worker thread must log, not die silently
            log.exception("late reply failed")


class _Job:
    """The pipeline run for one callback: either the request takes its replies, or the worker sends them."""

    def __init__(self, services: Services, message: InboundMessage) -> None:
        self.services, self.message = services, message
        self.lock = threading.Lock()
        self.late = False
        self.replies: list[Reply] | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            replies = process(self.services, self.message)
        except BaseException as exc:  # noqa: BLE001 - recorded for the request; the pipeline logs its own
            log.exception("wechat message failed")
            replies, self.error = [], exc
        with self.lock:
            self.replies = replies
            late = self.late
        self.done.set()
        if late and replies:  # on the big pool: a slow API call must not hold up the next messages
            _pool(self.services.settings.wechat_reply_workers).submit(send_later, self.services, self.message.user_id, replies)

    def claim(self) -> list[Reply] | None:
        """The replies if they are ready; else None, and the worker will send them itself."""
        with self.lock:
            if self.replies is None:
                if not self.late:
                    self.late = True
                    self.services.observer.late("wechat")
                return None
            return self.replies


_executor: ThreadPoolExecutor | None = None
_sqlite_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
# On SQLite the pipeline's database work is serialised by the writer lock and its Python by the GIL, so
# more than a couple of runs at once in one process only add GIL hand-offs (measured with 32 threads: ~10%
# more CPU per message and twice the p99). Its runs queue (in order) for two threads of their own; the big
# pool keeps serving late replies and receipts.
SQLITE_PIPELINE_THREADS = 2


def _pool(workers: int) -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ContextThreadPool(max_workers=workers, thread_name_prefix="wechat")
        return _executor


def _pipeline_pool(services: Services) -> ThreadPoolExecutor:
    global _sqlite_executor
    if services.engine.dialect.name != "sqlite":
        return _pool(services.settings.wechat_reply_workers)
    with _executor_lock:
        if _sqlite_executor is None:
            _sqlite_executor = ContextThreadPool(max_workers=SQLITE_PIPELINE_THREADS, thread_name_prefix="wechat-pipeline")
        return _sqlite_executor


async def _run(services: Services, message: InboundMessage, admission: Admission | None = None) -> list[Reply] | None:
    job = _Job(services, message)
    work = admission.track(job.run) if admission is not None else job.run
    # The time the request already waited for the event loop counts against WeChat's 5 s too.
    lag = admission.lag if admission is not None else 0.0
    budget = services.settings.wechat_reply_deadline_seconds - lag
    if budget <= 0:  # no time left (or a deployment set to always answer through the API): late from the start
        job.claim()
    future = asyncio.get_running_loop().run_in_executor(_pipeline_pool(services), work)
    if budget > 0:
        await asyncio.wait({future}, timeout=budget)
    return job.claim()


def _overloaded(services: Services, admission: Admission, verdict: str, query: dict[str, str], body: bytes,
                timestamp: str, nonce: str) -> Response:
    """Above capacity (bot.overload): 503 before anything is stored (WeChat sends it again), or "success" now
    and the message answered in its turn through the customer-service API."""
    services.observer.overloaded("wechat", verdict)
    if verdict == SHED:
        log.warning("wechat callback shed: queue full", extra={"queued": admission.queued})
        return _plain("busy", 503)
    _pipeline_pool(services).submit(admission.track(_answer_later), services, query, body, timestamp, nonce)
    return _plain("success")


def _answer_later(services: Services, query: dict[str, str], body: bytes, timestamp: str, nonce: str) -> None:
    """A callback acknowledged before it was read: the same checks and pipeline, the replies through the API."""
    try:
        outer = _parse_xml(body)
        encrypted = query.get("encrypt_type", "raw").lower() == "aes"
        node = _decrypt(services, outer, query, timestamp, nonce) if encrypted else outer
        message = to_inbound(node)
        if message is None:
            if _text(node, "Event") == "TEMPLATESENDJOBFINISH":
                template_job_finished(services, node)
            return
        replies = process(services, message)
    except BadRequest as exc:
        log.info("wechat callback refused", extra={"status": exc.status, "reason": exc.reason})
        return
    except Exception:  # noqa: BLE001 - a worker thread must log, not die silently
        log.exception("wechat message failed")
        return
    if replies:
        services.observer.late("wechat")
        send_later(services, message.user_id, replies)


# ---- routes -------------------------------------------------------------------------------------


def _plain(text: str, status: int = 200) -> PlainTextResponse:
    return PlainTextResponse(text, status_code=status)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BadRequest(413, "body too large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, "body too large")
        chunks.append(chunk)
    return b"".join(chunks)


@router.get("/wechat")
def verify_url(request: Request) -> Response:
    """URL verification when the callback is configured: echo `echostr` if the signature is right."""
    try:
        _check_query(request.app.state.services, dict(request.query_params))
    except BadRequest as exc:
        return _plain(exc.reason, exc.status)
    echostr = request.query_params.get("echostr", "")
    if not echostr or len(echostr) > 256:
        return _plain("missing echostr", 400)
    return _plain(echostr)


@router.post("/wechat")
async def callback(request: Request) -> Response:
    services: Services = request.app.state.services
    query = dict(request.query_params)
    try:
        timestamp, nonce = _check_query(services, query)
        body = await _read_body(request, services.settings.wechat_max_body_bytes)
        admission: Admission | None = getattr(request.app.state, "admission", None)
        verdict = admission.verdict() if admission is not None else INLINE
        if admission is not None and verdict != INLINE:
            return _overloaded(services, admission, verdict, query, body, timestamp, nonce)
        outer = _parse_xml(body)
        encrypted = query.get("encrypt_type", "raw").lower() == "aes"
        if services.settings.wechat_aes_key and not encrypted:
            # Safe mode configured: WeChat encrypts every push, so a plaintext one is not WeChat's.
            raise BadRequest(403, "plaintext refused: the account is in safe (AES) mode")
        node = _decrypt(services, outer, query, timestamp, nonce) if encrypted else outer
        message = to_inbound(node)
        await asyncio.get_running_loop().run_in_executor(
            _pool(services.settings.wechat_reply_workers), _check_first_use, services, timestamp, nonce, body)
    except BadRequest as exc:
        log.info("wechat callback refused", extra={"status": exc.status, "reason": exc.reason})
        return _plain(exc.reason, exc.status)

    if message is None:
        if _text(node, "Event") == "TEMPLATESENDJOBFINISH":
            await asyncio.get_running_loop().run_in_executor(
                _pool(services.settings.wechat_reply_workers), template_job_finished, services, node
            )
        return _plain("success")
    replies = await _run(services, message, admission)
    if not replies:
        return _plain("success")  # nothing to say now, or it will come through the API
    account = _text(node, "ToUserName")
    xml, rest = render_passive(message.user_id, account, replies)
    if rest:
        _pool(services.settings.wechat_reply_workers).submit(send_later, services, message.user_id, rest)
    if xml is None:
        return _plain("success")
    if encrypted:
        crypto = _crypto(services.settings.wechat_token, services.settings.wechat_aes_key, services.settings.wechat_appid)
        xml = crypto.encrypt_message(xml, nonce, timestamp)
    return Response(xml, media_type="application/xml")
