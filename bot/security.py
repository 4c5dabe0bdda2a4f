"""What the inbound doors share across workers: a replay cache for signed callbacks and rate counters.

Both live in the database (tables `replay_nonce`, `rate_counter`), or in Redis when
GONGYOU_REDIS_URL is set, so every web worker and every process sees the same nonces and counts.
Callers get them through `guards(services)` (built once per Services, like the channel clients).

- `ReplayCache.first_use(key, body, ttl)`: True the first time a (timestamp, nonce) key is seen, and
  again for the same body (the platform's own retry of a push it did not see answered); False when the
  key comes back with another body (someone replaying a signed query string with their own XML).
- `RateCounter.hit(key, limit=, window_seconds=)`: counts one event in the current fixed window and
  says whether it is within `limit`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import Engine, delete, select

from bot.db import dialect_insert
from bot.models import RateCounter, ReplayNonce, utcnow

if TYPE_CHECKING:
    from bot.conversation import Services

log = logging.getLogger(__name__)

REDIS_PREFIX = "gongyou:"
PRUNE_ONE_IN = 200  # expired nonces are deleted by about one call in this many (one indexed DELETE)


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a secret from a request with the configured one, as bytes: a value
    with any characters at all (non-ASCII, lone surrogates) is simply not equal, never an error."""
    if given is None or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class ReplayCache(Protocol):
    def first_use(self, key: str, body: bytes, ttl_seconds: int) -> bool: ...


class RateCounterStore(Protocol):
    def hit(self, key: str, *, limit: int, window_seconds: int) -> bool: ...


class DatabaseReplayCache:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        table = ReplayNonce.__table__
        # RETURNING says whether the row went in (psycopg's rowcount for ON CONFLICT DO NOTHING is -1)
        self._insert = dialect_insert(engine, table).on_conflict_do_nothing(index_elements=[table.c.key]) \
            .returning(table.c.key)

    def first_use(self, key: str, body: bytes, ttl_seconds: int) -> bool:
        digest, now = fingerprint(body), utcnow()
        table = ReplayNonce.__table__
        with self.engine.begin() as conn:
            if random.randrange(PRUNE_ONE_IN) == 0:
                conn.execute(delete(table).where(table.c.expires_at < now))
            added = conn.execute(self._insert, {"key": key[:160], "fingerprint": digest,
                                                "expires_at": now + timedelta(seconds=ttl_seconds)}).scalar_one_or_none()
            if added is not None:
                return True
            seen = conn.execute(select(table.c.fingerprint).where(table.c.key == key[:160])).scalar_one_or_none()
        return seen is None or hmac.compare_digest(seen, digest)


class DatabaseRateCounter:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        table = RateCounter.__table__
        stmt = dialect_insert(engine, table)
        self._count = stmt.on_conflict_do_update(
            index_elements=[table.c.key, table.c.window], set_={"count": table.c.count + 1}
        ).returning(table.c.count)

    def hit(self, key: str, *, limit: int, window_seconds: int) -> bool:
        window = int(time.time()) // window_seconds
        table = RateCounter.__table__
        with self.engine.begin() as conn:
            count = conn.execute(self._count, {"key": key[:160], "window": window, "count": 1}).scalar_one()
            if count == 1:  # a new window for this key: the old ones are done with
                conn.execute(delete(table).where(table.c.key == key[:160], table.c.window < window))
        return count <= limit


class RedisReplayCache:
    def __init__(self, client) -> None:  # noqa: ANN001 - redis.Redis
        self.client = client

    def first_use(self, key: str, body: bytes, ttl_seconds: int) -> bool:
        digest, name = fingerprint(body), REDIS_PREFIX + "nonce:" + key
        if self.client.set(name, digest, nx=True, ex=ttl_seconds):
            return True
        seen = self.client.get(name)
        return seen is None or hmac.compare_digest(seen.decode() if isinstance(seen, bytes) else seen, digest)


class RedisRateCounter:
    def __init__(self, client) -> None:  # noqa: ANN001 - redis.Redis
        self.client = client

    def hit(self, key: str, *, limit: int, window_seconds: int) -> bool:
        name = f"{REDIS_PREFIX}rate:{key}:{int(time.time()) // window_seconds}"
        pipe = self.client.pipeline()
        pipe.incr(name)
        pipe.expire(name, window_seconds + 60)
        count, _ = pipe.execute()
        return int(count) <= limit


@dataclass(frozen=True)
class Guards:
    replay: ReplayCache
    rates: RateCounterStore


def build_guards(redis_url: str, engine: Engine) -> Guards:
    if redis_url:
        import redis

        client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        return Guards(replay=RedisReplayCache(client), rates=RedisRateCounter(client))
    return Guards(replay=DatabaseReplayCache(engine), rates=DatabaseRateCounter(engine))


def guards(services: "Services") -> Guards:
    """The process's replay cache and counters for these services, built on first use."""
    found = getattr(services, "_guards", None)
    if found is None:
        found = build_guards(services.settings.redis_url, services.engine)
        services._guards = found  # type: ignore[attr-defined]
    return found
