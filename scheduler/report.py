"""What officials see: a preview before sending and a report after, plus the per-recipient CSV export.

Both are aggregate SQL over the same expressions planning uses (audience filter, channel choice), so the
preview counts what firing would plan. What became of each delivery is `DeliveryOutcome` (the delivery's own
state, and its outbox row's receipt once the provider took it).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.orm import Session

from bot.models import (
    Audience,
    Campaign,
    CampaignStep,
    Delivery,
    Event,
    Labourer,
    SignUp,
    utcnow,
)
from bot.models.campaigns import DeliveryOutcome as Outcome
from bot.settings import Settings
from scheduler.audience import audience_where, has_address
from scheduler.dispatch import parse_hours, window_open
from scheduler.planning import channel_expr
from scheduler.render import Renderer

SAMPLES_PER_CHANNEL = 3


def _rates(settings: Settings) -> dict[str, float]:
    return {"sms": settings.dispatch_rate_sms, "wechat": settings.dispatch_rate_wechat}


def preview(session: Session, campaign: Campaign, settings: Settings, *, texts: dict[str, Any],
            now: datetime | None = None) -> dict[str, Any]:
    """Who the campaign would reach now and sample messages, rendered with `texts` (the live snapshot's
    campaign texts)."""
    now = now or utcnow()
    tz = ZoneInfo(settings.timezone)
    audience = session.get(Audience, campaign.audience_id)
    assert audience is not None
    where = audience_where(audience.filter or {}, audience.include_ids or [], audience.exclude_ids or [],
                           today=now.astimezone(tz).date())
    channels = list(campaign.channels or [])
    chosen = channel_expr(channels).label("channel")
    any_address = or_(*(has_address(c) for c in channels)) if channels else literal(False)
    sent_this_week = (
        select(func.count())
        .select_from(Outcome.JOINED)
        .where(Delivery.labourer_id == Labourer.id, Delivery.capped.is_(True), Outcome.reached,
               Delivery.sent_at >= now - timedelta(days=7))
        .correlate(Labourer)
        .scalar_subquery()
    )
    cap = settings.broadcast_weekly_cap
    at_cap = (sent_this_week >= cap) if cap else literal(False)
    reason = case(
        (and_(chosen.is_(None), any_address), literal("unsubscribed")),
        (chosen.is_(None), literal("no_channel")),
        (at_cap, literal("frequency_cap")),
        else_=literal(None),
    ).label("reason")
    rows = session.execute(
        select(chosen, reason, Labourer.township, func.count()).where(where).group_by(chosen, reason, Labourer.township)
    ).all()
    by_channel: dict[str, int] = {}
    by_township: dict[str, int] = {}
    unreachable: dict[str, int] = {}
    total = 0
    for channel, why, township, count in rows:
        total += count
        if why is not None:
            unreachable[why] = unreachable.get(why, 0) + count
            continue
        by_channel[channel] = by_channel.get(channel, 0) + count
        key = township or "未填乡镇"
        by_township[key] = by_township.get(key, 0) + count

    event = session.get(Event, campaign.event_id) if campaign.event_id else None
    renderer = Renderer(campaign, event, tz=settings.timezone, texts=texts)
    samples: list[dict[str, str]] = []
    for channel in by_channel:
        names = session.scalars(
            select(Labourer.name).where(where, channel_expr(channels) == channel).order_by(Labourer.id)
            .limit(SAMPLES_PER_CHANNEL)
        ).all()
        samples += [{"channel": channel, "text": renderer.render(channel, name)} for name in names]

    estimate = _estimate_seconds(by_channel, settings, now)
    return {
        "campaign_id": campaign.id,
        "audience_total": total,
        "recipients": sum(by_channel.values()),
        "by_channel": by_channel,
        "by_township": dict(sorted(by_township.items(), key=lambda kv: -kv[1])),
        "unreachable": unreachable,
        "samples": samples,
        "estimated_seconds": estimate,
    }


def _estimate_seconds(by_channel: dict[str, int], settings: Settings, now: datetime) -> float | None:
    """Channels send in parallel, each at its rate, starting when its allowed hours open; None = unlimited."""
    tz = ZoneInfo(settings.timezone)
    windows = {"sms": parse_hours(settings.sms_send_hours), "wechat": parse_hours(settings.wechat_send_hours)}
    rates = _rates(settings)
    longest = 0.0
    for channel, count in by_channel.items():
        rate = rates.get(channel) or 0
        if not rate:
            continue
        wait = 0.0
        probe = now
        while not window_open(windows.get(channel), probe.astimezone(tz)) and wait < 86400:
            probe += timedelta(minutes=1)
            wait += 60
        # Sending stops at the window's close and resumes next day: assume the day's window is long enough
        # for the campaigns officials send (a county list at 50/s is minutes).
        longest = max(longest, wait + math.ceil(count / rate))
    return longest if by_channel else 0.0


def report(session: Session, campaign: Campaign, *, now: datetime | None = None) -> dict[str, Any]:
    # One pass over the campaign's deliveries and their outbox rows: status, channel and reason together.
    counts = session.execute(
        select(Outcome.status, Delivery.channel, Outcome.failure_reason, func.count())
        .select_from(Outcome.JOINED)
        .where(Delivery.campaign_id == campaign.id)
        .group_by(Outcome.status, Delivery.channel, Outcome.failure_reason)
    ).all()
    by_status: dict[str, int] = {}
    by_channel: dict[str, dict[str, int]] = {}
    reasons: dict[str | None, int] = {}
    fallbacks = 0
    for status, channel, reason, count in counts:
        by_status[status] = by_status.get(status, 0) + count
        per_channel = by_channel.setdefault(channel or "none", {})
        per_channel[status] = per_channel.get(status, 0) + count
        if status in ("failed", "skipped"):
            reasons[reason] = reasons.get(reason, 0) + count
        elif status in ("sent", "delivered") and reason and reason.startswith("fallback_from_"):
            fallbacks += count
    reached = (
        select(Delivery.labourer_id, Delivery.channel).select_from(Outcome.JOINED)
        .where(Delivery.campaign_id == campaign.id, Outcome.status.in_(("sent", "delivered")))
        .subquery()
    )
    opt_outs = session.scalar(
        select(func.count(func.distinct(Labourer.id)))
        .join(reached, reached.c.labourer_id == Labourer.id)
        .where(or_(and_(reached.c.channel == "sms", Labourer.subscribed_sms.is_(False)),
                   and_(reached.c.channel == "wechat", Labourer.subscribed_wechat.is_(False))))
    )
    signups: dict[str, Any] = {}
    if campaign.event_id is not None:
        signups = dict(
            session.execute(
                select(SignUp.status, func.count()).where(SignUp.event_id == campaign.event_id).group_by(SignUp.status)
            ).all()
        )
        signups["via_this_campaign"] = session.scalar(
            select(func.count()).where(SignUp.campaign_id == campaign.id, SignUp.status != "cancelled")
        )
    steps = [
        {"id": s.id, "kind": s.kind, "due_at": s.due_at.isoformat(), "status": s.status, "planned": s.planned,
         "skip_reason": s.skip_reason}
        for s in session.scalars(select(CampaignStep).where(CampaignStep.campaign_id == campaign.id).order_by(CampaignStep.due_at))
    ]
    return {
        "campaign_id": campaign.id,
        "state": campaign.state,
        "total": sum(by_status.values()),
        "by_status": by_status,
        "by_channel": by_channel,
        "failures_by_reason": reasons,
        "fallbacks": fallbacks,
        "opt_outs": opt_outs or 0,
        "signups": signups,
        "steps": steps,
    }


CSV_COLUMNS = ("delivery_id", "step", "name", "township", "village", "phone", "channel", "status", "attempts",
               "failure_reason", "error_code", "sent_at", "delivered_at", "failed_at", "signup")


def report_csv(session: Session, campaign: Campaign, *, tz: str) -> Iterator[str]:
    """One line per delivery; phones masked. Streamed in chunks so a county-wide export stays small."""
    zone = ZoneInfo(tz)

    def local(value: datetime | None) -> str:
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if value else ""

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")  # Excel opens UTF-8 CSV as GBK without the BOM
    writer.writerow(CSV_COLUMNS)
    signup = select(SignUp.status).where(SignUp.event_id == campaign.event_id, SignUp.labourer_id == Labourer.id)
    query = (
        select(Delivery.id, CampaignStep.kind, Labourer.name, Labourer.township, Labourer.village, Labourer.phone_masked,
               Delivery.channel, Outcome.status, Delivery.attempts, Outcome.failure_reason, Outcome.error_code,
               Delivery.sent_at, Outcome.delivered_at, Outcome.failed_at,
               signup.correlate(Labourer).scalar_subquery() if campaign.event_id else literal(None))
        .select_from(Outcome.JOINED)
        .join(Labourer, Labourer.id == Delivery.labourer_id)
        .join(CampaignStep, CampaignStep.id == Delivery.step_id)
        .where(Delivery.campaign_id == campaign.id)
        .order_by(Delivery.id)
    )
    for n, row in enumerate(session.execute(query.execution_options(yield_per=2000)), start=1):
        values = list(row)
        values[11:14] = [local(v) for v in values[11:14]]
        writer.writerow(["" if v is None else v for v in values])
        if n % 2000 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
