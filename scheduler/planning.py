"""Planning: firing a campaign step turns its audience into delivery rows, in one INSERT … SELECT.

The unique (campaign_id, step_id, labourer_id) constraint with ON CONFLICT DO NOTHING is what makes a
second fire, a retried job or a restart harmless: it never creates a second delivery. The channel is
chosen here (first of the campaign's channels the person can be reached on) and may change later on
fallback; people who cannot be reached get a "skipped" row with the reason, so reports count them.

A step that cannot be planned (a stored audience that no longer validates, a statement the database refuses)
fails visibly: the step is "failed" with the reason and the campaign goes to "failed", never left "scheduled"
with no deliveries to be tried again for ever. An outage (lost connection, lock or serialization conflict) is
not such a failure: it is raised, and the scheduler fires the step again when it syncs.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    String,
    case,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from bot.db import dialect_insert
from bot.models import (
    Audience,
    Campaign,
    CampaignStep,
    Delivery,
    Event,
    Labourer,
    SignUp,
    UTCDateTime,
    utcnow,
)
from scheduler.audience import AudienceError, audience_where, has_address, reachable
from scheduler.campaigns import TRANSITIONS, transition

log = logging.getLogger(__name__)
ANALYZE_AFTER = 10_000  # planned rows


@dataclass(frozen=True)
class FireResult:
    step_id: int
    status: str  # fired | skipped | already_fired | failed
    planned: int = 0  # delivery rows inserted by this call
    reason: str | None = None


def channel_expr(channels: list[str]) -> ColumnElement[str | None]:
    """The first channel of the campaign's preference order the labourer is reachable on, else NULL."""
    if not channels:
        return null()
    return case(*((reachable(c), literal(c)) for c in channels), else_=null())


def fire_step(session: Session, step_id: int, *, now: datetime | None = None, tz: str = "Asia/Shanghai") -> FireResult:
    """Plan one step. Safe to call any number of times, from any process."""
    now = now or utcnow()
    step = session.scalars(select(CampaignStep).where(CampaignStep.id == step_id).with_for_update()).one_or_none()
    if step is None:
        return FireResult(step_id, "skipped", reason="no_such_step")
    if step.status != "pending":
        return FireResult(step_id, "already_fired" if step.status == "fired" else step.status, reason=step.skip_reason)
    campaign = session.get(Campaign, step.campaign_id)
    assert campaign is not None
    event = session.get(Event, campaign.event_id) if campaign.event_id else None

    reason = _skip_reason(campaign, step, event, now)
    if reason:
        step.status, step.skip_reason, step.fired_at = "skipped", reason, now
        log.warning("campaign step skipped", extra={"step_id": step.id, "campaign_id": campaign.id, "reason": reason})
        return FireResult(step_id, "skipped", reason=reason)

    try:
        with session.begin_nested():  # a refused statement leaves the rest of the transaction (the step) usable
            planned = plan_deliveries(session, campaign, step, now=now, tz=tz)
    except (AudienceError, SQLAlchemyError) as exc:
        if _transient(exc):
            raise
        return _fail_step(session, step, campaign, exc, now=now)
    if planned > ANALYZE_AFTER and session.get_bind().dialect.name == "postgresql":
        # Fresh statistics, or the planner keeps costing the claim query for an empty queue.
        session.execute(text("ANALYZE delivery"))
    step.status, step.fired_at, step.planned = "fired", now, planned
    if campaign.state == "scheduled":
        transition(session, campaign, "sending", now=now)
    log.info("campaign step fired", extra={"step_id": step.id, "campaign_id": campaign.id, "planned": planned})
    return FireResult(step_id, "fired", planned=planned)


# SQLSTATE classes of an outage rather than of the statement: connection (08), transaction rollback such as
# deadlock or serialization (40), insufficient resources (53), operator intervention such as a restart (57), system (58).
_TRANSIENT_SQLSTATE = ("08", "40", "53", "57", "58")


