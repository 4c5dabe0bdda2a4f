"""Prometheus metrics: what each process counts as it works, and the figures read from the database.

Two kinds of figures, so that every number is right however many processes run:
- counted by the process that did the work (messages in and out, webhook latency, late replies, sends and
  their failures, database pool use). Under `gongyou serve --workers N` the workers count into files in
  PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode, set up by `serve`) and any worker's
  /metrics adds them up. `gongyou dispatch` and `gongyou scheduler` are one process each and serve their
  own figures on `--metrics-port`.
- read from the shared database at scrape time (`DatabaseFigures`): the delivery queue by channel and
  status, delivery failures by reason, scheduler leadership (PostgreSQL advisory lock holders) and the
  help desk's open cases past an SLA target. These are the same whichever process answers.

`Metrics` is also the pipeline's observer (Services.observer): the message pipeline, the send boundary
and the WeChat callback each make one explicit call into it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, event, func, select, text

if TYPE_CHECKING:
    from bot.channels.base import InboundMessage, SendResult
    from bot.conversation import Outcome
    from bot.models import OutboundMessage

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The WeChat callback must answer within 5 s: the buckets are dense where that matters.
WEBHOOK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 4.5, 5.0, 10.0)
WEBHOOK_PATHS = {"/wechat": "wechat", "/sms/inbound": "sms"}
CONTENT_TYPE = CONTENT_TYPE_LATEST


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def prepare_multiprocess_dir(path: Path) -> None:
    """Empty the folder the workers will count into (figures of an earlier run would be added otherwise).
    Must run before any worker imports prometheus_client, i.e. in `serve` before the workers start."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path)


class Observer:
    """What the pipeline tells about its work; this base ignores it (tools that run the pipeline alone)."""

    def handled(self, message: InboundMessage, outcome: Outcome) -> None: ...

    def sent(self, record: OutboundMessage, result: SendResult) -> None: ...

    def late(self, channel: str) -> None: ...

    def overloaded(self, channel: str, verdict: str) -> None: ...


class Metrics(Observer):
    """One per process (`process_metrics()`): counters and histograms fed by the work itself."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages = Counter("gongyou_messages", "Messages by channel, direction (in: from a person; out: a "
                                "reply or a push) and intent", ("channel", "direction", "intent"), registry=r)
        self.duplicates = Counter("gongyou_duplicate_messages", "Platform retries dropped by the msg id",
                                  ("channel",), registry=r)
        self.webhook = Histogram("gongyou_webhook_seconds", "Time to answer a provider's callback",
                                 ("channel",), buckets=WEBHOOK_BUCKETS, registry=r)
        self.webhook_status = Counter("gongyou_webhook_responses", "Callback answers by HTTP status",
                                      ("channel", "status"), registry=r)
        self.late_replies = Counter("gongyou_replies_late", "Replies that missed the passive window and go "
                                    "through the customer-service API", ("channel",), registry=r)
        self.overload = Counter("gongyou_admission", "Callbacks answered at once above capacity: defer (replied "
                                "later through the API) or shed (503, the platform retries)", ("channel", "verdict"),
                                registry=r)
        self.sends = Counter("gongyou_sends", "Messages handed to a provider outside a passive reply, by outcome",
                             ("channel", "kind", "purpose", "outcome"), registry=r)
        self.send_failures = Counter("gongyou_send_failures", "Sends refused, blocked or failed, by reason",
                                     ("channel", "reason"), registry=r)
        self.pool_in_use = Gauge("gongyou_db_connections_in_use", "Database connections checked out of the pool",
                                 ("role",), multiprocess_mode="livesum", registry=r)
        self.pool_capacity = Gauge("gongyou_db_pool_capacity", "Pool size plus overflow allowed",
                                   ("role",), multiprocess_mode="livesum", registry=r)

    # ---- the observer's calls ------------------------------------------------------------------

    def handled(self, message: InboundMessage, outcome: Outcome) -> None:
        if outcome.duplicate:
            self.duplicates.labels(message.channel).inc()
            return
        intent = outcome.intent or "none"
        self.messages.labels(message.channel, "in", intent).inc()
        if outcome.replies:
            self.messages.labels(message.channel, "out", intent).inc(len(outcome.replies))
        log.info("message answered", extra={"channel": message.channel, "intent": intent,
                                            "replies": len(outcome.replies), "inbound_id": outcome.inbound_id})

    def sent(self, record: OutboundMessage, result: SendResult) -> None:
        if result.ok:
            outcome = "ok"
        elif record.status == "blocked":
            outcome = "blocked"
        else:
            outcome = "failed"
        self.sends.labels(record.channel, record.kind, record.purpose or "", outcome).inc()
        if outcome == "ok":
            self.messages.labels(record.channel, "out", record.purpose or "push").inc()
        else:
            self.send_failures.labels(record.channel, str(result.error_code or "unknown")[:64]).inc()
        log.info("message sent" if result.ok else "message not sent",
                 extra={"channel": record.channel, "kind": record.kind, "purpose": record.purpose,
                        "outbound_id": record.id, "error_code": result.error_code})

    def late(self, channel: str) -> None:
        self.late_replies.labels(channel).inc()
        log.info("reply late: answered through the API", extra={"channel": channel})

    def overloaded(self, channel: str, verdict: str) -> None:
        self.overload.labels(channel, verdict).inc()

    # ---- what the HTTP layer and the process roles call -----------------------------------------

    def observe_webhook(self, path: str, status: int, seconds: float) -> None:
        channel = WEBHOOK_PATHS.get(path)
        if channel is None:
            return
        self.webhook.labels(channel).observe(seconds)
        self.webhook_status.labels(channel, str(status)).inc()

    def watch_pool(self, engine: Engine, role: str) -> None:
        """Count this engine's checked-out connections (events, so the figure is live in every worker)."""
        pool = engine.pool
        size = getattr(pool, "size", None)
        overflow = getattr(pool, "_max_overflow", 0)
        if callable(size):
            self.pool_capacity.labels(role).inc(size() + max(overflow, 0))
        gauge = self.pool_in_use.labels(role)
        event.listen(pool, "checkout", lambda *_: gauge.inc())
        event.listen(pool, "checkin", lambda *_: gauge.dec())

    def exposition(self, extra: Iterable[Collector] = ()) -> bytes:
        """The text format: this process's figures (all workers' in multiprocess mode) and `extra`."""
        path = multiprocess_dir()
        registry = CollectorRegistry()
        if path is not None:
            from prometheus_client import multiprocess

            multiprocess.MultiProcessCollector(registry, path=str(path))
        else:
            registry.register(_Forward(self.registry))
        for collector in extra:
            registry.register(collector)
        return generate_latest(registry)


