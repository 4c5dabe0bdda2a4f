"""The WeChat Official Account API: wechatpy's WeChatClient with the access token shared by all processes.

wechatpy 1.8.18 pitfalls worked around here:
- `auto_retry=True` re-fetches the token and recurses without limit on 40001/42001; we pass
  `auto_retry=False` and retry ourselves, once for a token error, twice for "system busy" (-1).
- It only knows the old `/token` endpoint, where every fetch invalidates the token other processes
  hold. We call `/stable_token` (normal mode returns the still-valid token; force_refresh only when
  WeChat rejected the one we hold) and keep the token in the database, so a fleet fetches it once.
- Mass send by tag sends the obsolete `group_id`; `send_mass_text_by_tag` posts `tag_id` itself.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry
from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.session import SessionStorage

from bot.db import session_scope
from bot.models import WeChatToken, utcnow
from bot.settings import Settings

log = logging.getLogger(__name__)

TOKEN_ERRORS = {40001, 40014, 42001}  # invalid credential, invalid token, token expired
BUSY = -1
QUOTA_EXCEEDED = 45009  # the account's daily call quota for this API
OUT_OF_WINDOW = 45015  # more than 48 h since the person last interacted (or they unfollowed)
OUT_OF_CS_QUOTA = 45047  # customer-service message count limit since the last interaction
REFRESH_MARGIN = timedelta(minutes=5)  # refresh a little before WeChat expires the token
CLAIM_SECONDS = 15
BUSY_BACKOFF = (0.2, 0.6)


class WeChatApiError(Exception):
    """`retryable`: WeChat said no for now (busy, quota): nothing was sent. `unknown`: the request may have
    reached WeChat (a timeout, a connection lost after sending, an answer that is not WeChat's): whether the
    message went out cannot be known, and sending it again could make a second one."""

    def __init__(self, errcode: int | None, errmsg: str, *, retryable: bool = False, unknown: bool = False) -> None:
        super().__init__(f"{errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.retryable = retryable
        self.unknown = unknown


def _never_sent(exc: requests.RequestException) -> bool:
    """The connection was never made (refused, or the connect timed out): the request did not leave."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and exc.args:
        return isinstance(getattr(exc.args[0], "reason", None), urllib3.exceptions.NewConnectionError)
    return False


@dataclass
class _Cached:
    token: str
    expires_at: datetime


class TokenStore:
    """The access token in the `wechat_token` row; one process at a time refreshes it."""

    def __init__(self, factory: sessionmaker[Session], appid: str, fetch: Any) -> None:
        self._factory = factory
        self._appid = appid
        self._fetch = fetch  # (force_refresh: bool) -> (token, expires_in seconds)
        self._cached: _Cached | None = None
        self._lock = threading.Lock()

    def current(self) -> str:
        cached = self._cached
        if cached is not None and cached.expires_at - utcnow() > REFRESH_MARGIN:
            return cached.token
        return self._load_or_refresh(rejected=None)

    def invalidate(self, rejected: str) -> str:
        """WeChat refused `rejected`: get a token that is not it (another process may already have one)."""
        return self._load_or_refresh(rejected=rejected)

    def _load_or_refresh(self, rejected: str | None) -> str:
        with self._lock:  # threads of one process wait for one refresh
            deadline = time.monotonic() + CLAIM_SECONDS
            while True:
                token = self._load(rejected)
                if token is not None:
                    return token
                if self._claim():
                    try:
                        return self._refresh(rejected)
                    finally:
                        self._release()
                if time.monotonic() > deadline:
                    raise WeChatApiError(None, "timed out waiting for another process to refresh the token", retryable=True)
                time.sleep(0.05)

    def _load(self, rejected: str | None) -> str | None:
        with session_scope(self._factory) as session:
            row = session.get(WeChatToken, self._appid)
            if row is None or not row.access_token or row.expires_at is None:
                return None
            if row.access_token == rejected or row.expires_at - utcnow() <= REFRESH_MARGIN:
                return None
            self._cached = _Cached(row.access_token, row.expires_at)
            return row.access_token

    def _claim(self) -> bool:
        now = utcnow()
        try:
            with session_scope(self._factory) as session:
                if session.get(WeChatToken, self._appid) is None:
                    session.add(WeChatToken(appid=self._appid, access_token=""))
        except IntegrityError:
            pass  # another process inserted the row first
        with session_scope(self._factory) as session:
            result = session.execute(
                update(WeChatToken)
                .where(WeChatToken.appid == self._appid)
                .where(or_(WeChatToken.refreshing_until.is_(None), WeChatToken.refreshing_until < now))
                .values(refreshing_until=now + timedelta(seconds=CLAIM_SECONDS))
            )
            return result.rowcount == 1

    def _release(self) -> None:
        with session_scope(self._factory) as session:
            session.execute(update(WeChatToken).where(WeChatToken.appid == self._appid).values(refreshing_until=None))

    def _refresh(self, rejected: str | None) -> str:
        token, expires_in = self._fetch(False)
        if rejected is not None and token == rejected:
            # Normal mode hands back the token WeChat just refused: only then force a new one
            # (force_refresh is limited per day and invalidates the old token everywhere).
            token, expires_in = self._fetch(True)
        expires_at = utcnow() + timedelta(seconds=int(expires_in))
        with session_scope(self._factory) as session:
            row = session.get(WeChatToken, self._appid)
            assert row is not None
            row.access_token, row.expires_at, row.refreshed_at = token, expires_at, utcnow()
            row.refresh_count = (row.refresh_count or 0) + 1
        self._cached = _Cached(token, expires_at)
        log.info("wechat access token refreshed", extra={"appid": self._appid})
        return token


class _StoreSession(SessionStorage):
    """wechatpy reads the token through its session storage; ours answers from the TokenStore.

    `expires_at` on the client stays None, so wechatpy treats the token as given and never fetches one.
    """

    def __init__(self, store: TokenStore) -> None:
        self._store = store

    def get(self, key: str, default: Any = None) -> Any:
        if key.endswith("_access_token"):
            return self._store.current()
        return default

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        pass

    def delete(self, key: str) -> None:
        pass


class WeChatApi:
    def __init__(self, settings: Settings, factory: sessionmaker[Session]) -> None:
        self.settings = settings
        self.base = settings.wechat_api_base if settings.wechat_api_base.endswith("/") else settings.wechat_api_base + "/"
        self.tokens: Any = TokenStore(factory, settings.wechat_appid, self._fetch_stable_token)
        if settings.redis_url:  # one refresher for the fleet through Redis; the database when it is down
            from bot.channels.wechat_tokens import RedisTokenStore

            self.tokens = RedisTokenStore(settings.redis_url, settings.wechat_appid, self._fetch_stable_token,
                                          fallback=self.tokens)
        self.client = WeChatClient(
            settings.wechat_appid,
            settings.wechat_secret,
            session=_StoreSession(self.tokens),
            timeout=settings.wechat_api_timeout_seconds,
            auto_retry=False,
        )
        self.client.API_BASE_URL = self.base
        # No resend below us either: urllib3 retries nothing (requests' default, stated here so that it stays).
        for prefix in ("http://", "https://"):
            self.client._http.mount(prefix, HTTPAdapter(max_retries=Retry(total=0, read=False, redirect=False)))

    @property
    def configured(self) -> bool:
        return bool(self.settings.wechat_appid and self.settings.wechat_secret)

    # ---- token ---------------------------------------------------------------------------------

    def _fetch_stable_token(self, force_refresh: bool) -> tuple[str, int]:
        body = {
            "grant_type": "client_credential",
            "appid": self.settings.wechat_appid,
            "secret": self.settings.wechat_secret,
            "force_refresh": force_refresh,
        }
        try:
            res = self.client._http.post(
                self.base + "stable_token", json=body, timeout=self.settings.wechat_api_timeout_seconds
            )
            res.raise_for_status()
            data = res.json()
        except (requests.RequestException, ValueError) as exc:
            raise WeChatApiError(None, f"stable_token: {exc}", retryable=True) from exc
        errcode = int(data.get("errcode") or 0)
        if errcode != 0 or not data.get("access_token"):
            raise WeChatApiError(errcode, str(data.get("errmsg", "")), retryable=errcode in (BUSY, QUOTA_EXCEEDED))
        return data["access_token"], int(data.get("expires_in", 7200))

    # ---- calls ---------------------------------------------------------------------------------

    def call(self, method: str, endpoint: str, *, raw: bool = False, **kwargs: Any) -> Any:
        """One API call, errcode checked.

        A POST (a message, a menu) goes to WeChat once. The one exception is a token error (40001/42001):
        WeChat refused the request without doing anything, so it is sent again once with a fresh token.
        "System busy" (-1) and the daily quota (45009) are raised as retryable (the caller's retry waits,
        ours would not); a timeout or a connection lost after the request left is raised as `unknown`,
        never retried: WeChat may have delivered it. A GET only reads, so it is retried when busy or on
        a network error (twice, with a short wait)."""
        resend_ok = method.lower() == "get"
        token_retried = False
        busy = iter(BUSY_BACKOFF)
        extra_params = dict(kwargs.pop("params", None) or {})
        while True:
            token = self.tokens.current()
            try:
                params = {**extra_params, "access_token": token}
                result = self.client._request(method, endpoint, params=params, **kwargs)
            except WeChatClientException as exc:
                errcode = int(exc.errcode) if exc.errcode is not None else None
                if errcode in TOKEN_ERRORS and not token_retried:
                    token_retried = True
                    self.tokens.invalidate(token)
                    continue
                if resend_ok and errcode in (BUSY, None):
                    delay = next(busy, None)
                    if delay is not None:
                        time.sleep(delay)
                        continue
                if errcode is None:  # an HTTP error status, not WeChat's JSON: it may have been processed
                    raise WeChatApiError(None, str(exc.errmsg or exc), retryable=resend_ok, unknown=not resend_ok) from exc
                raise WeChatApiError(errcode, str(exc.errmsg or exc), retryable=errcode in (BUSY, QUOTA_EXCEEDED)) from exc
            except requests.RequestException as exc:
                if resend_ok or _never_sent(exc):
                    delay = next(busy, None) if resend_ok else None
                    if delay is not None:
                        time.sleep(delay)
                        continue
                    raise WeChatApiError(None, f"{type(exc).__name__}: {exc}", retryable=True) from exc
                raise WeChatApiError(None, f"{type(exc).__name__}: {exc}", unknown=True) from exc
            if raw and isinstance(result, requests.Response):  # a file (media/get): errors still come as JSON
                return result
            if not isinstance(result, dict):
                raise WeChatApiError(None, "response is not JSON", retryable=resend_ok, unknown=not resend_ok)
            return result

    def get_media(self, media_id: str) -> tuple[bytes, str]:
        """A temporary media file a follower sent (a photo; WeChat keeps it three days): bytes, content type.
        40007 (invalid media id) once it is gone."""
        response = self.call("get", "media/get", params={"media_id": media_id}, raw=True)
        return response.content, response.headers.get("Content-Type", "application/octet-stream").split(";")[0]

    def send_text(self, openid: str, content: str) -> dict[str, Any]:
        return self.call(
            "post", "message/custom/send", data={"touser": openid, "msgtype": "text", "text": {"content": content}}
        )

    def send_article(self, openid: str, title: str, description: str, url: str) -> dict[str, Any]:
        # Customer-service news messages carry exactly one article.
        article = {"title": title, "description": description, "url": url}
        return self.call(
            "post", "message/custom/send", data={"touser": openid, "msgtype": "news", "news": {"articles": [article]}}
        )

    def send_template(self, openid: str, template_id: str, data: dict[str, Any], url: str | None = None,
                      client_msg_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": data}
        if url:
            body["url"] = url
        if client_msg_id:
            # WeChat sends one message per (openid, client_msg_id) for 10 minutes: a retry within that
            # time is dropped. Not a lookup: after 10 minutes nothing is guaranteed.
            body["client_msg_id"] = client_msg_id
        return self.call("post", "message/template/send", data=body)

    def send_mass_text_by_tag(self, tag_id: int, content: str) -> dict[str, Any]:
        body = {"filter": {"is_to_all": False, "tag_id": tag_id}, "msgtype": "text", "text": {"content": content}}
        return self.call("post", "message/mass/sendall", data=body)

    def create_menu(self, menu: dict[str, Any]) -> dict[str, Any]:
        return self.call("post", "menu/create", data=menu)
