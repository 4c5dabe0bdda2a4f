"""query_events: upcoming job fairs and training sessions."""

from __future__ import annotations

from bot.channels.base import Reply
from bot.conversation import Turn
from bot.intents import handles


@handles("query_events")
def query_events(turn: Turn) -> list[Reply]:
    return [Reply(turn.say("query_events"))]