class _Forward(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Any]:
        return self._registry.collect()


@lru_cache(maxsize=1)
def process_metrics() -> Metrics:
    """This process's metrics, made on first use (never on import: `serve` sets multiprocess mode first)."""
    return Metrics()


# ---- figures read from the database ---------------------------------------------------------------

Source = Callable[[Connection], Iterable[GaugeMetricFamily]]


def queue_figures(conn: Connection) -> Iterable[GaugeMetricFamily]:
    """Broadcast deliveries waiting (queued) or held by a worker (sending), per channel; failures by reason
    (a receipt's outcome read through the delivery's outbox row: bot.models.campaigns.DeliveryOutcome)."""
    from bot.models import Delivery
    from bot.models.campaigns import DeliveryOutcome as Outcome

    D = Delivery.__table__
    depth = GaugeMetricFamily("gongyou_delivery_queue", "Broadcast deliveries queued or being sent",
                              labels=("channel", "status"))
    counts = dict.fromkeys(((c, s) for c in ("wechat", "sms") for s in ("queued", "sending")), 0)
    for channel, status, n in conn.execute(
        select(D.c.channel, D.c.status, func.count()).where(D.c.status.in_(("queued", "sending")))
        .group_by(D.c.channel, D.c.status)
    ):
        counts[(channel, status)] = n
    for (channel, status), n in sorted(counts.items()):
        depth.add_metric((channel, status), n)
    yield depth
    finished: dict[tuple[str, str], int] = {}
    reasons: dict[tuple[str, str], int] = {}
    for channel, status, reason, n in conn.execute(
        select(D.c.channel, Outcome.status, Outcome.failure_reason, func.count()).select_from(Outcome.JOINED)
        .where(D.c.status.in_(("sent", "failed", "skipped")))
        .group_by(D.c.channel, Outcome.status, Outcome.failure_reason)
    ):
        finished[(channel, status)] = finished.get((channel, status), 0) + n
        if status in ("failed", "skipped"):
            key = (channel, reason or status)
            reasons[key] = reasons.get(key, 0) + n
    yield _gauge("gongyou_deliveries", "Broadcast deliveries by channel and final status", ("channel", "status"),
                 finished)
    yield _gauge("gongyou_delivery_failures", "Failed or skipped broadcast deliveries by reason",
                 ("channel", "reason"), reasons)


