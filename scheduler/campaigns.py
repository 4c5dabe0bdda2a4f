"""Campaign workflow: the one transition function, and the steps a scheduled campaign fires.

draft → scheduled → sending → done, with paused and cancelled reachable from the live states.
`sending → scheduled` happens between steps (the initial send is out, a reminder is still to come).
`failed`: a step could not be planned (scheduler.planning); what was queued is not sent, the reason is kept.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from bot.models import Campaign, CampaignStep, Delivery, Event, utcnow

TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"scheduled", "cancelled"}),
    "scheduled": frozenset({"sending", "paused", "cancelled", "done", "failed"}),
    "sending": frozenset({"scheduled", "done", "paused", "cancelled", "failed"}),
    "paused": frozenset({"scheduled", "sending", "cancelled"}),
    "done": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}
LIVE_STATES = ("scheduled", "sending")


class TransitionError(ValueError):
    def __init__(self, campaign: Campaign, to: str) -> None:
        super().__init__(f"campaign {campaign.id} cannot go from {campaign.state} to {to}")
        self.current, self.to = campaign.state, to


def transition(
    session: Session, campaign: Campaign, to: str, *, now: datetime | None = None, reason: str | None = None,
    tz: str = "Asia/Shanghai",
) -> Campaign:
    """Move a campaign to state `to`, with the side effects that state needs. The only writer of `state`."""
    now = now or utcnow()
    if to == "resume":  # paused → wherever its work says it is
        if campaign.state != "paused":
            raise TransitionError(campaign, to)
        to = "sending" if _has_outstanding(session, campaign.id) else "scheduled"
    if to not in TRANSITIONS[campaign.state]:
        raise TransitionError(campaign, to)
    if to == "scheduled" and campaign.state == "draft":
        create_steps(session, campaign, now=now, tz=tz)
    if to in ("cancelled", "failed"):
        why = "cancelled" if to == "cancelled" else "campaign_failed"
        session.execute(
            update(CampaignStep)
            .where(CampaignStep.campaign_id == campaign.id, CampaignStep.status == "pending")
            .values(status="skipped", skip_reason=why)
        )
        # Rows already "sending" belong to a worker mid-call: it records their outcome itself.
        session.execute(
            update(Delivery)
            .where(Delivery.campaign_id == campaign.id, Delivery.status == "queued")
            .values(status="skipped", failure_reason=why, updated_at=now)
        )
    campaign.state, campaign.state_changed_at, campaign.state_reason = to, now, reason
    session.flush()
    return campaign


def create_steps(session: Session, campaign: Campaign, *, now: datetime, tz: str) -> list[CampaignStep]:
    """The initial send and the reminders, as rows; recurring occurrences are added as they come."""
    steps: list[CampaignStep] = []
    if not campaign.recurrence:
        steps.append(CampaignStep(campaign_id=campaign.id, kind="initial", due_at=campaign.send_at or now))
    event = session.get(Event, campaign.event_id) if campaign.event_id else None
    if event is not None:
        for reminder in campaign.reminders or []:
            due = reminder_due(event.starts_at, reminder, tz)
            steps.append(
                CampaignStep(
                    campaign_id=campaign.id, kind="reminder", due_at=due,
                    to_signed_up=reminder.get("to", "signed_up") == "signed_up",
                )
            )
    session.add_all(steps)
    session.flush()
    return steps


def reminder_due(starts_at: datetime, reminder: dict[str, Any], tz: str) -> datetime:
    """{"days_before": 1, "at": "18:00"} → 18:00 local the day before; {"hours_before": 2} → 2 h before."""
    if "hours_before" in reminder:
        return starts_at - timedelta(hours=float(reminder["hours_before"]))
    zone = ZoneInfo(tz)
    local_start = starts_at.astimezone(zone)
    day = local_start.date() - timedelta(days=int(reminder.get("days_before", 1)))
    hour, minute = (int(x) for x in str(reminder.get("at", "18:00")).split(":"))
    return datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(starts_at.tzinfo)


def _has_outstanding(session: Session, campaign_id: int) -> bool:
    return bool(
        session.scalar(
            select(
                exists().where(Delivery.campaign_id == campaign_id, Delivery.status.in_(("queued", "sending")))
            )
        )
    )


def settle_campaigns(session: Session, *, now: datetime | None = None) -> list[int]:
    """Campaigns in "sending" with nothing left to send go back to "scheduled" (a step is still to come)
    or to "done". Returns the ids that finished."""
    now = now or utcnow()
    finished = []
    for campaign in session.scalars(select(Campaign).where(Campaign.state == "sending")):
        if _has_outstanding(session, campaign.id):
            continue
        pending = session.scalar(
            select(exists().where(CampaignStep.campaign_id == campaign.id, CampaignStep.status == "pending"))
        )
        recurring = campaign.recurrence and (campaign.recurrence_until is None or campaign.recurrence_until > now)
        if pending or recurring:
            transition(session, campaign, "scheduled", now=now)
        else:
            transition(session, campaign, "done", now=now)
            finished.append(campaign.id)
    return finished