def _transient(exc: Exception) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    state = getattr(exc.orig, "sqlstate", None)
    if state:
        return str(state)[:2] in _TRANSIENT_SQLSTATE
    return isinstance(exc.orig, sqlite3.OperationalError) and "locked" in str(exc.orig)


def _fail_step(session: Session, step: CampaignStep, campaign: Campaign, exc: Exception, *,
               now: datetime) -> FireResult:
    """The step "failed" and its campaign "failed", with why (the step's planning was rolled back)."""
    reason = f"planning failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
    step.status, step.skip_reason, step.fired_at = "failed", "planning_failed", now  # the whole reason: on the campaign
    if "failed" in TRANSITIONS[campaign.state]:
        transition(session, campaign, "failed", now=now, reason=reason)
    log.error("campaign step could not be planned",
              extra={"step_id": step.id, "campaign_id": campaign.id, "reason": reason})
    return FireResult(step.id, "failed", reason=reason)


def _skip_reason(campaign: Campaign, step: CampaignStep, event: Event | None, now: datetime) -> str | None:
    if campaign.state in ("cancelled", "done", "draft"):
        return f"campaign_{campaign.state}"
    if event is not None and event.status == "cancelled":
        return "event_cancelled"
    # Misfire after downtime: a reminder or an announcement of an event that has begun is pointless;
    # anything still relevant is sent late.
    if event is not None and event.starts_at <= now:
        return "event_passed"
    return None


def plan_deliveries(session: Session, campaign: Campaign, step: CampaignStep, *, now: datetime, tz: str) -> int:
    today = now.astimezone(ZoneInfo(tz)).date()
    channels = list(campaign.channels or [])
    chosen = channel_expr(channels)
    any_address = or_(*(has_address(c) for c in channels)) if channels else literal(False)
    status = case((chosen.is_(None), literal("skipped")), else_=literal("queued"))
    reason = case(
        (chosen.is_not(None), null()),
        (any_address, literal("unsubscribed")),
        else_=literal("no_channel"),
    )
    key = literal(f"c{campaign.id}s{step.id}l", String) + cast(Labourer.id, String)
    now_param = literal(now, UTCDateTime())
    source = select(
        literal(campaign.id).label("campaign_id"),
        literal(step.id).label("step_id"),
        Labourer.id.label("labourer_id"),
        chosen.label("channel"),
        status.label("status"),
        literal(not step.to_signed_up).label("capped"),
        literal(0).label("attempts"),
        now_param.label("next_attempt_at"),
        key.label("idempotency_key"),
        reason.label("failure_reason"),
        now_param.label("queued_at"),
        now_param.label("updated_at"),
    )
    if step.to_signed_up:
        source = source.where(
            Labourer.id.in_(
                select(SignUp.labourer_id).where(SignUp.event_id == campaign.event_id, SignUp.status == "registered")
            )
        )
    else:
        audience = session.get(Audience, campaign.audience_id)
        assert audience is not None
        source = source.where(audience_where(audience.filter or {}, audience.include_ids or [],
                                             audience.exclude_ids or [], today=today))
    columns = ["campaign_id", "step_id", "labourer_id", "channel", "status", "capped", "attempts",
               "next_attempt_at", "idempotency_key", "failure_reason", "queued_at", "updated_at"]
    dialect = session.get_bind().dialect.name
    insert = dialect_insert(session, Delivery.__table__)
    # SQLite needs a WHERE in the SELECT of an INSERT … SELECT … ON CONFLICT to parse it: audience_where has one.
    stmt = insert.from_select(columns, source).on_conflict_do_nothing(
        index_elements=["campaign_id", "step_id", "labourer_id"]
    )
    if dialect == "postgresql":  # psycopg reports no rowcount for INSERT … SELECT here: count what came back
        inserted = stmt.returning(Delivery.__table__.c.id).cte("inserted")
        return session.scalar(select(func.count()).select_from(inserted)) or 0
    return session.execute(stmt).rowcount or 0
