"""Schedules: APScheduler 3 with its SQLAlchemy job store, run by one leader.

The database rows (campaign_step, campaign.recurrence) are the truth; the leader's `sync` job mirrors
them into APScheduler jobs (one date job per pending step, one cron job per recurring campaign), and
the job store keeps them across restarts. Every job ends in `fire_step`, which is idempotent, so a job
that runs twice or late does no harm. Misfires after downtime are handled on purpose: jobs have no grace
limit (they all run when the leader is back) and `fire_step` decides — a reminder or an announcement
whose event has begun is skipped with the reason recorded, anything still relevant is sent late.

Leadership: on PostgreSQL, the process holding `pg_try_advisory_lock(LEADER_KEY)` on its own connection
runs the schedules; the others retry every few seconds and take over when that connection dies. SQLite
is the one-process embedded default: its process is the leader.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from bot.db import session_scope
from bot.models import Campaign, CampaignStep, utcnow
from bot.settings import Settings
from scheduler.campaigns import LIVE_STATES, settle_campaigns
from scheduler.planning import FireResult, fire_step

log = logging.getLogger(__name__)

LEADER_KEY = 0x676F6E67  # "gong"; the second key is the schema's hash
SYNC_JOB = "sync-campaigns"
DESK_JOB = "helpdesk-sweep"  # bot.helpdesk.sweep: reminders to assignees, evidence photos

# What the job functions need. APScheduler stores jobs as "module:function" plus arguments, so the
# functions find the database through here rather than through pickled objects.
_runtime: dict[str, Any] = {}


def _factory() -> sessionmaker[Session]:
    return _runtime["factory"]


def _now() -> datetime:
    return _runtime.get("clock", utcnow)()


def run_step(step_id: int) -> FireResult:
    with session_scope(_factory()) as session:
        return fire_step(session, step_id, now=_now(), tz=_runtime.get("tz", "Asia/Shanghai"))


def run_recurrence(campaign_id: int) -> FireResult | None:
    """One occurrence of a recurring campaign: a step row keyed by the minute, then fired.
    (campaign_id, kind, due_at) is unique, so a second run for the same occurrence adds nothing."""
    now = _now().replace(second=0, microsecond=0)
    with session_scope(_factory()) as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None or campaign.state not in LIVE_STATES:
            return None
        step = session.scalars(
            select(CampaignStep).where(CampaignStep.campaign_id == campaign_id, CampaignStep.kind == "recurring",
                                       CampaignStep.due_at == now)
        ).one_or_none()
        if step is None:
            step = CampaignStep(campaign_id=campaign_id, kind="recurring", due_at=now)
            session.add(step)
            session.flush()
        return fire_step(session, step.id, now=_now(), tz=_runtime.get("tz", "Asia/Shanghai"))


class CampaignScheduler:
    """The schedules of one process. `dispatcher_factory` builds the dispatcher that `start(with_dispatcher=
    True)` runs beside them; the composition point hands it in (bot.app.campaign_scheduler), with its
    senders and knowledge, so nothing here composes the pipeline."""

    def __init__(self, settings: Settings, engine: Engine, factory: sessionmaker[Session], *,
                 clock: Callable[[], datetime] = utcnow, sync_seconds: float = 10.0,
                 standby_seconds: float = 5.0, dispatcher_factory: Callable[[], Any] | None = None,
                 desk_seconds: float = 60.0) -> None:
        self.settings, self.engine, self.factory = settings, engine, factory
        self.clock, self.sync_seconds, self.standby_seconds = clock, sync_seconds, standby_seconds
        self.desk_seconds = desk_seconds
        self._media: Any = None  # the WeChat API for evidence photos, made on first use
        self.dispatcher_factory = dispatcher_factory
        self.aps: BackgroundScheduler | None = None
        self._lock_conn: Connection | None = None
        self._stop = threading.Event()
        self._standby: threading.Thread | None = None
        self._dispatch_thread: threading.Thread | None = None
        self._dispatcher: Any = None

    # ---- leadership -----------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self.aps is not None and self.aps.running

    def try_lead(self) -> bool:
        """Take the leader lock if nobody holds it; start the schedules if we got it."""
        if self.is_leader:
            return True
        if self.engine.dialect.name == "postgresql":
            conn = self.engine.connect()
            # One leader per schema: deployments (and test schemas) sharing a server do not block each other.
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k, hashtext(current_schema()))"),
                               {"k": LEADER_KEY}).scalar()
            conn.commit()  # the session-level lock outlives the transaction; the connection holds it
            if not got:
                conn.close()
                return False
            self._lock_conn = conn
        self._start_aps()
        log.info("scheduler leader", extra={"database": self.engine.dialect.name})
        return True

    def _still_leader(self) -> bool:
        if self._lock_conn is None:
            return True
        try:
            self._lock_conn.execute(text("SELECT 1"))
            self._lock_conn.commit()
            return True
        except Exception:
            log.exception("leader lock connection lost")
            return False

    def _standby_loop(self) -> None:
        while not self._stop.wait(self.standby_seconds):
            try:
                if self.is_leader and not self._still_leader():
                    self._stop_aps()
                if not self.is_leader:
                    self.try_lead()
            except Exception:  # noqa: BLE001 - the database is away (a restart): stand by and try again
                log.warning("scheduler cannot reach the database; retrying", exc_info=True)

    # ---- APScheduler ----------------------------------------------------------------------------

    def _start_aps(self) -> None:
        _runtime.update(factory=self.factory, clock=self.clock, tz=self.settings.timezone, owner=self)
        aps = BackgroundScheduler(
            jobstores={
                "default": SQLAlchemyJobStore(engine=self.engine, tablename="apscheduler_jobs"),
                "local": MemoryJobStore(),  # the sync job: bound to this object, rebuilt at each start
            },
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
            timezone=self.settings.timezone,
        )
        aps.start()
        self.aps = aps
        aps.add_job(self._sync_quietly, "interval", seconds=self.sync_seconds, id=SYNC_JOB, jobstore="local",
                    replace_existing=True, next_run_time=self.clock())
        aps.add_job(self.desk_sweep, "interval", seconds=self.desk_seconds, id=DESK_JOB, jobstore="local",
                    replace_existing=True)

    def _sync_quietly(self) -> None:
        if self._stop.is_set():
            return
        try:
            self.sync()
        except Exception:
            log.exception("campaign sync failed")

    def desk_sweep(self) -> dict[str, int]:
        """The help desk's minute: reminders of near targets to the assignees, evidence photos still to fetch."""
        from bot import helpdesk

        if self._stop.is_set():
            return {}
        try:
            if self._media is None and self.settings.wechat_appid and self.settings.wechat_secret:
                from bot.channels.wechat_api import WeChatApi

                self._media = WeChatApi(self.settings, self.factory)
            return helpdesk.sweep(self.settings, self.factory, now=self.clock(), media=self._media)
        except Exception:
            log.exception("help-desk sweep failed")
            return {}

    def _stop_aps(self) -> None:
        if self.aps is not None and self.aps.running:
            # wait=False: a running sync job takes the scheduler's lock, which shutdown(wait=True) holds.
            self.aps.shutdown(wait=False)
        self.aps = None
        if self._lock_conn is not None:
            # Closing would only return the connection to the pool, still holding the lock: drop it.
            try:
                self._lock_conn.invalidate()
                self._lock_conn.close()
            except Exception:  # noqa: BLE001 - already dead: the lock went with it
                log.debug("leader lock connection already closed")
            self._lock_conn = None

    def sync(self) -> dict[str, int]:
        """Mirror the database into jobs: pending steps of live campaigns, recurring campaigns."""
        aps = self.aps
        if aps is None:
            return {}
        wanted: dict[str, tuple[Callable[..., Any], Any, tuple[Any, ...]]] = {}
        with session_scope(self.factory) as session:
            settle_campaigns(session, now=self.clock())
            steps = session.execute(
                select(CampaignStep.id, CampaignStep.due_at)
                .join(Campaign, Campaign.id == CampaignStep.campaign_id)
                .where(CampaignStep.status == "pending", Campaign.state.in_(LIVE_STATES))
            ).all()
            for step_id, due_at in steps:
                wanted[f"step-{step_id}"] = (run_step, DateTrigger(run_date=due_at), (step_id,))
            recurring = session.execute(
                select(Campaign.id, Campaign.recurrence, Campaign.recurrence_until)
                .where(Campaign.recurrence.is_not(None), Campaign.state.in_(LIVE_STATES))
            ).all()
            for campaign_id, crontab, until in recurring:
                trigger = CronTrigger.from_crontab(crontab, timezone=self.settings.timezone)
                if until is not None:
                    trigger.end_date = until
                wanted[f"recur-{campaign_id}"] = (run_recurrence, trigger, (campaign_id,))
        existing = {job.id for job in aps.get_jobs(jobstore="default")}
        for job_id in existing - set(wanted):
            try:
                aps.remove_job(job_id)
            except JobLookupError:  # it ran (a date job) and removed itself meanwhile
                log.debug("job already gone", extra={"job_id": job_id})
        for job_id in set(wanted) - existing:
            func, trigger, args = wanted[job_id]
            aps.add_job(func, trigger, args=args, id=job_id, jobstore="default", replace_existing=True)
        return {"jobs": len(wanted), "added": len(set(wanted) - existing), "removed": len(existing - set(wanted))}

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self, *, with_dispatcher: bool = False) -> None:
        self._stop.clear()
        self.try_lead()
        self._standby = threading.Thread(target=self._standby_loop, name="scheduler-standby", daemon=True)
        self._standby.start()
        if with_dispatcher:
            self._start_dispatcher()

    def _start_dispatcher(self) -> None:
        if self.dispatcher_factory is None:
            raise RuntimeError("this scheduler was built without a dispatcher (bot.app.campaign_scheduler makes one)")
        self._dispatcher = self.dispatcher_factory()
        self._dispatch_thread = threading.Thread(
            target=self._dispatcher.run, kwargs={"stop": self._stop}, name="dispatcher", daemon=True)
        self._dispatch_thread.start()

    def shutdown(self) -> None:
        self._stop.set()
        if self._standby is not None:
            self._standby.join(timeout=10)
        if self._dispatch_thread is not None:
            self._dispatch_thread.join(timeout=30)
        self._stop_aps()
        if _runtime.get("owner") is self:
            _runtime.clear()

