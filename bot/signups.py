"""Event sign-ups: the ledger (capacity, waiting list) and replies to a broadcast — "报名" / "1" / "我去"
signs up for the event it announced, "不去了" cancels.

Sign-ups respect the event's capacity: past it, people join a waiting list in the order they answered,
and a cancellation moves the first of them up. The conversation pipeline calls `broadcast_reply` before
the intent router (a pre-route hook, wired in bot.app.compose); it answers only when the person really is answering a broadcast,
otherwise it returns None and the router carries on ("报名" alone, with no broadcast, is register_training).
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bot.channels.base import Reply
from bot.db import session_scope
from bot.dialogs.validators import CLAUSES
from bot.models import Campaign, Delivery, Event, Labourer, SignUp, utcnow
from bot.models.campaigns import DeliveryOutcome
from bot.render import event_values, fill

if TYPE_CHECKING:
    from bot.conversation import Services, Turn

log = logging.getLogger(__name__)

SIGNUP_WORDS = frozenset({"报名", "我报名", "我要报名", "报个名", "我去", "我要去", "去", "要去", "参加", "我参加",
                          "我要参加", "1", "好", "好的"})
CANCEL_WORDS = frozenset({"不去了", "不去", "我不去了", "去不了", "取消", "取消报名", "不参加了", "不参加"})


@dataclass(frozen=True)
class SignUpOutcome:
    status: str  # registered | waitlisted | already_registered | already_waitlisted | cancelled | not_signed_up | closed
    event: Event
    position: int | None = None  # on the waiting list
    promoted_labourer_id: int | None = None


def _core(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if unicodedata.category(ch)[0] not in "PZSC")


# "不去了 屋头有事": not going, and why — the first clause says it
CANCEL_LEADS = frozenset({"不去了", "我不去了", "去不了", "去不了了", "来不了", "来不了了", "不参加了", "我不参加了",
                          "去不成了", "去不成", "去不到了", "来不成了", "不来了", "参加不了", "参加不了了", "我去不了了", "我去不成了"})


# "算了 不去了", "哎 去不了了": words that soften what follows and decide nothing themselves
SOFTENERS = ("算了", "还是", "哎呀", "哎", "唉", "那就", "那", "嗯", "不好意思", "对不起")


def _unsoftened(core: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for word in SOFTENERS:
            if core.startswith(word) and len(core) > len(word):
                core, stripped = core[len(word):], True
    return core


def classify(text: str) -> str | None:
    core = _core(text)
    clauses = [c for c in (_unsoftened(_core(c)) for c in CLAUSES.split(text.strip())) if c and c not in SOFTENERS]
    if _unsoftened(core) in CANCEL_WORDS or (clauses and clauses[0] in CANCEL_LEADS):
        return "cancel"
    if core in SIGNUP_WORDS:
        return "signup"
    return None


# ---- the sign-up ledger ----------------------------------------------------------------------------


def _lock_event(session: Session, event_id: int) -> Event:
    # Serialises sign-ups per event so two people never take the last place (SQLite serialises writers).
    return session.scalars(select(Event).where(Event.id == event_id).with_for_update()).one()


def waitlist_position(session: Session, signup: SignUp) -> int:
    return session.scalar(
        select(func.count()).select_from(SignUp).where(
            SignUp.event_id == signup.event_id,
            SignUp.status == "waitlisted",
            or_(SignUp.updated_at < signup.updated_at, (SignUp.updated_at == signup.updated_at) & (SignUp.id <= signup.id)),
        )
    ) or 0


def sign_up(session: Session, event_id: int, labourer_id: int, *, campaign_id: int | None = None,
            channel: str | None = None, now: datetime | None = None) -> SignUpOutcome:
    now = now or utcnow()
    event = _lock_event(session, event_id)
    if event.status != "open" or event.starts_at <= now or not event.signup_enabled:
        return SignUpOutcome("closed", event)
    existing = session.scalars(
        select(SignUp).where(SignUp.event_id == event_id, SignUp.labourer_id == labourer_id)
    ).one_or_none()
    if existing is not None and existing.status == "registered":
        return SignUpOutcome("already_registered", event)
    if existing is not None and existing.status == "waitlisted":
        return SignUpOutcome("already_waitlisted", event, waitlist_position(session, existing))
    taken = session.scalar(
        select(func.count()).select_from(SignUp).where(SignUp.event_id == event_id, SignUp.status == "registered")
    ) or 0
    status = "registered" if event.capacity is None or taken < event.capacity else "waitlisted"
    signup = existing or SignUp(event_id=event_id, labourer_id=labourer_id, created_at=now)
    signup.status, signup.updated_at = status, now
    signup.campaign_id, signup.channel = campaign_id or signup.campaign_id, channel
    if existing is None:
        session.add(signup)
    session.flush()  # (event_id, labourer_id) is unique: a concurrent double sign-up fails here, not twice
    position = waitlist_position(session, signup) if status == "waitlisted" else None
    return SignUpOutcome(status, event, position)


def cancel(session: Session, event_id: int, labourer_id: int, *, now: datetime | None = None) -> SignUpOutcome:
    now = now or utcnow()
    event = _lock_event(session, event_id)
    signup = session.scalars(
        select(SignUp).where(SignUp.event_id == event_id, SignUp.labourer_id == labourer_id)
    ).one_or_none()
    if signup is None or signup.status == "cancelled":
        return SignUpOutcome("not_signed_up", event)
    was_registered = signup.status == "registered"
    signup.status, signup.updated_at = "cancelled", now
    promoted = None
    if was_registered:
        first = session.scalars(
            select(SignUp)
            .where(SignUp.event_id == event_id, SignUp.status == "waitlisted")
            .order_by(SignUp.updated_at, SignUp.id)
            .limit(1)
        ).first()
        if first is not None:
            first.status, first.updated_at = "registered", now
            promoted = first.labourer_id
    session.flush()
    return SignUpOutcome("cancelled", event, promoted_labourer_id=promoted)


# ---- the conversation side -------------------------------------------------------------------------


def latest_broadcast(session: Session, labourer_id: int, *, now: datetime, window: timedelta) -> Delivery | None:
    """The newest broadcast this person received (sent, and not reported undelivered by its outbox row's
    receipt) that announced an event still open for sign-up."""
    return session.scalars(
        DeliveryOutcome.with_outbox(select(Delivery))
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .join(Event, Event.id == Campaign.event_id)
        .where(
            Delivery.labourer_id == labourer_id,
            DeliveryOutcome.status.in_(("sent", "delivered")),
            Delivery.sent_at >= now - window,
            Campaign.signup.is_(True),
            Event.signup_enabled.is_(True),
            Event.status == "open",
            Event.starts_at > now,
        )
        .order_by(Delivery.sent_at.desc(), Delivery.id.desc())
        .limit(1)
    ).first()


def _active_signup(session: Session, labourer_id: int, now: datetime) -> SignUp | None:
    return session.scalars(
        select(SignUp)
        .join(Event, Event.id == SignUp.event_id)
        .where(SignUp.labourer_id == labourer_id, SignUp.status.in_(("registered", "waitlisted")), Event.starts_at > now)
        .order_by(SignUp.updated_at.desc())
        .limit(1)
    ).first()


def outcome_reply(outcome: SignUpOutcome, *, tz: str, texts: dict[str, Any]) -> Reply:
    values = {**event_values(outcome.event, tz, texts), "位置": outcome.position or ""}
    key = {
        "registered": "signup_registered",
        "waitlisted": "signup_waitlisted",
        "already_registered": "signup_already",
        "already_waitlisted": "signup_already_waitlisted",
        "cancelled": "signup_cancelled",
        "not_signed_up": "signup_nothing_to_cancel",
        "closed": "signup_closed",
    }[outcome.status]
    return Reply(fill(texts[key], values))


def notify_promoted(turn: Turn, outcome: SignUpOutcome) -> None:
    """Tell the first person on the waiting list that a place came free (WeChat if bound, else SMS), once
    the cancellation has committed: the provider call holds no transaction, and nobody is told of a place
    whose cancellation was then undone."""
    labourer_id = outcome.promoted_labourer_id
    if labourer_id is None:
        return
    texts = turn.kb.campaign_texts
    reply = Reply(fill(texts["signup_promoted"], event_values(outcome.event, turn.settings.timezone, texts)))
    turn.after_commit(partial(_send_promotion, turn.services, labourer_id, reply))


def _send_promotion(services: Services, labourer_id: int, reply: Reply) -> None:
    """Which channel is the one policy's (bot.channels.policy): WeChat when bound, then template, then SMS."""
    from bot.channels import outbound

    try:
        with session_scope(services.sessionmaker) as session:
            labourer = session.get(Labourer, labourer_id)
            if labourer is None:
                return
            result = outbound.deliver_to_labourer(session, services, labourer, reply, purpose="notice")
    except Exception:  # the cancellation stands; the promoted person also gets the event's reminders
        log.exception("could not tell a promoted labourer", extra={"labourer_id": labourer_id})
        return
    if not result.ok:
        log.warning("promotion notice not sent", extra={"labourer_id": labourer_id, "error_code": result.error_code})


