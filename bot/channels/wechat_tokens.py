"""The WeChat access token shared through Redis (GONGYOU_REDIS_URL), one refresher for the whole fleet.

Same contract as bot.channels.wechat_api.TokenStore (the database one): `current()` and `invalidate(rejected)`.
The token sits under `gongyou:wechat:{appid}:token` (JSON, expiring with the token); a process that finds
none, or finds the one WeChat just refused, takes `…:refresh` with SET NX PX (a lease, so a refresher that
dies frees it) and fetches; the others wait for the new value. A fetch through /stable_token does not
invalidate the token other processes hold, so a lost lease costs at most one extra fetch, never an outage.

When Redis cannot be reached the store says so in the log and falls back to the database store for that
call: a Redis outage costs a few database round trips, never a failed message.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from bot.channels.wechat_api import CLAIM_SECONDS, REFRESH_MARGIN, TokenStore, WeChatApiError
from bot.models import utcnow

log = logging.getLogger(__name__)

# Delete the lease only if it is still ours (it may have expired and gone to another process).
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class RedisTokenStore:
    def __init__(self, url: str, appid: str, fetch: Any, fallback: TokenStore) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._key = f"gongyou:wechat:{appid}:token"
        self._lease = f"gongyou:wechat:{appid}:refresh"
        self._fetch = fetch  # (force_refresh: bool) -> (token, expires_in seconds)
        self._fallback = fallback
        self._cached: tuple[str, datetime] | None = None
        self._lock = threading.Lock()

    def current(self) -> str:
        cached = self._cached
        if cached is not None and cached[1] - utcnow() > REFRESH_MARGIN:
            return cached[0]
        return self._load_or_refresh(rejected=None)

    def invalidate(self, rejected: str) -> str:
        return self._load_or_refresh(rejected=rejected)

    def _load_or_refresh(self, rejected: str | None) -> str:
        try:
            with self._lock:  # threads of one process wait for one refresh
                return self._shared(rejected)
        except self._errors:
            log.warning("redis unreachable: the access token goes through the database", exc_info=True)
            return self._fallback.invalidate(rejected) if rejected else self._fallback.current()

    def _shared(self, rejected: str | None) -> str:
        deadline = time.monotonic() + CLAIM_SECONDS
        while True:
            token = self._load(rejected)
            if token is not None:
                return token
            lease = secrets.token_hex(8)
            if self._redis.set(self._lease, lease, nx=True, px=CLAIM_SECONDS * 1000):
                try:
                    token = self._load(rejected)  # written by the holder just before our lease
                    return token if token is not None else self._refresh(rejected)
                finally:
                    self._redis.eval(_RELEASE, 1, self._lease, lease)
            if time.monotonic() > deadline:
                raise WeChatApiError(None, "timed out waiting for another process to refresh the token", retryable=True)
            time.sleep(0.05)

    def _load(self, rejected: str | None) -> str | None:
        raw = self._redis.get(self._key)
        if raw is None:
            return None
        stored = json.loads(raw)
        expires_at = datetime.fromisoformat(stored["expires_at"])
        if stored["token"] == rejected or expires_at - utcnow() <= REFRESH_MARGIN:
            return None
        self._cached = (stored["token"], expires_at)
        return stored["token"]

    def _refresh(self, rejected: str | None) -> str:
        token, expires_in = self._fetch(False)
        if rejected is not None and token == rejected:
            token, expires_in = self._fetch(True)  # see TokenStore._refresh: force only when normal mode repeats it
        expires_at = utcnow() + timedelta(seconds=int(expires_in))
        self._redis.set(self._key, json.dumps({"token": token, "expires_at": expires_at.isoformat()}),
                        ex=max(int(expires_in), 1))
        self._cached = (token, expires_at)
        log.info("wechat access token refreshed (redis)")
        return token
