"""query_events: upcoming job fairs and training sessions from the database, each a numbered sign-up
choice; event_signup / event_cancel: the menu actions behind those numbers. Replies to a broadcast
("报名", "1", "不去了") are handled before routing by scheduler.replies (installed here, see scheduler.hooks)."""

from __future__ import annotations

from sqlalchemy import select

from bot.channels.base import Choice, Reply
from bot.conversation import Turn
from bot.intents import handles
from bot.models import Event, utcnow
from scheduler import hooks, replies
from scheduler.render import campaign_texts, event_values, fill

MAX_LISTED = 5

hooks.install()


@handles("query_events")
def query_events(turn: Turn) -> list[Reply]:
    texts = campaign_texts(turn.settings.knowledge_dir)
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


@handles("event_signup")
def event_signup(turn: Turn) -> list[Reply]:
    texts = campaign_texts(turn.settings.knowledge_dir)
    event_id = _event_id(turn)
    labourer_id = replies.labourer_for(turn)
    if event_id is None:
        return query_events(turn)
    if labourer_id is None:
        return [Reply(texts["signup_need_registration"])]
    outcome = replies.sign_up(turn.session, event_id, labourer_id, channel=turn.message.channel)
    return [replies.outcome_reply(outcome, tz=turn.settings.timezone, texts=texts)]


@handles("event_cancel")
def event_cancel(turn: Turn) -> list[Reply]:
    texts = campaign_texts(turn.settings.knowledge_dir)
    event_id, labourer_id = _event_id(turn), replies.labourer_for(turn)
    if event_id is None or labourer_id is None:
        return query_events(turn)
    outcome = replies.cancel(turn.session, event_id, labourer_id)
    replies.notify_promoted(turn, outcome)
    return [replies.outcome_reply(outcome, tz=turn.settings.timezone, texts=texts)]