def broadcast_reply(turn: Turn) -> list[Reply] | None:
    """Pre-route hook: answer "报名"/"1"/"不去了" sent in reply to a broadcast; None otherwise."""
    kind = classify(turn.text)
    if kind is None:
        return None
    labourer = turn.labourer()
    if labourer is None:
        return None
    labourer_id = labourer.id
    session, now, tz = turn.session, utcnow(), turn.settings.timezone
    window = timedelta(hours=turn.settings.signup_reply_window_hours)
    if kind == "cancel":
        active = _active_signup(session, labourer_id, now)
        if active is None:
            return None
        outcome = cancel(session, active.event_id, labourer_id, now=now)
        notify_promoted(turn, outcome)
        return [outcome_reply(outcome, tz=tz, texts=turn.kb.campaign_texts)]
    delivery = latest_broadcast(session, labourer_id, now=now, window=window)
    if delivery is None:
        return None
    last_turn = turn.state.updated_at
    if _core(turn.text) in ("1", "好", "好的") and last_turn is not None and delivery.sent_at is not None \
            and last_turn > delivery.sent_at and turn.state.context.get("menu"):
        return None  # the person has talked to the bot since: "1" picks from that newer menu
    campaign = session.get(Campaign, delivery.campaign_id)
    assert campaign is not None and campaign.event_id is not None
    outcome = sign_up(session, campaign.event_id, labourer_id, campaign_id=campaign.id,
                      channel=turn.message.channel, now=now)
    return [outcome_reply(outcome, tz=tz, texts=turn.kb.campaign_texts)]
