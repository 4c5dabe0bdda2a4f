"""query_events: upcoming job fairs and training sessions from the database, each a numbered sign-up
choice; event_signup / event_cancel: the menu actions behind those numbers. Replies to a broadcast
("报名", "1", "不去了") are handled before routing by bot.signups.broadcast_reply."""

from __future__ import annotations

from sqlalchemy import select

from bot.channels.base import Choice, Reply
from bot.conversation import Turn
from bot import signups
from bot.models import Event, utcnow
from bot.render import event_values, fill

MAX_LISTED = 5


def query_events(turn: Turn) -> list[Reply]:
    texts = turn.kb.campaign_texts
    query = select(Event).where(Event.status == "open", Event.starts_at > utcnow()).order_by(Event.starts_at)
    events = turn.session.scalars(query.limit(MAX_LISTED)).all()
    if not events:
        return [Reply(texts["events_none"])]
    tz = turn.settings.timezone
    lines = [texts["events_title"]] + [fill(texts["events_line"], event_values(e, tz, texts)) for e in events]
    choices = tuple(
        Choice(fill(texts["events_signup_label"], event_values(e, tz, texts)), {"intent": "event_signup", "event": e.id})
        for e in events
        if e.signup_enabled
    )
    return [Reply("\n".join(lines), choices, footer=texts["events_footer"] if choices else "")]


def _event_id(turn: Turn) -> int | None:
    value = turn.action.get("event")
    return int(value) if value is not None else None


def event_signup(turn: Turn) -> list[Reply]:
    texts = turn.kb.campaign_texts
    event_id = _event_id(turn)
    labourer = turn.labourer()
    if event_id is None:
        return query_events(turn)
    if labourer is None:
        return [Reply(texts["signup_need_registration"])]
    outcome = signups.sign_up(turn.session, event_id, labourer.id, channel=turn.message.channel)
    return [signups.outcome_reply(outcome, tz=turn.settings.timezone, texts=texts)]


def event_cancel(turn: Turn) -> list[Reply]:
    texts = turn.kb.campaign_texts
    event_id, labourer = _event_id(turn), turn.labourer()
    if event_id is None or labourer is None:
        return query_events(turn)
    outcome = signups.cancel(turn.session, event_id, labourer.id)
    signups.notify_promoted(turn, outcome)
    return [signups.outcome_reply(outcome, tz=turn.settings.timezone, texts=texts)]


HANDLERS = {
    "query_events": query_events,
    "event_signup": event_signup,
    "event_cancel": event_cancel,
}
