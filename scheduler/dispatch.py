"""The dispatcher: claims queued deliveries, sends them through the channel senders, records the outcome.

    queued ──claim──> sending ──provider ok──> sent   (a receipt then settles the outbox row, not this one)
       ^                 │  └──temporary failure, tries left──> queued (next_attempt_at = now + delay)
       │                 ├──temporary failure, no tries left──> the next channel (WeChat → SMS), else failed
       │                 ├──refused, another channel left──> queued on that channel (WeChat → SMS)
       │                 ├──refused, nothing left──> failed (the provider's reason)
       │                 └──timeout: outcome unknown──> stays sending until `unknown_recheck`, then as below
       └──lease expired (a crash, a timeout), the provider has no record of our key──┘
          (the provider has it → sent; it cannot be asked (WeChat) → failed as outcome_unknown)

Claiming is one UPDATE … WHERE id IN (SELECT … LIMIT n [FOR UPDATE SKIP LOCKED]) RETURNING, so two
workers never claim the same row (SKIP LOCKED on PostgreSQL; SQLite serialises writers). A row is
marked "sending" and committed before the provider call; after a crash the provider's record of our
idempotency key decides whether it was sent (see `reconcile`), so nothing is sent twice or lost. A sent
delivery points at the outbox row that carried it; the provider's receipt is that row's
(bot.models.campaigns.DeliveryOutcome reads the two together).

Allowed hours are per channel (SMS 08:00–20:00 local by default): rows of a closed channel are simply
not claimed, so they wait for the window. The weekly cap is checked at claim time. The per-channel rate
is the fleet's, not a worker's: every worker takes its send slots from the channel's `send_rate` row
(see `RateLimiter`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.base import SendResult
from bot.channels.policy import moves_on, reachable
from bot.db import session_scope
from bot.models import Campaign, CampaignStep, Delivery, Event, Labourer, utcnow
from bot.models.campaigns import DeliveryOutcome, SendRate
from bot.settings import Settings
from bot.snapshot import KnowledgeStore
from scheduler.render import Renderer, knowledge_for
from scheduler.senders import OutboundDelivery, Reconcilable, Sender

log = logging.getLogger(__name__)
D = Delivery.__table__
Clock = Callable[[], datetime]


def parse_hours(spec: str) -> tuple[dtime, dtime] | None:
    """"08:00-20:00" → (08:00, 20:00); "" or "00:00-24:00" → None (always open)."""
    if not spec or spec.replace(" ", "") in ("00:00-24:00", "always"):
        return None
    start, end = (part.strip() for part in spec.split("-"))
    return dtime.fromisoformat(start), dtime.fromisoformat(end) if end != "24:00" else dtime.max


def window_open(window: tuple[dtime, dtime] | None, local: datetime) -> bool:
    if window is None:
        return True
    start, end = window
    now = local.time()
    return start <= now < end if start <= end else (now >= start or now < end)  # overnight windows


@dataclass(frozen=True)
class DispatchConfig:
    rates: dict[str, float] = field(default_factory=lambda: {"sms": 50.0, "wechat": 20.0})  # 0 = unlimited
    windows: dict[str, tuple[dtime, dtime] | None] = field(default_factory=dict)
    tz: str = "Asia/Shanghai"
    weekly_cap: int = 3  # 0 = no cap
    retry_delays: tuple[timedelta, ...] = (timedelta(minutes=5), timedelta(minutes=10))
    batch_size: int = 100
    lease: timedelta = timedelta(minutes=5)
    # A send whose outcome is unknown (a timeout) stays "sending" this long, then `reconcile` asks the provider.
    unknown_recheck: timedelta = timedelta(seconds=30)
    data_key: str = ""

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> DispatchConfig:
        values: dict[str, Any] = {
            "rates": {"sms": settings.dispatch_rate_sms, "wechat": settings.dispatch_rate_wechat},
            "windows": {"sms": parse_hours(settings.sms_send_hours), "wechat": parse_hours(settings.wechat_send_hours)},
            "tz": settings.timezone,
            "weekly_cap": settings.broadcast_weekly_cap,
            "retry_delays": tuple(timedelta(minutes=m) for m in settings.dispatch_retry_minutes),
            "batch_size": settings.dispatch_batch_size,
            "lease": timedelta(seconds=settings.dispatch_lease_seconds),
            "data_key": settings.data_key,
        }
        values.update(overrides)
        return cls(**values)


class RateLimiter:
    """Paces one channel's sends to `rate` per second across every worker and process.

    The channel's `send_rate` row holds the next free slot on a fixed grid (Unix seconds, so workers on
    several hosts need synchronised clocks). A worker takes a run of slots in one
    UPDATE … SET next_slot = next_slot + n·interval … RETURNING — one round trip per 100 ms worth of
    sends, not per message — then sleeps until each of its slots. Slots never overlap, so N workers
    together send at `rate`, and sleep overshoot does not accumulate.
    """

    # Slots missed during a short pause (claiming the next batch) are made up; after a longer idle spell
    # the grid starts afresh, so there is never a burst of more than this many seconds' worth.
    CATCH_UP_SECONDS = 0.1
    CHUNK_SECONDS = 0.1  # slots taken per round trip

    def __init__(self, factory: sessionmaker[Session], channel: str, rate: float, *,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        self.factory, self.channel = factory, channel
        self.interval = 1.0 / rate if rate and rate > 0 else 0.0
        self.chunk = max(1, int(rate * self.CHUNK_SECONDS)) if self.interval else 0
        self.clock, self.sleep = clock, sleep
        self._slots: deque[float] = deque()

    def acquire(self, wanted: int = 1) -> None:
        """Wait for this worker's next slot. `wanted`: sends still to come in this batch on this channel,
        so a worker never takes (and wastes) more slots than it will use."""
        if not self.interval:
            return
        now = self.clock()
        while self._slots and self._slots[0] < now - self.CATCH_UP_SECONDS:
            self._slots.popleft()  # taken but left unused too long: using them now would be a burst
        if not self._slots:
            self._slots.extend(self._reserve(min(max(wanted, 1), self.chunk), now))
        wait = self._slots.popleft() - now
        if wait > 0:
            self.sleep(wait)

    def _reserve(self, count: int, now: float) -> list[float]:
        R = SendRate.__table__
        span = count * self.interval
        start = case((R.c.next_slot < literal(now - self.CATCH_UP_SECONDS), literal(now)), else_=R.c.next_slot)
        take = update(R).where(R.c.channel == self.channel).values(next_slot=start + span).returning(R.c.next_slot)
        for _ in range(2):
            with session_scope(self.factory) as session:
                end = session.execute(take).scalar_one_or_none()
            if end is not None:
                first = end - span
                return [first + i * self.interval for i in range(count)]
            try:  # first use of this channel's row
                with session_scope(self.factory) as session:
                    session.execute(insert(R).values(channel=self.channel, next_slot=0.0))
            except IntegrityError:
                pass  # another worker created it
        raise RuntimeError(f"no send_rate row for {self.channel!r}")


@dataclass
class _Row:
    id: int
    campaign_id: int
    step_id: int
    labourer_id: int
    channel: str
    key: str
    attempts: int
    capped: bool
    name: str
    wechat_openid: str | None  # named as on Labourer: bot.channels.policy.reachable reads them
    phone_enc: bytes | None
    subscribed_wechat: bool
    subscribed_sms: bool
    prev_reason: str | None  # e.g. fallback_from_wechat: kept on the row when the next channel succeeds
    prev_code: str | None


@dataclass
class BatchStats:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0
    fallback: int = 0
    reconciled: int = 0
    unknown: int = 0  # sends that timed out: left to `reconcile`, which asks the provider


class Dispatcher:
    def __init__(
        self,
        factory: sessionmaker[Session],
        senders: dict[str, Sender],
        config: DispatchConfig | None = None,
        *,
        clock: Clock = utcnow,
        worker_id: str | None = None,
        timer: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        knowledge: KnowledgeStore | None = None,
    ) -> None:
        self.factory, self.senders = factory, senders
        self.config = config or DispatchConfig()
        self.clock = clock
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 10000}"
        self.limiters = {c: RateLimiter(factory, c, self.config.rates.get(c, 0), clock=timer, sleep=sleep) for c in senders}
        self.sleep = sleep
        # Campaign texts come from the live knowledge snapshot: an official's change reaches the next batch.
        self.knowledge = knowledge or knowledge_for(factory)
        self.totals = BatchStats()
        self._campaigns: dict[int, tuple[Campaign, Event | None]] = {}
        self._steps: dict[int, str] = {}

    # ---- one round ---------------------------------------------------------------------------

    def open_channels(self, now: datetime) -> list[str]:
        local = now.astimezone(ZoneInfo(self.config.tz))
        return [c for c in self.senders if window_open(self.config.windows.get(c), local)]

    def run_once(self) -> BatchStats:
        """Reconcile stale rows, then claim and send one batch. Returns what happened."""
        stats = BatchStats()
        stats.reconciled = self.reconcile()
        now = self.clock()
        channels = self.open_channels(now)
        if not channels:
            return stats
        rows, over_cap = self._claim(channels, now)
        stats.claimed = len(rows)
        if rows:
            self._send_batch(rows, over_cap, stats)
        for name in ("claimed", "sent", "retried", "failed", "skipped", "fallback", "reconciled", "unknown"):
            setattr(self.totals, name, getattr(self.totals, name) + getattr(stats, name))
        return stats

    def run(self, *, stop: threading.Event | None = None, idle_sleep: float = 1.0, until_idle: bool = False,
            settle: bool = True, max_backoff: float = 30.0) -> BatchStats:
        """Loop until `stop` is set (or, with until_idle, until a round finds nothing to do).

        The database going away (a restart, a failover, the network) does not end the loop: the round is
        abandoned, the worker waits (0.5 s, doubling up to `max_backoff`) and tries again; the pool
        reconnects. The rows it held "sending" at that moment are settled first when it is back."""
        from scheduler.campaigns import settle_campaigns

        stop = stop or threading.Event()
        backoff, recovering = 0.0, False
        while not stop.is_set():
            try:
                if recovering:
                    self._release_own_rows()
                    recovering = False
                stats = self.run_once()
                if settle and stats.claimed == 0:
                    with session_scope(self.factory) as session:
                        settle_campaigns(session, now=self.clock())
                idle = stats.claimed == 0 and stats.reconciled == 0
                if idle and until_idle and not self._in_flight():
                    break
            except SQLAlchemyError as exc:
                backoff = min(max(backoff * 2, 0.5), max_backoff)
                recovering = True
                log.warning("database unavailable, dispatch paused", extra={
                    "worker": self.worker_id, "retry_in_seconds": backoff, "error": f"{type(exc).__name__}: {exc}"[:300]})
                stop.wait(backoff)
                continue
            backoff = 0.0
            if idle:
                stop.wait(idle_sleep)
        return self.totals

    def _release_own_rows(self) -> int:
        """After an outage: this worker's rows still "sending" are not in flight any more (the round that
        held them was abandoned), so their lease ends now and `reconcile` asks the provider about them."""
        now = self.clock()
        with session_scope(self.factory) as session:
            released = session.execute(
                update(D).where(D.c.status == "sending", D.c.claimed_by == self.worker_id)
                .values(lease_until=now - timedelta(microseconds=1))
            ).rowcount or 0
        if released:
            log.warning("rows of an abandoned round released to reconcile", extra={"count": released, "worker": self.worker_id})
        return released

    def _in_flight(self) -> bool:
        """Rows some worker (perhaps a dead one) still holds: an until-idle run waits for their lease."""
        with session_scope(self.factory) as session:
            return bool(session.scalar(select(exists().where(D.c.status == "sending"))))

    # ---- claim ---------------------------------------------------------------------------------

    def _claim(self, channels: list[str], now: datetime) -> tuple[list[_Row], set[int]]:
        cfg = self.config
        with session_scope(self.factory) as session:
            # A handful of campaigns send at once: a literal list keeps the claim an ordered index scan.
            sending = list(session.scalars(select(Campaign.id).where(Campaign.state == "sending")))
            if not sending:
                return [], set()
            due = (
                select(D.c.id)
                .where(
                    D.c.status == "queued",
                    D.c.next_attempt_at <= now,
                    D.c.channel.in_(channels),
                    D.c.campaign_id.in_(sending),
                )
                .order_by(D.c.next_attempt_at, D.c.id)
                .limit(cfg.batch_size)
            )
            if session.get_bind().dialect.name == "postgresql":
                # Lock the batch first, then update it: inside "IN (subquery)" PostgreSQL may run a
                # LIMIT … SKIP LOCKED subquery more than once and claim more rows than asked.
                ids: Any = list(session.scalars(due.with_for_update(skip_locked=True)))
                if not ids:
                    return [], set()
            else:  # one statement: SQLite takes the write lock for the whole UPDATE
                ids = due.scalar_subquery()
            claimed = session.execute(
                update(D)
                .where(D.c.id.in_(ids), D.c.status == "queued")
                .values(status="sending", claimed_by=self.worker_id, lease_until=now + cfg.lease,
                        sending_at=now, updated_at=now, attempts=D.c.attempts + 1)
                .returning(D.c.id)
            ).scalars().all()
            if not claimed:
                return [], set()
            result = session.execute(
                select(D.c.id, D.c.campaign_id, D.c.step_id, D.c.labourer_id, D.c.channel, D.c.idempotency_key,
                       D.c.attempts, D.c.capped, Labourer.name, Labourer.wechat_openid, Labourer.phone_enc,
                       Labourer.subscribed_wechat, Labourer.subscribed_sms, D.c.failure_reason, D.c.error_code)
                .join(Labourer, Labourer.id == D.c.labourer_id)
                .where(D.c.id.in_(claimed))
                .order_by(D.c.id)
            )
            rows = [_Row(*r) for r in result]
            self._load_campaigns(session, {r.campaign_id for r in rows}, {r.step_id for r in rows})
            return rows, self._over_cap(session, rows, now)

    def _load_campaigns(self, session: Session, campaign_ids: set[int], step_ids: set[int]) -> None:
        for cid in campaign_ids:
            campaign = session.get(Campaign, cid)
            assert campaign is not None
            event = session.get(Event, campaign.event_id) if campaign.event_id else None
            session.expunge(campaign)
            if event is not None:
                session.expunge(event)
            self._campaigns[cid] = (campaign, event)
        missing = step_ids - set(self._steps)
        if missing:
            for sid, kind in session.execute(select(CampaignStep.id, CampaignStep.kind).where(CampaignStep.id.in_(missing))):
                self._steps[sid] = kind

    def _over_cap(self, session: Session, rows: list[_Row], now: datetime) -> set[int]:
        """Deliveries of this batch that must not go out: their labourer reached the weekly broadcast cap."""
        cap = self.config.weekly_cap
        capped = [r for r in rows if r.capped]
        if not cap or not capped:
            return set()
        ids = sorted({r.labourer_id for r in capped})
        since = now - timedelta(days=7)
        batch_ids = [r.id for r in rows]
        counts = Counter(
            dict(
                session.execute(
                    select(D.c.labourer_id, func.count())
                    .select_from(DeliveryOutcome.JOINED)
                    .where(
                        D.c.labourer_id.in_(ids),
                        D.c.capped.is_(True),
                        D.c.id.not_in(batch_ids),
                        DeliveryOutcome.reached,
                        func.coalesce(D.c.sent_at, D.c.sending_at) >= since,
                    )
                    .group_by(D.c.labourer_id)
                ).all()
            )
        )
        over: set[int] = set()
        for row in capped:  # in id order: the earlier campaign gets the slot
            if counts[row.labourer_id] >= cap:
                over.add(row.id)
            else:
                counts[row.labourer_id] += 1
        return over

    # ---- send ----------------------------------------------------------------------------------

    def _address(self, row: _Row, channel: str) -> str | None:
        return next((r.address for r in reachable(row, self.config.data_key, order=(channel,))), None)

    def _fallback(self, row: _Row, campaign: Campaign) -> str | None:
        """The next channel of the campaign's order the labourer can still be reached on."""
        order = list(campaign.channels or [])
        later = order[order.index(row.channel) + 1:] if row.channel in order else []
        return next((r.channel for r in reachable(row, self.config.data_key, order=later) if r.channel in self.senders),
                    None)

    def _send_batch(self, rows: list[_Row], over_cap: set[int], stats: BatchStats) -> None:
        renderers: dict[int, Renderer] = {}
        texts = self.knowledge.current.kb.campaign_texts  # one version for the whole batch
        updates: list[dict[str, Any]] = []
        to_send = Counter(r.channel for r in rows if r.id not in over_cap)
        for row in rows:
            campaign, event = self._campaigns[row.campaign_id]
            now = self.clock()
            outcome: dict[str, Any] = {
                "b_id": row.id, "status": "sent", "channel": row.channel, "attempts": row.attempts,
                "next_attempt_at": None, "provider_message_id": None, "failure_reason": row.prev_reason,
                "error_code": row.prev_code, "error": None, "sent_at": None, "failed_at": None, "updated_at": now,
                "lease_until": None, "outbound_message_id": None,
            }
            updates.append(outcome)
            if row.id in over_cap:
                outcome.update(status="skipped", failure_reason="frequency_cap", attempts=row.attempts - 1)
                stats.skipped += 1
                continue
            address = self._address(row, row.channel)
            if address is None:  # unsubscribed since planning, or the address was removed
                self._refuse(row, campaign, outcome, stats, SendResult(ok=False, error_code="unsubscribed",
                                                                         error="not reachable on this channel"))
                continue
            renderer = renderers.get(row.step_id)
            if renderer is None:
                renderer = renderers[row.step_id] = Renderer(
                    campaign, event, tz=self.config.tz, texts=texts,
                    reminder=self._steps.get(row.step_id) == "reminder",
                )
            text = renderer.render(row.channel, row.name)
            delivery = OutboundDelivery(row.id, row.campaign_id, row.labourer_id, row.channel, address, row.key, row.name)
            self.limiters[row.channel].acquire(to_send[row.channel])
            to_send[row.channel] -= 1
            try:
                result = self.senders[row.channel].send(delivery, text)
            except (OperationalError, InterfaceError):
                raise  # the database is gone: abandon the round (run() waits and settles these rows after)
            except Exception as exc:
                log.exception("sender raised", extra={"delivery_id": row.id, "channel": row.channel})
                result = SendResult(ok=False, error_code="exception", error=f"{type(exc).__name__}: {exc}"[:500],
                                    retryable=True)
            outcome["outbound_message_id"] = result.outbound_id
            if result.ok:
                # Through a channel the provider's id is the outbox row's (the delivery points at it); a
                # sender without an outbox (tests' loopback gateways) has only this column to say it.
                outcome.update(provider_message_id=None if result.outbound_id else result.provider_message_id,
                               sent_at=self.clock())
                stats.sent += 1
            elif result.unknown:
                # Perhaps sent (a timeout): neither retried nor sent another way. The row stays "sending"
                # like a crashed worker's, and `reconcile` asks the provider when this lease ends.
                outcome.update(status="sending", error_code=result.error_code, error=result.error,
                               lease_until=self.clock() + self.config.unknown_recheck)
                stats.unknown += 1
            elif result.error_code == "outcome_unknown":
                # An earlier attempt under this key may have gone out: no retry, no other channel.
                outcome.update(status="failed", failure_reason="outcome_unknown", error_code=result.error_code,
                               error=result.error, failed_at=outcome["updated_at"])
                stats.failed += 1
            elif not moves_on(result):  # busy, throttled: this channel again later
                self._retry(row, campaign, outcome, stats, result)
            else:
                self._refuse(row, campaign, outcome, stats, result)
        self._record(updates)

    def _retry(self, row: _Row, campaign: Campaign, outcome: dict[str, Any], stats: BatchStats,
               result: SendResult) -> None:
        """A temporary failure (busy, quota, throttled): the provider said no, so nothing went out. Try the
        channel again after a wait; when its tries are used up, the campaign's next channel (WeChat → SMS)."""
        delays = self.config.retry_delays
        outcome.update(error_code=result.error_code, error=result.error)
        if row.attempts <= len(delays):
            outcome.update(status="queued", next_attempt_at=outcome["updated_at"] + delays[row.attempts - 1])
            stats.retried += 1
            return
        # Not after lookup_failed: that attempt may have gone out; the provider was just not answering.
        fallback = self._fallback(row, campaign) if result.error_code != "lookup_failed" else None
        if fallback is not None:
            outcome.update(status="queued", channel=fallback, attempts=0, next_attempt_at=outcome["updated_at"],
                           failure_reason=f"fallback_from_{row.channel}")
            stats.fallback += 1
            return
        outcome.update(status="failed", failure_reason="retries_exhausted", failed_at=outcome["updated_at"])
        stats.failed += 1

    def _refuse(self, row: _Row, campaign: Campaign, outcome: dict[str, Any], stats: BatchStats,
                result: SendResult) -> None:
        outcome.update(error_code=result.error_code, error=result.error)
        fallback = self._fallback(row, campaign)
        if fallback is not None:
            # A new channel starts its own tries; the wait for its allowed hours happens at claim time.
            outcome.update(status="queued", channel=fallback, attempts=0, next_attempt_at=outcome["updated_at"],
                           failure_reason=f"fallback_from_{row.channel}")
            stats.fallback += 1
            return
        reason = "unsubscribed" if result.error_code == "unsubscribed" else "refused"
        outcome.update(status="failed", failure_reason=reason, failed_at=outcome["updated_at"])
        stats.failed += 1

    def _record(self, updates: list[dict[str, Any]]) -> None:
        if not updates:
            return
        stmt = (
            update(D)
            .where(D.c.id == bindparam("b_id"), D.c.status == "sending", D.c.claimed_by == self.worker_id)
            .values(
                status=bindparam("status"), channel=bindparam("channel"), attempts=bindparam("attempts"),
                next_attempt_at=bindparam("next_attempt_at"), provider_message_id=bindparam("provider_message_id"),
                failure_reason=bindparam("failure_reason"), error_code=bindparam("error_code"),
                error=bindparam("error"), sent_at=bindparam("sent_at"), failed_at=bindparam("failed_at"),
                updated_at=bindparam("updated_at"), lease_until=bindparam("lease_until"),
                # A try that reached no outbox row (a refusal before any send) keeps the row of an earlier try.
                outbound_message_id=func.coalesce(bindparam("outbound_message_id", type_=D.c.outbound_message_id.type),
                                                  D.c.outbound_message_id),
            )
        )
        with session_scope(self.factory) as session:
            session.connection().execute(stmt, updates)

    # ---- crash recovery ------------------------------------------------------------------------

    def reconcile(self) -> int:
        """Settle rows left "sending" by a worker that died: the provider's record of the delivery says
        whether the message went out. Returns how many rows were settled."""
        now = self.clock()
        with session_scope(self.factory) as session:
            stale = (
                select(D.c.id, D.c.campaign_id, D.c.labourer_id, D.c.channel, D.c.idempotency_key,
                       D.c.provider_message_id, D.c.attempts, D.c.sending_at, Labourer.name,
                       Labourer.wechat_openid, Labourer.phone_enc)
                .join(Labourer, Labourer.id == D.c.labourer_id)
                .where(D.c.status == "sending", D.c.lease_until < now)
                .order_by(D.c.id)
                .limit(1000)
            )
            if session.get_bind().dialect.name == "postgresql":
                stale = stale.with_for_update(of=D, skip_locked=True)
            rows = session.execute(stale).all()
            # Ask first, write after: a lookup settles the channel's outbox row in a session of its own, and
            # SQLite would make it wait for this one's write lock.
            settled = [(row.id, self._settle_stale(row, now)) for row in rows]
            for delivery_id, values in settled:
                session.execute(
                    update(D)
                    .where(and_(D.c.id == delivery_id, D.c.status == "sending"))
                    .values(lease_until=None, claimed_by=None, updated_at=now)
                    .values(**values)
                )
            if rows:
                log.warning("reconciled deliveries left sending", extra={"count": len(rows), "worker": self.worker_id})
            return len(rows)

    def _settle_stale(self, row: Any, now: datetime) -> dict[str, Any]:
        if row.provider_message_id is not None:
            return {"status": "sent", "sent_at": now}
        requeue = {"status": "queued", "next_attempt_at": now, "attempts": max(row.attempts - 1, 0)}
        sender = self.senders.get(row.channel)
        if isinstance(sender, Reconcilable):
            # Where the attempt went, whatever the person chose since (asking the provider sends nothing).
            address = next((r.address for r in reachable(row, self.config.data_key, order=(row.channel,), essential=True)), "")
            delivery = OutboundDelivery(row.id, row.campaign_id, row.labourer_id, row.channel, address,
                                        row.idempotency_key, row.name)
            found = sender.lookup(delivery, row.sending_at or now)
            if found is None:  # the provider never got it: send again; the lost try is not counted
                return requeue
            if found.ok:
                if found.outbound_id is not None:
                    return {"status": "sent", "sent_at": now, "outbound_message_id": found.outbound_id}
                return {"status": "sent", "sent_at": now, "provider_message_id": found.provider_message_id}
            if found.retryable:  # the provider could not be asked just now: ask again after another lease
                return {"status": "sending", "lease_until": now + self.config.lease, "error": found.error}
            if found.error_code == "outcome_unknown":  # nobody can tell: a second message is the worse risk
                log.warning("delivery outcome unknown after a crash", extra={"delivery_id": row.id, "channel": row.channel})
                return {"status": "failed", "failure_reason": "outcome_unknown", "error_code": found.error_code,
                        "error": found.error, "failed_at": now}
            # The provider took it and it failed: another try is no duplicate.
            return {"status": "queued", "next_attempt_at": now, "error_code": found.error_code, "error": found.error}
        if getattr(sender, "deduplicates", False):  # the provider drops a second message with the same key
            return requeue
        return {"status": "failed", "failure_reason": "outcome_unknown", "failed_at": now}

