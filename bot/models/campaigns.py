"""Campaign area: events (job fairs, training sessions), campaigns and their steps, audiences, deliveries,
sign-ups and the idempotency keys of the officials' API.

A campaign's state changes only through `scheduler.campaigns.transition`; a delivery's only through the
dispatcher (`scheduler.dispatch`). One delivery row per (campaign, step, labourer), enforced by a unique
constraint, is what makes a second fire, a retried job or a restart harmless. What the provider reported
after it took a message (a receipt) is the outbox row's, read through the delivery's pointer: `DeliveryOutcome`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Select,
    String,
    Text,
    UniqueConstraint,
    and_,
    case,
    literal,
)
from sqlalchemy.orm import Mapped, mapped_column

from bot.models.base import Base, utcnow
from bot.models.channels import OutboundMessage

CAMPAIGN_STATES = ("draft", "scheduled", "sending", "done", "paused", "cancelled", "failed")
# A delivery's own states (the dispatcher's); "delivered" is only ever shown, from its outbox row's receipt.
DELIVERY_STATUSES = ("queued", "sending", "sent", "failed", "skipped")
SIGNUP_STATUSES = ("registered", "waitlisted", "cancelled")


class Event(Base):
    """A job fair (招聘会) or a training session (农闲班, 流动班, 小灶班, 网络班, 补习班)."""

    __tablename__ = "event"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # job_fair | training
    title: Mapped[str] = mapped_column(String(128))
    organiser: Mapped[str | None] = mapped_column(String(128))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]
    venue: Mapped[str | None] = mapped_column(String(128))
    county: Mapped[str | None] = mapped_column(String(32))
    township: Mapped[str | None] = mapped_column(String(32))
    jobs_count: Mapped[int | None] = mapped_column(Integer)  # job fair: number of jobs offered
    employers: Mapped[list[str]] = mapped_column(default=list)
    training_type: Mapped[str | None] = mapped_column(String(32))
    training_format: Mapped[str | None] = mapped_column(String(16))  # 农闲班 | 流动班 | 小灶班 | 网络班 | 补习班
    capacity: Mapped[int | None] = mapped_column(Integer)  # None: no limit (no waiting list)
    cost_note: Mapped[str | None] = mapped_column(String(128))  # what it costs or pays (补贴)
    signup_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | cancelled
    # The creator's area (bot.scope): who may see and manage it. None = city level (an unscoped admin).
    owner_county: Mapped[str | None] = mapped_column(String(32))
    owner_township: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Audience(Base):
    """A saved filter over the registry and the five lists, resolved when a step fires."""

    __tablename__ = "audience"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    filter: Mapped[dict[str, Any]] = mapped_column(default=dict)
    include_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    exclude_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Campaign(Base):
    __tablename__ = "campaign"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("event.id", ondelete="SET NULL"), index=True)
    audience_id: Mapped[int] = mapped_column(ForeignKey("audience.id"))
    template: Mapped[str] = mapped_column(Text)  # placeholders: {姓名} {时间} {地点} {报名方式} …
    sms_template: Mapped[str] = mapped_column(Text)  # the SMS-length version
    channels: Mapped[list[str]] = mapped_column(default=list)  # in order of preference
    send_at: Mapped[datetime | None]  # None: as soon as it is scheduled
    recurrence: Mapped[str | None] = mapped_column(String(64))  # crontab "m h dom mon dow", local time
    recurrence_until: Mapped[datetime | None]
    reminders: Mapped[list[dict[str, Any]]] = mapped_column(default=list)  # [{"days_before": 1, "at": "18:00"}]
    signup: Mapped[bool] = mapped_column(Boolean, default=True)  # replies "报名" / "1" sign up for the event
    state: Mapped[str] = mapped_column(String(16), default="draft")
    state_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    state_reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(64))
    # The creator's area (bot.scope), as on Event.
    owner_county: Mapped[str | None] = mapped_column(String(32))
    owner_township: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CampaignStep(Base):
    """One firing of a campaign: the initial send, one occurrence of a recurring send, or a reminder."""

    __tablename__ = "campaign_step"
    __table_args__ = (UniqueConstraint("campaign_id", "kind", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # initial | recurring | reminder
    due_at: Mapped[datetime]
    to_signed_up: Mapped[bool] = mapped_column(Boolean, default=False)  # reminders go to who signed up
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | fired | skipped | failed
    fired_at: Mapped[datetime | None]
    planned: Mapped[int] = mapped_column(Integer, default=0)
    skip_reason: Mapped[str | None] = mapped_column(String(64))


class Delivery(Base):
    """One message of one step to one labourer, as the dispatcher moves it: queued → sending → sent, or
    failed before any provider took it (refused, retries used up, outcome unknown), or skipped; retries,
    leases and the fallback to another channel are its own too.

    Once a provider took the message the delivery stays "sent": the provider's id, its answer and its
    receipt (delivered, or failed with the provider's error, and when) are the outbox row's
    (`outbound_message_id`), never copied here; `DeliveryOutcome` reads the two together. A sender with no
    outbox (tests' loopback gateways, benchmarks) writes what it has, its message id, to
    `provider_message_id` at send time, and no receipt ever reaches such a delivery: it ends "sent"."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("campaign_id", "step_id", "labourer_id"),
        # Claiming reads this index in order and stops at the batch size (no sort of the whole queue).
        Index("ix_delivery_due", "status", "next_attempt_at", "id"),
        Index("ix_delivery_labourer_sent", "labourer_id", "sent_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    step_id: Mapped[int] = mapped_column(ForeignKey("campaign_step.id", ondelete="CASCADE"), index=True)
    labourer_id: Mapped[int] = mapped_column(ForeignKey("labourer.id", ondelete="CASCADE"))
    channel: Mapped[str | None] = mapped_column(String(16))  # wechat | sms; changes on fallback
    status: Mapped[str] = mapped_column(String(16), default="queued")
    capped: Mapped[bool] = mapped_column(Boolean, default=True)  # counts toward the weekly broadcast cap
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    provider_message_id: Mapped[str | None] = mapped_column(String(128), index=True)  # senders with no outbox only
    # The channel's outbox row that carried it (bot.channels.outbound: one row per idempotency key): the
    # provider's id, its answer and its receipt are that row's, read through this pointer.
    # None for senders without an outbox (tests' loopback gateways) and for what never reached a provider.
    outbound_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("outbound_message.id", ondelete="SET NULL"), index=True)
    failure_reason: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]  # a "sending" row past its lease belongs to a crashed worker
    queued_at: Mapped[datetime | None]
    sending_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]  # failed in the dispatcher (an undelivered receipt's time is the row's)
    updated_at: Mapped[datetime | None]