def _gauge(name: str, documentation: str, labels: tuple[str, ...], values: dict[tuple[str, ...], float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(key, value)
    return family


def leader_figures(leader_key: int) -> Source:
    """How many processes hold the scheduler's leader lock for this schema (PostgreSQL): 1 is healthy,
    0 means no schedules run. SQLite has no separate scheduler: nothing is reported."""

    def figures(conn: Connection) -> Iterable[GaugeMetricFamily]:
        if conn.dialect.name != "postgresql":
            return
        held = conn.execute(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid = :k AND objid = hashtext(current_schema())::oid AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())"
        ), {"k": leader_key}).scalar()
        family = GaugeMetricFamily("gongyou_scheduler_leaders", "Processes holding the scheduler leader lock")
        family.add_metric((), held or 0)
        yield family

    return figures


def sla_breaches(conn: Connection) -> Iterable[GaugeMetricFamily]:
    """Open help-desk cases past a target of their service level (bot.helpdesk_sla), by the target missed:
    `first_response` (nobody has answered yet and the first-response moment is past) and `resolution`
    (the case is still open past its resolve-by moment). The same rule as the desk's overdue filter
    (bot.helpdesk.overdue_condition), counted per target; both are always reported, 0 included."""
    from bot.models import Ticket, utcnow
    from bot.models.complaints import OPEN_STATUSES

    T = Ticket.__table__
    now = utcnow()
    row = conn.execute(select(
        func.count().filter(T.c.first_response_at.is_(None) & (T.c.first_response_due_at < now)),
        func.count().filter(T.c.resolve_due_at < now),
    ).where(T.c.status.in_(OPEN_STATUSES))).one()
    family = GaugeMetricFamily("gongyou_helpdesk_sla_breaches", "Open help-desk cases past an SLA target",
                               labels=("target",))
    family.add_metric(("first_response",), row[0] or 0)
    family.add_metric(("resolution",), row[1] or 0)
    yield family


@dataclass
class _Cached:
    at: float
    families: list[GaugeMetricFamily]


class DatabaseFigures(Collector):
    """Figures read from the database at scrape time, cached for `max_age` seconds (several Prometheus
    servers, or a dashboard refreshing, must not each cost the queries)."""

    def __init__(self, engine: Engine, sources: Iterable[Source], *, max_age: float = 5.0) -> None:
        self.engine, self.sources, self.max_age = engine, tuple(sources), max_age
        self._cached: _Cached | None = None
        self._lock = threading.Lock()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        with self._lock:
            cached = self._cached
            if cached is None or time.monotonic() - cached.at > self.max_age:
                cached = self._cached = _Cached(time.monotonic(), self._read())
        return list(cached.families)

    def _read(self) -> list[GaugeMetricFamily]:
        families: list[GaugeMetricFamily] = []
        up = GaugeMetricFamily("gongyou_database_up", "1 when the database answered the figures' queries")
        try:
            with self.engine.connect() as conn:
                for source in self.sources:
                    families.extend(source(conn))
            up.add_metric((), 1)
        except Exception:  # noqa: BLE001 - a scrape reports the outage, it does not fail
            log.exception("database figures failed")
            families = []
            up.add_metric((), 0)
        return [up, *families]


class ProcessFigures(Collector):
    """Figures a long-running role reads from its own objects at scrape time (scheduler leadership,
    a dispatcher's totals): `read` returns {(name, help): value}."""

    def __init__(self, read: Callable[[], dict[tuple[str, str], float]]) -> None:
        self.read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        for (name, documentation), value in self.read().items():
            family = GaugeMetricFamily(name, documentation)
            family.add_metric((), value)
            yield family


def serve_on_port(port: int, host: str, extra: Iterable[Collector] = ()) -> Any:
    """A separate metrics port for the roles without a web server (dispatch, scheduler). No token on it:
    bind it to loopback or a network only Prometheus reaches (the compose file keeps it unpublished)."""
    from prometheus_client import start_http_server

    registry = CollectorRegistry()
    registry.register(_Forward(process_metrics().registry))
    for collector in extra:
        registry.register(collector)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    log.info("metrics port open", extra={"host": host, "port": port})
    return server
