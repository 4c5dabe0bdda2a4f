"""APScheduler with its SQLAlchemy job store: steps become jobs, jobs fire steps, jobs survive a restart,
recurring occurrences never duplicate, one leader on PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.db import make_engine, make_sessionmaker, session_scope
from bot.models import CampaignStep, Delivery, Event, SchedulerJob
from scheduler import jobs
from scheduler.campaigns import transition
from scheduler.jobs import CampaignScheduler
from tests.synthetic import insert_labourers, make_campaign


def _wait(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def engine(db_url: str):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def _campaign_jobs(scheduler: CampaignScheduler) -> list:
    """The scheduler's jobs but the help desk's minute sweep (bot.helpdesk.sweep, always there)."""
    return [j for j in scheduler.aps.get_jobs() if j.id != jobs.DESK_JOB]


def _deliveries(factory) -> int:
    with session_scope(factory) as s:
        return s.scalar(select(func.count()).select_from(Delivery))


def test_due_steps_fire_and_future_steps_persist_in_the_job_store(engine, make_settings) -> None:
    factory = make_sessionmaker(engine)
    now = datetime.now(UTC)
    with session_scope(factory) as s:
        insert_labourers(s, 5)
        event = Event(kind="training", title="电工农闲班", starts_at=now + timedelta(days=3), venue="兴文镇")
        s.add(event)
        s.flush()
        campaign = make_campaign(s, event=event, reminders=[{"days_before": 1, "at": "18:00", "to": "audience"}])
        transition(s, campaign, "scheduled", now=now)  # initial step due now, a reminder in two days
    scheduler = CampaignScheduler(make_settings(), engine, factory, sync_seconds=0.2)
    scheduler.start()
    try:
        assert scheduler.is_leader
        _wait(lambda: _deliveries(factory) == 5)
        _wait(lambda: len(_campaign_jobs(scheduler)) == 2)  # the sync job and the reminder
    finally:
        scheduler.shutdown()
    with session_scope(factory) as s:
        stored = set(s.scalars(select(SchedulerJob.id)))
        reminder = s.scalars(select(CampaignStep).where(CampaignStep.kind == "reminder")).one()
    assert f"step-{reminder.id}" in stored
    # A restart finds the job in the store and does not fire anything twice.
    again = CampaignScheduler(make_settings(), engine, factory, sync_seconds=0.2)
    again.start()
    try:
        assert f"step-{reminder.id}" in {j.id for j in again.aps.get_jobs()}
        time.sleep(0.5)
        assert _deliveries(factory) == 5
    finally:
        again.shutdown()


def test_job_for_a_cancelled_campaign_is_removed(engine, make_settings) -> None:
    factory = make_sessionmaker(engine)
    with session_scope(factory) as s:
        campaign = make_campaign(s, send_at=datetime.now(UTC) + timedelta(days=1))
        transition(s, campaign, "scheduled")
        campaign_id = campaign.id
    scheduler = CampaignScheduler(make_settings(), engine, factory, sync_seconds=3600)
    scheduler.start()
    try:
        scheduler.sync()
        assert len(_campaign_jobs(scheduler)) == 2
        with session_scope(factory) as s:
            from bot.models import Campaign

            transition(s, s.get(Campaign, campaign_id), "cancelled")
        scheduler.sync()
        assert [j.id for j in _campaign_jobs(scheduler)] == [jobs.SYNC_JOB]
    finally:
        scheduler.shutdown()


def test_recurring_occurrence_fires_once(engine, make_settings) -> None:
    factory = make_sessionmaker(engine)
    with session_scope(factory) as s:
        insert_labourers(s, 3)
        campaign = make_campaign(s, recurrence="0 9 * * 1")
        transition(s, campaign, "scheduled")
        campaign_id = campaign.id
    at = datetime(2026, 3, 2, 1, 0, 7, tzinfo=UTC)
    jobs._runtime.update(factory=factory, clock=lambda: at)
    try:
        assert jobs.run_recurrence(campaign_id).planned == 3
        assert jobs.run_recurrence(campaign_id).status == "already_fired"  # the same occurrence again
        jobs._runtime["clock"] = lambda: at + timedelta(days=7)
        assert jobs.run_recurrence(campaign_id).planned == 3
    finally:
        jobs._runtime.clear()
    assert _deliveries(factory) == 6


@pytest.mark.postgres
def test_one_leader_on_postgresql(pg_url: str, make_settings) -> None:
    engine_a, engine_b = make_engine(pg_url), make_engine(pg_url)
    settings = make_settings(database_url=pg_url)
    a = CampaignScheduler(settings, engine_a, make_sessionmaker(engine_a), standby_seconds=0.2, sync_seconds=3600)
    b = CampaignScheduler(settings, engine_b, make_sessionmaker(engine_b), standby_seconds=0.2, sync_seconds=3600)
    a.start()
    b.start()
    try:
        time.sleep(0.5)
        assert a.is_leader and not b.is_leader
        a.shutdown()  # the lock goes with a's connection; b takes over
        _wait(lambda: b.is_leader, timeout=5)
    finally:
        a.shutdown()
        b.shutdown()
        engine_a.dispose()
        engine_b.dispose()