_D, _O = Delivery.__table__, OutboundMessage.__table__
_RECEIPT = and_(_D.c.status == "sent", _O.c.receipt_at.is_not(None))
_UNDELIVERED = and_(_RECEIPT, _O.c.status == "failed")


class DeliveryOutcome:
    """What became of a delivery, as reports, figures and metrics show it: the delivery's own state until a
    provider took the message, then its outbox row's receipt when one came (delivered; failed, reason
    "undelivered", with the provider's error). Column expressions over delivery LEFT JOIN outbound_message:
    put the join in with `with_outbox` (or select from `JOINED`)."""

    JOINED = _D.outerjoin(_O, _O.c.id == _D.c.outbound_message_id)
    status = case((_RECEIPT, _O.c.status), else_=_D.c.status)
    failure_reason = case((_UNDELIVERED, literal("undelivered")), else_=_D.c.failure_reason)
    error_code = case((_UNDELIVERED, _O.c.error_code), else_=_D.c.error_code)
    error = case((_UNDELIVERED, _O.c.error), else_=_D.c.error)
    delivered_at = case((and_(_RECEIPT, _O.c.status == "delivered"), _O.c.receipt_at))
    failed_at = case((_UNDELIVERED, _O.c.receipt_at), else_=_D.c.failed_at)
    # Took a turn of the labourer's attention this week: being sent, or sent and not reported undelivered.
    reached = and_(_D.c.status.in_(("sending", "sent")), ~_UNDELIVERED)

    @staticmethod
    def with_outbox(stmt: Select[Any]) -> Select[Any]:
        """`stmt` (which selects from delivery) with each delivery's outbox row beside it."""
        return stmt.outerjoin(_O, _O.c.id == _D.c.outbound_message_id)


class SendRate(Base):
    """One row per channel: the next free send slot (Unix seconds) on the channel's grid. Every dispatch
    worker, in any process, takes its slots from here, so the configured rate is the rate of the fleet."""

    __tablename__ = "send_rate"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    next_slot: Mapped[float] = mapped_column(Double)


class SignUp(Base):
    __tablename__ = "signup"
    __table_args__ = (UniqueConstraint("event_id", "labourer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"), index=True)
    labourer_id: Mapped[int] = mapped_column(ForeignKey("labourer.id", ondelete="CASCADE"), index=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaign.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16))  # registered | waitlisted | cancelled
    channel: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)  # also the waiting-list order


class IdempotencyKey(Base):
    """An `Idempotency-Key` already answered: the same key with the same request returns the same response."""

    __tablename__ = "idempotency_key"

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SchedulerJob(Base):
    """APScheduler 3's SQLAlchemyJobStore table, declared here so the migration owns the schema."""

    __tablename__ = "apscheduler_jobs"

    id: Mapped[str] = mapped_column(String(191), primary_key=True)
    next_run_time: Mapped[float | None] = mapped_column(index=True)
    job_state: Mapped[bytes] = mapped_column(LargeBinary)
